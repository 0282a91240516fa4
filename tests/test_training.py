import numpy as np
import pytest

from dbayes_tf import inference, models
from dbayes_tf.runs import train as training


def _train(tmp_path, mnist_small, name, arch, epochs, *, resume=False, out="run", **model_kw):
    config = models.resolve_config(name, arch, **model_kw)
    train_config = training.TrainConfig(dataset="mnist", epochs=epochs, batch_size=50,
                                        lr=1e-3, seed=3, validate_every_epoch=False)
    return training.train(config, train_config, tmp_path / out, dataset=mnist_small,
                          resume=resume, progress=False, log=lambda message: None)


@pytest.mark.parametrize("name, arch, min_accuracy", [
    ("mlp", None, 0.85),
    ("gc", "mlp", 0.6),
])
def test_a_few_hundred_steps_lower_the_loss_and_beat_chance(tmp_path, mnist_small, name, arch,
                                                            min_accuracy):
    # 5 epochs x 60 steps = 300 optimiser steps on 3,000 real MNIST images.
    metrics, model = _train(tmp_path, mnist_small, name, arch, 5, k=5)
    history = training.reporting.read_json(tmp_path / "run" / "state.json")["history"]
    losses = [record["loss"] for record in history]
    assert losses[-1] < losses[0] and len(losses) == 5
    assert metrics["test_accuracy"] >= min_accuracy, metrics  # chance is 0.1
    assert metrics["n_test"] == 500


def test_weights_round_trip_bit_exactly(tmp_path, mnist_small):
    _, trained = _train(tmp_path, mnist_small, "gfz", "cnn", 1, hidden=32, latent_dim=4,
                        vae_channels=8)
    loaded = training.load_model(tmp_path / "run")
    assert len(trained.weights) == len(loaded.weights)
    for in_memory, from_disk in zip(trained.weights, loaded.weights):
        np.testing.assert_array_equal(in_memory.numpy(), from_disk.numpy())
    x = mnist_small.test.images[:6]
    np.testing.assert_array_equal(trained.logits(x, seed=4).numpy(),
                                  loaded.logits(x, seed=4).numpy())


def test_resume_trusts_the_weights_when_state_json_lags_behind(tmp_path, mnist_small):
    # A crash between saving the weights and saving state.json leaves the weights one epoch
    # ahead; resuming must not train that epoch a second time.
    kw = dict(hidden=16, latent_dim=3)
    _train(tmp_path, mnist_small, "gc", "mlp", 2, **kw)
    state = training.reporting.read_json(tmp_path / "run" / "state.json")
    training.reporting.write_json(tmp_path / "run" / "state.json",
                                  {"epochs_done": 1, "history": state["history"][:1]})
    logs = []
    config = models.resolve_config("gc", "mlp", **kw)
    train_config = training.TrainConfig(dataset="mnist", epochs=2, batch_size=50, lr=1e-3,
                                        seed=3, validate_every_epoch=False)
    training.train(config, train_config, tmp_path / "run", dataset=mnist_small, resume=True,
                   progress=False, log=logs.append)
    assert logs == [f"resuming {tmp_path / 'run'} after epoch 2"]


def test_resume_refuses_changed_training_settings(tmp_path, mnist_small):
    _train(tmp_path, mnist_small, "mlp", None, 1)
    config = models.resolve_config("mlp", None)
    changed = training.TrainConfig(dataset="mnist", epochs=2, batch_size=50, lr=1e-2, seed=3,
                                   validate_every_epoch=False)
    with pytest.raises(training.RunError, match="lr: saved 0.001, asked 0.01"):
        training.train(config, changed, tmp_path / "run", dataset=mnist_small, resume=True,
                       progress=False, log=lambda message: None)


