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
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant",
              show_default=True, help="cosine: decay --lr to 0 over all --epochs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--decoder-bias-init", type=click.Choice(["zero", "data-mean"]), default="zero",
              show_default=True,
              help="Latent models: start the decoder's output bias at 0 (Keras' default) or at "
                   "the logit of the mean training pixel, so that the first steps need not "
                   "darken every pixel at once (which can saturate the sigmoid for good).")
@click.option("--likelihood", type=click.Choice(["gaussian", "bernoulli"]), default="gaussian",
              show_default=True, help="p(x | ...) of latent models; gaussian = paper 1's l2 loss.")
@click.option("--gaussian-scale", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Pixel std of the gaussian likelihood "
                   "(default sqrt(0.5): log p = -||x - mu||^2).")
@click.option("--latent-dim", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--vae-channels", type=click.IntRange(min=1), default=None,
              help="Width of the VAE-CNN's encoder and decoder convolutions (default 64, paper 1).")
@click.option("--vae-kernel-size", type=click.IntRange(min=1), default=None,
              help="Kernel size of those convolutions (default 3, paper 1; the DeepBayes "
                   "reference code uses 5).")
@click.option("--dropout", type=click.FloatRange(min=0, max=1, max_open=True), default=None,
              help="Dropout rate (default: 0.5 for bnn, 0.2 for gfz / dfz, else 0).")
@click.option("--train-size", type=click.IntRange(min=1), default=None,
              help="Train on the first N training images only.")
@click.option("--test-size", type=click.IntRange(min=1), default=None,
              help="Report accuracy on the first N test images only.")
