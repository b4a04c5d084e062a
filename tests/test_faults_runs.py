"""Faults of run directories, resumes, checkpoints and signals: a run is never overwritten,
never half-written, never restarted from zero, and recovers by itself."""

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from helpers import (
    FAST,
    TINY_TOML,
    assert_no_duplicate_steps,
    assert_one_line,
    assert_refused,
    assert_same_final_run,
    command,
    expect,
    locked,
    mkdir,
    probe_case,
    put,
    run_command,
    run_in_process,
    save,
    signal_after,
    snapshot,
    start,
    steps_logged,
    symlink,
    tiny_config_dict,
    write_run,
)

from factorcl_jax.runs import rundir

CASES = {
    "out is a file": lambda t: (
        ["train", "--out", put(t / "f", b"keep")],
        "is not a directory",
    ),
    "out is a dangling symlink": lambda t: (
        ["train", "--out", symlink(t / "l", t / "nowhere")],
        "is not a directory",
    ),
    "out holds a run": lambda t: (["train", "--out", write_run(t / "run", {})], "already holds"),
    "out holds only results": lambda t: (
        [
            "train",
            "--out",
            put(mkdir(t / "r") / "results.json", b"{}").parent,
        ],
        "already holds a run (results.json)",
    ),
    "resume and overwrite": lambda t: (
        ["train", "--out", write_run(t / "run", {}), "--resume", "--overwrite"],
        "exclude each other",
    ),
    "resume without --out": expect(lambda t: ["train", "--resume"], "needs --out"),
    "resume a missing directory": expect(
        lambda t: ["train", "--out", t / "nope", "--resume"], "does not exist"
    ),
    "resume without config.json": lambda t: (
        ["train", "--out", write_run(t / "run"), "--resume"],
        "holds no config.json",
    ),
    "resume with corrupt config.json": lambda t: (
        [
            "train",
            "--out",
            put(write_run(t / "run") / "config.json", b'{"a": \xff').parent,
            "--resume",
        ],
        "config.json is corrupt",
    ),
    "resume with invalid config.json": lambda t: (
        ["train", "--out", write_run(t / "run", {"train": {"epochs": -3}}), "--resume"],
        "train.epochs",
    ),
    "resume with a config.json list": lambda t: (
        ["train", "--out", write_run(t / "run", [1]), "--resume"],
        "expected a JSON object",
    ),
    "resume with another config": lambda t: (
        ["train", "--out", write_run(t / "run", tiny_config_dict(t)), "--resume", "train.epochs=5"],
        "differs in train.epochs",
    ),
    "resume with another config file": lambda t: (
        [
            "train",
            "--out",
            write_run(t / "run", tiny_config_dict(t)),
            "--resume",
            "--preset",
            "cpu",
        ],
        "differs in",
    ),
    "probe a missing directory": probe_case(lambda t: t / "none", "is not a directory"),
    "probe a file": probe_case(lambda t: put(t / "f", b"x"), "is not a directory"),
    "probe a directory without config": probe_case(lambda t: t, "not a run directory"),
    "probe corrupt config.json": probe_case(
        lambda t: put(write_run(t / "run") / "config.json", b"\xff").parent,
        "config.json is corrupt",
    ),
    "probe invalid config.json": probe_case(
        lambda t: write_run(t / "run", {"model": {"embed_dim": 0}}), "model.embed_dim"
    ),
    "probe an untrained method": probe_case(
        lambda t: write_run(t / "run", tiny_config_dict(t)),
        "was not trained",
        "--method",
        "SupCon",
    ),
    "probe a run without checkpoints": probe_case(
        lambda t: write_run(t / "run", tiny_config_dict(t)), "no loadable checkpoint"
    ),
    "probe an unknown split": probe_case(lambda t: t, "invalid choice", "--split", "dev"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_mistakes_are_one_line_exit_2_and_change_no_file(case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys, CASES)


def test_a_directory_in_use_is_refused_naming_the_holder(tmp_path, capsys):
    args = locked(tmp_path)
    with rundir.RunLock(tmp_path / "run"):
        before = snapshot(tmp_path)
        status, captured = run_in_process(args, capsys)
        after = snapshot(tmp_path)
    assert_one_line(status, captured.err, expected=f"in use by another run (pid {os.getpid()})")
    assert after == before


def test_overwrite_moves_the_old_run_aside_byte_for_byte(tmp_path, capsys):
    run = write_run(tmp_path / "run", {"train": {"epochs": 1}})
    before = snapshot(run)
    with (
        pytest.warns(rundir.RunWarning, match="moved the earlier run"),
        rundir.open_run_dir(run, {}, overwrite=True) as path,
    ):
        assert path == run and rundir.run_files(run) == []
    (moved,) = tmp_path.glob("run.old-*")
    assert snapshot(moved) == before


# ------------------------------------------------------------------ interrupted runs

CHECKPOINTED = TINY_TOML  # every_steps = 1, keep_last = 2, 2 epochs of 8 steps


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(CHECKPOINTED)
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("faults") / "uninterrupted"
    result = run_command("train", "--config", tiny_config, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.slow
def test_sigint_and_sigterm_save_a_checkpoint_and_resume_bit_identical(
    tmp_path, tiny_config, uninterrupted, capsys
):
    out = tmp_path / "interrupted"
    log = tmp_path / "stderr.log"
    with log.open("w") as handle:
        # Checkpoints only at epoch ends (every 8 steps): a stop mid-epoch saves its own.
        process = start(out, tiny_config, "checkpoint.every_steps=0", stderr=handle)
        status = signal_after(process, out, 3, signal.SIGINT)
    assert_one_line(status, log.read_text(), code=130, prefix="factorcl-jax: stopped by SIGINT")
    steps = steps_logged(out)
    assert f"after step {steps}: saved a checkpoint" in log.read_text()
    assert (out / "checkpoints" / "factorcl-ssl" / str(steps)).is_dir()
    assert_no_duplicate_steps(out)

    with log.open("w") as handle:
        process = subprocess.Popen(
            command("train", "--out", out, "--resume", "--quiet"),
            stdout=subprocess.DEVNULL,
            stderr=handle,
            env=FAST,
        )
        # While it runs, a second job on the same directory is refused, naming its pid.
        while steps_logged(out) <= steps:
            time.sleep(0.005)
        second, captured = run_in_process(
            ["train", "--config", tiny_config, "--out", out, "--resume"], capsys
        )
        assert_one_line(second, captured.err, expected=f"(pid {process.pid})")
        status = signal_after(process, out, 11, signal.SIGTERM)
    assert_one_line(status, log.read_text(), code=143, prefix="factorcl-jax: stopped by SIGTERM")
    steps = steps_logged(out)
    assert (out / "checkpoints" / "factorcl-ssl" / str(steps)).is_dir()
    assert_no_duplicate_steps(out)

    result = run_command("train", "--out", out, "--resume", "--quiet")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert_no_duplicate_steps(out)
    assert_same_final_run(out, uninterrupted, tiny_config)


@pytest.mark.slow
def test_resume_moves_a_corrupt_newest_checkpoint_aside_and_ends_bit_identical(
    tmp_path, tiny_config, uninterrupted
):
    out = tmp_path / "corrupted"
    log = tmp_path / "stderr.log"
    with log.open("w") as handle:
        status = signal_after(start(out, tiny_config, stderr=handle), out, 6, signal.SIGTERM)
    assert status == 143, log.read_text()
    directory = out / "checkpoints" / "factorcl-ssl"
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    newest = directory / str(steps[-1])
    for manifest in newest.rglob("manifest.ocdbt"):
        manifest.write_bytes(b"corrupt")
    corrupted = snapshot(newest)

    result = run_command("train", "--out", out, "--resume", "--quiet")
    assert result.returncode == 0, result.stderr
    assert_one_line(
        0,
        result.stderr,
        code=0,
        prefix="factorcl-jax: warning: checkpoint(s) " + str(steps[-1]),
        expected="moved to",
    )
    assert snapshot(directory / "corrupt" / str(steps[-1])) == corrupted  # kept, byte for byte
    assert_no_duplicate_steps(out)
    assert_same_final_run(out, uninterrupted, tiny_config)


@pytest.mark.slow
def test_probe_over_checkpoints_that_all_fail_prints_one_line(tmp_path, uninterrupted, capsys):
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(uninterrupted), str(run)], check=True)
    for manifest in (run / "checkpoints").rglob("manifest.ocdbt"):
        manifest.write_bytes(b"corrupt")
    before = snapshot(run)
    result = run_command("probe", run)
    assert_one_line(result.returncode, result.stderr, expected="no loadable checkpoint")
    assert "failed to load" in result.stderr
    assert snapshot(run) == before  # probing is read-only


@pytest.mark.slow
def test_a_loss_that_turns_nan_is_one_line_and_the_run_stays_resumable(tmp_path, tiny_config):
    out = tmp_path / "diverged"
    args = ["--config", tiny_config, "--out", out, "--quiet"]
    diverging = ["train.learning_rate=1e30", "model.normalize_heads=false"]
    result = run_command("train", *args, *diverging)
    assert_one_line(result.returncode, result.stderr, expected="non-finite loss at step 2")
    assert "term/" in result.stderr and "checkpoints up to step 1 intact" in result.stderr
    first = snapshot(out / "checkpoints")
    records = assert_no_duplicate_steps(out)
    assert [r["step"] for r in records] == [1]
    result = run_command("train", *args, *diverging, "--resume")
    assert_one_line(result.returncode, result.stderr, expected="non-finite loss at step 2")
    assert snapshot(out / "checkpoints") == first
    assert [r["step"] for r in assert_no_duplicate_steps(out)] == [1]


def test_resuming_metrics_keep_foreign_lines_and_drop_a_torn_one(tmp_path):
    from factorcl_jax.runs.metrics import MetricsLog

    lines = [
        b'{"method": "A", "step": 1, "loss": 1.0}\n',
        b'{"method": "B", "step": 1, "loss": 1.0}\n',
        b"garbage a user pasted\n",
        b"\xff\xfe not UTF-8\n",
        b'{"method": "A", "step": "x"}\n',
        b'{"method": "A", "step": 2, "loss": 1.0}\n',
        b'{"method": "B", "step": 2, "loss": 1.0}\n',
        b'{"method": "A", "step": 3, "loss": 1.0}\n',
    ]
    (tmp_path / "metrics.jsonl").write_bytes(b"".join(lines) + b'{"method": "A", "st')
    log = MetricsLog(tmp_path)
    log.truncate("A", 1)
    kept = (tmp_path / "metrics.jsonl").read_bytes()
    assert kept == b"".join(lines[i] for i in (0, 1, 2, 3, 4, 6))
    assert [r["step"] for r in log.read("B")] == [1, 2]
    log.truncate("A", 1)
    assert (tmp_path / "metrics.jsonl").read_bytes() == kept


def test_the_memory_check_is_a_lower_bound_that_names_the_largest_part():
    from factorcl_jax import config as config_lib
    from factorcl_jax.runs.memory import check_memory

    config = config_lib.PRESETS["paper"]
    check_memory(config, available=2**30)  # the paper's setting needs well under 1 GiB
    # 256 x 256 pairs x 512 hidden x 4 bytes = 0.125 GiB, the largest part.
    with pytest.raises(MemoryError, match=r"\(pair activations: 0\.125 GiB\) but this machine"):
        check_memory(config, available=2**27)
    many = config_lib.apply_overrides(config, ["data.num_samples=100000000"])
    with pytest.raises(MemoryError, match=r"\(data: 82\.7 GiB\).*lower data\.num_samples"):
        check_memory(many, available=2**36)
    wide = config_lib.apply_overrides(config, ["train.batch_size=8192"])
    pairs = 4 * 8192 * 8192 * 512
    with pytest.raises(MemoryError, match=r"pair activations: 128 GiB.*set memory\.block_size"):
        check_memory(wide, available=pairs)
    blocked = config_lib.apply_overrides(wide, ["memory.block_size=64"])
    check_memory(blocked, available=pairs)


def test_scripts_and_estimate_never_overwrite_a_finished_run(tmp_path, capsys):
    """``--out`` holding a finished run's results.json is refused, byte for byte untouched."""
    from factorcl_jax.runs import rundir

    done = tmp_path / "done"
    done.mkdir()
    (done / "results.json").write_text('{"kept": true}\n')
    before = snapshot(done)
    with pytest.raises(rundir.RunDirectoryError, match="already holds a run"):
        rundir.make_run_dir(done, "estimate")
    x = save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(64, 2)))
    status, captured = run_in_process(["estimate", x, x, "--out", done], capsys)
    assert_one_line(status, captured.err, expected="already holds a run")
    assert snapshot(done) == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(rundir.RunDirectoryError, match="exists and is not a directory"):
        rundir.make_run_dir(tmp_path / "file", "estimate")


