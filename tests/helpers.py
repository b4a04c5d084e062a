"""What the tests share: tiny configurations and trainers (seconds to compile), and the
fault-injection helpers (snapshots of a directory, one-line errors, hostile files, commands
run in-process and in real processes)."""

import hashlib
import json
import os
import pathlib
import pickle
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from factorcl_jax import config as config_lib
from factorcl_jax.config import PRESETS, RunConfig, replace
from factorcl_jax.runs import job
from factorcl_jax.runs.cli import main as cli_main
from factorcl_jax.training.builder import build_trainer


def fast_first(cases, *, unpack: bool = False) -> list:
    """``cases`` for ``pytest.mark.parametrize`` with only the first in the fast tier: the rest
    of the family is marked ``slow``, so ``-m "not slow"`` checks one representative and the
    full suite every case. ``unpack=True`` when the parametrize names several arguments (each
    case a tuple of their values); a case may already be a ``pytest.param``."""
    first, *rest = list(cases)
    return [first, *(_slow(case, unpack) for case in rest)]


def _slow(case, unpack: bool):
    if isinstance(case, type(pytest.param(None))):
        return pytest.param(*case.values, marks=[*case.marks, pytest.mark.slow], id=case.id)
    values = case if unpack else (case,)
    return pytest.param(*values, marks=pytest.mark.slow)


TINY = replace(
    PRESETS["quick"],
    model={
        "encoder_hidden": 32,
        "encoder_layers": 1,
        "embed_dim": 8,
        "head_hidden": 32,
        "critic_hidden": 32,
        "normalize_heads": False,
    },
    train={"learning_rate": 3e-3, "lr_schedule": "constant"},
    augment={"scale": 0.1, "rate": 0.2},
)
"""Tiny networks, Adam at a constant 3e-3, unnormalised heads, mild augmentations."""


def tiny_config(**sections) -> RunConfig:
    """:data:`TINY` with fields of its sections replaced (``model={"embed_dim": 4}``)."""
    return replace(TINY, **sections)


def tiny_trainer(method, *, num_classes=2, steps_per_epoch=None, **sections):
    """The trainer of ``method`` under :func:`tiny_config` of ``sections``."""
    return build_trainer(
        tiny_config(**sections),
        method,
        num_classes=num_classes,
        steps_per_epoch=steps_per_epoch,
    )


def evaluate_on_scores(method, views, score):
    """``(loss, values)`` of ``method`` with every term's bound on the score matrix
    ``score(term, left, right)``: the objective with a critic simple enough to redo by hand."""
    from factorcl_jax import bounds, objectives

    def value(term, left, right):
        labels = {}
        if bounds.BOUNDS[term.bound].labelled:
            columns = views.labels if views.column_labels is None else views.column_labels
            labels = {"row_labels": views.labels, "column_labels": columns}
        return bounds.evaluate(term.bound, score(term, left, right), **labels, **term.options)

    return objectives.evaluate_values(method, views, value)


# ------------------------------------------------------------------ a tiny run of the command

TINY_TOML = """
[data]
num_samples = 400
input_dim = 12
[data.feature_dims]
"12" = 3
"1" = 2
"2" = 2
[data.label_dims]
"12" = 3
"1" = 2
"2" = 2
[model]
encoder_hidden = 16
encoder_layers = 1
embed_dim = 8
head_hidden = 16
critic_hidden = 16
normalize_heads = true
[train]
methods = ["FactorCL-SSL"]
epochs = 2
batch_size = 32
lr_schedule = "cosine"
[checkpoint]
every_steps = 1
keep_last = 2
"""


WALL_CLOCK_KEYS = ("steps_per_s",)
"""Measurement keys that depend on the machine's speed (everything else is deterministic)."""


def deterministic(records):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_KEYS} for r in records]


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def final_params(out, config_path):
    config = config_lib.load_config(config_path)
    _, (state, meta), _ = job.restore_method(out, config, "FactorCL-SSL", job.load_splits(config))
    return jax.device_get(state), meta


# ------------------------------------------------------------------ faults: files and checks

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


def assert_refused(case, tmp_path, capsys, cases):
    """Runs ``cases[case]`` through the command: one line, exit 2, no file changed, and no
    pickle ever ran."""
    args, expected = cases[case](tmp_path)
    before = snapshot(tmp_path)
    status, captured = run_in_process(args, capsys)
    assert_one_line(status, captured.err, expected=expected)
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------ faults: real processes


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