def test_resume_after_interruption_repeats_the_uninterrupted_run(tmp_path, mnist_small):
    kw = dict(hidden=32, latent_dim=4)
    _train(tmp_path, mnist_small, "gc", "mlp", 2, out="straight", **kw)
    _train(tmp_path, mnist_small, "gc", "mlp", 1, out="split", **kw)
    _train(tmp_path, mnist_small, "gc", "mlp", 2, out="split", resume=True, **kw)
    straight = training.load_model(tmp_path / "straight")
    split = training.load_model(tmp_path / "split")
    for a, b in zip(straight.trainable_weights, split.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_refuses_to_clobber_a_run_or_resume_a_different_model(tmp_path, mnist_small):
    _train(tmp_path, mnist_small, "mlp", None, 1)
    with pytest.raises(training.RunError, match="already holds a training run"):
        _train(tmp_path, mnist_small, "mlp", None, 1)
    with pytest.raises(training.RunError, match="different model config"):
        _train(tmp_path, mnist_small, "mlp", None, 2, resume=True, hidden=64)


def test_same_seed_same_evaluation(mnist_small):
    model = models.build_model(models.resolve_config("gc", "mlp", hidden=16, latent_dim=3, k=2))
    a = inference.evaluate(model, mnist_small.test, seed=9, progress=False)
    b = inference.evaluate(model, mnist_small.test, seed=9, progress=False)
    np.testing.assert_array_equal(a.logits, b.logits)
    assert a.accuracy == b.accuracy


def test_load_model_errors(tmp_path):
    with pytest.raises(training.RunError, match="no such run directory"):
        training.load_model(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(training.RunError, match="not a dbayes run"):
        training.load_model(tmp_path / "empty")


def test_cosine_schedule_decays_to_zero_and_fixes_the_epoch_count(tmp_path, mnist_small):
    config = models.resolve_config("mlp", None, hidden=32)
    cosine = training.TrainConfig(dataset="mnist", epochs=2, batch_size=100, lr=1e-2, seed=3,
                                  train_size=500, validate_every_epoch=False,
                                  lr_schedule="cosine")
    _, model = training.train(config, cosine, tmp_path / "run", dataset=mnist_small,
                              progress=False, log=lambda message: None)
    optimizer = model.optimizer
    assert int(optimizer.iterations.numpy()) == 10  # 2 epochs x 5 steps
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(0.0, abs=1e-9)
    longer = training.TrainConfig(**{**cosine.__dict__, "epochs": 3})
    with pytest.raises(training.RunError, match="epochs"):  # the schedule spans the epochs
        training.train(config, longer, tmp_path / "run", dataset=mnist_small, resume=True,
                       progress=False, log=lambda message: None)
    with pytest.raises(ValueError, match="lr_schedule"):
        training.TrainConfig(lr_schedule="step")


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_data_mean_decoder_bias_starts_the_output_at_the_mean_pixel(tmp_path, mnist_small, arch):
    config = models.resolve_config("gc", arch, hidden=16, latent_dim=3, vae_channels=4)
    train_config = training.TrainConfig(dataset="mnist", epochs=1, batch_size=50, seed=3,
                                        validate_every_epoch=False,
                                        decoder_bias_init="data-mean", train_size=100)
    training.train(config, train_config, tmp_path / "run", dataset=mnist_small, progress=False,
                   log=lambda message: None)
    saved = models.ModelConfig.from_dict(
        training.load_run_config(tmp_path / "run")["model"])
    mean = mnist_small.train.images[:100].mean()
    assert 1 / (1 + np.exp(-saved.decoder_bias)) == pytest.approx(mean, abs=1e-4)
    assert saved.decoder_bias < -1  # MNIST is mostly black: about -1.9, far from Keras' 0
    fresh = models.build_model(saved)  # before training: every output pixel at that bias
    out = fresh.decoder.deconvs[-1] if arch == "cnn" else fresh.decoder.mlp.output_layer
    np.testing.assert_allclose(out.bias.numpy(), saved.decoder_bias, rtol=1e-6)
    # the default leaves Keras' zero
    assert models.resolve_config("gc", arch).decoder_bias == 0.0


def test_resume_a_run_saved_before_a_model_field_existed(tmp_path, mnist_small):
    kw = dict(hidden=16, latent_dim=3)
    _train(tmp_path, mnist_small, "gc", "mlp", 1, **kw)
    path = tmp_path / "run" / "config.json"
    saved = training.reporting.read_json(path)
    for newer in ("vae_kernel_size", "decoder_bias"):
        del saved["model"][newer]
    training.reporting.write_json(path, saved)
    metrics, _ = _train(tmp_path, mnist_small, "gc", "mlp", 2, resume=True, **kw)
    assert metrics["epochs"] == 2


def test_resume_keeps_the_decoder_bias_a_run_started_with(tmp_path, mnist_small):
    config = models.resolve_config("gc", "mlp", hidden=16, latent_dim=3)

    def run(epochs, resume):
        train_config = training.TrainConfig(dataset="mnist", epochs=epochs, batch_size=50,
                                            seed=3, validate_every_epoch=False, train_size=100,
                                            decoder_bias_init="data-mean")
        training.train(config, train_config, tmp_path / "run", dataset=mnist_small,
                       resume=resume, progress=False, log=lambda message: None)

    run(1, False)
    path = tmp_path / "run" / "config.json"
    saved = training.reporting.read_json(path)
    saved["model"]["decoder_bias"] = -1.5  # as if the data's mean now rounded differently
    training.reporting.write_json(path, saved)
    run(2, True)
    assert training.load_run_config(tmp_path / "run")["model"]["decoder_bias"] == -1.5


def test_weights_file_holds_no_optimiser_state_and_old_files_can_drop_it(tmp_path, mnist_small):
    import keras

    _train(tmp_path, mnist_small, "mlp", None, 1, hidden=32)
    run = tmp_path / "run"
    assert (run / "optimizer.npz").is_file()
    lean = (run / "weights.weights.h5").stat().st_size
    # a weights file as runs saved it before the split: with Adam's moments inside
    model = training.load_model(run)
    model.compile(optimizer=keras.optimizers.Adam())
    model.optimizer.build(model.trainable_weights)
    model.save_weights(str(run / "weights.weights.h5"))
    assert (run / "weights.weights.h5").stat().st_size > 2 * lean
    x = mnist_small.test.images[:8]
    before = model.logits(x).numpy()
    assert training.drop_optimizer_state(run)
    assert (run / "weights.weights.h5").stat().st_size == lean
    np.testing.assert_array_equal(training.load_model(run).logits(x).numpy(), before)
    assert not training.drop_optimizer_state(run)  # already lean: left as it is


def test_resume_refuses_a_checkpoint_it_cannot_trust(tmp_path, mnist_small):
    _train(tmp_path, mnist_small, "mlp", None, 1, hidden=32)
    run = tmp_path / "run"
    weights = run / "weights.weights.h5"
    # weights written after the optimiser state they should go with (a crash between the two)
    model = training.load_model(run)
    for variable in model.trainable_weights[:1]:
        variable.assign(variable * 0.5)
    model.save_weights(str(weights))
    with pytest.raises(training.RunError, match="does not go with"):
        _train(tmp_path, mnist_small, "mlp", None, 2, resume=True, hidden=32)
    (run / "optimizer.npz").unlink()  # a committed run: weights only
    with pytest.raises(training.RunError, match="cannot be resumed"):
        _train(tmp_path, mnist_small, "mlp", None, 2, resume=True, hidden=32)
