"""Measures of attacks: the R-draw judgement of a stochastic classifier, distortions, the
per-model x attack summary (paper 1 Table 1, paper 2 Tables 2-4), and ROC curves."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import tensorflow as tf

from .inference import predictive_entropy
from .runs.store import undecided_among
from .stats import bootstrap_median_interval, wilson_interval


@dataclasses.dataclass
class Judgement:
    """Classification of a batch under R independent draws of the model."""

    single: np.ndarray  # [B] class from the first draw alone
    majority: np.ndarray  # [B] most frequent class over the R draws (ties: higher mean prob.)
    draws: np.ndarray  # [R, B] class of every draw (-1: not drawn: Victim.judge_until_decided)
    entropy: np.ndarray  # [B] predictive entropy of the mean probabilities
    mean_probs: np.ndarray  # [B, C] mean class probabilities over the draws


def judge(model_fn, x, draws: int) -> Judgement:
    """Classify x with ``draws`` fresh draws in one call (a deterministic model gives R equal
    answers). A flip seen once is not an adversarial example; the majority is the verdict."""
    if draws < 1:
        raise ValueError("draws must be >= 1")
    x = tf.convert_to_tensor(x, tf.float32)
    batch = int(x.shape[0])
    logits = tf.reshape(model_fn(tf.concat([x] * draws, axis=0)), [draws, batch, -1])
    classes = tf.argmax(logits, axis=-1).numpy()
    num_classes = int(logits.shape[-1])
    votes = np.stack([(classes == c).sum(axis=0) for c in range(num_classes)], axis=-1)
    mean_probs = tf.reduce_mean(tf.nn.softmax(logits, axis=-1), axis=0)
    # a tie in votes (5 to 5 of R = 10) goes to the class of higher mean probability, not to
    # the lower class index; half a probability can never outweigh a whole vote
    tie_break = 0.5 * mean_probs.numpy()
    entropy = predictive_entropy(tf.math.log(mean_probs + 1e-30)).numpy()
    return Judgement(single=classes[0], majority=(votes + tie_break).argmax(axis=-1),
                     draws=classes, entropy=entropy, mean_probs=mean_probs.numpy())


def distortions(x, x_adv) -> dict[str, np.ndarray]:
    """L2, L-inf and relative L2 (||eta||_2 / ||x||_2, paper 2's robustness term) per image."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    eta = np.asarray(x_adv, np.float64).reshape(len(x), -1) - x
    l2 = np.sqrt((eta ** 2).sum(axis=1))
    return {"l2": l2, "linf": np.abs(eta).max(axis=1),
            "rel_l2": l2 / np.maximum(np.sqrt((x ** 2).sum(axis=1)), 1e-12)}


def success_flags(judgement: Judgement, labels: np.ndarray, targets: np.ndarray | None
                  ) -> dict[str, np.ndarray]:
    """Success by majority vote (the headline), by the first draw alone, and the fraction of
    draws fooled. Untargeted: class != label; targeted: class == target."""
    def hit(classes):
        return classes == targets if targets is not None else classes != labels

    drawn = judgement.draws >= 0  # a sequential verdict draws more for some images than others
    fooled = (hit(judgement.draws) & drawn).sum(axis=0) / drawn.sum(axis=0)
    return {"success": hit(judgement.majority), "success_single": hit(judgement.single),
            "fooled_rate": fooled}


def summarize_attempts(attempts: pd.DataFrame, victim: dict | None = None
                       ) -> dict[str, float]:
    """One summary row from the per-attempt table ``dbayes attack`` writes.

    clean_accuracy and error_adv (error w.r.t. the original classes, majority vote) are over
    all attempts; success rates and queries over attempts whose clean image was classified
    correctly; distortions and robustness rho (mean ||eta|| / ||x||) only over the successful
    ones among those. accuracy_adv (to the target) only for targeted attacks. The success rate
    carries its 95% Wilson interval, the median L2 its 95% bootstrap interval. Given the
    run's stored ``victim`` settings, ``undecided`` counts the valid attempts whose verdict is
    a coin toss (``stats.undecided``; always 0 for a deterministic model).
    """
    valid = attempts[attempts["clean_correct"]]
    won = valid[valid["success"]]
    targeted = attempts["target"].ge(0).any()

    def mean(series):
        return float(series.mean()) if len(series) else float("nan")

    success_low, success_high = wilson_interval(int(valid["success"].sum()), len(valid))
    median_low, median_high = bootstrap_median_interval(won["l2"].to_numpy())
    row = {
        "attempts": int(len(attempts)),
        "valid_attempts": int(len(valid)),
        "successes": int(valid["success"].sum()),
        "clean_accuracy": mean(attempts["clean_correct"].astype(float)),
        "error_adv": mean((attempts["pred_adv"] != attempts["label"]).astype(float)),
        "accuracy_adv": mean((attempts["pred_adv"] == attempts["target"]).astype(float))
        if targeted else float("nan"),
        "success_rate": mean(valid["success"].astype(float)),
        "success_low": success_low, "success_high": success_high,
        "success_rate_single_draw": mean(valid["success_single"].astype(float)),
        "mean_fooled_rate": mean(valid["fooled_rate"]),
        "l2_mean": mean(won["l2"]),
        "l2_median": float(won["l2"].median()) if len(won) else float("nan"),
        "l2_median_low": median_low, "l2_median_high": median_high,
        "linf_mean": mean(won["linf"]),
        "robustness_rho": mean(won["rel_l2"]),
        "entropy_adv": mean(valid["entropy_adv"]),
        "seconds_per_attempt": mean(attempts["seconds"]),
        "queries_mean": mean(valid["queries"]),
        "undecided": undecided_among(valid, victim),
    }
    return row


def roc_curve(clean_scores, adversarial_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): flag an input when its score is >= threshold, sweeping every
    distinct score from high to low; adversarial inputs are the positives."""
    clean = np.asarray(clean_scores, np.float64)
    adv = np.asarray(adversarial_scores, np.float64)
    if len(clean) == 0 or len(adv) == 0:
        raise ValueError("ROC needs at least one clean and one adversarial score")
    scores = np.concatenate([adv, clean])
    positive = np.concatenate([np.ones(len(adv)), np.zeros(len(clean))])
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    last_of_tie = np.r_[np.diff(scores) != 0, True]
    tpr = np.r_[0.0, np.cumsum(positive)[last_of_tie] / len(adv)]
    fpr = np.r_[0.0, np.cumsum(1 - positive)[last_of_tie] / len(clean)]
    return fpr, tpr, np.r_[np.inf, scores[last_of_tie]]


def roc_auc(clean_scores, adversarial_scores) -> float:
    """Area under the ROC curve (trapezoids; ties count one half)."""
    fpr, tpr, _ = roc_curve(clean_scores, adversarial_scores)
    return float(np.trapezoid(tpr, fpr))