# ---------------------------------------------------------- every way a checkpoint set fails


def _truncate_every_file(step_dir):
    for path in step_dir.rglob("*"):
        if path.is_file():
            path.write_bytes(b"")


def _garbage_manifests(step_dir):
    for path in step_dir.rglob("manifest.ocdbt"):
        path.write_bytes(b"corrupt")


def _remove_the_state(step_dir):
    shutil.rmtree(step_dir / "state")


def _garbage_meta(step_dir):
    (step_dir / "meta" / "metadata").write_text("{not json")


def _meta_of_another_step(step_dir):
    path = step_dir / "meta" / "metadata"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "step": meta["step"] + 100}))


def _flip_array_bytes(step_dir):
    for path in (step_dir / "state" / "d").rglob("*"):
        if path.is_file() and path.stat().st_size > 64:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))


def _empty_the_directory(step_dir):
    for path in sorted(step_dir.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()


DAMAGES = {
    "every file truncated (a full disk)": _truncate_every_file,
    "manifests garbage": _garbage_manifests,
    "state item missing": _remove_the_state,
    "meta not JSON": _garbage_meta,
    "meta names another step": _meta_of_another_step,
    "array bytes flipped": _flip_array_bytes,
    "directory emptied": _empty_the_directory,
}


def _interrupted_copy(uninterrupted, tmp_path):
    """The finished tiny run without its results: as if stopped after its last checkpoint."""
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run, symlinks=True)
    for name in ("results.json", "training_curves.png", "bound_terms.png", "probe_accuracy.png"):
        (run / name).unlink(missing_ok=True)
    return run


