import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from dbayes_cli.main import main
from dbayes_tf import data, reporting

TINY = ["--epochs", "1", "--train-size", "600", "--test-size", "200", "--validation-size", "200",
        "--quiet"]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["summarize"], ["attack"],
                                     ["detect"]])
def test_help_on_every_command(runner, command):
    result = runner.invoke(main, command + ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_train_then_eval_writes_tables(runner, tmp_path):
    out = tmp_path / "gc"
    result = runner.invoke(main, ["train", "--model", "gc", "--k", "2", "--latent-dim", "8",
                                  "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert "test_accuracy" in result.output
    for name in ("config.json", "weights.weights.h5", "state.json", "metrics.json",
                 "accuracy.csv", "accuracy.md"):
        assert (out / name).is_file(), name
    config = reporting.read_json(out / "config.json")
    assert config["model"]["k"] == 2 and config["data"]["train"] == 600
    assert "dbayes train" in config["command"]

    result = runner.invoke(main, ["eval", str(out), "--k", "1", "--test-size", "100", "--quiet",
                                  "--out", str(tmp_path / "tables")])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "tables" / "eval.csv").read_text()
    assert "gc" in table and ",1," in table  # K = 1 as asked, not the stored K = 2

    # repeated --seed: one row per evaluation seed, each as it would be alone
    result = runner.invoke(main, ["eval", str(out), "--test-size", "100", "--quiet", "--seed",
                                  "0", "--seed", "1", "--seed", "0", "--out",
                                  str(tmp_path / "tables"), "--name", "seeds"])
    assert result.exit_code == 0, result.output
    seeds = pd.read_csv(tmp_path / "tables" / "seeds.csv")
    assert list(seeds["seed"]) == [0, 1]
    assert seeds["test_nll"].iloc[0] != seeds["test_nll"].iloc[1]  # fresh draws per seed
    result = runner.invoke(main, ["eval", str(out), "--test-size", "100", "--quiet", "--seed",
                                  "1", "--out", str(tmp_path / "tables"), "--name", "seed1"])
    assert result.exit_code == 0, result.output
    alone = pd.read_csv(tmp_path / "tables" / "seed1.csv")
    assert alone["test_nll"].iloc[0] == seeds["test_nll"].iloc[1]

    # the validation split is the run's own carve-out (200 images here, not the default 5,000)
    result = runner.invoke(main, ["eval", str(out), "--split", "validation", "--quiet",
                                  "--out", str(tmp_path / "tables"), "--name", "val"])
    assert result.exit_code == 0, result.output
    val = pd.read_csv(tmp_path / "tables" / "val.csv")
    assert int(val["n_validation"].iloc[0]) == 200 and "test_accuracy" not in val.columns
    assert 0.0 <= float(val["validation_accuracy"].iloc[0]) <= 1.0

    result = runner.invoke(main, ["summarize", str(out), "--out", str(tmp_path / "tables")])
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "tables" / "accuracy.md").read_text()
    assert "0.9800" in summary and "False" in summary  # the gc-mlp target, not met by 1 epoch
    (out / "metrics.json").unlink()
    result = runner.invoke(main, ["summarize", str(out), "--out", str(tmp_path / "tables")])
    assert result.exit_code == 1 and "has not finished" in result.output


def test_preset_is_read_and_the_command_line_wins(runner, tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("train:\n  arch: mlp\n  latent_dim: 6\n  models:\n    gc: {k: 3}\n")
    out = tmp_path / "run"
    result = runner.invoke(main, ["train", "--config", str(preset), "--model", "gc",
                                  "--latent-dim", "5", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    saved = reporting.read_json(out / "config.json")["model"]
    assert saved["k"] == 3 and saved["latent_dim"] == 5 and saved["arch"] == "mlp"


def test_vae_width_and_kernel_options_are_stored_with_the_model(runner, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(main, ["train", "--model", "gc", "--arch", "cnn", "--latent-dim", "4",
                                  "--vae-channels", "4", "--vae-kernel-size", "5",
                                  "--decoder-bias-init", "data-mean", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    saved = reporting.read_json(out / "config.json")
    assert saved["model"]["vae_channels"] == 4 and saved["model"]["vae_kernel_size"] == 5
    assert saved["model"]["decoder_bias"] < -1
    assert saved["train"]["decoder_bias_init"] == "data-mean"
    result = runner.invoke(main, ["train", "--model", "cnn", "--decoder-bias-init", "data-mean",
                                  "--out", str(tmp_path / "cnn"), *TINY])
    assert result.exit_code == 1 and "not cnn" in result.output


@pytest.mark.parametrize("args, message", [
    (["train", "--model", "svm", "--out", "x"], "Invalid value for '--model'"),
    (["train", "--lr", "5", "--out", "x"], "Invalid value for '--lr'"),
    (["train", "--model", "cnn", "--arch", "mlp", "--out", "x"], "always arch"),
    (["train", "--epochs", "0", "--out", "x"], "Invalid value for '--epochs'"),
    (["train", "--vae-kernel-size", "0", "--out", "x"], "Invalid value for '--vae-kernel-size'"),
    (["eval", "does/not/exist"], "no such run directory"),
])
def test_bad_arguments_give_a_clear_error(runner, tmp_path, args, message):
    result = runner.invoke(main, args)
    assert result.exit_code != 0
    assert message in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught error


@pytest.mark.parametrize("text, message", [
    ("train:\n  epochz: 3\n", "unknown option(s) ['epochz']"),
    ("train:\n  lr: 7\n", "lr: 7.0 is not in the range"),
    ("train:\n  model: svm\n", "model: 'svm' is not one of"),
    ("- a list\n", "must be a mapping"),
])
def test_bad_preset(runner, tmp_path, text, message):
    preset = tmp_path / "bad.yaml"
    preset.write_text(text)
    result = runner.invoke(main, ["train", "--config", str(preset), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and message in result.output, result.output
    assert isinstance(result.exception, SystemExit)


def test_preset_numbers_written_as_yaml_text_are_cast(runner, tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("train:\n  lr: 1e-3\n  arch: mlp\n  latent_dim: 4\n")  # YAML: "1e-3"
    out = tmp_path / "run"
    result = runner.invoke(main, ["train", "--config", str(preset), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert reporting.read_json(out / "config.json")["train"]["lr"] == 0.001


def test_corrupt_data_file_is_a_clean_error(runner, tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(data.REPO_DATA_DIR / "mnist", folder)
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.chmod(0o644)
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:5000]))
    result = runner.invoke(main, ["train", "--data-dir", str(folder), "--out",
                                  str(tmp_path / "run"), *TINY])
    assert result.exit_code == 1
    assert "train-labels-idx1-ubyte.gz" in result.output and "truncated" in result.output
    assert isinstance(result.exception, SystemExit)
    assert not (tmp_path / "run" / "weights.weights.h5").exists()


def test_eval_of_a_run_without_weights(runner, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    reporting.write_json(run / "config.json", {"model": {}, "train": {}})
    result = runner.invoke(main, ["eval", str(run)])
    assert result.exit_code == 1 and "no weights" in result.output


@pytest.mark.parametrize("preset, model", [
    ("paper1_mlp", "gc"), ("paper1_mlp", "bnn"), ("paper1_cnn", "cnn"), ("paper1_cnn", "gc"),
])
def test_every_shipped_preset_is_accepted_and_applied(runner, tmp_path, preset, model):
    """Each preset's keys are real options with valid values; a tiny run proves it."""
    import yaml

    path = f"configs/{preset}.yaml"
    out = tmp_path / "run"
    result = runner.invoke(main, ["train", "--config", path, "--model", model, "--epochs", "1",
                                  "--k", "1", "--train-size", "100", "--test-size", "20",
                                  "--validation-size", "0", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    saved = reporting.read_json(out / "config.json")
    wanted = yaml.safe_load(Path(path).read_text())["train"]["models"][model]
    for key, value in wanted.items():
        if key in ("epochs",):  # given on the command line, which wins
            continue
        section = "train" if key in saved["train"] else "model"
        assert saved[section][key] == value, key
