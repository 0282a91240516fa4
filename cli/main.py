"""The ``dbayes`` command line: train, evaluate, (later) attack and detect."""
from __future__ import annotations

import functools
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

# TensorFlow's C++ start-up chatter is noise for a CLI user; real errors still surface.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class UserError(click.ClickException):
    """Printed as 'Error: ...' with exit status 1, never as a traceback."""


def friendly_errors(func):
    """Turn the library's own validation errors into clean CLI errors."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from dbayes_tf.data import DatasetError
        from dbayes_tf.training import RunError

        try:
            return func(*args, **kwargs)
        except (DatasetError, RunError, ValueError) as err:
            raise UserError(str(err)) from None
        except OSError as err:  # e.g. an --out folder we may not write to
            where = f"{err.filename}: " if err.filename else ""
            raise UserError(f"{where}{err.strerror or err}") from None
        except KeyError as err:  # a run's JSON files without a field they must have
            raise UserError(f"a run file lacks the field {err}; is it damaged?") from None
        except KeyboardInterrupt:
            raise UserError("interrupted; everything finished so far is saved") from None

    return wrapper


def _read_preset(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
    except OSError as err:
        raise UserError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UserError(f"config {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise UserError(f"config {path} must be a mapping of option names to values")
    return values


def _apply_preset(ctx: click.Context, options: dict[str, Any], preset_path: str | None
                  ) -> dict[str, Any]:
    """Preset values fill every option not given on the command line; a preset's ``models:``
    section adds per-model values on top of its top-level ones."""
    if not preset_path:
        return options
    preset = _read_preset(preset_path)
    train_section = preset.get("train", preset)
    per_model = train_section.get("models", {}) or {}
    merged = {key: value for key, value in train_section.items() if key != "models"}
    model = options.get("model")
    if ctx.get_parameter_source("model") != ParameterSource.COMMANDLINE and "model" in merged:
        model = merged["model"]
    merged.update(per_model.get(model, {}) or {})
    merged = {key.replace("-", "_"): value for key, value in merged.items()}
    unknown = set(merged) - set(options)
    if unknown:
        raise UserError(f"config {preset_path}: unknown option(s) {sorted(unknown)}; "
                        f"known: {sorted(options)}")
    params = {param.name: param for param in ctx.command.params}
    result = dict(options)
    for key, value in merged.items():
        if ctx.get_parameter_source(key) == ParameterSource.COMMANDLINE:
            continue
        try:  # the same type and range checks as on the command line (YAML reads 1e-3 as text)
            result[key] = None if value is None else params[key].type_cast_value(ctx, value)
        except click.BadParameter as err:
            raise UserError(f"config {preset_path}: {key}: {err.message}") from None
    return result


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe for GPUs with file descriptor 2 closed off: TF's C++ start-up
    lines (oneDNN notice, missing CUDA drivers) bypass TF_CPP_MIN_LOG_LEVEL and would bury the
    CLI's own output. DBAYES_TF_LOGS=1 lets them through; Python errors still surface."""
    if "tensorflow" in sys.modules or os.environ.get("DBAYES_TF_LOGS") == "1":
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dbayes")
def main():
    """dbayes: train deep Bayes (generative) classifiers and their discriminative counterparts,
    attack them, detect the attacks, and report the results."""
    if not any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        _import_tensorflow_quietly()


@main.command()
@click.option("--model", type=click.Choice(["mlp", "bnn", "cnn", "gc", "gfz", "dfz"]),
              default="gc", show_default=True, help="gc = paper 1's conditional-VAE classifier; "
              "gfz / dfz = paper 2's pair; mlp / bnn / cnn = discriminative baselines.")
@click.option("--arch", type=click.Choice(["mlp", "cnn"]), default=None,
              help="Network family (default: mlp; fixed for --model mlp / cnn).")
@click.option("--dataset", type=click.Choice(["mnist", "fashion_mnist"]), default="mnist",
              show_default=True)
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Importance samples (or MC-dropout passes) for reported accuracy; stored as "
              "the model's default K.")
