"""Fault injection: hostile and careless inputs to every subcommand, interrupted and
corrupted runs, and a property-based fuzz of the bounds and of ``estimate_mi``'s inputs.

Every user mistake must end in exactly one line ``factorcl-jax: error: ...`` on stderr, exit
status 2, no traceback, and no change to any file that was there before. Most cases run
in-process through ``cli.main`` (nothing in them trains); the signal, lock and divergence
cases run ``python -m factorcl_jax`` in subprocesses on a tiny config.
"""

import hashlib
import json
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import time

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_bounds import REFERENCES
from test_cli import TINY_TOML, deterministic, final_params, read_metrics

from factorcl_jax import bounds, critics, estimate, validation
from factorcl_jax.runs import rundir
from factorcl_jax.runs.cli import main as cli_main

ERROR = "factorcl-jax: error: "


def snapshot(root: pathlib.Path) -> dict[str, str]:
    """Every path under ``root`` with its kind and, for files, a hash of its bytes."""
    state = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            state[key] = f"link:{os.readlink(path)}"
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "dir"
    return state


def assert_one_line(status, err, *, code=2, prefix=ERROR, expected=""):
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert status == code, (status, err)
    assert lines[0].startswith(prefix), err
    assert expected in lines[0], (expected, err)


def run_in_process(args, capsys):
    try:
        status = cli_main([str(a) for a in args])
    except SystemExit as exit_:  # argparse
        status = exit_.code
    return status, capsys.readouterr()


# ------------------------------------------------------------------ files the cases use


def write_run(directory: pathlib.Path, config: dict | None = None) -> pathlib.Path:
    """A directory that holds a (fake) earlier run: config, metrics, a checkpoint folder."""
    directory.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (directory / "config.json").write_text(json.dumps(config))
    (directory / "metrics.jsonl").write_text('{"method": "SimCLR", "step": 1, "loss": 1.0}\n')
    (directory / "checkpoints" / "simclr").mkdir(parents=True)
    (directory / "results.json").write_text('{"probe_accuracy": {"SimCLR": 0.9}}\n')
    return directory


def tiny_config_dict(tmp: pathlib.Path) -> dict:
    from factorcl_jax import config as config_lib

    path = tmp / "_tiny.toml"
    path.write_text(TINY_TOML)
    config = config_lib.to_dict(config_lib.load_config(path))
    path.unlink()
    return config