@click.option("--validation-size", type=click.IntRange(min=0), default=5000, show_default=True,
              help="Images held out of the training set (split seed 0); 0 trains on all.")
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
        vae_channels=options["vae_channels"], vae_kernel_size=options["vae_kernel_size"],
        dropout=options["dropout"], seed=options["seed"])
    train_config = training.TrainConfig(
        dataset=options["dataset"], epochs=options["epochs"], batch_size=options["batch_size"],
        lr=options["lr"], lr_schedule=options["lr_schedule"], seed=options["seed"],
        decoder_bias_init=options["decoder_bias_init"],
        validation_size=options["validation_size"],
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
@click.option("--split", type=click.Choice(["test", "validation", "train"]), default="test",
              show_default=True,
              help="Which images: the test set, or the model's own validation carve-out (to "
                   "compare recipes without touching the test set) or training part (to tell "
                   "under- from over-fitting).")
@click.option("--test-size", type=click.IntRange(min=1), default=None,
              help="Use only the first N images of the split.")
@click.option("--seed", "seeds", type=int, multiple=True, default=(0,), show_default=True,
              help="Evaluation seed (the model's random draws); repeat it (--seed 0 --seed 1 "
                   "--seed 2) for one row per seed, to see the Monte-Carlo spread of the "
                   "estimate.")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where to write NAME.csv / .md (default: the first run directory).")
@click.option("--name", default="eval", show_default=True, help="Table file name stem.")
@click.option("--quiet", is_flag=True)
@friendly_errors
def evaluate(run_dirs, k, dataset, split, test_size, seeds, batch_size, data_dir, out, name,
             quiet):
    """Clean accuracy, predictive entropy and NLL of trained models, as one table (columns
    named after the split: test_accuracy, validation_accuracy, ...)."""
    from dbayes_tf import data, inference, training

    rows, cache = [], {}
    for run_dir in run_dirs:
        saved = training.load_run_config(run_dir)
        model = training.load_model(run_dir)
        dataset_name = dataset or saved["train"]["dataset"]
        validation_size = training.validation_size_of(saved)
        key = (dataset_name, validation_size)
        if key not in cache:
            cache[key] = data.load_dataset(dataset_name, data_dir=data_dir,
                                           validation_size=validation_size)
        images = getattr(cache[key], split).take(test_size)
        if len(images) == 0:
            raise click.UsageError(f"{run_dir}: its {split} split is empty (trained with "
                                   f"validation_size={validation_size})")
        for seed in dict.fromkeys(seeds):  # repeated seeds once, in the order given
            _seed_everything(seed)
            result = inference.evaluate(model, images, k=k, batch_size=batch_size, seed=seed,
                                        progress=not quiet)
            rows.append((run_dir, {
                "model": saved["model"]["model"], "arch": saved["model"]["arch"],
                "dataset": dataset_name, "k": result.k, f"{split}_accuracy": result.accuracy,
                f"{split}_entropy": result.mean_entropy, f"{split}_nll": result.nll,
                f"n_{split}": result.n, "seed": seed}))
    _print_and_save_accuracy(rows, out or run_dirs[0], name)


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Where to write NAME.csv / NAME.md.")
@click.option("--name", default="accuracy", show_default=True, help="Table file name stem.")
@click.option("--first-attempts", type=click.IntRange(min=1), default=None,
              help="Attack runs: recompute each row from its first N attempts only, so that a "
                   "run stopped early compares with a finished one on the same attempts (runs "
                   "must share --n-images, --targeted and --seed; rows only, no ifgsm path).")
@friendly_errors
def summarize(run_dirs, out, name, first_attempts):
    """Collect finished runs into one table; computes nothing new.

    Training runs: their metrics.json, with the papers' numbers and this project's targets
    beside them. Attack runs: their summary rows (one per model x attack). FGSM sweeps: their
    curves, also drawn together in NAME.png (paper 1 Fig. 1a); iterative FGSM paths likewise
    (Fig. 1b). All RUN_DIRS must be of one kind.
    """
    import pandas as pd

    from dbayes_tf import attack_run, paper_numbers, reporting, training

    kinds = {attack_run.run_kind(run_dir) for run_dir in run_dirs}
    if len(kinds) > 1:
        raise UserError(f"RUN_DIRS mix kinds of run ({', '.join(sorted(kinds))}); summarize "
                        "one kind at a time")
    kind = kinds.pop()
    if first_attempts is not None and kind != "attack":
        raise UserError("--first-attempts applies to attack runs only")
    if kind != "training":
        frame, figure = attack_run.collect(run_dirs, kind, out, name, first_attempts)
        provenance = f"Made by: `{_command_line()}` from each run's own tables."
        csv_path, md_path = reporting.write_table(frame, out, name, provenance)
        click.echo(reporting.to_markdown(frame))
        click.echo(f"\nwrote {csv_path} and {md_path}" + (f" and {figure}" if figure else ""),
                   err=True)
        return
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


ATTACK_CHOICES = ["fgsm", "ifgsm", "cw_l2", "deepfool", "truncated_deepfool", "zoo", "noise"]


@main.command()
@click.argument("model_dir", type=click.Path())
@click.option("--attack", type=click.Choice(ATTACK_CHOICES), required=True,
              help="fgsm / ifgsm (CleverHans), cw_l2, deepfool, truncated_deepfool, zoo (black "
                   "box), noise (random Gaussian control of size --l2).")
@click.option("--n-images", type=click.IntRange(min=1), default=200, show_default=True,
              help="Test images to attack, drawn with --seed.")
@click.option("--targeted", type=click.Choice(["none", "all", "random"]), default=None,
              help="Targets: none (untargeted), all other classes, or one random other class. "
                   "Default: all for ifgsm (paper 1), none otherwise.")
@click.option("--k", type=click.IntRange(min=1), default=None,
              help="Importance samples per class (default: the model's own K).")
@click.option("--eps", default=None,
              help="fgsm: L-inf step (default 0.1), or a sweep START:STOP:STEP (paper 1 Fig. "
                   "1a); ifgsm: optional L-inf bound on the total change.")
@click.option("--preset", type=click.Choice(["carlini", "cleverhans", "fast"]), default="fast",
              show_default=True, help="cw_l2 settings; the options below override them.")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="ifgsm steps (100), cw_l2 steps per binary-search step (preset), "
                   "deepfool max iterations (50), zoo iterations (200).")
@click.option("--step-size", type=click.FloatRange(min=0, min_open=True), default=0.01,
              show_default=True, help="ifgsm step.")