def _steps(run):
    directory = run / "checkpoints" / "factorcl-ssl"
    return directory, sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_when_every_checkpoint_fails_resume_changes_nothing_and_says_why(
    damage, uninterrupted, tmp_path
):
    """Never a silent restart from step 0: exit 2, one line naming the checkpoints and what
    to do, and the run directory byte for byte as it was."""
    run = _interrupted_copy(uninterrupted, tmp_path)
    directory, steps = _steps(run)
    assert len(steps) >= 2
    for step in steps:
        DAMAGES[damage](directory / str(step))
    before = snapshot(run)
    result = run_command("train", "--out", run, "--resume", "--quiet")
    assert_one_line(result.returncode, result.stderr, expected="no loadable checkpoint for")
    assert "nothing was changed" in result.stderr and "--overwrite" in result.stderr
    assert ", ".join(str(s) for s in reversed(steps)) in result.stderr
    assert result.stdout == ""
    assert snapshot(run) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model": {"embed_dim": 4}}, "written under another config"),
        ({"train": {"learning_rate": 0.5}}, "written under another config"),
    ],
)
def test_a_config_json_that_no_longer_fits_its_checkpoints_is_reported_as_such(
    change, reason, uninterrupted, tmp_path
):
    run = _interrupted_copy(uninterrupted, tmp_path)
    config = json.loads((run / "config.json").read_text())
    for section, values in change.items():
        config[section].update(values)
    (run / "config.json").write_text(json.dumps(config))
    before = snapshot(run)
    result = run_command("train", "--out", run, "--resume", "--quiet")
    assert_one_line(result.returncode, result.stderr, expected=reason)
    assert "written under another config than the run's config.json" in result.stderr
    assert snapshot(run) == before


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_when_the_newest_checkpoint_fails_resume_keeps_it_aside_and_ends_bit_identical(
    damage, uninterrupted, tiny_config, tmp_path
):
    run = _interrupted_copy(uninterrupted, tmp_path)
    directory, steps = _steps(run)
    DAMAGES[damage](directory / str(steps[-1]))
    damaged = snapshot(directory / str(steps[-1]))
    result = run_command("train", "--out", run, "--resume", "--quiet")
    assert_one_line(
        result.returncode,
        result.stderr,
        code=0,
        prefix=f"factorcl-jax: warning: checkpoint(s) {steps[-1]} in",
        expected="moved to",
    )
    assert snapshot(directory / "corrupt" / str(steps[-1])) == damaged  # kept, byte for byte
    assert_no_duplicate_steps(run)
    assert_same_final_run(run, uninterrupted, tiny_config)


