"""Faults of the command line itself: its one error boundary, tracebacks only on request,
signals outside training, mutually exclusive options."""

import os
import signal
import time

import numpy as np
import pytest
from helpers import (
    assert_one_line,
    assert_refused,
    expect,
    run_in_process,
    save,
)

from factorcl_jax import validation
from factorcl_jax.runs.cli import main as cli_main

CASES = {
    "no subcommand": expect(lambda t: [], "required"),
    "unknown subcommand": expect(lambda t: ["fly"], "invalid choice"),
    "unknown option": expect(lambda t: ["train", "--out", t / "r", "--fast"], "unrecognized"),
    "missing argument": expect(lambda t: ["convert-multibench", t / "x.pkl"], "required"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_mistakes_are_one_line_exit_2_and_change_no_file(case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys, CASES)


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


# ------------------------------------------------------------------ options that exclude each other


def _pair(t):
    return save(t / "x.npy", np.random.default_rng(0).normal(size=(64, 2)))


EXCLUSIVE = {
    "--heldout-fraction with --folds": lambda t: (
        ["estimate", _pair(t), _pair(t), "--heldout-fraction", "0.3", "--folds", "3"],
        "--heldout-fraction and --folds exclude each other",
    ),
    "--critic with --bound club": lambda t: (
        ["estimate", _pair(t), _pair(t), "--bound", "club", "--critic", "separable"],
        "--critic does not apply to --bound club",
    ),
    "--resume with --overwrite": lambda t: (
        ["train", "--out", t / "r", "--resume", "--overwrite"],
        "exclude each other",
    ),
    "--seed with a train.seed override": lambda t: (
        ["train", "--out", t / "r", "--seed", "3", "train.seed=4"],
        "--seed and the override train.seed=... exclude each other",
    ),
    "--method with a train.methods override": lambda t: (
        ["train", "--out", t / "r", "--method", "SimCLR", "train.methods=SupCon"],
        "--method and the override train.methods=... exclude each other",
    ),
}


@pytest.mark.parametrize("case", list(EXCLUSIVE))
def test_options_that_exclude_each_other_are_refused_never_ignored(case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys, EXCLUSIVE)
