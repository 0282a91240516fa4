"""Runs compared on the attempts they share (dbayes_tf.runs.paired)."""
import pandas as pd

from dbayes_tf.runs import paired


def _run(correct, success, l2):
    n = len(correct)
    return pd.DataFrame({"image_id": range(n), "target": [-1] * n, "clean_correct": correct,
                         "success": success, "attack_found": success, "l2": l2})


def test_runs_on_two_models_compare_the_images_both_classified_correctly():
    # image 0: only the first model gets it right; image 1: only the second; 2-4: both
    first = _run([True, False, True, True, True], [True, False, True, True, False],
                 [1.0, 0.0, 2.0, 3.0, 0.0])
    second = _run([False, True, True, True, True], [False, True, True, False, True],
                  [0.0, 1.0, 1.5, 0.0, 4.0])
    here, there = paired.shared([second, first])
    assert list(here.index.get_level_values("image_id")) == [2, 3, 4]
    assert list(there.index.get_level_values("image_id")) == [2, 3, 4]
    found = paired.against(here, there)
    assert (found.n, found.successes, found.reference_successes) == (3, 2, 2)
    assert (found.only_here, found.only_reference) == (1, 1)
    assert found.difference == 0.0
    assert list(found.l2_both_won) == [1.5] and list(found.reference_l2_both_won) == [2.0]


def test_attempts_one_run_did_not_make_are_left_out():
    first = _run([True] * 4, [True] * 4, [1.0] * 4)
    second = _run([True] * 3, [False] * 3, [0.0] * 3)  # stopped after 3 attempts
    here, there = paired.shared([first, second])
    assert len(here) == len(there) == 3
    assert paired.against(there, here).only_reference == 3
