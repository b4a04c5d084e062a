"""The factorcl-jax command end to end, in subprocesses: train -> checkpoint -> probe ->
estimate, user mistakes (one line, exit 2), and exact resume after SIGKILL."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import chex
import numpy as np
import pytest
from helpers import TINY_TOML, deterministic, final_params, read_metrics

from factorcl_jax import config as config_lib
from factorcl_jax.runs import cli as cli_module
from factorcl_jax.runs.cli import main as cli_main


def cli(*args, timeout=300, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "factorcl_jax", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("run")
    cli(
        "train",
        "--config",
        tiny_config,
        "--out",
        out,
        "--method",
        "FactorCL-SSL",
        "--method",
        "SimCLR",
        "checkpoint.every_steps=0",
    )
    return out


@pytest.mark.slow
def test_train_writes_the_run_directory(trained_run):
    results = json.loads((trained_run / "results.json").read_text())
    assert set(results["probe_accuracy"]) == {"FactorCL-SSL", "SimCLR"}
    assert all(0.0 <= a <= 1.0 for a in results["probe_accuracy"].values())
    config = json.loads((trained_run / "config.json").read_text())
    assert config["train"]["methods"] == ["FactorCL-SSL", "SimCLR"]
    records = read_metrics(trained_run)
    per_epoch = int(400 * 0.7) // 32
    assert [r["step"] for r in records if r["method"] == "SimCLR"] == list(
        range(1, 2 * per_epoch + 1)
    )
    first = records[0]
    for key in (
        "loss",
        "grad_norm",
        "steps_per_s",
        "term/shared/infonce",
        "scores/shared/infonce/positive",
        "club_critic/unique/club/infonce",
    ):
        assert key in first
    for png in ("training_curves.png", "bound_terms.png", "probe_accuracy.png"):
        assert (trained_run / png).stat().st_size > 1000
    assert sorted(p.name for p in (trained_run / "checkpoints").iterdir()) == [
        "factorcl-ssl",
        "simclr",
    ]
    assert any((trained_run / "tensorboard" / "simclr").iterdir())


@pytest.mark.slow
def test_train_data_parallel_on_simulated_devices(tmp_path, tiny_config):
    # conftest gives every process 8 simulated CPU devices; train on 4 of them.
    out = tmp_path / "parallel"
    cli(
        "train",
        "--config",
        tiny_config,
        "--out",
        out,
        "--devices",
        4,
        "--quiet",
        "train.epochs=1",
        "checkpoint.every_steps=0",
    )
    results = json.loads((out / "results.json").read_text())
    assert results["steps"]["FactorCL-SSL"] == int(400 * 0.7) // 32
    assert 0.5 < results["probe_accuracy"]["FactorCL-SSL"] <= 1.0
    assert len(read_metrics(out)) == int(400 * 0.7) // 32


@pytest.mark.slow
def test_probe_reads_the_checkpoint_and_matches_train(trained_run):
    result = cli("probe", trained_run, "--method", "SimCLR")
    accuracy = json.loads((trained_run / "results.json").read_text())["probe_accuracy"]["SimCLR"]
    assert f"test accuracy {accuracy:.4f}" in result.stdout


@pytest.mark.slow
def test_estimate_from_npz_and_csv_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 2))
    y = x + 0.3 * rng.normal(size=(600, 2))
    np.savez(tmp_path / "pairs.npz", a=x, b=y)
    result = cli(
        "estimate",
        tmp_path / "pairs.npz",
        "--x-key",
        "a",
        "--y-key",
        "b",
        "--steps",
        300,
        "--batch-size",
        64,
        "--hidden",
        32,
        "--bound",
        "nce_club",
        "--plot",
        "--out",
        tmp_path / "est",
    )
    first, second = result.stdout.splitlines()[:2]
    assert first.startswith("I(X; Y) ≈ ") and "(held-out, 256 pairs; nce_club, stopped at" in first
    assert second.startswith("in-sample (training pairs): ")
    saved = json.loads((tmp_path / "est" / "results.json").read_text())
    assert saved["bound"] == "nce_club" and len(saved["history"]) == saved["steps_run"]
    assert saved["heldout_pairs"] == 256 and saved["train_pairs"] == 300
    assert saved["estimate_nats"] > 1.0  # true MI 2.5 nats; NCE-CLUB is an upper bound
    assert saved["settings"]["hidden"] == [32] and saved["stderr_nats"] > 0
    assert (tmp_path / "est" / "mi_history.png").exists()
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="u,v", comments="")
    np.savetxt(tmp_path / "y.csv", y, delimiter=",")
    result = cli("estimate", tmp_path / "x.csv", tmp_path / "y.csv", "--steps", 100, "--folds", 2)
    assert "2-fold" in result.stdout and "infonce" in result.stdout


@pytest.mark.slow
def test_estimate_with_ranks_is_unchanged_by_increasing_maps_of_the_features(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 2))
    y = x + rng.normal(size=(600, 2))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "warped.npy", np.exp(x))
    runs = [
        cli("estimate", tmp_path / name, tmp_path / "y.npy", "--steps", 200, "--ranks")
        for name in ("x.npy", "warped.npy")
    ]
    assert runs[0].stdout.splitlines()[0] == runs[1].stdout.splitlines()[0]
    plain = cli("estimate", tmp_path / "warped.npy", tmp_path / "y.npy", "--steps", 200)
    assert plain.stdout.splitlines()[0] != runs[0].stdout.splitlines()[0]


def test_bench_outside_a_source_checkout_exits_2_with_one_line(monkeypatch, capsys, tmp_path):
    """A wheel install has no benchmarks/ next to the package: one line says where they are."""
    monkeypatch.setattr(cli_module, "__file__", str(tmp_path / "site" / "factorcl_jax" / "cli.py"))
    monkeypatch.chdir(tmp_path)
    status, captured = run_in_process(["bench", "bounds"], capsys)
    assert status == 2
    assert captured.err.count("\n") == 1
    assert "benchmarks run from a source checkout" in captured.err


def mistakes(tmp_path, tiny_config, trained_run):
    np.save(tmp_path / "x.npy", np.zeros((10, 2)))
    np.save(tmp_path / "y9.npy", np.zeros((9, 2)))
    np.save(tmp_path / "cube.npy", np.zeros((10, 2, 2)))
    (tmp_path / "bad.toml").write_text("[train]\nepochs = 'many'\n")
    return {
        "unknown method": (["train", "--method", "CLIP"], "invalid choice: 'CLIP'"),
        "unknown method in override": (["train", "train.methods=CLIP"], "unknown method"),
        "bad override key": (["train", "train.epochz=2"], "unknown key train.epochz"),
        "bad override value type": (["train", "train.epochs=many"], "must be int"),
        "malformed override": (["train", "epochs"], "section.key=value"),
        "bad config value": (["train", "--config", tmp_path / "bad.toml"], "must be int"),
        "missing config": (["train", "--config", tmp_path / "none.toml"], "cannot read"),
        "resume without run": (["train", "--resume", "--out", tmp_path / "nope"], "does not exist"),
        "batch larger than data": (
            ["train", "--config", tiny_config, "--out", tmp_path / "big", "train.batch_size=4000"],
            "exceeds",
        ),
        "devices not dividing the batch": (
            ["train", "--config", tiny_config, "--out", tmp_path / "d3", "--devices", 3],
            "must be divisible by the 3 devices",
        ),
        "missing file": (["estimate", tmp_path / "none.npy", tmp_path / "x.npy"], "file not found"),
        "mismatched rows": (
            ["estimate", tmp_path / "x.npy", tmp_path / "y9.npy"],
            "same number of rows",
        ),
        "wrong dimensions": (
            ["estimate", tmp_path / "cube.npy", tmp_path / "x.npy"],
            "expected a [rows, features] array",
        ),
        "npz without keys": (["estimate", tmp_path / "x.npy"], "give two files"),
        "unknown bound": (
            ["estimate", tmp_path / "x.npy", tmp_path / "x.npy", "--bound", "mutual"],
            "unknown bound 'mutual'",
        ),
        "not a run directory": (["probe", tmp_path], "not a run directory"),
        "untrained method": (["probe", trained_run, "--method", "SupCon"], "was not trained"),
        "unknown subcommand": (["fly"], "invalid choice"),
    }


def run_in_process(args, capsys):
    try:
        status = cli_main([str(a) for a in args])
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr()


@pytest.mark.slow
def test_user_mistakes_exit_2_with_one_line(tmp_path, tiny_config, trained_run, capsys):
    for name, (args, expected) in mistakes(tmp_path, tiny_config, trained_run).items():
        status, captured = run_in_process(args, capsys)
        assert status == 2, (name, captured.err)
        lines = captured.err.strip().splitlines()
        assert "Traceback" not in captured.err, (name, captured.err)
        assert expected in lines[-1], (name, captured.err)
        assert lines[-1].startswith("factorcl-jax"), (name, captured.err)


def test_a_mistake_in_a_real_process_exits_2(tmp_path):
    result = cli("train", "train.epochz=1", check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "factorcl-jax: error: unknown key train.epochz; known: "
        + ", ".join(f"train.{k}" for k in config_lib.TrainConfig.__dataclass_fields__)
    )


def test_help_for_every_subcommand(capsys):
    for command in ("train", "probe", "estimate", "bench"):
        status, captured = run_in_process([command, "--help"], capsys)
        assert status == 0 and "usage: factorcl-jax " + command in captured.out


# ---------------------------------------------------------------- exact resume


def train_process(out, config, log):
    resume = ["--resume"] if out.exists() else []
    with log.open("a") as handle:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "factorcl_jax",
                "train",
                "--config",
                config,
                "--out",
                out,
                "--quiet",
                *resume,
            ],
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )


def kill_when(process, condition, log, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"training ended before the kill: {log.read_text()}")
        if condition():
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.002)
    process.kill()
    raise AssertionError("kill condition never met")


def steps_logged(out):
    path = out / "metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def saving(out):
    directory = out / "checkpoints" / "factorcl-ssl"
    return directory.exists() and any(
        p.name.endswith("orbax-checkpoint-tmp") for p in directory.iterdir()
    )


@pytest.mark.slow
def test_killed_runs_resume_bit_identical(tmp_path, tiny_config):
    reference = tmp_path / "uninterrupted"
    cli("train", "--config", tiny_config, "--out", reference, "--quiet")
    interrupted = tmp_path / "interrupted"
    rng = random.Random(0)
    first_kill = rng.randint(3, 8)
    log = tmp_path / "stderr.log"
    process = train_process(interrupted, tiny_config, log)
    kill_when(process, lambda: steps_logged(interrupted) >= first_kill, log)
    # Second kill: in the middle of a checkpoint save, a few steps later.
    process = train_process(interrupted, tiny_config, log)
    later = steps_logged(interrupted) + rng.randint(1, 4)
    kill_when(process, lambda: steps_logged(interrupted) >= later and saving(interrupted), log)
    cli("train", "--config", tiny_config, "--out", interrupted, "--resume", "--quiet")

    expected, expected_meta = final_params(reference, tiny_config)
    resumed, resumed_meta = final_params(interrupted, tiny_config)
    assert resumed_meta["step"] == expected_meta["step"]
    chex.assert_trees_all_equal(resumed.params, expected.params)
    chex.assert_trees_all_equal(resumed.club_params, expected.club_params)
    assert deterministic(read_metrics(interrupted)) == deterministic(read_metrics(reference))
    expected_results = json.loads((reference / "results.json").read_text())
    resumed_results = json.loads((interrupted / "results.json").read_text())
    assert resumed_results["probe_accuracy"] == expected_results["probe_accuracy"]


@pytest.mark.slow
def test_resume_refuses_another_config(tmp_path, tiny_config, trained_run):
    result = cli(
        "train",
        "--config",
        tiny_config,
        "--out",
        trained_run,
        "--resume",
        "train.epochs=3",
        check=False,
    )
    assert result.returncode == 2 and "needs the run's own config" in result.stderr


def test_presets_prints_every_value_of_each_named_config(capsys):
    assert cli_main(["presets", "cpu", "paper"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert lines[0].split() == ["key", "cpu", "paper"]
    assert rows["model.encoder_hidden"] == ["128", "512"]
    assert rows["train.methods"] == ["FactorCL-SSL,SimCLR"] * 2
    assert len(rows) == len(config_lib.flatten(config_lib.PRESETS["cpu"]))
    assert cli_main(["presets", "tpu"]) == 2
    assert "unknown preset 'tpu'" in capsys.readouterr().err