@click.option("--train-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Importance samples in the training bound (1 = ELBO, >1 = IWAE).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
              default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--likelihood", type=click.Choice(["gaussian", "bernoulli"]), default="gaussian",
              show_default=True, help="p(x | ...) of latent models; gaussian = paper 1's l2 loss.")
@click.option("--gaussian-scale", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Pixel std of the gaussian likelihood (default sqrt(0.5): log p = -||x - mu||^2).")
@click.option("--latent-dim", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--dropout", type=click.FloatRange(min=0, max=1, max_open=True), default=None,
              help="Dropout rate (default: 0.5 for bnn, 0.2 for gfz / dfz, else 0).")
@click.option("--train-size", type=click.IntRange(min=1), default=None,
              help="Train on the first N training images only.")
@click.option("--test-size", type=click.IntRange(min=1), default=None,
              help="Report accuracy on the first N test images only.")
@click.option("--validation-size", type=click.IntRange(min=0), default=5000, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with the IDX .gz files (default: $DBAYES_DATA, then data/, ...).")
@click.option("--config", "preset", type=click.Path(dir_okay=False), default=None,
              help="YAML preset (configs/); command-line options override it.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run directory for weights, config.json, metrics.json.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch.")
@click.option("--overwrite", is_flag=True, help="Start again even if --out holds a run.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
@friendly_errors
def train(ctx: click.Context, **options):
    """Train a classifier (ELBO for latent models, cross-entropy otherwise) and report its clean
    test accuracy at K samples."""
    options = _apply_preset(ctx, options, options.pop("preset"))
    from dbayes_tf import models, training

    model_config = models.resolve_config(
        options["model"], options["arch"], k=options["k"], train_k=options["train_k"],
        likelihood=options["likelihood"],
        gaussian_scale=options["gaussian_scale"], latent_dim=options["latent_dim"],
        dropout=options["dropout"], seed=options["seed"])
    train_config = training.TrainConfig(
        dataset=options["dataset"], epochs=options["epochs"], batch_size=options["batch_size"],
        lr=options["lr"], seed=options["seed"], validation_size=options["validation_size"],
        train_size=options["train_size"], test_size=options["test_size"])
    _seed_everything(options["seed"])
    metrics, _ = training.train(
        model_config, train_config, options["out"], data_dir=options["data_dir"],
        resume=options["resume"], overwrite=options["overwrite"],
        progress=not options["quiet"], command=_command_line())
    _print_and_save_accuracy([(options["out"], metrics)], options["out"], "accuracy")


@main.command(name="eval")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--k", type=click.IntRange(min=1), default=None,
              help="Samples per class (default: each model's own K).")
@click.option("--dataset", type=click.Choice(["mnist", "fashion_mnist"]), default=None,
              help="Default: the dataset each model was trained on.")
@click.option("--test-size", type=click.IntRange(min=1), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where to write accuracy.csv / .md (default: the first run directory).")
@click.option("--name", default="eval", show_default=True, help="Table file name stem.")
@click.option("--quiet", is_flag=True)
@friendly_errors
def evaluate(run_dirs, k, dataset, test_size, seed, batch_size, data_dir, out, name, quiet):
    """Clean test accuracy, predictive entropy and NLL of trained models, as one table."""
    from dbayes_tf import data, inference, training

    _seed_everything(seed)
    rows, cache = [], {}
    for run_dir in run_dirs:
        saved = training.load_run_config(run_dir)
        model = training.load_model(run_dir)
        dataset_name = dataset or saved["train"]["dataset"]
        if dataset_name not in cache:
            cache[dataset_name] = data.load_dataset(dataset_name, data_dir=data_dir)
        split = cache[dataset_name].test.take(test_size)
        result = inference.evaluate(model, split, k=k, batch_size=batch_size, seed=seed,
                                    progress=not quiet)
        rows.append((run_dir, {
            "model": saved["model"]["model"], "arch": saved["model"]["arch"],
            "dataset": dataset_name, "k": result.k, "test_accuracy": result.accuracy,
            "test_entropy": result.mean_entropy, "test_nll": result.nll, "n_test": result.n,
            "seed": seed}))
    _print_and_save_accuracy(rows, out or run_dirs[0], name)


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Where to write NAME.csv / NAME.md.")
@click.option("--name", default="accuracy", show_default=True, help="Table file name stem.")
@friendly_errors
def summarize(run_dirs, out, name):
    """One table of finished training runs (their metrics.json), with the papers' numbers and
    this project's targets beside them. Computes nothing new: use 'dbayes eval' for that."""
    import pandas as pd

    from dbayes_tf import paper_numbers, reporting, training

    rows = []
    for run_dir in run_dirs:
        saved = training.load_run_config(run_dir)
        metrics_path = Path(run_dir) / training.METRICS_FILE
        if not metrics_path.is_file():
            raise UserError(f"{run_dir}: no {training.METRICS_FILE}; the run has not finished")
        metrics = reporting.read_json(metrics_path)
        key = (metrics["dataset"], metrics["model"], metrics["arch"])
        paper = paper_numbers.CLEAN_ACCURACY.get(key + (metrics["k"],))
        target = paper_numbers.TARGET_ACCURACY.get(key)
        rows.append({
            "run": Path(run_dir).name, "dataset": metrics["dataset"], "model": metrics["model"],
            "arch": metrics["arch"], "k": metrics["k"], "epochs": metrics["epochs"],
            "test_accuracy": metrics["test_accuracy"], "n_test": metrics["n_test"],
            "paper_accuracy": paper[0] if paper else None,
            "paper_source": paper[1] if paper else "",
            "target": target,
            "meets_target": None if target is None else metrics["test_accuracy"] >= target,
            "train_seconds": round(sum(r["seconds"] for r in reporting.read_json(
                Path(run_dir) / training.STATE_FILE)["history"])),
            "seed": metrics["seed"], "command": saved.get("command") or "",
        })
    frame = pd.DataFrame(rows)
    provenance = (f"Made by: `{_command_line()}` from each run's metrics.json (test accuracy "
                  "computed at the end of `dbayes train`, on the full test set unless n_test "
                  "says otherwise).")
    csv_path, md_path = reporting.write_table(frame, out, name, provenance)
    click.echo(reporting.to_markdown(frame.drop(columns=["command"])))
    click.echo(f"\nwrote {csv_path} and {md_path}", err=True)


def _seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def _command_line() -> str:
    """The command as the user gave it: the options and arguments set on the command line."""
    ctx = click.get_current_context()
    words = ["dbayes", ctx.info_name]
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) != ParameterSource.COMMANDLINE:
            continue
        value = ctx.params.get(param.name)
        flag = param.opts[0] if isinstance(param, click.Option) else None
        values = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(param, click.Option) and param.is_flag:
            words.append(flag)
            continue
        for item in values:
            words += ([flag] if flag else []) + [shlex.quote(str(item))]
    return " ".join(words)


def _print_and_save_accuracy(rows, out_dir, name: str) -> None:
    import pandas as pd

    from dbayes_tf import reporting

    frame = pd.DataFrame([{"run": str(run), **metrics} for run, metrics in rows])
    columns = ["run", "model", "arch", "dataset", "k", "test_accuracy", "test_entropy",
               "test_nll", "n_test", "seed"]
    frame = frame[[c for c in columns if c in frame.columns]]
    env = reporting.environment()
    provenance = (f"Made by: `{_command_line()}`\n\n"
                  f"Machine: {env['platform']}, {env['cpu_count']} CPUs; TensorFlow "
                  f"{env['tensorflow']}")
    csv_path, md_path = reporting.write_table(frame, out_dir, name, provenance)
    click.echo(reporting.to_markdown(frame))
    click.echo(f"\nwrote {csv_path} and {md_path}", err=True)


if __name__ == "__main__":
    main()