@click.option("--binary-steps", type=click.IntRange(min=1), default=None,
              help="cw_l2 / zoo binary-search steps over c.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="cw_l2 Adam / zoo ADAM learning rate.")
@click.option("--initial-const", type=click.FloatRange(min=0, min_open=True), default=None,
              help="cw_l2 / zoo starting trade-off constant c.")
@click.option("--confidence", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="cw_l2 / zoo margin kappa.")
@click.option("--no-abort-early", is_flag=True, help="cw_l2 / zoo: run every iteration.")
@click.option("--p", "norm_p", default="2", show_default=True,
              help="deepfool norm: a number > 1 or inf.")
@click.option("--candidates", type=click.IntRange(min=2), default=10, show_default=True,
              help="deepfool candidate classes.")
@click.option("--overshoot", type=click.FloatRange(min=0), default=0.02, show_default=True)
@click.option("--bisection-steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="truncated_deepfool halvings.")
@click.option("--coordinates", type=click.IntRange(min=1), default=128, show_default=True,
              help="zoo coordinates per iteration.")
@click.option("--fd-step", type=click.FloatRange(min=0, min_open=True), default=None,
              help="zoo finite-difference step (default 1e-4, 0.01 for stochastic models).")
@click.option("--queries-per-point", type=click.IntRange(min=1), default=None,
              help="zoo queries averaged per point (default 1, 4 for stochastic models).")
@click.option("--l2", type=click.FloatRange(min=0), default=None,
              help="noise: L2 size of the Gaussian noise.")
@click.option("--draws", type=click.IntRange(min=1), default=10, show_default=True,
              help="R fresh draws that judge every final image (majority vote).")
@click.option("--decision-draws", type=click.IntRange(min=1), default=None,
              help="Draws behind an attack's own decisions (default 1, 3 for stochastic "
                   "models).")
@click.option("--confirm-draws", type=click.IntRange(min=0), default=None,
              help="cw_l2, zoo, deepfool, truncated_deepfool: fresh draws, 80% of which "
                   "must be fooled before the attack counts an image as done (default R for "
                   "stochastic models, 0 for deterministic ones: off).")
@click.option("--batch-size", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--max-query-batch", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Largest batch sent to the model in one call (memory bound).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run directory for attempts.csv, adversarial/*.npz and summary tables.")
@click.option("--resume", is_flag=True, help="Skip attempts already finished in --out.")
@click.option("--overwrite", is_flag=True, help="Start again even if --out holds a run.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def attack(model_dir, **o):
    """Attack a trained model and measure success, distortion and cost per attempt.

    Success is judged by majority over R fresh draws of the model (a stochastic classifier's
    single flip is not an adversarial example); the single-draw figure is reported beside it.
    Results are saved after every batch; Ctrl-C keeps them and --resume carries on.
    """
    from dbayes_tf import attack_run, attacks, data, reporting, training

    name = o["attack"]
    targeted = o["targeted"] or ("all" if name == "ifgsm" else "none")
    saved = training.load_run_config(model_dir)
    model = training.load_model(model_dir)
    stochastic = model.is_stochastic
    eps = attack_run.parse_eps(o["eps"])
    if name != "fgsm" and eps is not None and len(eps) > 1:
        raise UserError("an --eps sweep is for --attack fgsm only")
    if eps is not None and len(eps) > 1 and targeted != "none":
        raise UserError("the --eps sweep is untargeted FGSM (paper 1 Fig. 1a); drop --targeted")
    params: dict = {}
    if name == "fgsm":
        params["eps"] = eps[0] if eps else 0.1
    elif name == "ifgsm":
        params.update(step_size=o["step_size"], iterations=o["iterations"] or 100,
                      eps=eps[0] if eps else None)
    elif name == "cw_l2":
        preset = attacks.CW_PRESETS[o["preset"]]
        params.update(
            preset=o["preset"], confidence=o["confidence"],
            binary_search_steps=o["binary_steps"] or preset.binary_search_steps,
            max_iterations=o["iterations"] or preset.max_iterations,
            learning_rate=o["lr"] or preset.learning_rate,
            initial_const=o["initial_const"] or preset.initial_const,
            abort_early=not o["no_abort_early"])
    elif name in ("deepfool", "truncated_deepfool"):
        try:
            norm_p = float(o["norm_p"])
        except ValueError:
            raise UserError(f"--p must be a number > 1 or inf; got {o['norm_p']!r}") from None
        if not norm_p > 1:  # also refuses nan
            raise UserError(f"--p must be > 1 (DeepFool's dual norm needs it); got {norm_p}")
        params.update(p=norm_p, candidates=o["candidates"], overshoot=o["overshoot"],
                      max_iterations=o["iterations"] or 50)
        if name == "truncated_deepfool":
            params["bisection_steps"] = o["bisection_steps"]
    elif name == "zoo":
        params.update(
            confidence=o["confidence"], max_iterations=o["iterations"] or 200,
            coordinates=o["coordinates"], learning_rate=o["lr"] or 1e-2,
            fd_step=o["fd_step"] or (1e-2 if stochastic else 1e-4),
            queries_per_point=o["queries_per_point"] or (4 if stochastic else 1),
            initial_const=o["initial_const"] or 10.0,
            binary_search_steps=o["binary_steps"] or 1, abort_early=not o["no_abort_early"])
    elif name == "noise":
        if o["l2"] is None:
            raise UserError("--attack noise needs --l2 (the noise's L2 size)")
        params["l2"] = o["l2"]
    dataset = data.load_dataset(saved["train"]["dataset"], data_dir=o["data_dir"])
    _seed_everything(o["seed"])
    if name == "fgsm" and eps is not None and len(eps) > 1:
        frame = attack_run.fgsm_sweep(
            model, dataset.test, eps, n_images=o["n_images"], k=o["k"], seed=o["seed"],
            draws=o["draws"], batch_size=o["batch_size"], out_dir=o["out"],
            command=_command_line(), progress=not o["quiet"])
        click.echo(reporting.to_markdown(frame))
        click.echo(f"\nwrote {Path(o['out']) / 'fgsm_sweep'}.{{csv,md,png}}", err=True)
        return
    settings = attack_run.AttackSettings(
        attack=name, targeted=targeted, n_images=o["n_images"], k=o["k"], seed=o["seed"],
        batch_size=o["batch_size"], draws=o["draws"], decision_draws=o["decision_draws"],
        confirm_draws=o["confirm_draws"],
        max_query_batch=o["max_query_batch"], params=params)
    summary = attack_run.run_attack(
        model, model_dir, dataset.test, settings, o["out"], resume=o["resume"],
        overwrite=o["overwrite"], progress=not o["quiet"], command=_command_line(),
        log=lambda text: click.echo(text, err=True))
    import pandas as pd

    shown = pd.DataFrame([summary]).drop(columns=["model_dir"]).T.reset_index()
    shown.columns = ["measure", "value"]
    click.echo(reporting.to_markdown(shown))
    click.echo(f"\nrun in {o['out']}: summary.{{csv,md}}, attempts.csv and adversarial/*.npz",
               err=True)


@main.command()
@click.option("--method", type=click.Choice(["recon", "logit", "marginal", "kl"]), required=True,
              help="recon: reconstruction distance (paper 1); logit: log p(x, F(x)) (paper 2); "
                   "marginal: log p(x); kl: KL(p_bar_c || p(y|x)).")
@click.option("--detector-model", type=click.Path(), required=True,
              help="Run directory of a trained generative model (gc, gfz or dfz).")
@click.option("--adv", "attack_dirs", type=click.Path(), multiple=True, required=True,
              help="A 'dbayes attack' run directory (repeat for several).")
@click.option("--fpr", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
              default=0.05, show_default=True,
              help="Target false-positive rate that calibrates alpha on clean training data.")
@click.option("--threshold", type=click.Choice(["paper", "fpr"]), default=None,
              help="paper: mean training distance (recon only, its default); fpr: calibrate "
                   "to --fpr (default of the others).")
@click.option("--per-class/--global", "per_class", default=None,
              help="Per-class statistics (default: global for recon, per class for logit).")
@click.option("--k", type=click.IntRange(min=1), default=None,
              help="Importance samples of the detector (default: its own K).")
@click.option("--n-fit", type=click.IntRange(min=10), default=5000, show_default=True,
              help="Images the detector is fitted and calibrated on.")
@click.option("--fit-split", type=click.Choice(["validation", "train"]), default="validation",
              show_default=True,
              help="Clean data to fit on: the held-out validation part of the training set "
                   "(the detector model never trained on it), or the training images "
                   "themselves (the papers' choice; under-rejects if the model overfits).")
@click.option("--n-clean", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Held-out clean test images (not attacked) for the false-positive rate.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--quiet", is_flag=True)
@friendly_errors
def detect(method, detector_model, attack_dirs, fpr, threshold, per_class, k, n_fit, fit_split,
           n_clean, seed, data_dir, out, quiet):
    """Detect the adversarial examples of attack runs with a conditional generative model:
    detection rate, false-positive rate, ROC AUC and curves, and a reconstruction grid."""
    from dbayes_tf import data, detection_run, reporting, training

    saved = training.load_run_config(detector_model)
    dataset = data.load_dataset(saved["train"]["dataset"], data_dir=data_dir,
                                validation_size=training.validation_size_of(saved))
    _seed_everything(seed)
    frame = detection_run.run_detection(
        method, detector_model, list(attack_dirs), dataset, out, fpr=fpr, threshold=threshold,
        per_class=per_class, k=k, n_fit=n_fit, fit_split=fit_split, n_clean=n_clean, seed=seed,
        progress=not quiet, command=_command_line(), log=lambda text: click.echo(text, err=True))
    click.echo(reporting.to_markdown(frame.drop(columns=["attack_run"])))
    click.echo(f"\nwrote {Path(out) / ('detect_' + method)}.{{csv,md}} and PNG figures",
               err=True)


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
    columns = ["run", "model", "arch", "dataset", "k",
               *[f"{split}_{measure}" for split in ("test", "validation", "train")
                 for measure in ("accuracy", "entropy", "nll")],
               "n_test", "n_validation", "n_train", "seed"]
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
