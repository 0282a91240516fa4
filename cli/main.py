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

from dbayes_tf.attack_settings import (  # no TensorFlow: options only
    DEFAULT_BATCH_SIZE,
    DEFAULT_N_IMAGES,
    TARGETING,
    CarliniWagnerL2Settings,
)
from dbayes_tf.attack_settings import REGISTRY as ATTACK_REGISTRY
from dbayes_tf.configs import (
    ARCHS,
    DECODER_BIAS_INITS,
    DETECTION_METHODS,
    LIKELIHOODS,
    LR_SCHEDULES,
    MODEL_NAMES,
    PRECISIONS,
    ModelConfig,
    TrainConfig,
)
from dbayes_tf.data import DATASETS
from dbayes_tf.runs.reproduce import SCALES

# TensorFlow's C++ start-up chatter is noise for a CLI user; real errors still surface.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class UserError(click.ClickException):
    """Printed as 'Error: ...' with exit status 1, never as a traceback."""


def friendly_errors(func):
    """Turn the library's own validation errors into clean CLI errors."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from dbayes_tf.data import DatasetError
        from dbayes_tf.runs.store import RunError

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
            click.echo("\ninterrupted; what had finished is saved (attack and train go on with "
                       "--resume, reproduce with the same command)", err=True)
            sys.exit(130)  # the shell's code for "stopped by Ctrl-C", so scripts can tell

    return wrapper


def _apply_preset(ctx: click.Context, options: dict[str, Any], preset_path: str | None
                  ) -> dict[str, Any]:
    """Preset values fill every option not given on the command line; a preset's ``models:``
    section adds per-model values on top of its top-level ones."""
    if not preset_path:
        return options
    from dbayes_tf.runs.store import RunError
    from dbayes_tf.runs.train import read_preset

    model = options.get("model") if ctx.get_parameter_source("model") == \
        ParameterSource.COMMANDLINE else None
    try:
        merged = read_preset(preset_path, model, default_model=options.get("model"))
    except RunError as err:
        raise UserError(str(err)) from None
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
        # retracing notices are about our batch shapes, not the user's input
        tf.get_logger().setLevel("ERROR")
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dbayes")
def main():
    """dbayes: train deep Bayes (generative) classifiers and their discriminative counterparts,
    attack them, detect the attacks, and report the results."""


@main.command()
@click.option("--model", type=click.Choice(MODEL_NAMES), default=ModelConfig.model,
              show_default=True, help="gc = paper 1's conditional-VAE classifier; "
              "gfz / dfz = paper 2's pair; mlp / bnn / cnn = discriminative baselines.")
@click.option("--arch", type=click.Choice(ARCHS), default=None,
              help=f"Network family (default: {ModelConfig.arch}; fixed for --model mlp / cnn).")
@click.option("--dataset", type=click.Choice(DATASETS), default=TrainConfig.dataset,
              show_default=True)
@click.option("--k", type=click.IntRange(min=1), default=ModelConfig.k, show_default=True,
              help="Importance samples (or MC-dropout passes) for reported accuracy; stored as "
              "the model's default K.")
@click.option("--train-k", type=click.IntRange(min=1), default=ModelConfig.train_k,
              show_default=True,
              help="Importance samples in the training bound (1 = ELBO, >1 = IWAE).")
@click.option("--epochs", type=click.IntRange(min=1), default=TrainConfig.epochs,
              show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=TrainConfig.batch_size,
              show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
              default=TrainConfig.lr, show_default=True)
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=TrainConfig.lr_schedule,
              show_default=True, help="cosine: decay --lr to 0 over all --epochs.")
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
@click.option("--decoder-bias-init", type=click.Choice(DECODER_BIAS_INITS),
              default=TrainConfig.decoder_bias_init, show_default=True,
              help="Latent models: start the decoder's output bias at 0 (Keras' default) or at "
                   "the logit of the mean training pixel, so that the first steps need not "
                   "darken every pixel at once (which can saturate the sigmoid for good).")
@click.option("--likelihood", type=click.Choice(LIKELIHOODS), default=ModelConfig.likelihood,
              show_default=True, help="p(x | ...) of latent models; gaussian = paper 1's l2 loss.")
@click.option("--gaussian-scale", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Pixel std of the gaussian likelihood (default "
                   f"{ModelConfig.gaussian_scale:.4f} = sqrt(0.5): log p = -||x - mu||^2).")
@click.option("--latent-dim", type=click.IntRange(min=1), default=ModelConfig.latent_dim,
              show_default=True)
@click.option("--vae-channels", type=click.IntRange(min=1), default=None,
              help="Width of the VAE-CNN's encoder and decoder convolutions (default "
                   f"{ModelConfig.vae_channels}, paper 1).")
@click.option("--vae-kernel-size", type=click.IntRange(min=1), default=None,
              help=f"Kernel size of those convolutions (default {ModelConfig.vae_kernel_size}, "
                   "paper 1; the DeepBayes reference code uses 5).")
@click.option("--dropout", type=click.FloatRange(min=0, max=1, max_open=True), default=None,
              help="Dropout rate (default: the model's; bnn, gfz and dfz train with dropout).")
@click.option("--train-size", type=click.IntRange(min=1), default=None,
              help="Train on the first N training images only.")
@click.option("--test-size", type=click.IntRange(min=1), default=None,
              help="Report accuracy on the first N test images only.")
@click.option("--validation-size", type=click.IntRange(min=0),
              default=TrainConfig.validation_size, show_default=True,
              help="Images held out of the training set (split seed 0); 0 trains on all.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None,
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
    _import_tensorflow_quietly()
    from dbayes_tf.runs import train as training

    run = {key: options.pop(key) for key in ("data_dir", "out", "resume", "overwrite", "quiet")}

    model_config, train_config = training.configs_from_options(options)
    _seed_everything(train_config.seed)
    metrics, _ = training.train(
        model_config, train_config, run["out"], data_dir=run["data_dir"],
        resume=run["resume"], overwrite=run["overwrite"], progress=not run["quiet"],
        command=_command_line())
    _print_and_save_accuracy([(run["out"], metrics)], run["out"], "accuracy")


@main.command(name="eval")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--k", type=click.IntRange(min=1), default=None,
              help="Samples per class (default: each model's own K).")
@click.option("--dataset", type=click.Choice(DATASETS), default=None,
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
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where to write NAME.csv / .md (default: the first run directory).")
@click.option("--name", default="eval", show_default=True, help="Table file name stem.")
@click.option("--quiet", is_flag=True)
@friendly_errors
def evaluate(run_dirs, k, dataset, split, test_size, seeds, batch_size, data_dir, out, name,
             quiet):
    """Clean accuracy, predictive entropy and NLL of trained models, as one table (columns
    named after the split: test_accuracy, validation_accuracy, ...)."""
    from dbayes_tf.runs import store

    for run_dir in run_dirs:  # before TensorFlow loads: a wrong folder fails at once
        store.read_config(run_dir, "train")
    _import_tensorflow_quietly()
    from dbayes_tf import data, inference
    from dbayes_tf.runs import train as training
    from dbayes_tf.victim import Draws

    rows, cache = [], {}
    for run_dir in run_dirs:
        saved = training.load_run_config(run_dir)
        model = training.load_model(run_dir)
        for note in Draws.resolve(model, k=k)[1]:
            click.echo(f"note: {run_dir}: {note}", err=True)
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
    _import_tensorflow_quietly()
    from dbayes_tf import reporting
    from dbayes_tf.runs import summarize as summaries

    kinds = {summaries.run_kind(run_dir) for run_dir in run_dirs}
    if len(kinds) > 1:
        raise UserError(f"RUN_DIRS mix kinds of run ({', '.join(sorted(kinds))}); summarize "
                        "one kind at a time")
    kind = kinds.pop()
    if first_attempts is not None and kind != "attack":
        raise UserError("--first-attempts applies to attack runs only")
    if kind != "train":
        frame, figure = summaries.collect(run_dirs, kind, out, name, first_attempts)
        provenance = f"Made by: `{_command_line()}` from each run's own tables."
        csv_path, md_path = reporting.write_table(frame, out, name, provenance)
        click.echo(reporting.to_markdown(frame))
        click.echo(f"\nwrote {csv_path} and {md_path}" + (f" and {figure}" if figure else ""),
                   err=True)
        return
    frame = summaries.training_rows(run_dirs)
    provenance = (f"Made by: `{_command_line()}` from each run's metrics.json (test accuracy "
                  "computed at the end of `dbayes train`, on the full test set unless n_test "
                  "says otherwise).")
    csv_path, md_path = reporting.write_table(frame, out, name, provenance)
    click.echo(reporting.to_markdown(frame.drop(columns=["command"])))
    click.echo(f"\nwrote {csv_path} and {md_path}", err=True)


def _attack_setting_options(func):
    """One option per attack setting, derived from the settings types (their defaults, types
    and help are stated there only); every option defaults to "the attack's own"."""
    from dbayes_tf.attack_settings import REGISTRY

    seen: dict[str, list] = {}
    for settings_type in REGISTRY.values():
        for field in settings_type.fields():
            seen.setdefault(field.name, []).append((settings_type, field))
    for name, users in reversed(list(seen.items())):
        kind = users[0][0].field_types()[name]
        base = [t for t in getattr(kind, "__args__", (kind,)) if t is not type(None)][0]
        helps = {f.metadata["help"] for _, f in users}
        if len(helps) == 1:
            defaults = "; ".join(f"{t.name}: {f.default}" for t, f in users)
            text = f"{helps.pop()} ({defaults})."
        else:
            text = "; ".join(f"{t.name}: {f.metadata['help']} ({f.default})" for t, f in users)
        flag = "--" + name.replace("_", "-")
        if base is bool:
            option = click.option(f"{flag}/--no-{name.replace('_', '-')}", name, default=None,
                                  help=text)
        elif name in ("p", "eps"):  # "inf"; an FGSM sweep START:STOP:STEP
            option = click.option(flag, name, type=str, default=None, help=text)
        else:
            option = click.option(flag, name, type=base, default=None, help=text)
        func = option(func)
    return func


def _victim_option_help() -> dict[str, str]:
    from dbayes_tf import victim

    return {
        "draws": f"R fresh draws that judge every final image by majority (default "
                 f"{victim.DEFAULT_VERDICT_DRAWS} for stochastic models, 1 otherwise).",
        "decision_draws": f"Draws behind an attack's own decisions (default "
                          f"{victim.STOCHASTIC_DECISION_DRAWS} for stochastic models, 1 "
                          "otherwise).",
        "confirm_draws": "Fresh draws, 80% of which must be fooled before cw_l2, zoo, deepfool "
                         "or truncated_deepfool counts an image as done (default R for "
                         "stochastic models; otherwise 0 = off, or 1 float32 call when the "
                         "attack computes in bfloat16).",
        "max_query_batch": f"Largest batch sent to the model in one call (memory bound; "
                           f"default {victim.DEFAULT_MAX_BATCH}).",
        "verdict_cap": "With a cap above R: a verdict still undecided after R draws (the 95% "
                       "interval of its fooled fraction holds 1/2) gets R more, round after "
                       "round, up to this many (default: R for every verdict).",
        "attack_k": "K' importance samples per class in the attack's own steps; verdicts, "
                    "confirmations and cw_l2's checks keep the model's K (default K).",
        "precision": "Arithmetic of the attack's own steps (a latent model's decoder, a "
                     "discriminative net's layers); verdicts and confirmations stay float32 "
                     f"(default {victim.DEFAULT_PRECISION}).",
        "decision_precision": "Arithmetic of the attack's own checks (cw_l2's, at the model's "
                              "K; default: --precision).",
    }


_VICTIM_HELP = _victim_option_help()


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--attack", type=click.Choice(list(ATTACK_REGISTRY)), required=True,
              help="fgsm / ifgsm (CleverHans), cw_l2, deepfool, truncated_deepfool, zoo (black "
                   "box), noise (random Gaussian control of size --l2).")
@click.option("--n-images", type=click.IntRange(min=1), default=None,
              help="Test images to attack: the first N of a permutation drawn with --seed, so "
                   f"a smaller sample is part of a larger one (default {DEFAULT_N_IMAGES}).")
@click.option("--images", "images_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="JSON file with a list of test indices to attack instead "
                                 "(what `dbayes reproduce` writes as images.json).")
@click.option("--targeted", type=click.Choice(TARGETING), default=None,
              help="Targets: none (untargeted), all other classes, or one random other class. "
                   "Default: the attack's first supported mode (ifgsm: random, else none).")
@click.option("--k", type=click.IntRange(min=1), default=None,
              help="Importance samples per class (default: the model's own K).")
@click.option("--attack-k", type=click.IntRange(min=1), default=None,
              help=_VICTIM_HELP["attack_k"])
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help=_VICTIM_HELP["precision"])
@click.option("--decision-precision", type=click.Choice(PRECISIONS), default=None,
              help=_VICTIM_HELP["decision_precision"])
@click.option("--preset", type=click.Choice(list(CarliniWagnerL2Settings.presets)), default=None,
              help="cw_l2 settings from Carlini's code, CleverHans or one fast search step "
                   "(the default); the options below override them.")
@_attack_setting_options
@click.option("--draws", type=click.IntRange(min=1), default=None, help=_VICTIM_HELP["draws"])
@click.option("--verdict-cap", type=click.IntRange(min=1), default=None,
              help=_VICTIM_HELP["verdict_cap"])
@click.option("--decision-draws", type=click.IntRange(min=1), default=None,
              help=_VICTIM_HELP["decision_draws"])
@click.option("--confirm-draws", type=click.IntRange(min=0), default=None,
              help=_VICTIM_HELP["confirm_draws"])
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help=f"Attempts per batch (default {DEFAULT_BATCH_SIZE}); results are saved after "
                   "every batch.")
@click.option("--max-query-batch", type=click.IntRange(min=1), default=None,
              help=_VICTIM_HELP["max_query_batch"])
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None)
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
    Results are saved after every batch; Ctrl-C keeps them and --resume carries on. With
    --attack fgsm, --eps START:STOP:STEP sweeps the step size (paper 1 Fig. 1a).
    """
    from dbayes_tf import attack_settings as attacks
    from dbayes_tf.data import sample_test_images
    from dbayes_tf.runs import store

    name = o.pop("attack")
    settings_type = attacks.settings_type(name)
    names = {f.name for t in attacks.REGISTRY.values() for f in t.fields()}
    asked = {key: o.pop(key) for key in names}
    asked = {key: value for key, value in asked.items() if value is not None}
    eps_sweep = None
    if "eps" in asked:
        values = attacks.parse_eps(asked["eps"])
        if len(values) > 1:
            if name != "fgsm":
                raise UserError("an --eps sweep is for --attack fgsm only")
            if o["targeted"] not in (None, "none"):
                raise UserError("the --eps sweep is untargeted FGSM (paper 1 Fig. 1a); drop "
                                "--targeted")
            eps_sweep = values
            del asked["eps"]
        else:
            asked["eps"] = values[0]
    foreign = sorted(set(asked) - {f.name for f in settings_type.fields()})
    if foreign:
        raise UserError(f"{', '.join('--' + f.replace('_', '-') for f in foreign)}: not a "
                        f"setting of {name} (its settings: "
                        f"{', '.join(f.name for f in settings_type.fields()) or 'none'})")
    settings = settings_type.build(asked, preset=o["preset"])
    targeted = settings_type.check_targeting(o["targeted"])
    if o["n_images"] is not None and o["images_file"]:
        raise UserError("give --n-images or --images, not both")
    # before TensorFlow loads: a wrong folder or file fails at once
    saved = store.read_config(model_dir, "train")
    dataset_name = saved["train"]["dataset"]
    image_ids = _read_image_ids(o["images_file"], dataset_name) if o["images_file"] else None
    store.guard(o["out"], "sweep" if eps_sweep is not None else "attack", resume=o["resume"],
                overwrite=o["overwrite"])
    _import_tensorflow_quietly()
    from dbayes_tf import data, reporting, victim
    from dbayes_tf.runs import attack as attack_runs
    from dbayes_tf.runs.train import load_model

    model = load_model(model_dir)
    target = victim.Victim(model, k=o["k"], verdict_draws=o["draws"],
                           decision_draws=o["decision_draws"], confirm_draws=o["confirm_draws"],
                           attack_k=o["attack_k"], precision=o["precision"],
                           decision_precision=o["decision_precision"],
                           verdict_cap=o["verdict_cap"],
                           max_batch=o["max_query_batch"] or victim.DEFAULT_MAX_BATCH,
                           seed=o["seed"])
    for note in target.notes:
        click.echo(f"note: {note}", err=True)
    dataset = data.load_dataset(dataset_name, data_dir=o["data_dir"])
    if image_ids is None:
        image_ids = sample_test_images(len(dataset.test), o["n_images"] or DEFAULT_N_IMAGES,
                                       o["seed"])
    batch_size = o["batch_size"] or DEFAULT_BATCH_SIZE
    _seed_everything(o["seed"])
    log = lambda text: click.echo(text, err=True)  # noqa: E731
    if eps_sweep is not None:
        frame = attack_runs.fgsm_sweep(
            target, model_dir, dataset.test, eps_sweep, image_ids=image_ids, seed=o["seed"],
            batch_size=batch_size, out_dir=o["out"], dataset=dataset.name,
            resume=o["resume"], overwrite=o["overwrite"], command=_command_line(),
            progress=not o["quiet"], log=log)
        click.echo(reporting.to_markdown(frame))
        click.echo(f"\nwrote {Path(o['out']) / 'fgsm_sweep'}.{{csv,md,png}}", err=True)
        return
    plan = attack_runs.AttackPlan(targeted=targeted, image_ids=image_ids, seed=o["seed"],
                                  batch_size=batch_size)
    summary = attack_runs.run_attack(
        target, model_dir, dataset.test, settings, plan, o["out"], dataset=dataset.name,
        resume=o["resume"], overwrite=o["overwrite"], progress=not o["quiet"],
        command=_command_line(), log=log)
    import pandas as pd

    shown = pd.DataFrame([summary]).drop(columns=["model_dir"]).T.reset_index()
    shown.columns = ["measure", "value"]
    click.echo(reporting.to_markdown(shown))
    click.echo(f"\nrun in {o['out']}: summary.{{csv,md}}, attempts.csv and adversarial/*.npz",
               err=True)


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--verdict-cap", type=click.IntRange(min=1), required=True,
              help=_VICTIM_HELP["verdict_cap"].split(" (default")[0] + ".")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Seed of the new draws (the attack's own verdicts drew from its --seed).")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="New run directory: the same attempts and images, judged again.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def judge(run_dir, verdict_cap, seed, out, quiet):
    """Judge an attack run's final images again, drawing until each verdict is decided.

    A verdict whose fooled fraction is still a coin toss after R draws (its 95% interval holds
    1/2) gets R more, round after round, up to --verdict-cap. The result is an attack run
    directory of its own (attempts.csv with verdict_draws, summary with the undecided count);
    the original run is not touched.
    """
    from dbayes_tf.runs import store

    store.read_config(run_dir, "attack")  # before TensorFlow loads: a wrong folder fails now
    _import_tensorflow_quietly()
    import pandas as pd

    from dbayes_tf import reporting
    from dbayes_tf.runs import attack as attack_runs

    summary = attack_runs.judge_again(run_dir, out, verdict_cap=verdict_cap, seed=seed,
                                      command=_command_line(), progress=not quiet,
                                      log=lambda text: click.echo(text, err=True))
    shown = pd.DataFrame([summary]).drop(columns=["model_dir"]).T.reset_index()
    shown.columns = ["measure", "value"]
    click.echo(reporting.to_markdown(shown))


def _read_image_ids(path: str, dataset: str) -> tuple[int, ...]:
    """A list of test indices, or the images.json of `dbayes reproduce` (one list per
    dataset), or an attack run's config.json (its image_ids)."""
    import json

    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read test indices from {path}: {err}") from None
    if isinstance(values, dict):
        by_dataset = values.get("ids")
        if isinstance(by_dataset, dict) and dataset not in by_dataset:
            raise UserError(f"{path} has test indices for {sorted(by_dataset)}, not {dataset}")
        values = by_dataset.get(dataset) if isinstance(by_dataset, dict) else \
            values.get("image_ids")
    if not (isinstance(values, list) and values and all(isinstance(v, int) for v in values)):
        raise UserError(f"{path} must hold a non-empty list of test indices")
    return tuple(sorted(set(values)))


@main.command()
@click.option("--method", type=click.Choice(list(DETECTION_METHODS)), required=True,
              help="; ".join(f"{name}: {what}" for name, what in DETECTION_METHODS.items())
              + ".")
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
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--overwrite", is_flag=True, help="Replace a detection run already in --out.")
@click.option("--quiet", is_flag=True)
@friendly_errors
def detect(method, detector_model, attack_dirs, fpr, threshold, per_class, k, n_fit, fit_split,
           n_clean, seed, data_dir, out, overwrite, quiet):
    """Detect the adversarial examples of attack runs with a conditional generative model:
    detection rate, false-positive rate, ROC AUC and curves, and a reconstruction grid."""
    from dbayes_tf.runs import store

    store.read_config(detector_model, "train")  # before TensorFlow: wrong folders fail at once
    for attack_dir in attack_dirs:
        store.read_config(attack_dir, "attack")
    store.guard(out, "detect", resume=False, overwrite=overwrite,
                resumable=False)
    _import_tensorflow_quietly()
    from dbayes_tf import data, reporting
    from dbayes_tf.runs import detect as detection_run
    from dbayes_tf.runs import train as training

    saved = training.load_run_config(detector_model)
    dataset = data.load_dataset(saved["train"]["dataset"], data_dir=data_dir,
                                validation_size=training.validation_size_of(saved))
    _seed_everything(seed)
    frame = detection_run.run_detection(
        method, detector_model, list(attack_dirs), dataset, out, fpr=fpr, threshold=threshold,
        per_class=per_class, k=k, n_fit=n_fit, fit_split=fit_split, n_clean=n_clean, seed=seed,
        overwrite=overwrite, progress=not quiet, command=_command_line(),
        log=lambda text: click.echo(text, err=True))
    click.echo(reporting.to_markdown(frame.drop(columns=["attack_run"])))
    click.echo(f"\nwrote {Path(out) / ('detect_' + method)}.{{csv,md}} and PNG figures",
               err=True)


@main.command()
@click.argument("plan", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for every run of the plan and its REPORT.md.")
@click.option("--scale", type=click.Choice(SCALES), default=None,
              help="Image counts and presets the plan declares for this scale (default: the "
                   "plan's default_scale).")
@click.option("--dry-run", is_flag=True,
              help="Print the steps, what is done, and an estimated time for the rest (from "
                   "the seconds per attempt that earlier runs recorded); run nothing.")
@click.option("--costs-from", "cost_roots", type=click.Path(file_okay=False), multiple=True,
              default=("results",), show_default=True,
              help="Where --dry-run looks for finished attack runs and their costs (folders "
                   "that do not exist are skipped).")
@click.option("--report-only", is_flag=True,
              help="Write REPORT.md from the steps finished so far; run nothing.")
@click.option("--step", "steps", multiple=True, metavar="NAME",
              help="Run only this step (repeatable) and the steps it reads, e.g. one row of a "
                   "long table in its own process; the report shows the rest as not run yet.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def reproduce(plan, out, scale, dry_run, cost_roots, report_only, steps, data_dir, quiet):
    """Run an experiment plan (configs/*.yaml): train or reuse its models, attack them all on
    one fixed set of test images, run its detections, and write OUT/REPORT.md with every table
    beside the paper's numbers.

    Finished steps are skipped and unfinished ones resumed, so the same command picks up after
    Ctrl-C; on a finished folder it does nothing and says so.
    """
    _import_tensorflow_quietly()  # checking a plan reads the detectors' registry
    from dbayes_tf.runs import reproduce as reproduction

    loaded = reproduction.load_plan(plan, scale)
    if dry_run:
        roots = [root for root in (*cost_roots, out) if Path(root).is_dir()]
        click.echo(reproduction.dry_run_text(loaded, Path(out), roots))
        return
    runner = reproduction.Reproduction(loaded, out, data_dir=data_dir, progress=not quiet,
                                       log=lambda text: click.echo(text, err=True))
    if report_only:
        runner.report_only()
        return
    runner.run(only=steps)


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
