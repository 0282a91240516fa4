"""``dbayes reproduce PLAN --out DIR``: an experiment plan (configs/*.yaml) run step by step.

A plan names the models (trained on the spot, or a committed run reused), one fixed set of test
images per dataset (shared by every model, so every comparison is paired), the attacks with
their settings, the detections, and the tables of the report. Each scale (smoke, reduced,
paper) declares its image count and overrides any part of the plan (``_merge_plan``: it can
also add steps and tables, such as the ablations only the paper scale runs, and a null removes
a key).

The steps run in dependency order (models, then attacks, then detections, then the report);
a finished step is skipped, an unfinished one resumed (every runner resumes where it stopped,
with the numbers an uninterrupted run would give). ``DIR/steps.json`` records the settings each
finished step was made with, so a plan edited since is refused rather than mixed in.

Output::

    DIR/plan.json                  the plan as resolved for the scale
    DIR/images.json                the test indices of every dataset
    DIR/models/NAME/               training runs made by the plan
    DIR/attacks/NAME/              attack runs and FGSM sweeps
    DIR/detections/NAME/           detection runs
    DIR/evaluations/NAME.json      extra clean evaluations (e.g. on the validation split)
    DIR/REPORT.md, DIR/tables/, DIR/figures/, DIR/COSTS.md
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import reporting
from ..attack_settings import DEFAULT_BATCH_SIZE, parse_eps, settings_type
from ..configs import DETECTION_METHODS
from ..victim import OPTIONS as VICTIM_OPTIONS
from ..victim import STOCHASTIC_DECISION_DRAWS, resolve_precisions
from . import store
from .store import RunError

SCALES = ("smoke", "reduced", "paper")
DETECTION_OPTIONS = ("fpr", "threshold", "per_class", "k", "n_fit", "n_clean", "fit_split")
STEPS_FILE = "steps.json"
SWEEP_COLUMNS = ("accuracy", "rho", "l2_mean", "entropy")  # per step size, in fgsm_sweep.csv


# -- the plan -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Step:
    kind: str  # model, evaluate, attack, sweep, detect
    name: str
    spec: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclasses.dataclass
class Plan:
    path: Path
    name: str
    title: str
    scale: str
    seed: int
    n_images: int
    models: dict[str, dict[str, Any]]
    attacks: dict[str, dict[str, Any]]
    detections: dict[str, dict[str, Any]]
    tables: list[dict[str, Any]]
    notes: str

    def steps(self) -> list[Step]:
        steps = []
        for name, spec in self.models.items():
            steps.append(Step("model", name, spec))
            for split in spec.get("evaluate", []):
                steps.append(Step("evaluate", f"{name}_{split}", {"model": name, "split": split}))
        done, waiting = set(), dict(self.detections)
        for name, spec in self.attacks.items():
            kind = "sweep" if spec["attack"] == "fgsm" and "eps_sweep" in spec else "attack"
            steps.append(Step(kind, name, spec))
            done.add(name)
            # a detection runs as soon as its attacks have: a long attack later in the plan
            # does not hold back the tables that do not need it
            for detection, detection_spec in list(waiting.items()):
                if set(detection_spec["attacks"]) <= done:
                    steps.append(Step("detect", detection, waiting.pop(detection)))
        return steps  # in dependency order: models, their evaluations, attacks, detections

    def with_needs(self, names) -> set[str]:
        """Step keys of the steps ``names`` and of every step they read (an attack its model,
        a detection its detector and attacks); unknown names are refused with the known."""
        by_name = {step.name: step for step in self.steps()}
        unknown = sorted(set(names) - set(by_name))
        if unknown:
            raise RunError(f"{self.name} has no step {', '.join(unknown)}; its steps: "
                           f"{', '.join(by_name)}")
        keys, waiting = set(), list(names)
        while waiting:
            step = by_name[waiting.pop()]
            if step.key in keys:
                continue
            keys.add(step.key)
            spec = step.spec
            if step.kind in ("attack", "sweep", "evaluate"):
                waiting.append(spec["model"])
            elif step.kind == "detect":
                waiting += [spec["detector"], *spec["attacks"]]
        return keys


def _deep_merge(base: dict, extra: dict) -> dict:
    """``extra`` on ``base``, mapping by mapping; a null in ``extra`` removes the key (a scale
    that trains a model the other scales reuse says ``run: null`` beside its ``train:``)."""
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_plan(base: dict, overrides: dict) -> dict:
    """A scale's overrides on the plan: mappings merge key by key (a new attack name adds a
    step at that scale); tables merge by ``id``, a new id adding a table, so that a scale can
    add the ablations only it can afford without restating the tables it shares."""
    overrides = dict(overrides or {})
    extra_tables = overrides.pop("tables", None) or []
    merged = _deep_merge(base, overrides)
    tables = list(merged.get("tables") or [])
    by_id = {table.get("id"): index for index, table in enumerate(tables)}
    for table in extra_tables:
        if table.get("id") in by_id:
            tables[by_id[table["id"]]] = _deep_merge(tables[by_id[table["id"]]], table)
        else:
            tables.append(copy.deepcopy(table))
    merged["tables"] = tables
    return merged


def load_plan(path: str | Path, scale: str | None = None) -> Plan:
    """Read and check a plan; ``scale`` (default: the plan's ``default_scale``) picks the image
    count and the overrides the plan declares for it."""
    path = Path(path)
    raw = store.read_yaml_mapping(path, "plan")
    scales = raw.get("scales") or {}
    unknown = sorted(set(scales) - set(SCALES))
    if unknown:
        raise RunError(f"plan {path}: unknown scale(s) {unknown}; scales are {list(SCALES)}")
    scale = scale or raw.get("default_scale") or next(iter(scales), None)
    if scale not in scales:
        raise RunError(f"plan {path} declares scales {sorted(scales) or 'none'}; not {scale!r}")
    chosen = scales[scale] or {}
    stray = sorted(set(chosen) - {"images", "overrides"})
    if stray:
        raise RunError(f"plan {path}: scale {scale} has {stray}; a scale says images: and "
                       "overrides: (steps and tables it changes or adds go under overrides:)")
    merged = _merge_plan(raw, chosen.get("overrides"))
    if "images" not in chosen:
        raise RunError(f"plan {path}: scale {scale} must say how many test images (images: N)")
    plan = Plan(path=path, name=raw.get("name", path.stem), title=raw.get("title", path.stem),
                scale=scale, seed=int(raw.get("seed", 0)), n_images=int(chosen["images"]),
                models=merged.get("models") or {}, attacks=merged.get("attacks") or {},
                detections=merged.get("detections") or {}, tables=merged.get("tables") or [],
                notes=str(merged.get("notes") or ""))
    _check(plan)
    return plan


def _check(plan: Plan) -> None:
    """Refuse a plan with a dangling name or an unknown setting before anything runs."""
    where = f"plan {plan.path}"
    if not plan.models:
        raise RunError(f"{where}: no models")
    for section in ("models", "attacks", "detections"):
        for name, spec in getattr(plan, section).items():
            if not isinstance(spec, dict):
                raise RunError(f"{where}: {section} {name} must be a mapping")
    for name, spec in plan.models.items():
        if ("run" in spec) == ("train" in spec):
            raise RunError(f"{where}: model {name} needs exactly one of run: (a committed run "
                           "to reuse) or train: (options to train it with)")
    for name, spec in plan.attacks.items():
        if spec.get("model") not in plan.models:
            raise RunError(f"{where}: attack {name} names unknown model {spec.get('model')!r}")
        try:
            kind = settings_type(spec.get("attack", ""))
        except ValueError as err:
            raise RunError(f"{where}: attack {name}: {err}") from None
        settings = dict(spec.get("settings") or {})
        if "eps" in settings and isinstance(settings["eps"], str) and ":" in settings["eps"]:
            if kind.name != "fgsm":
                raise RunError(f"{where}: attack {name}: an eps sweep is for fgsm only")
            spec["eps_sweep"] = parse_eps(settings.pop("eps"))
            spec["settings"] = settings
        count = spec.get("images")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                                  or count < 1):
            raise RunError(f"{where}: attack {name}: images must be a whole number of test "
                           f"images, at least 1; got {count!r}")
        unknown = sorted(set(spec.get("victim") or {}) - set(VICTIM_OPTIONS))
        if unknown:
            raise RunError(f"{where}: attack {name}: unknown victim option(s) {unknown}; "
                           f"known: {list(VICTIM_OPTIONS)}")
        try:
            kind.build(settings, preset=spec.get("preset"))
            kind.check_targeting(spec.get("targeted"))
        except ValueError as err:
            raise RunError(f"{where}: attack {name}: {err}") from None
    for name, spec in plan.detections.items():
        if spec.get("detector") not in plan.models:
            raise RunError(f"{where}: detection {name} names unknown model "
                           f"{spec.get('detector')!r}")
        for attack in spec.get("attacks") or []:
            if attack not in plan.attacks:
                raise RunError(f"{where}: detection {name} names unknown attack {attack!r}")
            if "eps_sweep" in plan.attacks[attack]:
                raise RunError(f"{where}: detection {name}: {attack} is a sweep, not an attack "
                               "run with adversarial images")
        if spec.get("method") not in DETECTION_METHODS:
            raise RunError(f"{where}: detection {name}: method must be one of "
                           f"{sorted(DETECTION_METHODS)}; got {spec.get('method')!r}")
        unknown = sorted(set(spec.get("options") or {}) - set(DETECTION_OPTIONS))
        if unknown:
            raise RunError(f"{where}: detection {name}: unknown option(s) {unknown}; known: "
                           f"{list(DETECTION_OPTIONS)}")
    names = {**dict.fromkeys(plan.models, "model"), **dict.fromkeys(plan.attacks, "attack"),
             **dict.fromkeys(plan.detections, "detect")}
    for table in plan.tables:
        if table.get("kind") not in ("accuracy", "attacks", "grid", "detection", "sweep",
                                     "path", "costs", "paired", "examples"):
            raise RunError(f"{where}: table {table.get('id')} has unknown kind "
                           f"{table.get('kind')!r}")
        if table.get("kind") in ("accuracy", "attacks") and not table.get("columns"):
            raise RunError(f"{where}: table {table.get('id')}: a table of kind "
                           f"{table['kind']} needs columns: (the measures it shows)")
        rebuilder = table.get("reconstruct_with")
        if rebuilder is not None and (table.get("kind") != "examples"
                                      or rebuilder not in plan.models):
            raise RunError(f"{where}: table {table.get('id')}: reconstruct_with is for an "
                           f"examples table and names one of the plan's models; got "
                           f"{rebuilder!r}")
        columns = table.get("columns") or ["accuracy"]
        if table.get("kind") == "sweep" and (columns[0] != "accuracy" or
                                             not set(columns) <= set(SWEEP_COLUMNS)):
            raise RunError(f"{where}: table {table.get('id')}: a sweep table's columns are "
                           f"accuracy and then any of {list(SWEEP_COLUMNS[1:])}; got {columns}")
        for label, ref in (table.get("rows") or {}).items():
            cells = list(ref.values()) if isinstance(ref, dict) else [ref]
            refs = [item for cell in cells
                    for item in (cell if isinstance(cell, list) else [cell])]
            for item in refs:
                if item not in names:
                    raise RunError(f"{where}: table {table.get('id')} row {label} names "
                                   f"unknown step {item!r}")


def _hash(payload) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(step: Step, plan: Plan) -> str:
    """What a finished step was made with: its spec, the specs of the steps it reads (a model
    pointed at another run makes its attacks stale too), the scale's images and the seed."""
    spec = step.spec
    needs: dict[str, Any] = {}
    if step.kind in ("attack", "sweep", "evaluate"):
        needs["model"] = plan.models[spec["model"]]
    elif step.kind == "detect":
        needs["model"] = plan.models[spec["detector"]]
        needs["attacks"] = {name: fingerprint(Step("attack", name, plan.attacks[name]), plan)
                            for name in spec["attacks"]}
    return _hash({"spec": spec, "needs": needs, "images": plan.n_images, "seed": plan.seed})


def report_fingerprint(plan: Plan) -> str:
    """What REPORT.md is rendered from besides the runs: the tables, title and notes."""
    return _hash({"title": plan.title, "notes": plan.notes, "tables": plan.tables,
                  "scale": plan.scale, "images": plan.n_images})


# -- where things go ----------------------------------------------------------------------------
def step_dir(out: Path, step: Step) -> Path:
    folder = {"model": "models", "attack": "attacks", "sweep": "attacks",
              "detect": "detections", "evaluate": "evaluations"}[step.kind]
    if step.kind == "evaluate":
        return out / folder / f"{step.name}.json"
    return out / folder / step.name


def model_dir(out: Path, plan: Plan, name: str) -> Path:
    spec = plan.models[name]
    if "run" in spec:
        return Path(spec["run"])
    return out / "models" / name


def is_finished(out: Path, plan: Plan, step: Step) -> bool:
    where = step_dir(out, step)
    if step.kind == "model":
        where = model_dir(out, plan, step.name)
        return (where / store.METRICS_FILE).is_file()
    if step.kind == "evaluate":
        return where.is_file()
    if step.kind == "sweep":
        return (where / store.SWEEP_FILE).is_file()
    if step.kind == "detect":
        return (where / f"detect_{step.spec['method']}.csv").is_file()
    progress = attack_progress(out, step)
    if progress is None:
        return False
    done = progress[0] == progress[1]
    if step.spec["attack"] == "ifgsm":
        done = done and (where / "ifgsm_path.csv").is_file()
    return done


def attack_progress(out: Path, step: Step) -> tuple[int, int] | None:
    """(attempts made, attempts planned) as an attack step's summary says; None before its
    first batch (planned is -1 in summaries written before they recorded it)."""
    summary = step_dir(out, step) / store.SUMMARY_FILE
    if step.kind != "attack" or not summary.is_file():
        return None
    import pandas as pd

    row = pd.read_csv(summary).iloc[0]
    return int(row["attempts"]), int(row.get("planned", -1))


# -- the runner ---------------------------------------------------------------------------------
class Reproduction:
    def __init__(self, plan: Plan, out: str | Path, *, data_dir=None, progress: bool = True,
                 log: Callable[[str], None] = print):
        self.plan, self.out = plan, Path(out)
        self.data_dir, self.progress, self.log = data_dir, progress, log
        self._datasets: dict[str, Any] = {}
        self._reconstruction_detectors: dict[str, Any] = {}  # by model: loaded once per report

    # what has been made, and with which settings
    def _records(self) -> dict[str, str]:
        path = self.out / STEPS_FILE
        return reporting.read_json(path) if path.is_file() else {}

    def _record(self, step: Step) -> None:
        records = self._records()
        records[step.key] = fingerprint(step, self.plan)
        reporting.write_json(self.out / STEPS_FILE, records)

    def status(self) -> list[tuple[Step, str]]:
        records = self._records()
        out = []
        for step in self.plan.steps():
            if is_finished(self.out, self.plan, step):
                saved = records.get(step.key)
                if step.kind == "model" and "run" in step.spec:
                    state = "reused"
                elif saved is not None and saved != fingerprint(step, self.plan):
                    state = "changed"
                else:
                    state = "done"
            else:
                state = "partial" if step_dir(self.out, step).exists() else "to do"
            out.append((step, state))
        return out

    def run(self, only=None) -> bool:
        """Run every unfinished step (``only``: of these step names and the steps they read);
        returns whether anything was made."""
        status = self.status()
        if only:
            wanted = self.plan.with_needs(only)
            status = [(step, state) for step, state in status if step.key in wanted]
        changed = [s.key for s, state in status if state == "changed"]
        if changed:
            raise RunError(f"{self.out}: {', '.join(changed)} were made with other settings than "
                           "the plan now says; use another --out (or delete those folders)")
        self.out.mkdir(parents=True, exist_ok=True)
        reporting.write_json(self.out / "plan.json", {
            "plan": str(self.plan.path), "scale": self.plan.scale, "seed": self.plan.seed,
            "images": self.plan.n_images, "models": self.plan.models,
            "attacks": self.plan.attacks, "detections": self.plan.detections})
        todo = [s for s, state in status if state in ("to do", "partial")]
        report_current = (self.out / "REPORT.md").is_file() and \
            self._records().get("report") == report_fingerprint(self.plan)
        if not todo and report_current:
            self.log(f"{self.out}: every step of {self.plan.name} ({self.plan.scale}) is done "
                     "and REPORT.md is up to date; nothing to do")
            return False
        for index, step in enumerate(todo, 1):
            self.log(f"[{index}/{len(todo)}] {step.kind} {step.name}")
            started = time.perf_counter()
            getattr(self, f"_run_{step.kind}")(step)
            self._record(step)
            self.log(f"[{index}/{len(todo)}] {step.kind} {step.name}: done in "
                     f"{time.perf_counter() - started:.0f} s")
        from .report import write_report

        write_report(self.plan, self.out, self.clean_images, self.reconstruct)
        records = self._records()
        records["report"] = report_fingerprint(self.plan)
        reporting.write_json(self.out / STEPS_FILE, records)
        self.log(f"wrote {self.out / 'REPORT.md'}")
        return True

    def report_only(self) -> Path:
        """REPORT.md from the steps finished so far (e.g. while a long step still runs
        elsewhere); the cells of the others say they are not run yet."""
        from .report import write_report

        if not (self.out / "images.json").is_file():
            raise RunError(f"{self.out}: no step has run yet (no images.json)")
        path = write_report(self.plan, self.out, self.clean_images, self.reconstruct)
        self.log(f"wrote {path}")
        return path

    # data and images
    def dataset(self, name: str, validation_size: int = 5000):
        from ..data import load_dataset

        key = (name, validation_size)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(name, data_dir=self.data_dir,
                                               validation_size=validation_size)
        return self._datasets[key]

    def clean_images(self, model: str, image_ids):
        """Test images and labels of ``model``'s dataset (for the report's examples)."""
        split = self.dataset(self._model_dataset(model)).test
        ids = list(image_ids)
        return split.images[ids], split.labels[ids]

    def reconstruct(self, model: str, images, classes):
        """``model``'s reconstructions r(x, class) and their distances to ``images``, as the
        reconstruction detector computes them (for the report's examples, paper 1 Fig. 2)."""
        from ..detection import ReconstructionDetector

        if model not in self._reconstruction_detectors:
            try:
                detector = ReconstructionDetector(self._load(model))
            except ValueError as err:  # not a generative classifier
                raise RunError(f"reconstruct_with: {model}: {err}") from None
            self._reconstruction_detectors[model] = detector
        detector = self._reconstruction_detectors[model]
        return detector.reconstruct(images, classes), detector.raw_scores(images, classes)

    def _images(self) -> dict[str, list[int]]:
        """One list of test indices per dataset, shared by every model of the plan."""
        path = self.out / "images.json"
        if path.is_file():
            saved = reporting.read_json(path)
            if saved.get("n") == self.plan.n_images and saved.get("seed") == self.plan.seed:
                return saved["ids"]
        from ..data import sample_test_images

        ids = {}
        for name in sorted({self._model_dataset(m) for m in self.plan.models}):
            ids[name] = list(sample_test_images(len(self.dataset(name).test),
                                                self.plan.n_images, self.plan.seed))
        reporting.write_json(path, {"n": self.plan.n_images, "seed": self.plan.seed, "ids": ids})
        return ids

    def _step_images(self, spec: dict[str, Any], dataset: str) -> tuple[int, ...]:
        """The plan's images, or (``images: M`` in an attack) the first M of the same seeded
        permutation, shared by every attack that asks for M: fewer than the plan's are a subset
        of them (an expensive attack), more a superset (a cheap one measured more finely)."""
        ids = tuple(self._images()[dataset])
        count = spec.get("images")
        if count is None or int(count) == len(ids):
            return ids
        from ..data import sample_test_images

        chosen = sample_test_images(len(self.dataset(dataset).test), int(count), self.plan.seed)
        smaller, larger = sorted((set(chosen), set(ids)), key=len)
        assert smaller <= larger  # one permutation: a smaller sample is a prefix
        return chosen

    def _model_dataset(self, name: str) -> str:
        spec = self.plan.models[name]
        if "run" in spec:
            return store.read_config(spec["run"], "train")["train"]["dataset"]
        options = self._train_options(spec)
        from ..data import canonical_name

        return canonical_name(options.get("dataset", "mnist"))

    def _train_options(self, spec: dict[str, Any]) -> dict[str, Any]:
        return train_options(spec)

    # steps
    def _run_model(self, step: Step) -> None:
        from .train import configs_from_options, train

        if "run" in step.spec:
            raise RunError(f"model {step.name}: the reused run {step.spec['run']} has not "
                           "finished training (no metrics.json)")
        model_config, train_config = configs_from_options(self._train_options(step.spec))
        import keras

        keras.utils.set_random_seed(train_config.seed)
        where = model_dir(self.out, self.plan, step.name)
        train(model_config, train_config, where, data_dir=self.data_dir,
              resume=where.exists(), progress=self.progress,
              command=f"dbayes reproduce {self.plan.path} (model {step.name})", log=self.log)

    def _load(self, name: str):
        from .train import load_model

        return load_model(model_dir(self.out, self.plan, name))

    def _run_evaluate(self, step: Step) -> None:
        from .. import inference
        from .train import load_run_config, validation_size_of

        name, split = step.spec["model"], step.spec["split"]
        saved = load_run_config(model_dir(self.out, self.plan, name))
        data = self.dataset(saved["train"]["dataset"], validation_size_of(saved))
        result = inference.evaluate(self._load(name), getattr(data, split), seed=self.plan.seed,
                                    progress=self.progress, description=f"{name} {split}")
        reporting.write_json(step_dir(self.out, step), {
            "model": name, "split": split, "accuracy": result.accuracy,
            "correct": int(round(result.accuracy * result.n)), "n": result.n, "k": result.k,
            "seed": self.plan.seed})

    def _victim(self, step: Step):
        from ..victim import Victim

        options = step.spec.get("victim") or {}
        return Victim(self._load(step.spec["model"]), **options, seed=self.plan.seed)

    def _run_attack(self, step: Step) -> None:
        from .attack import AttackPlan, run_attack

        spec = step.spec
        dataset = self._model_dataset(spec["model"])
        kind = settings_type(spec["attack"])
        settings = kind.build(spec.get("settings") or {}, preset=spec.get("preset"))
        plan = AttackPlan(targeted=kind.check_targeting(spec.get("targeted")),
                          image_ids=self._step_images(spec, dataset), seed=self.plan.seed,
                          batch_size=int(spec.get("batch_size", DEFAULT_BATCH_SIZE)))
        where = step_dir(self.out, step)
        run_attack(self._victim(step), model_dir(self.out, self.plan, spec["model"]),
                   self.dataset(dataset).test, settings, plan, where, dataset=dataset,
                   resume=where.exists(), progress=self.progress,
                   command=f"dbayes reproduce {self.plan.path} (attack {step.name})",
                   log=self.log)

    def _run_sweep(self, step: Step) -> None:
        from .attack import fgsm_sweep

        spec = step.spec
        dataset = self._model_dataset(spec["model"])
        where = step_dir(self.out, step)
        fgsm_sweep(self._victim(step), model_dir(self.out, self.plan, spec["model"]),
                   self.dataset(dataset).test, spec["eps_sweep"],
                   image_ids=self._step_images(spec, dataset), seed=self.plan.seed,
                   batch_size=int(spec.get("batch_size", DEFAULT_BATCH_SIZE)), out_dir=where,
                   dataset=dataset,
                   resume=where.exists(), progress=self.progress,
                   command=f"dbayes reproduce {self.plan.path} (sweep {step.name})",
                   log=self.log)

    def _run_detect(self, step: Step) -> None:
        from .detect import run_detection
        from .train import load_run_config, validation_size_of

        spec = step.spec
        detector = model_dir(self.out, self.plan, spec["detector"])
        saved = load_run_config(detector)
        data = self.dataset(saved["train"]["dataset"], validation_size_of(saved))
        options = dict(spec.get("options") or {})
        run_detection(spec["method"], detector,
                      [step_dir(self.out, Step("attack", a, {})) for a in spec["attacks"]],
                      data, step_dir(self.out, step), overwrite=True, seed=self.plan.seed,
                      progress=self.progress, log=self.log,
                      command=f"dbayes reproduce {self.plan.path} (detection {step.name})",
                      **options)


# -- dry run: what is left, and what it should cost ---------------------------------------------
def _work(settings: dict[str, Any]) -> float:
    """Relative cost of one attempt under these settings (search steps x iterations)."""
    return float(settings.get("binary_steps", 1)) * float(settings.get("iterations", 1))


def _levers(victim: dict[str, Any], settings: dict[str, Any]) -> tuple:
    """What besides K and the work changes an attempt's cost many times over: the attacker's
    K', precision and class subsets (issue #16), as a run stores them
    (``victim``: its config.json entry), at their "as before" values when unsaid. The decision
    draws are one more lever (``_same_draws``)."""
    attack_k = victim.get("attack_k")
    return (None if attack_k in (None, victim.get("k")) else int(attack_k),
            victim.get("precision") or "float32",
            victim.get("decision_precision") or "float32", int(settings.get("rivals") or 0),
            int(settings.get("check_every") or 1))


def _same_draws(planned: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Whether a stored run made its decisions on as many draws as the plan asks. A plan that
    does not say asks for the default, which a stored run holds resolved; a deterministic
    model makes every decision on one call whatever it was asked."""
    if not stored.get("stochastic", True):
        return True
    wanted = planned.get("decision_draws") or STOCHASTIC_DECISION_DRAWS
    return int(stored.get("decision_draws") or STOCHASTIC_DECISION_DRAWS) == int(wanted)


def planned_victim(options: dict[str, Any]) -> dict[str, Any]:
    """A plan's ``victim:`` options in the form a run stores them (for ``_levers``): both
    precisions resolved as ``victim.Victim`` resolves them."""
    precision, decision_precision = resolve_precisions(options.get("precision"),
                                                       options.get("decision_precision"))
    return {**options, "precision": precision, "decision_precision": decision_precision}


# setting names of attack runs written before the settings types existed
LEGACY_NAMES = {"max_iterations": "iterations", "binary_search_steps": "binary_steps",
                "learning_rate": "lr"}


def train_options(spec: dict[str, Any]) -> dict[str, Any]:
    """A plan model's ``train:`` options, on top of its ``preset:`` file if it names one."""
    from .train import read_preset

    options = dict(spec["train"])
    preset = options.pop("preset", None)
    if preset:
        options = read_preset(preset, options.get("model")) | options
    return options


# What only training reads: two models that differ in these cost the same to attack.
_TRAINING_ONLY = ("seed", "train_k", "decoder_bias")


def _architecture(model_config: dict[str, Any] | None) -> str | None:
    from ..configs import ModelConfig

    if not model_config:
        return None
    # through the config type, so that a run saved before a field existed gets its default
    full = ModelConfig.from_dict(dict(model_config)).to_dict()
    return _hash({key: value for key, value in full.items() if key not in _TRAINING_ONLY})


def _run_architecture(run_dir: Path) -> str | None:
    try:
        return _architecture(store.read_config(run_dir, "train").get("model"))
    except (RunError, OSError, ValueError):
        return None


def _planned_architecture(spec: dict[str, Any]) -> str | None:
    """A plan model's architecture: its committed run's, or the one its recipe will train."""
    if "run" in spec:
        return _run_architecture(Path(spec["run"]))
    from .train import configs_from_options

    try:
        return _architecture(configs_from_options(train_options(spec))[0].to_dict())
    except (RunError, OSError, ValueError):
        return None


def recorded_costs(roots) -> list[dict[str, Any]]:
    """Seconds per attempt that finished attack runs and FGSM sweeps (per image and step
    size) under ``roots`` recorded."""
    import pandas as pd

    found = []
    for root in roots:
        for sweep in Path(root).rglob(store.SWEEP_FILE):  # an attempt: one image at one step
            try:
                config = reporting.read_json(sweep.parent / store.CONFIG_FILE)
                frame = pd.read_csv(sweep)
            except (OSError, ValueError):
                continue
            if "seconds_per_image" not in frame:  # sweeps made before they were timed
                continue
            victim = config.get("victim") or {}
            found.append({"run": str(sweep.parent), "model": Path(config["model_dir"]).name,
                          "architecture": _run_architecture(sweep.parent / config["model_dir"]),
                          "attack": "fgsm", "victim": victim, "k": victim.get("k"),
                          "work": 1.0, "levers": _levers(victim, {}),
                          "batch_size": config.get("batch_size"),
                          "host": (config.get("environment") or {}).get("cpu_bfloat16",
                                                                         "unknown"),
                          "seconds": float(frame["seconds_per_image"].mean())})
        for summary in Path(root).rglob(store.SUMMARY_FILE):
            try:
                config = reporting.read_json(summary.parent / store.CONFIG_FILE)
                row = pd.read_csv(summary).iloc[0]
            except (OSError, ValueError, IndexError):
                continue
            if store.kind_of(config) != "attack":
                continue
            settings = config["settings"] if "kind" in config else {
                LEGACY_NAMES.get(k, k): v for k, v in config["settings"].get("params", {}).items()}
            attack = config.get("attack") or config["settings"].get("attack")
            victim = config.get("victim") or {"k": config["settings"].get("k")}
            host = (config.get("environment") or {}).get("cpu_bfloat16", "unknown")
            found.append({"run": str(summary.parent), "model": Path(config["model_dir"]).name,
                          "architecture": _run_architecture(summary.parent
                                                            / config["model_dir"]),
                          "attack": attack, "victim": victim,
                          "k": victim.get("k"), "work": _work(settings),
                          "levers": _levers(victim, settings),
                          "batch_size": config.get("batch_size"), "host": host,
                          "targeted": config.get("targeted"),
                          "seconds": float(row["seconds_per_attempt"])})
    return found


def _training_key(model_config: dict[str, Any], train_config: dict[str, Any]) -> str:
    """What an epoch's cost depends on: the architecture, the samples training draws, the data
    and the batches."""
    return _hash({"architecture": _architecture(model_config),
                  "train_k": model_config.get("train_k", 1),
                  **{key: train_config.get(key) for key in ("dataset", "train_size",
                                                            "batch_size")}})


def recorded_epochs(roots) -> dict[str, tuple[float, str]]:
    """Median seconds per training epoch that model runs under ``roots`` recorded, by
    ``_training_key``, with the run each comes from."""
    from .train import load_run_config

    found: dict[str, tuple[float, str]] = {}
    for root in roots:
        for state_file in sorted(Path(root).rglob(store.STATE_FILE)):
            try:
                saved = load_run_config(state_file.parent)
                history = reporting.read_json(state_file).get("history") or []
                key = _training_key(saved["model"], saved["train"])
            except (RunError, OSError, ValueError, KeyError, AttributeError):
                continue
            seconds = sorted(float(epoch["seconds"]) for epoch in history if "seconds" in epoch)
            if seconds and key not in found:
                found[key] = (seconds[len(seconds) // 2], str(state_file.parent))
    return found


def training_cost(plan: Plan, out: Path, step: Step, epochs: dict[str, tuple[float, str]]
                  ) -> tuple[float, str, float] | None:
    """Seconds a model step the plan trains has left (its epochs left at the median epoch of a
    recorded run of the same kind), the run that is from and its seconds per epoch."""
    from .train import configs_from_options

    if step.kind != "model" or "train" not in step.spec:
        return None
    try:
        model_config, train_config = configs_from_options(train_options(step.spec))
    except (RunError, OSError, ValueError):
        return None
    key = _training_key(model_config.to_dict(), dataclasses.asdict(train_config))
    if key not in epochs:
        return None
    per_epoch, basis = epochs[key]
    state_file = model_dir(out, plan, step.name) / store.STATE_FILE
    done = reporting.read_json(state_file).get("epochs_done", 0) if state_file.is_file() else 0
    return per_epoch * max(train_config.epochs - done, 0), basis, per_epoch


def closest_cost(plan: Plan, step: Step, costs: list[dict[str, Any]], *,
                 host: str | None = None) -> tuple[float, dict[str, Any]] | None:
    """Seconds an attack step should take and the recorded run they come from: the closest
    recorded run (same model folder or architecture, so that a model the plan trains is priced
    by a committed run of its kind; same attack and levers, K from the step's victim when it
    says one; recorded on a CPU of this ``host``'s kind (``reporting.cpu_bfloat16``, this
    machine's when None) if any was, since the bfloat16 levers cost 0.57x to 1.75x of float32
    depending on it; then with the same targeting (a targeted DeepFool steps one copy per image,
    not one per class); then closest in work per attempt, then in batch size, which decides how
    far a step's fixed costs are shared), scaled by the work per attempt."""
    host = host or reporting.cpu_bfloat16()
    if step.kind not in ("attack", "sweep"):
        return None
    spec = step.spec
    model = Path(plan.models[spec["model"]].get("run", spec["model"])).name
    architecture = _planned_architecture(plan.models[spec["model"]])
    kind = settings_type(spec["attack"])
    settings = kind.build(spec.get("settings") or {}, preset=spec.get("preset"))
    attack = "fgsm" if step.kind == "sweep" else spec["attack"]
    victim = planned_victim(spec.get("victim") or {})
    k = victim.get("k")
    levers = _levers(victim, dataclasses.asdict(settings))
    matches = [c for c in costs if (c["model"] == model or architecture is not None
                                    and c.get("architecture") == architecture)
               and c["attack"] == attack
               and (k is None or c["k"] in (None, k)) and c["levers"] == levers
               and _same_draws(victim, c.get("victim") or {})]
    if not matches:
        return None
    work = max(_work(dataclasses.asdict(settings)), 1e-9)
    batch = int(spec.get("batch_size") or DEFAULT_BATCH_SIZE)
    targeting = kind.check_targeting(spec.get("targeted"))
    best = min(matches, key=lambda c: (c.get("host", "unknown") != host,
                                       c.get("targeted", targeting) != targeting,
                                       round(abs(math.log(c["work"] / work)), 6),
                                       abs(math.log((c["batch_size"] or batch) / batch))))
    per_attempt = best["seconds"] * work / best["work"]
    targets = 9 if spec.get("targeted") == "all" else 1
    count = int(spec.get("images", plan.n_images)) * targets
    if step.kind == "sweep":
        count *= len(spec["eps_sweep"])
    return per_attempt * count, best


def dry_run_text(plan: Plan, out: Path, roots) -> str:
    reproduction = Reproduction(plan, out)
    costs = recorded_costs(roots)
    host = reporting.cpu_bfloat16()
    lines = [f"plan {plan.name} at scale {plan.scale}: {plan.n_images} test images per dataset, "
             f"seed {plan.seed}, into {out}", f"this CPU's bfloat16: {host}", ""]
    epochs = recorded_epochs(roots)
    total, unknown, elsewhere, estimates = 0.0, [], [], {}
    for step, state in reproduction.status():
        found = None if state in ("done", "reused") else closest_cost(plan, step, costs,
                                                                      host=host)
        training = None if state in ("done", "reused") else training_cost(plan, out, step,
                                                                          epochs)
        cost = ""
        if training is not None:
            seconds, basis, per_epoch = training
            total += seconds
            estimates[step.name] = seconds
            cost = f"  ~{_duration(seconds)} (from {basis}: {per_epoch:.0f} s per epoch)"
        elif found is not None:
            seconds, basis = found
            seconds *= _share_left(out, step) if state == "partial" else 1.0
            total += seconds
            estimates[step.name] = seconds
            batch = f"batch {basis['batch_size']}" if basis["batch_size"] else "batch unrecorded"
            recorded_on = basis.get("host", "unknown")
            if recorded_on != host:
                elsewhere.append(step.name)
            cost = (f"  ~{_duration(seconds)} (from {basis.get('run', '?')}: "
                    f"{basis['seconds']:.1f} s per attempt, {batch}, bfloat16: {recorded_on})")
        elif state in ("to do", "partial") and step.kind in ("attack", "sweep", "model"):
            unknown.append(step.name)
        lines.append(f"  {state:8s} {step.kind:8s} {step.name}{cost}")
    bound = "at least " if unknown else ""
    lines += ["", f"estimated time for the steps left: {bound}{_duration(total)} (from the "
              "seconds per attempt that earlier runs recorded, scaled by search steps x "
              "iterations, and per training epoch)"]
    if unknown:
        lines.append(f"no recorded cost for (not in the estimate): {', '.join(unknown)}")
    by_table = []
    for table in plan.tables:
        if table.get("kind") == "costs":  # names the same steps as the tables it prices
            continue
        names = set(_step_names(table.get("rows")))
        left = [name for name in names if name in estimates or name in unknown]
        if left:
            bound = "at least " if any(name in unknown for name in left) else ""
            seconds = sum(estimates.get(name, 0.0) for name in left)
            by_table.append(f"{table['id']} {bound}{_duration(seconds)}")
    if by_table:
        lines.append(f"by table: {'; '.join(by_table)}")
    if elsewhere:
        lines.append(f"costs recorded on another kind of CPU (or one not recorded), so a "
                     f"guess for this one: {', '.join(elsewhere)}")
    return "\n".join(lines)


def _share_left(out: Path, step: Step) -> float:
    """The share of a partial attack step's attempts not made yet (1 when it has no summary)."""
    progress = attack_progress(out, step)
    if progress is None or progress[1] <= 0:
        return 1.0
    made, planned = progress
    return max(planned - made, 0) / planned


def _step_names(rows) -> list[str]:
    """The step names a table's rows refer to, however nested (a detection row names its
    detection and its attack)."""
    if isinstance(rows, str):
        return [rows]
    if isinstance(rows, dict):
        rows = list(rows.values())
    return [name for row in rows or [] for name in _step_names(row)]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