@pytest.mark.slow
def test_a_finished_run_resumed_is_a_no_op_that_says_so(uninterrupted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run, symlinks=True)
    before = snapshot(run)
    result = run_command("train", "--out", run, "--resume", "--quiet")
    assert_one_line(result.returncode, result.stderr, code=0, prefix="factorcl-jax: warning:",
                    expected="is a finished run (results.json): nothing to resume")  # fmt: skip
    assert snapshot(run) == before


@pytest.mark.slow
def test_training_time_adds_up_over_the_processes_a_run_took(uninterrupted, tmp_path):
    """A run stopped after its last checkpoint (e.g. by SIGTERM during evaluation) and
    resumed reports the time of the process that trained, not the last one's few ms."""
    run = _interrupted_copy(uninterrupted, tmp_path)
    result = run_command("train", "--out", run, "--resume", "--quiet")
    assert result.returncode == 0, result.stderr
    seconds = json.loads((run / "results.json").read_text())["train_seconds"]["FactorCL-SSL"]
    first = json.loads((uninterrupted / "results.json").read_text())["train_seconds"]
    assert seconds == pytest.approx(first["FactorCL-SSL"], rel=0.05)
    assert seconds > 1.0


@pytest.mark.slow
def test_sighup_stops_training_like_sigterm_and_the_run_resumes(tiny_config, tmp_path):
    out = tmp_path / "hung_up"
    log = tmp_path / "stderr.log"
    with log.open("w") as handle:
        status = signal_after(start(out, tiny_config, stderr=handle), out, 4, signal.SIGHUP)
    assert_one_line(status, log.read_text(), code=129, prefix="factorcl-jax: stopped by SIGHUP")
    steps = steps_logged(out)
    assert (out / "checkpoints" / "factorcl-ssl" / str(steps)).is_dir()
    assert not list(out.rglob("*orbax-checkpoint-tmp*"))  # no half-written checkpoint
    result = run_command("train", "--out", out, "--resume", "--quiet")
    assert result.returncode == 0, result.stderr
    assert_no_duplicate_steps(out)


@pytest.mark.slow
def test_config_json_deleted_during_a_run_is_written_again(tiny_config, tmp_path):
    out = tmp_path / "lost_identity"
    log = tmp_path / "stderr.log"
    with log.open("w") as handle:
        process = start(out, tiny_config, stderr=handle)
        while steps_logged(out) < 3:
            assert process.poll() is None, log.read_text()
            time.sleep(0.005)
        (out / "config.json").unlink()
        assert process.wait(timeout=300) == 0, log.read_text()
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["methods"] == ["FactorCL-SSL"]
    result = run_command("probe", out)
    assert result.returncode == 0, result.stderr
