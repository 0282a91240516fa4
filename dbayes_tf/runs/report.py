"""REPORT.md of a reproduced plan: every table the plan declares, ours beside the paper's, each
rate with its 95% Wilson interval and each median distortion with its 95% bootstrap interval,
and under each table what every row was made from (model, preset, images, seed).

REPORT.md depends only on the plan, the seeds and the runs' results, so a run interrupted and
resumed writes the same file as one that went straight through. Wall-clock costs differ from
run to run; they go to COSTS.md.

Table kinds (``kind:`` in a plan's ``tables:``):
    accuracy   rows -> models; columns test_accuracy, validation_accuracy
    attacks    rows -> attack steps; columns are measures of the attempts
    grid       rows x columns -> attack or [detection, attack] steps; one ``measure``
    detection  rows -> [detection step, attack step]; columns from the detection table
    sweep      rows -> FGSM sweeps; accuracy at each step size, and one figure; ``columns:
               [accuracy, rho]`` adds paper 2's rho (or l2_mean) at each step size
    path       rows -> iterative FGSM runs; the per-iteration curves, and one figure
    examples   rows -> attack steps on one model; the first images they share, clean and
               adversarial with the verdict's class and L2, as a figure (paper 2 Figs. 1-2)
    paired     rows -> attack steps, the first the reference: all on the attempts every
               finished row made, each one's difference with a paired interval (ablations)

An attack step still running (a long step in shards) shows the attempts made so far in
``attacks`` and ``paired`` tables, its row labelled with how many, and its provenance with the
time the rest should take at the cost it has measured; REPORT.md then changes as it goes on.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import paper_numbers, reporting
from ..stats import bootstrap_mean_interval, bootstrap_median_interval, format_median, format_rate
from . import paired, store
from .reproduce import Plan, Step, attack_progress, is_finished, model_dir, step_dir

NOT_RUN = "not run yet"
# (model name in the plan, test image ids) -> (images, labels)
CleanImages = Callable[[str, Sequence[int]], tuple[np.ndarray, np.ndarray]]
# (model, images, classes) -> the model's reconstructions r(x, class) (paper 1 eq. 5) and
# their distances to the images, the reconstruction detector's raw score
Reconstruct = Callable[[str, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

RATES = {"clean_accuracy", "error_adv", "accuracy_adv", "success_rate",
         "success_rate_single_draw", "detection_rate", "fpr_clean_test", "test_accuracy",
         "validation_accuracy", "accuracy"}
HEADERS = {"clean_accuracy": "accuracy (clean)", "error_adv": "error (adv)",
           "accuracy_adv": "accuracy (adv)", "l2_mean": "distortion (adv), mean ± sd",
           "l2_median": "median L2 [95% CI]", "success_rate": "success rate",
           "success_rate_single_draw": "success (one draw)", "robustness_rho": "robustness rho",
           "detection_rate": "detection rate", "fpr_clean_test": "false positives (clean test)",
           "distortion_l2": "distortion", "distance_clean": "distance (clean)",
           "distance_adv": "distance (adv)", "roc_auc": "ROC AUC",
           "test_accuracy": "accuracy (test)", "validation_accuracy": "accuracy (validation)",
           "undecided": "undecided verdicts"}


def _rate(successes: int, trials: int) -> str:
    return format_rate(successes, trials, decimals=2, show_n=True)


def _mean_sd(values) -> str:
    values = np.asarray(values, np.float64)
    return "n/a" if len(values) == 0 else f"{values.mean():.3f} ± {values.std():.3f}"


def _markdown(frame: pd.DataFrame) -> str:
    """Cells as written: tabulate would re-read "0.1159" as a number and print it its own way."""
    return frame.to_markdown(index=False, disable_numparse=True)


def _paper_text(value, measure: str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.2%}" if measure in RATES else f"{value:g}"  # the paper's own digits


class Cells:
    """Measures of the plan's finished steps, read from their run directories."""

    def __init__(self, plan: Plan, out: Path):
        self.plan, self.out = plan, out
        self._attempts: dict[str, pd.DataFrame] = {}

    def attempts(self, name: str) -> pd.DataFrame:
        if name not in self._attempts:
            self._attempts[name] = store.read_attempts(
                step_dir(self.out, Step("attack", name, {})))
        return self._attempts[name]

    def attack(self, name: str, measure: str) -> str:
        a = self.attempts(name)
        valid = a[a["clean_correct"]]
        won = valid[valid["success"]]
        if measure == "clean_accuracy":  # per image: 'all' repeats each image nine times
            images = a.drop_duplicates("image_id")
            return _rate(images["clean_correct"].sum(), len(images))
        if measure == "error_adv":
            return _rate((a["pred_adv"] != a["label"]).sum(), len(a))
        if measure == "accuracy_adv":
            if not (a["target"] >= 0).any():
                return "untargeted"
            return _rate((a["pred_adv"] == a["target"]).sum(), len(a))
        if measure == "success_rate":
            return _rate(valid["success"].sum(), len(valid))
        if measure == "success_rate_single_draw":
            return _rate(valid["success_single"].sum(), len(valid))
        if measure == "l2_mean":
            return _mean_sd(won["l2"])
        if measure == "l2_median":
            if not len(won):
                return "n/a"
            low, high = bootstrap_median_interval(won["l2"].to_numpy())
            return f"{won['l2'].median():.3f} [{low:.3f}, {high:.3f}]"
        if measure == "robustness_rho":
            return _mean_sd(won["rel_l2"])
        if measure == "seconds_per_attempt":
            return f"{a['seconds'].mean():.2f}"
        if measure == "undecided":  # verdicts whose fooled fraction is still a coin toss
            victim = store.read_config(step_dir(self.out, Step("attack", name, {})))["victim"]
            return f"{store.undecided_among(valid, victim)} of {len(valid)}"
        raise ValueError(f"unknown attack measure {measure!r}")

    def detection(self, detection: str, attack: str, measure: str) -> str:
        spec = self.plan.detections[detection]
        folder = step_dir(self.out, Step("detect", detection, spec))
        table = pd.read_csv(folder / f"detect_{spec['method']}.csv")
        attack_dir = step_dir(self.out, Step("attack", attack, {})).resolve()
        # rows name their attack run relative to the detection folder; rows written before
        # that named it as given on the command line (relative to where it ran)
        rows = table[table["attack_run"].map(
            lambda p: attack_dir in (store.located(p, folder), Path(p).resolve()))]
        if rows.empty:
            raise ValueError(f"detection {detection} has no row for attack {attack}")
        row = rows.iloc[0]
        if measure == "detection_rate":
            n = int(row["n_adv"])
            return _rate(round(row["detection_rate"] * n), n) if n else "no successful attack"
        if measure == "fpr_clean_test":
            n = int(row["n_clean"])
            return _rate(round(row["fpr_clean_test"] * n), n)
        value = row[measure]
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    def model(self, name: str, measure: str) -> str:
        if measure == "test_accuracy":
            result = reporting.read_json(model_dir(self.out, self.plan, name) /
                                         store.METRICS_FILE)
            n = int(result["n_test"])
            return _rate(round(result["test_accuracy"] * n), n)
        if measure == "validation_accuracy":
            path = self.out / "evaluations" / f"{name}_validation.json"
            if not path.is_file():
                return NOT_RUN
            result = reporting.read_json(path)
            return _rate(result["correct"], result["n"])
        raise ValueError(f"unknown model measure {measure!r}")

    def step(self, ref) -> Step:
        if isinstance(ref, list):
            return Step("detect", ref[0], self.plan.detections[ref[0]])
        if ref in self.plan.models:
            return Step("model", ref, self.plan.models[ref])
        spec = self.plan.attacks[ref]
        return Step("sweep" if "eps_sweep" in spec else "attack", ref, spec)

    def done(self, ref) -> bool:
        return is_finished(self.out, self.plan, self.step(ref))

    def partial(self, ref) -> tuple[int, int] | None:
        """(attempts made, attempts planned) of an attack step begun but not finished."""
        if not isinstance(ref, str) or ref not in self.plan.attacks or self.done(ref):
            return None
        return attack_progress(self.out, self.step(ref))

    def shown(self, ref) -> bool:
        """Whether a row has numbers to show: finished, or an attack with attempts so far."""
        return self.done(ref) or self.partial(ref) is not None

    def any(self, ref, measure: str) -> str:
        if not self.shown(ref):
            return NOT_RUN
        if isinstance(ref, list):
            return self.detection(ref[0], ref[1], measure)
        if ref in self.plan.models:
            return self.model(ref, measure)
        return self.attack(ref, measure)

    # where each row came from
    def provenance(self, ref) -> str:
        if isinstance(ref, list):
            spec = self.plan.detections[ref[0]]
            options = spec.get("options") or {}
            return (f"detection `{ref[0]}`: {spec['method']} with model `{spec['detector']}` "
                    f"on attack `{ref[1]}`" + (f", {options}" if options else ""))
        if ref in self.plan.models:
            return f"model `{ref}`: {self._model_text(ref)}"
        spec = self.plan.attacks[ref]
        if not self.shown(ref):
            return f"`{ref}`: {spec['attack']} on model `{spec['model']}`: {NOT_RUN}"
        config = reporting.read_json(step_dir(self.out, Step("attack", ref, {})) /
                                     store.CONFIG_FILE)
        victim = config["victim"]
        settings = config.get("settings", {})
        count = config.get("n_images", len(config.get("image_ids", [])))
        preset = f"preset {spec['preset']}, " if spec.get("preset") else ""
        targets = {"all": " x 9 targets", "random": ", one random target each"}.get(
            config.get("targeted", spec.get("targeted")), "")
        levers = {k: v for k, v in (spec.get("victim") or {}).items() if k != "k"}
        levers_text = f"victim options {levers}, " if levers else ""
        return (f"`{ref}`: {config.get('attack', spec['attack'])} on model `{spec['model']}` "
                f"({self._model_text(spec['model'])}), K={victim['k']}, "
                f"R={victim['verdict_draws']}, {preset}{levers_text}settings {settings}; "
                f"{count} test "
                f"images{targets}; seed {config['seed']}{self._progress(ref)}")

    def _progress(self, ref: str) -> str:
        made = self.partial(ref)
        if made is None:
            return ""
        done, planned = made
        seconds = self.attempts(ref)["seconds"].mean()
        left = (planned - done) * seconds / 3600
        return (f"; **unfinished: {done} of {planned} attempts so far**, the rest about "
                f"{left:.1f} h at the {seconds:.1f} s per attempt measured so far")

    def _model_text(self, name: str) -> str:
        spec = self.plan.models[name]
        folder = model_dir(self.out, self.plan, name)
        config = reporting.read_json(folder / store.CONFIG_FILE)
        made = f"committed run {spec['run']}" if "run" in spec else "trained by the plan"
        preset = spec.get("train", {}).get("preset") if "train" in spec else None
        return (f"{config['model']['model']}-{config['model']['arch']}, {made}"
                + (f", preset {preset}" if preset else "")
                + f", training seed {config['train']['seed']}")


