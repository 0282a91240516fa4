"""Detectors: ROC arithmetic, calibration to a false-positive rate, separation of clean from
off-manifold inputs, reconstruction under the right label, and the ``dbayes detect`` CLI."""
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dbayes_cli.main import main
from dbayes_tf import metrics
from dbayes_tf.detection import DETECTORS, make_detector
from dbayes_tf.runs.train import load_model


def test_roc_auc_matches_a_hand_count_and_scikit_learn():
    clean = [0.1, 0.4, 0.35, 0.8]
    adversarial = [0.9, 0.4, 0.7, 0.2]
    # pairs (adv > clean) + 0.5 (ties) over 16: 0.9 beats 4; 0.4 beats 0.1, 0.35 and ties 0.4;
    # 0.7 beats 3; 0.2 beats 1 -> (4 + 2.5 + 3 + 1) / 16
    assert metrics.roc_auc(clean, adversarial) == pytest.approx(10.5 / 16)
    fpr, tpr, _ = metrics.roc_curve(clean, adversarial)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(0.7, size=60).round(1)
    expected = sklearn_metrics.roc_auc_score(np.r_[np.zeros(50), np.ones(60)], np.r_[a, b])
    assert metrics.roc_auc(a, b) == pytest.approx(expected)


@pytest.fixture(scope="module")
def gc_model(trained_runs):
    return load_model(trained_runs["gc"])


@pytest.mark.parametrize("method", ["logit", "marginal", "kl"])
def test_calibrated_false_positive_rate_holds_on_held_out_clean_data(method, gc_model, mnist):
    detector = make_detector(method, gc_model, k=3)
    # training-split images the small model never saw (it trained on the first 3,000): on its
    # own training images an overfit model scores too well, and the held-out rate comes out
    # higher than asked (that is why `dbayes detect --fit-split validation` exists)
    detector.fit(mnist.train.images[3000:5000], mnist.train.labels[3000:5000])
    detector.calibrate(0.05)
    held_out = mnist.test.images[1000:2000]
    predicted = np.argmax(gc_model.logits(held_out, 3, seed=1).numpy(), axis=1)
    # the population alpha was fitted on: correctly classified inputs (this small model gets
    # about 1 in 10 wrong, and those look unusual to every detector)
    correct = predicted == mnist.test.labels[1000:2000]
    rate = detector.flag(held_out[correct], predicted[correct]).mean()
    assert abs(rate - 0.05) < 0.04, rate


@pytest.mark.parametrize("method", sorted(DETECTORS))
def test_every_detector_separates_clean_from_noisy_and_foreign_images(method, gc_model, mnist,
                                                                      fashion):
    detector = make_detector(method, gc_model, k=3)
    detector.fit(mnist.train.images[:1000], mnist.train.labels[:1000])
    clean = mnist.test.images[:200]
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 0.3, clean.shape), 0, 1).astype(np.float32)
    foreign = fashion.test.images[:200]

    def scores(x):
        labels = np.argmax(gc_model.logits(x, 3, seed=2).numpy(), axis=1)  # F = the model
        return detector.score(x, labels)

    clean_scores = scores(clean)
    aucs = {name: metrics.roc_auc(clean_scores, scores(other))
            for name, other in (("noise", noisy), ("fashion", foreign))}
    # the issue asks for noise OR another dataset. kl only looks at the shape of p(y | x):
    # on this small gc model noisy digits look *more* typical to it (AUC about 0.38) and
    # Fashion-MNIST only somewhat less (about 0.65), so it gets a lower bar; a broken score
    # would sit at 0.5
    assert max(aucs.values()) > (0.6 if method == "kl" else 0.75), (method, aucs)


def test_reconstruction_under_the_true_label_is_closer_than_under_a_wrong_one(gc_model, mnist):
    detector = make_detector("recon", gc_model)
    x, y = mnist.test.images[:200], mnist.test.labels[:200]
    right = detector.raw_scores(x, y)
    wrong = detector.raw_scores(x, (y + 1 + np.arange(200) % 9) % 10)
    assert np.mean(right < wrong) > 0.85


def test_recon_paper_threshold_is_the_mean_training_distance(gc_model, mnist):
    detector = make_detector("recon", gc_model)
    x, y = mnist.train.images[:300], mnist.train.labels[:300]
    detector.fit(x, y)
    detector.use_paper_threshold()
    distances = detector.raw_scores(x, y)
    np.testing.assert_array_equal(detector.flag(x, y), distances > distances.mean())


def test_detectors_refuse_a_discriminative_model(trained_runs):
    with pytest.raises(ValueError, match="generative model"):
        make_detector("logit", load_model(trained_runs["mlp"]))


@pytest.fixture(scope="module")
def attack_dir(trained_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("attack") / "df"
    result = CliRunner().invoke(main, ["attack", str(trained_runs["mlp"]), "--attack",
                                       "deepfool", "--n-images", "20", "--out", str(out),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("method", ["recon", "logit"])
def test_detect_cli_writes_table_roc_and_grid(method, trained_runs, attack_dir, tmp_path):
    out = tmp_path / "detect"
    result = CliRunner().invoke(main, [
        "detect", "--method", method, "--detector-model", str(trained_runs["gc"]),
        "--adv", str(attack_dir), "--n-fit", "500", "--n-clean", "100", "--k", "2",
        "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / f"detect_{method}.csv")
    attempts = pd.read_csv(attack_dir / "attempts.csv")
    assert table.loc[0, "n_adv"] == (attempts["success"] & attempts["clean_correct"]).sum()
    assert 0 <= table.loc[0, "detection_rate"] <= 1 and 0 <= table.loc[0, "roc_auc"] <= 1
    assert (out / f"roc_{method}.png").stat().st_size > 1000
    assert list(out.glob("grid_*.png"))


def test_detect_cli_mismatches_give_clear_errors(trained_runs, attack_dir, tmp_path):
    runner = CliRunner()
    base = ["detect", "--method", "logit", "--out", str(tmp_path / "o"), "--quiet"]
    # an attack run without saved images
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((attack_dir / "config.json").read_text())
    (bare / "attempts.csv").write_text((attack_dir / "attempts.csv").read_text())
    result = runner.invoke(main, base + ["--detector-model", str(trained_runs["gc"]),
                                         "--adv", str(bare)])
    assert result.exit_code == 1 and "no saved adversarial images" in result.output
    # a detector trained on another dataset
    config = (attack_dir / "config.json").read_text().replace('"mnist"', '"fashion_mnist"')
    (bare / "config.json").write_text(config)
    result = runner.invoke(main, base + ["--detector-model", str(trained_runs["gc"]),
                                         "--adv", str(bare)])
    assert result.exit_code == 1 and "fashion_mnist" in result.output
    # a discriminative "detector"
    result = runner.invoke(main, base + ["--detector-model", str(trained_runs["mlp"]),
                                         "--adv", str(attack_dir)])
    assert result.exit_code == 1 and "generative model" in result.output
    assert "Traceback" not in result.output
