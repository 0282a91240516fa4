"""The benchmarks' own arithmetic (they measure; what they compute from the measurements is
checked here on numbers whose answer is known)."""
import importlib.util
import sys
from pathlib import Path

import pandas as pd

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _bench_decisions():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench_decisions",
                                                  BENCHMARKS / "bench_decisions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _attempts(success, found, l2):
    index = pd.MultiIndex.from_tuples([(i, 1) for i in range(len(l2))],
                                      names=["image_id", "target"])
    return pd.DataFrame({"success": success, "attack_found": found, "l2": l2}, index=index)


def test_paired_columns_count_discordant_wins_and_compare_the_attempts_both_won():
    against_first = _bench_decisions()._against_first
    first = _attempts([True, True, True, False, False], [True] * 5, [1.0, 2.0, 3.0, 4.0, 5.0])
    other = _attempts([True, True, False, True, False], [True, True, True, True, False],
                      [1.5, 2.5, 2.0, 0.5, 9.0])
    text = against_first(other, first)
    # won only here: attempt 3; only there: attempt 2; both won: 0 and 1
    assert text.startswith("1 / 1; (n=2) 2.00")
    assert "and 1.50" in text  # the first run's median on the attempts both won
    # both claimed on attempts 0-3: larger here on 0 and 1 of the four
    assert text.endswith("both found (n=4): 50% larger here")
    assert against_first(first, first) == "(the reference)"