def _table(cells: Cells, table: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """A declared table as a frame (ours and, where the paper printed it, the paper's), and the
    provenance lines of its rows."""
    paper = paper_numbers.TABLES.get(table.get("id"), {}).get("rows", {})
    kind = table["kind"]
    rows, notes = [], []
    for label, ref in table["rows"].items():
        row = {"": label}
        printed = paper.get(label, {})
        if kind == "grid":
            for column, cell in ref.items():
                row[column] = cells.any(cell, table["measure"])
                if column in printed:
                    row[f"{column} (paper)"] = _paper_text(printed[column], table["measure"])
                notes.append(f"{label} / {column}: {cells.provenance(cell)}")
        else:
            made = cells.partial(ref)
            if made is not None:
                row[""] = f"{label} ({made[0]} of {made[1]} so far)"
            for measure in table["columns"]:
                header = HEADERS.get(measure, measure)
                row[header] = cells.any(ref, measure)
                if measure in printed:
                    row[f"{header} (paper)"] = _paper_text(printed[measure], measure)
            notes.append(f"{label}: {cells.provenance(ref)}")
        rows.append(row)
    return pd.DataFrame(rows).fillna(""), notes


def _examples(cells: Cells, table: dict[str, Any], out: Path, clean_images: CleanImages | None,
              reconstruct: Reconstruct | None = None) -> tuple[pd.DataFrame, str | None]:
    """Paper 2 Figs. 1-2: the first few images every row's attack made, each attack's
    adversarial with the verdict's class and its L2 (and the clean image, when the test images
    are at hand). With ``reconstruct_with: MODEL`` (paper 1 Fig. 2), each image's
    reconstruction by that model under its class (the label; the adversarial's class) and the
    distance between them, the reconstruction detector's score."""
    rows = _finished_rows(cells, table)
    if not rows:
        return pd.DataFrame({"": [NOT_RUN]}), None
    attempts = {label: cells.attempts(ref).drop_duplicates("image_id").set_index("image_id")
                for label, ref in rows}
    first = attempts[rows[0][0]]
    shared = [i for i in first.index if all(i in a.index for a in attempts.values())]
    shown = shared[:int(table.get("images", 5))]
    frame = pd.DataFrame({"image": [f"{i} (class {first.loc[i, 'label']})" for i in shown]})
    adversarials = []
    for label, ref in rows:
        made = attempts[label].loc[shown]
        pictures = store.read_images(step_dir(out, cells.step(ref)), cells.attempts(ref))
        by_attempt = dict(zip(pictures["attempt"], pictures["x_adv"], strict=True))
        adversarials.append((label, np.stack([by_attempt[a] for a in made["attempt"]]),
                             made["pred_adv"].to_numpy(), made["l2"].to_numpy()))
        frame[label] = [f"{p} ({d:.2f})" for p, d in zip(made["pred_adv"], made["l2"],
                                                        strict=True)]
    clean = None
    labels = first.loc[shown, "label"].to_numpy()
    if clean_images is not None:
        clean = clean_images(cells.plan.attacks[rows[0][1]]["model"], shown)[0]
    rebuilt = {}
    if table.get("reconstruct_with") and reconstruct is not None and clean is not None:
        for name, images, classes in [("clean", clean, labels),
                                      *[(a, x, c) for a, x, c, _ in adversarials]]:
            rebuilt[name] = reconstruct(table["reconstruct_with"], images, classes)
            frame[f"{name}: d(x, r(x, class))"] = [f"{d:.2f}" for d in rebuilt[name][1]]
    figure = reporting.plot_examples(clean, labels, adversarials,
                                     out / "figures" / f"{table['id']}.png",
                                     title=table.get("title", ""), reconstructions=rebuilt)
    return frame, str(figure.relative_to(out))


def _paired(cells: Cells, table: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """Every finished row on the attempts all of them made, beside the first row (the
    reference, which may still be running as long as it has made those attempts): success,
    the difference from the reference with Newcombe's paired 95% interval, the attempts only
    one of the two won, and the mean L2 and its paired difference where both won."""
    (reference_label, reference), *others = table["rows"].items()
    notes = [f"{label}: {cells.provenance(ref)}" for label, ref in table["rows"].items()]
    finished = [(label, ref) for label, ref in others if cells.done(ref)]
    if not finished or not cells.shown(reference):
        return pd.DataFrame({"": [NOT_RUN]}), notes
    shown = [(reference_label, reference), *finished]
    frames = [cells.attempts(ref) for _, ref in shown]
    if not all(paired.keys(frame) <= paired.keys(frames[0]) for frame in frames[1:]):
        return pd.DataFrame({"": [f"{reference_label} has not reached these attempts yet"]}), \
            notes
    kept = paired.shared(frames)  # every row on the same attempts
    rows = []
    for (label, ref), here in zip(shown, kept, strict=True):
        found = paired.against(here, kept[0])
        won = here[here["success"]]
        victim = store.read_config(step_dir(cells.out, cells.step(ref)))["victim"]
        row = {"": label, "attempts": str(found.n),
               "success rate": _rate(found.successes, found.n),
               "median L2 [95% CI]": format_median(won["l2"]) if len(won) else "n/a",
               "undecided verdicts": f"{store.undecided_among(here, victim)} of {found.n}"}
        if ref != reference:
            low, high = found.difference_interval
            both = len(found.l2_both_won)
            row |= {
                f"difference from {reference_label} [95% CI, paired]":
                    f"{100 * found.difference:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}]",
                "won only here / only there": f"{found.only_here} / {found.only_reference}",
                "where both won (n): mean L2 here / there, difference [95% CI]":
                    _mean_l2_difference(found) if both else "n/a"}
        rows.append(row)
    return pd.DataFrame(rows).fillna(""), notes


def _mean_l2_difference(found: paired.Against) -> str:
    """Paper tables print mean distortions; on the attempts both runs won, the mean of the
    per-attempt differences is the paired comparison of those means."""
    here, there = found.l2_both_won, found.reference_l2_both_won
    differences = here.to_numpy() - there.reindex(here.index).to_numpy()
    low, high = bootstrap_mean_interval(differences)
    return (f"({len(differences)}) {here.mean():.3f} / {there.mean():.3f}, "
            f"{differences.mean():+.3f} [{low:+.3f}, {high:+.3f}]")


def _sweep(cells: Cells, table: dict[str, Any], out: Path) -> tuple[pd.DataFrame, str | None]:
    frames = []
    for label, ref in _finished_rows(cells, table):
        folder = step_dir(out, Step("sweep", ref, {}))
        frame = pd.read_csv(folder / store.SWEEP_FILE).assign(model=label)
        frames.append(frame)
    if not frames:
        return pd.DataFrame({"": [NOT_RUN]}), None
    curves = pd.concat(frames, ignore_index=True)
    figure = reporting.plot_curves(curves[["model", "eps", "accuracy", "entropy"]], "eps",
                                   out / "figures" / f"{table['id']}.png",
                                   title=table.get("title", ""))
    shown = curves.assign(accuracy=[_rate(c, n) for c, n in zip(curves["correct"],
                                                                curves["images"], strict=True)])
    order = list(dict.fromkeys(curves["model"]))  # the plan's row order, not pivot's sorting
    wide = shown.pivot(index="eps", columns="model", values="accuracy")[order]
    for measure in table.get("columns", [])[1:]:  # after accuracy, e.g. rho (paper 2)
        if measure not in shown:
            raise ValueError(f"table {table['id']}: the sweeps record no {measure!r} (made "
                             "before it was recorded: run them again)")
        extra = shown.assign(**{measure: shown[measure].map(
            lambda v: "n/a" if pd.isna(v) else f"{v:.3f}")}).pivot(
            index="eps", columns="model", values=measure)[order]
        wide = wide.join(extra.rename(columns=lambda model, m=measure: f"{model}: {m}"))
    return wide.reset_index(), str(figure.relative_to(out))


def _path(cells: Cells, table: dict[str, Any], out: Path) -> tuple[pd.DataFrame, str | None]:
    frames = []
    for label, ref in _finished_rows(cells, table):
        folder = step_dir(out, Step("attack", ref, {}))
        frames.append(pd.read_csv(folder / "ifgsm_path.csv").assign(model=label))
    if not frames:
        return pd.DataFrame({"": [NOT_RUN]}), None
    curves = pd.concat(frames, ignore_index=True)
    figure = reporting.plot_curves(
        curves[["model", "iteration", "accuracy", "target_accuracy", "entropy"]], "iteration",
        out / "figures" / f"{table['id']}.png", title=table.get("title", ""))
    last = int(curves["iteration"].max())
    keep = sorted({0, last // 4, last // 2, last})
    shown = curves[curves["iteration"].isin(keep)]
    measures = ["accuracy", "target_accuracy", "entropy"]
    wide = shown.pivot(index="iteration", columns="model", values=measures)
    wide = wide[pd.MultiIndex.from_product([measures, list(dict.fromkeys(curves["model"]))])]
    wide.columns = [f"{model}: {measure}" for measure, model in wide.columns]
    wide = wide.reset_index()
    wide["iteration"] = wide["iteration"].astype(int)
    return wide, str(figure.relative_to(out))


def _finished_rows(cells: Cells, table: dict[str, Any]):
    return [(label, ref) for label, ref in table["rows"].items() if cells.done(ref)]


def write_report(plan: Plan, out: Path, clean_images: CleanImages | None = None,
                 reconstruct: Reconstruct | None = None) -> Path:
    """REPORT.md from every finished step; the cells of steps not run yet say so.
    ``clean_images(model, image_ids)`` gives the test images and labels that ``examples``
    tables show beside the adversarials, and ``reconstruct(model, images, classes)`` the
    reconstructions they show with ``reconstruct_with`` (without them these are left out)."""
    cells = Cells(plan, out)
    missing = [step.name for step in plan.steps() if not is_finished(out, plan, step)]
    parts = [f"# {plan.title}", "",
             f"Made by `dbayes reproduce {plan.path} --scale {plan.scale}`: {plan.n_images} test "
             f"images per dataset (the same for every model; `images.json`), seed {plan.seed}. "
             "Rates carry a 95% Wilson interval and n; median distortions a 95% bootstrap "
             "interval. Both treat attempts as independent: with every other class as a target "
             "(nine attempts per image) they are narrower than a per-image resampling would "
             "give. Where the paper printed a number it stands in the column beside ours. "
             "Wall-clock costs are in [COSTS.md](COSTS.md).", ""]
    if missing:
        parts += [f"**Unfinished**: {len(missing)} step(s) not run yet ({', '.join(missing)}); "
                  f"their cells say so. The same command goes on with them.", ""]
    if plan.notes:
        parts += [plan.notes.strip(), ""]
    for table in plan.tables:
        if table["kind"] == "costs":  # wall-clock: COSTS.md
            continue
        title = table.get("title", table.get("id", ""))
        parts += [f"## {title}", ""]
        source = paper_numbers.TABLES.get(table.get("id"), {}).get("source")
        if table["kind"] in ("sweep", "path", "examples"):
            if table["kind"] == "examples":
                frame, figure = _examples(cells, table, out, clean_images, reconstruct)
            else:
                frame, figure = (_sweep if table["kind"] == "sweep" else _path)(cells, table, out)
            parts += [_markdown(frame), ""]
            parts += [f"![{title}]({figure})", ""] if figure else []
            notes = [f"{label}: {cells.provenance(ref)}" for label, ref in table["rows"].items()]
        elif table["kind"] == "paired":
            frame, notes = _paired(cells, table)
            parts += [_markdown(frame), ""]
        else:
            frame, notes = _table(cells, table)
            parts += [_markdown(frame), ""]
        reporting.write_table(frame, out / "tables", table["id"])
        if source:
            parts += [f"Paper: {source}.", ""]
        if table.get("note"):
            parts += [table["note"].strip(), ""]
        parts += ["Made from:", ""] + [f"- {line}" for line in notes] + [""]
        for figure in table.get("figures", []):
            if (out / figure).is_file():
                parts += [f"![{figure}]({figure})", ""]
    reporting.write_text(out / "REPORT.md", "\n".join(parts).rstrip() + "\n")
    _write_costs(plan, out, cells)
    return out / "REPORT.md"


def _host(environment: dict[str, Any]) -> str:
    host = environment.get("platform", "not recorded")
    kind = environment.get("cpu_bfloat16")
    return f"{host} (bfloat16: {kind})" if kind else host


def _write_costs(plan: Plan, out: Path, cells: Cells) -> None:
    rows = []
    for name, spec in plan.attacks.items():
        folder = step_dir(out, Step("attack", name, {}))
        if not (folder / store.SUMMARY_FILE).is_file():
            continue
        summary = pd.read_csv(folder / store.SUMMARY_FILE).iloc[0]
        environment = store.read_config(folder).get("environment") or {}
        rows.append({"attack run": name, "attack": spec["attack"], "model": spec["model"],
                     "attempts": int(summary["attempts"]),
                     "seconds per attempt": round(float(summary["seconds_per_attempt"]), 2),
                     "queries per attempt": round(float(summary["queries_mean"]), 1),
                     "host": _host(environment)})
    text = ["# Costs", "", "Seconds per attempt as each attack run measured them (they vary "
            "from run to run, and between hosts: \"host\" is the run's platform and, where "
            "recorded, how its CPU computes bfloat16; REPORT.md does not vary).", "",
            reporting.to_markdown(pd.DataFrame(rows)), "",
            "This file was written on (each run's own machine is its \"host\"):", "",
            reporting.machine_text(reporting.environment()), ""]
    for table in plan.tables:
        if table["kind"] != "costs":
            continue
        frame, notes = _table(cells, {**table, "kind": "grid", "measure": "seconds_per_attempt"})
        source = paper_numbers.TABLES.get(table.get("id"), {}).get("source")
        text += [f"## {table.get('title', table['id'])}", "", _markdown(frame), ""]
        text += [f"Paper: {source}.", ""] if source else []
    reporting.write_text(out / "COSTS.md", "\n".join(text))
