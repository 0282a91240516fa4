"""Attack runs compared on the attempts they share (same image, same target).

When a generative classifier's verdicts are close to coin tosses, two attacks succeed on
different attempts, and their success rates or medians over successes compare different
images. Paired on the same attempts, a difference between two runs (an ablation that changes
one setting) is judged by the attempts only one of them won, with Newcombe's paired interval
(``stats.paired_difference_interval``), and distortions are compared where both won.

Used by the report's ``paired`` tables and by ``benchmarks/bench_decisions.py --paired``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from ..stats import paired_difference_interval

KEY = ["image_id", "target"]


def keys(attempts: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(attempts["image_id"], attempts["target"], strict=True))


def shared(runs: Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    """Each run's attempts on the (image, target) pairs that every run made on an image its
    model classified correctly (the only attempts a success rate counts; runs on two models,
    such as two trainings of a CNN, keep the images both got right), indexed by
    (image_id, target) in one order."""
    common = set.intersection(*(keys(attempts[attempts["clean_correct"].astype(bool)])
                                for attempts in runs))
    out = []
    for attempts in runs:
        key = pd.Series(list(zip(attempts["image_id"], attempts["target"], strict=True)))
        kept = attempts[key.isin(common).to_numpy()]
        out.append(kept.set_index(KEY).sort_index())
    return out


@dataclasses.dataclass(frozen=True)
class Against:
    """One run against a reference run on their shared attempts."""

    n: int
    successes: int
    reference_successes: int
    only_here: int
    only_reference: int
    difference: float  # success rate here minus the reference's
    difference_interval: tuple[float, float]  # 95%, paired
    l2_both_won: pd.Series  # this run's L2 where both won
    reference_l2_both_won: pd.Series
    larger_where_both_claimed: float  # share of attempts both claimed where this L2 is larger
    both_claimed: int


def against(here: pd.DataFrame, reference: pd.DataFrame) -> Against:
    """``here`` and ``reference`` as ``shared`` returns them."""
    won = here["success"].astype(bool)
    won_there = reference["success"].astype(bool).reindex(here.index, fill_value=False)
    both = won & won_there
    only_here, only_there = int((won & ~won_there).sum()), int((won_there & ~won).sum())
    n = len(here)
    neither = n - int(both.sum()) - only_here - only_there
    claimed = here["attack_found"].astype(bool) & \
        reference["attack_found"].astype(bool).reindex(here.index, fill_value=False)
    larger = (here.loc[claimed, "l2"] > reference.loc[claimed[claimed].index, "l2"]).mean()
    return Against(
        n=n, successes=int(won.sum()), reference_successes=int(won_there.sum()),
        only_here=only_here, only_reference=only_there,
        difference=(only_here - only_there) / n if n else float("nan"),
        difference_interval=paired_difference_interval(int(both.sum()), only_here, only_there,
                                                       neither),
        l2_both_won=here.loc[both, "l2"], reference_l2_both_won=reference.loc[both[both].index,
                                                                              "l2"],
        larger_where_both_claimed=float(larger) if claimed.any() else float("nan"),
        both_claimed=int(claimed.sum()))