class Payload:
    """Unpickling this creates the file ``marker``: a stand-in for a malicious pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def put(path: pathlib.Path, data: bytes) -> pathlib.Path:
    path.write_bytes(data)
    return path


def mkdir(path: pathlib.Path) -> pathlib.Path:
    path.mkdir()
    return path


def symlink(path: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    path.symlink_to(target)
    return path


def savez(path: pathlib.Path, **arrays) -> pathlib.Path:
    np.savez(path, **arrays)
    return path


def dump(path: pathlib.Path, obj) -> pathlib.Path:
    with path.open("wb") as handle:
        pickle.dump(obj, handle)
    return path


def save(path: pathlib.Path, array) -> pathlib.Path:
    with path.open("wb") as handle:
        np.save(handle, array, allow_pickle=True)
    return path


def train_case(*overrides):
    return lambda t: (["train", "--out", t / "run", *overrides], "")


def expect(args_of, expected):
    return lambda t: (args_of(t), expected)


def config_case(suffix: str, content: bytes, expected: str):
    def build(t):
        path = t / f"config{suffix}"
        path.write_bytes(content)
        return ["train", "--config", path, "--out", t / "run"], expected

    return build


def estimate_case(name: str, write, expected: str, *extra):
    def build(t):
        path = t / name
        write(path)
        other = save(t / "other.npy", np.zeros((10, 2)))
        return ["estimate", path, other if not extra else extra[0], *extra[1:]], expected

    return build


def probe_case(prepare, expected, *extra):
    def build(t):
        return ["probe", prepare(t), *extra], expected

    return build


def convert_case(prepare, expected):
    def build(t):
        return ["convert-multibench", *prepare(t)], expected

    return build


def locked(t):
    run = write_run(t / "run", tiny_config_dict(t))
    return ["train", "--out", run, "--resume"]


CASES = {
    # ---- configuration values (overrides and options)
    "epochs float 1e30": expect(
        lambda t: ["train", "--out", t / "r", "train.epochs=1e30"], "must be int"
    ),
    "epochs beyond int32": expect(
        lambda t: ["train", "--out", t / "r", f"train.epochs={10**30}"], "train.epochs"
    ),
    "negative batch size": expect(
        lambda t: ["train", "--out", t / "r", "train.batch_size=-1"], "train.batch_size"
    ),
    "batch of one": expect(
        lambda t: ["train", "--out", t / "r", "train.batch_size=1"], "train.batch_size"
    ),
    "empty --out": expect(lambda t: ["train", "--out", ""], "--out must name a directory"),
    "zero embed_dim": expect(
        lambda t: ["train", "--out", t / "r", "model.embed_dim=0"], "model.embed_dim"
    ),
    "zero num_samples": expect(
        lambda t: ["train", "--out", t / "r", "data.num_samples=0"], "data.num_samples"
    ),
    "NaN learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=NaN"], "finite"
    ),
    "inf learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=Infinity"], "finite"
    ),
    "-inf learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=-Infinity"], "finite"
    ),
    "negative learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=-1"],
        "train.learning_rate must be a finite number > 0",
    ),
    "zero learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=0"],
        "train.learning_rate must be a finite number > 0",
    ),
    "string learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=nan"], "must be float"
    ),
    "bool where an int goes": expect(
        lambda t: ["train", "--out", t / "r", "train.epochs=true"], "must be int"
    ),
    "bool where a float goes": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=false"], "must be float"
    ),
    "int where a bool goes": expect(
        lambda t: ["train", "--out", t / "r", "model.normalize_heads=1"], "must be bool"
    ),
    "negative seed override": expect(
        lambda t: ["train", "--out", t / "r", "train.seed=-1"], "train.seed"
    ),
    "seed beyond the PRNG": expect(
        lambda t: ["train", "--out", t / "r", f"train.seed={2**32}"], "4294967295"
    ),
    "--seed beyond the PRNG": expect(
        lambda t: ["train", "--out", t / "r", "--seed", 2**64], "train.seed"
    ),
    "--seed not an int": expect(
        lambda t: ["train", "--out", t / "r", "--seed", "1e3"], "invalid int value"
    ),
    "negative data seed": expect(
        lambda t: ["train", "--out", t / "r", "data.seed=-5"], "data.seed"
    ),
    "fraction out of range": expect(
        lambda t: ["train", "--out", t / "r", "data.test_fraction=0.9"], "data.test_fraction"
    ),
    "negative latent size": expect(
        lambda t: ["train", "--out", t / "r", 'data.feature_dims={"12": -1}'], "feature_dims"
    ),
    "zero block size": expect(
        lambda t: ["train", "--out", t / "r", "memory.block_size=0"], "memory.block_size"
    ),
    "zero keep_last": expect(
        lambda t: ["train", "--out", t / "r", "checkpoint.keep_last=0"], "checkpoint.keep_last"
    ),
    "negative every_steps": expect(
        lambda t: ["train", "--out", t / "r", "checkpoint.every_steps=-1"], "every_steps"
    ),
    "mask rate above 1": expect(
        lambda t: ["train", "--out", t / "r", "augment.rate=2"], "augment.rate"
    ),
    "unknown augmentation": expect(
        lambda t: ["train", "--out", t / "r", "augment.names=bogus"], "augment.names"
    ),
    "unknown schedule": expect(
        lambda t: ["train", "--out", t / "r", "train.lr_schedule=linear"], "lr_schedule"
    ),
    "method twice": expect(
        lambda t: ["train", "--out", t / "r", "train.methods=SimCLR,SimCLR"], "twice"
    ),
    "empty methods": expect(
        lambda t: ["train", "--out", t / "r", "train.methods=[]"], "at least one method"
    ),
    "unknown method": expect(
        lambda t: ["train", "--out", t / "r", "train.methods=CLIP"], "unknown method"
    ),
    "unknown section": expect(lambda t: ["train", "--out", t / "r", "optim.lr=1"], "optim"),
    "unknown key": expect(lambda t: ["train", "--out", t / "r", "train.lr=1"], "train.lr"),
    "override without =": expect(lambda t: ["train", "--out", t / "r", "epochs"], "section.key"),
    "deeply nested override": expect(
        lambda t: ["train", "--out", t / "r", "train.epochs=" + "[" * 100000], "must be int"
    ),
    "unicode override value": expect(
        lambda t: ["train", "--out", t / "r", "train.lr_schedule=cösine"], "lr_schedule"
    ),
    "overrides on both sides of options": expect(
        lambda t: ["train", "model.embed_dim=8", "--out", t / "r", "train.epochs=0"],
        "train.epochs",
    ),
    "process id beyond the processes": expect(
        lambda t: ["train", "--out", t / "r", "--num-processes", 2, "--process-id", 2],
        "--process-id must be in [0, 1]",
    ),
    "negative process id": expect(
        lambda t: ["train", "--out", t / "r", "--process-id", -1], "--process-id"
    ),
    "devices zero": expect(lambda t: ["train", "--out", t / "r", "--devices", 0], "positive"),
    "devices beyond the machine": expect(
        lambda t: ["train", "--out", t / "r", "--devices", 4096], "--devices"
    ),
    "data too large for memory": expect(
        lambda t: [
            "train",
            "--out",
            t / "r",
            "data.num_samples=2000000000",
            "data.input_dim=100000",
        ],
        "needs at least",
    ),
    "pair activations too large": expect(
        lambda t: [
            "train",
            "--out",
            t / "r",
            "train.batch_size=2000000",
            "data.num_samples=3000000",
            "model.critic_hidden=4096",
        ],
        "pair activations",
    ),
    "model too large": expect(
        lambda t: ["train", "--out", t / "r", "model.encoder_hidden=2000000000"], "Adam state"
    ),
    # ---- config files
    "malformed TOML": config_case(".toml", b"[train\nepochs = 3\n", "line 1"),
    "malformed JSON": config_case(".json", b'{"train": {"epochs": 3,}}', "line 1"),
    "malformed YAML": config_case(".yaml", b"train:\n  epochs: [1\n", "YAML at line"),
    "non-UTF-8 TOML": config_case(".toml", b"[train]\nepochs = 3\n# \xff\xfe\n", "line 3"),
    "non-UTF-8 JSON": config_case(".json", b'{"train": "\xe9"}', "not UTF-8"),
    "binary junk config": config_case(".yaml", bytes(range(256)), "not UTF-8"),
    "empty JSON config": config_case(".json", b"", "not valid JSON"),
    "JSON list config": config_case(".json", b"[1, 2]", "top level"),
    "JSON NaN learning rate": config_case(".json", b'{"train": {"learning_rate": NaN}}', "finite"),
    "JSON nested too deep": config_case(".json", b"[" * 100000, "not valid JSON"),
    "YAML python tag": config_case(
        ".yaml", b"train: !!python/object/apply:os.system ['true']\n", "not valid YAML"
    ),
    "TOML wrong type": config_case(".toml", b"[train]\nepochs = 'many'\n", "must be int"),
    "TOML preset not a name": config_case(".toml", b"preset = 3\n", "preset"),
    "TOML unknown preset": config_case(".toml", b'preset = "tpu"\n', "unknown preset"),
    "unknown config suffix": config_case(".ini", b"[train]\n", "unknown config format"),
    "config is a directory": expect(
        lambda t: ["train", "--config", t, "--out", t / "r"], "unknown config format"
    ),
    "config is a directory named .toml": lambda t: (
        ["train", "--config", mkdir(t / "d.toml"), "--out", t / "r"],
        "cannot read config file",
    ),
    "missing config": expect(
        lambda t: ["train", "--config", t / "none.toml", "--out", t / "r"], "cannot read"
    ),
    # ---- run directories
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
    # ---- probe
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
    # ---- estimate: data files
    "zero-byte npy": estimate_case("x.npy", lambda p: p.write_bytes(b""), "empty (0 bytes)"),
    "zero-byte npz": lambda t: (
        ["estimate", put(t / "x.npz", b""), "--x-key", "a", "--y-key", "b"],
        "empty (0 bytes)",
    ),
    "zero-byte csv": estimate_case("x.csv", lambda p: p.write_bytes(b""), "empty (0 bytes)"),
    "csv with only a header": estimate_case(
        "x.csv", lambda p: p.write_text("a,b\n"), "could not convert string 'a'"
    ),
    "csv of blank lines": estimate_case("x.csv", lambda p: p.write_text("\n\n"), "no numbers"),
    "no rows": estimate_case("x.npy", lambda p: save(p, np.zeros((0, 3))), "shape (0, 3)"),
    "zero-width features": estimate_case(
        "x.npy", lambda p: save(p, np.zeros((10, 0))), "axis of length 0"
    ),
    "complex numbers": estimate_case(
        "x.npy", lambda p: save(p, np.ones((10, 2)) * (1 + 2j)), "complex"
    ),
    "NaN values": estimate_case(
        "x.npy", lambda p: save(p, np.full((10, 2), np.nan)), "20 NaN or inf"
    ),
    "inf in csv": estimate_case("x.csv", lambda p: p.write_text("1,2\ninf,3\n" * 5), "NaN or inf"),
    "beyond float64 in csv": estimate_case(
        "x.csv", lambda p: p.write_text("1,2\n1e400,3\n" * 5), "NaN or inf"
    ),
    "booleans": estimate_case("x.npy", lambda p: save(p, np.ones((10, 2), bool)), "real numbers"),
    "strings": estimate_case("x.npy", lambda p: save(p, np.full((10, 2), "a")), "real numbers"),
    "pickled objects in npy": estimate_case(
        "x.npy",
        lambda p: save(p, np.array([Payload(p.with_name("pwned"))], dtype=object)),
        "allow_pickle=False",
    ),
    "a pickle named .npy": estimate_case(
        "x.npy", lambda p: dump(p, Payload(p.with_name("pwned"))), "allow_pickle"
    ),
    "structured dtype": estimate_case(
        "x.npy", lambda p: save(p, np.zeros(10, dtype=[("a", "f4"), ("b", "i4")])), "real numbers"
    ),
    "rank 3": estimate_case("x.npy", lambda p: save(p, np.zeros((10, 2, 2))), "[rows, features]"),
    "scalar": estimate_case("x.npy", lambda p: save(p, np.float32(3)), "[rows, features]"),
    "garbage npy": estimate_case("x.npy", lambda p: p.write_bytes(b"garbage" * 10), "not a valid"),
    "truncated npy": estimate_case(
        "x.npy",
        lambda p: p.write_bytes(save(p, np.zeros((100, 3))).read_bytes()[:150]),
        "not a valid",
    ),
    "garbage npz": lambda t: (
        [
            "estimate",
            put(t / "x.npz", b"PK\x03\x04junk"),
            "--x-key",
            "a",
            "--y-key",
            "b",
        ],
        "not a valid npz",
    ),
    "npz without arrays": lambda t: (
        ["estimate", savez(t / "x.npz"), "--x-key", "a", "--y-key", "b"],
        "no arrays",
    ),
    "npz missing key": lambda t: (
        ["estimate", savez(t / "x.npz", a=np.zeros((5, 2))), "--x-key", "z"],
        "has no array 'z'",
    ),
    "npz without keys": lambda t: (
        ["estimate", savez(t / "x.npz", a=np.zeros((5, 2)))],
        "say which array",
    ),
    "single npy": lambda t: (["estimate", save(t / "x.npy", np.zeros((10, 2)))], "give two files"),
    "directory as data": lambda t: (
        ["estimate", t, save(t / "y.npy", np.zeros((10, 2)))],
        "is a directory",
    ),
    "data file missing": lambda t: (
        ["estimate", t / "none.npy", save(t / "y.npy", np.zeros((10, 2)))],
        "file not found",
    ),
    "dangling symlink data": lambda t: (
        [
            "estimate",
            symlink(t / "x.npy", t / "nowhere.npy"),
            save(t / "y.npy", np.zeros((10, 2))),
        ],
        "broken symbolic link",
    ),
    "unsupported suffix": estimate_case("x.txt", lambda p: p.write_text("1,2\n"), ".txt"),
    "ragged csv": estimate_case("x.csv", lambda p: p.write_text("1,2\n3\n4,5\n"), "not a valid"),
    "non-numeric csv": estimate_case(
        "x.csv", lambda p: p.write_text("a,b\nc,d\n"), "not a valid csv"
    ),
    "non-UTF-8 csv": estimate_case(
        "x.csv", lambda p: p.write_bytes(b"1,2\n\xff\xfe,3\n"), "not a valid csv"
    ),
    "csv first row half garbage": estimate_case(
        "x.csv", lambda p: p.write_text("1,2x\n3,4\n5,6\n"), "could not convert string '2x'"
    ),
    "key for an npy": lambda t: (
        ["estimate", save(t / "x.npy", np.zeros((10, 2))), t / "x.npy", "--x-key", "a"],
        "do not apply",
    ),
    "complex in csv": estimate_case("x.csv", lambda p: p.write_text("1+2j,3\n"), "not a valid"),
    "mismatched rows": lambda t: (
        ["estimate", save(t / "x.npy", np.zeros((10, 2))), save(t / "y.npy", np.zeros((9, 2)))],
        "same number of rows",
    ),
    "diverged estimate": lambda t: (
        [
            "estimate",
            save(t / "x.npy", np.arange(400.0).reshape(200, 2)),
            t / "x.npy",
            "--bound",
            "nwj",
            "--learning-rate",
            "1e6",
            "--steps",
            "100",
            "--hidden",
            "8",
            "--out",
            t / "est",
        ],
        "training diverged",
    ),
    # ---- convert-multibench
    "convert without --trust-pickle": convert_case(
        lambda t: [
            dump(t / "in.pkl", {"train": Payload(t / "pwned")}),
            t / "out.npz",
        ],
        "--trust-pickle",
    ),
    "convert over an existing file": convert_case(
        lambda t: [
            dump(t / "in.pkl", {"a": np.zeros(3)}),
            put(t / "out.npz", b"keep"),
            "--trust-pickle",
        ],
        "already exists",
    ),
    "convert to a non-npz": convert_case(
        lambda t: [
            dump(t / "in.pkl", {"a": np.zeros(3)}),
            t / "out.pkl",
            "--trust-pickle",
        ],
        "must be an .npz",
    ),
    "convert a missing file": convert_case(
        lambda t: [t / "none.pkl", t / "out.npz", "--trust-pickle"], "file not found"
    ),
    "convert garbage": convert_case(
        lambda t: [
            put(t / "in.pkl", b"garbage"),
            t / "out.npz",
            "--trust-pickle",
        ],
        "cannot be read as a pickle",
    ),
    "convert a pickled list": convert_case(
        lambda t: [
            dump(t / "in.pkl", [1, 2]),
            t / "out.npz",
            "--trust-pickle",
        ],
        "expected a dict",
    ),
    "convert objects that are not arrays": convert_case(
        lambda t: [
            dump(t / "in.pkl", {"train": {"x": [{"a": 1}]}}),
            t / "out.npz",
            "--trust-pickle",
        ],
        "neither numbers nor text",
    ),
    # ---- the command line itself
    "no subcommand": expect(lambda t: [], "required"),
    "unknown subcommand": expect(lambda t: ["fly"], "invalid choice"),
    "unknown option": expect(lambda t: ["train", "--out", t / "r", "--fast"], "unrecognized"),
    "missing argument": expect(lambda t: ["convert-multibench", t / "x.pkl"], "required"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_mistakes_are_one_line_exit_2_and_change_no_file(case, tmp_path, capsys):
    args, expected = CASES[case](tmp_path)
    before = snapshot(tmp_path)
    status, captured = run_in_process(args, capsys)
    assert_one_line(status, captured.err, expected=expected)
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "pwned").exists()  # no pickle ever ran


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


def test_traceback_flag_anywhere_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match=r"unknown key train\.lr"):
        cli_main(["train", "--out", str(tmp_path / "r"), "train.lr=1", "--traceback"])


def test_an_unexpected_error_is_one_line_with_exit_1(tmp_path, capsys, monkeypatch):
    from factorcl_jax.runs import cli

    def broken(args):
        raise KeyError("internal")

    monkeypatch.setattr(cli, "_command_probe", broken)
    monkeypatch.setattr(cli, "build_parser", _parser_with(cli, "probe", broken))
    status, captured = run_in_process(["probe", tmp_path], capsys)
    assert_one_line(
        status, captured.err, code=1, prefix="factorcl-jax: internal error: KeyError", expected=""
    )
    assert "--traceback" in captured.err


@pytest.mark.parametrize(
    ("interrupt", "status", "message"),
    [
        (lambda: os.kill(os.getpid(), signal.SIGTERM), 143, "stopped by SIGTERM; --resume"),
        (lambda: os.kill(os.getpid(), signal.SIGINT), 130, "stopped by SIGINT"),
        (lambda: (_ for _ in ()).throw(KeyboardInterrupt), 130, "stopped by SIGINT"),
    ],
)
def test_signals_outside_training_stop_in_one_line(
    interrupt, status, message, tmp_path, capsys, monkeypatch
):
    from factorcl_jax.runs import cli

    def interrupted(args):
        interrupt()
        time.sleep(5)  # the signal arrives here
        raise AssertionError("not interrupted")

    monkeypatch.setattr(cli, "build_parser", _parser_with(cli, "probe", interrupted))
    before = signal.getsignal(signal.SIGTERM)
    # Python's own SIGINT handler, whatever the launcher left (a shell starts background jobs
    # with SIGINT ignored, and Python then keeps it ignored).
    sigint_before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code, captured = run_in_process(["probe", tmp_path], capsys)
    finally:
        signal.signal(signal.SIGINT, sigint_before)
    assert_one_line(code, captured.err, code=status, prefix=f"factorcl-jax: {message}")
    assert signal.getsignal(signal.SIGTERM) is before  # the command restored it


def _parser_with(cli, command, handler):
    original = cli.build_parser

    def build():
        parser = original()
        subparsers = next(a for a in parser._actions if a.dest == "command")
        subparsers.choices[command].set_defaults(handler=handler)
        return parser

    return build


def test_validation_helpers_take_value_then_name():
    assert validation.check_positive_int(3, "steps") == 3
    assert validation.check_seed(2**32 - 1, "seed") == 2**32 - 1
    for call, error, message in [
        (lambda: validation.check_positive_int(True, "steps"), TypeError, "`steps` must be an int"),
        (lambda: validation.check_positive_int(0, "steps"), ValueError, r"\[1, 2147483647\]"),
        (lambda: validation.check_seed(-1, "seed"), ValueError, r"`seed`.*\[0, 4294967295\]"),
        (lambda: validation.check_positive_float(-1.0, "lr"), ValueError, "`lr` must be a finite"),
        (lambda: validation.check_positive_float("1", "lr"), TypeError, "`lr` must be a number"),
        (
            lambda: validation.check_real_array(np.ones(3, complex), "x"),
            TypeError,
            "`x` holds complex",
        ),
        (
            lambda: validation.check_real_array(np.full((2, 2), 1e39), "x"),
            ValueError,
            "overflow float32",
        ),
    ]:
        with pytest.raises(error, match=message):
            call()


# ------------------------------------------------------------------ interrupted runs

CHECKPOINTED = TINY_TOML  # every_steps = 1, keep_last = 2, 2 epochs of 8 steps


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(CHECKPOINTED)
    return path


def command(*args):
    return [sys.executable, "-m", "factorcl_jax", *map(str, args)]


# Quick, unoptimised XLA compiles: every run of a comparison compiles the same way.
FAST = {
    **os.environ,
    "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")
    + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
}


def run_command(*args, timeout=300):
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout, env=FAST)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("faults") / "uninterrupted"
    result = run_command("train", "--config", tiny_config, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    return out


def steps_logged(out):
    path = out / "metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def start(out, config, *extra, stderr):
    return subprocess.Popen(
        command("train", "--config", config, "--out", out, "--quiet", *extra),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env=FAST,
    )


def signal_after(process, out, steps, signum, timeout=240):
    """Sends ``signum`` once ``steps`` steps are logged; returns the exit status."""
    deadline = time.monotonic() + timeout
    while steps_logged(out) < steps:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"training ended or stalled before {steps} steps")
        time.sleep(0.005)
    process.send_signal(signum)
    return process.wait(timeout=timeout)


def assert_no_duplicate_steps(out):
    records = read_metrics(out)
    keys = [(r["method"], r["step"]) for r in records]
    assert len(keys) == len(set(keys)), keys
    return records


def assert_same_final_run(resumed, reference, config):
    expected, expected_meta = final_params(reference, config)
    got, got_meta = final_params(resumed, config)
    assert got_meta["step"] == expected_meta["step"]
    chex.assert_trees_all_equal(got.params, expected.params)
    chex.assert_trees_all_equal(got.club_params, expected.club_params)
    chex.assert_trees_all_equal(got.opt_state, expected.opt_state)
    assert deterministic(read_metrics(resumed)) == deterministic(read_metrics(reference))
    results = json.loads((resumed / "results.json").read_text())
    expected_results = json.loads((reference / "results.json").read_text())
    assert results["probe_accuracy"] == expected_results["probe_accuracy"]


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


# ------------------------------------------------------------------ property-based fuzz

BOUNDS = {
    "infonce": bounds.infonce,
    "nce_club": bounds.nce_club,
    "nwj": bounds.nwj,
    "dv": bounds.dv,
    "js": bounds.js,
    "smile": bounds.smile,
    "js_fgan": bounds.js_fgan,
    "mine": lambda s, **kw: bounds.mine(s, bounds.mine_init(), **kw)[0],
}
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
BIG = float(np.float32(1e30))
# float32-representable, so that no cast overflows: values beyond float32 are the CLI's
# `_load_table` cases above.
finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=32)


def square_or_wide(scores: np.ndarray) -> np.ndarray:
    return scores.T if scores.shape[0] > scores.shape[1] else scores


@pytest.mark.slow
@FUZZ
@given(
    name=st.sampled_from(sorted(BOUNDS)),
    scores=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=6),
        elements=st.floats(-BIG, BIG, width=32),
    ),
    nan_at=st.one_of(st.none(), st.tuples(st.integers(0, 5), st.integers(0, 5))),
)
def test_fuzz_bounds_never_hide_or_invent_a_nan(name, scores, nan_at):
    """Finite float32 scores of any magnitude give a number or +-inf, never NaN; a NaN
    anywhere in the scores gives NaN, never a number."""
    scores = square_or_wide(scores).copy()
    if nan_at is not None:
        scores[nan_at[0] % scores.shape[0], nan_at[1] % scores.shape[1]] = np.nan
    value = float(BOUNDS[name](jnp.asarray(scores)))
    assert np.isnan(value) == (nan_at is not None), (name, scores, value)


@pytest.mark.slow
@FUZZ
@given(
    name=st.sampled_from(sorted(REFERENCES)),
    scores=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=6),
        elements=st.floats(-60, 60, width=32),
    ),
    offset=st.integers(0, 4),
)
def test_fuzz_bounds_agree_with_a_float64_reference(name, scores, offset):
    """A finite float32 value is the float64 value up to float32 rounding: never a finite
    wrong number."""
    scores = square_or_wide(scores)
    n, m = scores.shape
    offset = min(offset, m - n)
    fn, reference = REFERENCES[name]
    value = float(fn(jnp.asarray(scores), offset=offset))
    with np.errstate(all="ignore"):
        expected = float(reference(scores.astype(np.float64), offset))
    if np.isfinite(value):
        scale = 1.0 + np.abs(scores).max()
        assert abs(value - expected) <= 1e-4 * scale * (1.0 + abs(expected)), (value, expected)
    else:
        assert not np.isfinite(expected) or expected < -1e30, (name, value, expected)


@FUZZ
@given(
    name=st.sampled_from(sorted(BOUNDS)),
    scores=st.one_of(
        hnp.arrays(
            st.sampled_from([np.int32, np.bool_, np.complex64, np.uint8]),
            hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=4),
        ),
        hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=4, max_side=3)),
    ),
    offset=st.one_of(st.integers(-3, 10), st.sampled_from([True, 1.5, "0"])),
)
def test_fuzz_bounds_refuse_bad_inputs_with_value_or_type_errors(name, scores, offset):
    """Wrong dtypes, ranks, sizes and offsets raise ValueError/TypeError, or give a number
    when they are in fact valid."""
    try:
        value = BOUNDS[name](jnp.asarray(scores), offset=offset)
    except (ValueError, TypeError):
        return
    n, m = scores.shape
    assert scores.dtype == np.float32 and scores.ndim == 2 and m >= 2 and n >= 1
    assert isinstance(offset, int) and 0 <= offset <= m - n
    assert value.shape == ()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    x=st.one_of(
        hnp.arrays(
            np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=finite_or_not
        ),
        hnp.arrays(st.sampled_from([np.int32, np.bool_]), st.just((6, 2))),
        st.lists(st.lists(finite_or_not, min_size=1, max_size=3), max_size=4),
    ),
    batch_size=st.sampled_from([2, 4, 0, -1, 2.5]),
)
def test_fuzz_estimate_mi_refuses_what_it_cannot_estimate(x, batch_size):
    """Non-finite, wrongly shaped or too-small inputs raise ValueError/TypeError before any
    training; whatever is accepted gives a finite estimate."""
    try:
        arrays = np.asarray(x)
    except ValueError:
        arrays = None
    try:
        result = estimate.estimate_mi(
            x, x, critic=critics.ConcatCritic(hidden=(8,)), max_steps=2, batch_size=batch_size
        )
    except (ValueError, TypeError):
        return
    assert arrays is not None and arrays.ndim == 2 and np.isfinite(arrays).all()
    assert np.isfinite(result.estimate)


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


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("\ufeff1,2\n3,4\n", [[1, 2], [3, 4]]),  # a byte-order mark is not a header
        ("u,v\n1,2\n3,4\n", [[1, 2], [3, 4]]),
        ("1,2\n3,4\n", [[1, 2], [3, 4]]),
        ("1e30,-2\n", [[1e30, -2]]),
    ],
)
def test_csv_rows_are_never_dropped_silently(tmp_path, text, rows):
    from factorcl_jax.io.tables import load_table as _load_table

    path = tmp_path / "x.csv"
    path.write_text(text, encoding="utf-8")
    loaded = _load_table(path, None)
    assert loaded.dtype == np.float64  # estimate_mi standardises before float32
    np.testing.assert_array_equal(loaded, np.asarray(rows, np.float64))


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
