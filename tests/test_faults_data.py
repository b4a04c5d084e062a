"""Faults of data loaders: MultiBench conversion and loading, degenerate splits of every
loader."""

import re

import numpy as np
import pytest
from helpers import (
    Payload,
    assert_refused,
    convert_case,
    dump,
    put,
    snapshot,
)

CASES = {
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
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_mistakes_are_one_line_exit_2_and_change_no_file(case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys, CASES)


# ------------------------------------------------------------------ every loader, degenerate splits


def _empty(split: dict) -> dict:
    """The split with no samples (every array cut to 0 rows)."""
    return {field: array[:0] for field, array in split.items()}


def _no_text(split: dict) -> dict:
    """Every sample's text all zeros: MultiBench's cleaning drops all of them."""
    return {**split, "text": np.zeros_like(split["text"])}


def _all_neutral(split: dict) -> dict:
    """Every sentiment exactly 0: the ``binary_nonzero`` scheme drops all of them."""
    return {**split, "labels": np.zeros_like(split["labels"])}


AFFECT_DEGENERATE = {"empty": _empty, "no text": _no_text, "all neutral": _all_neutral}
MIMIC_DEGENERATE = {"empty": _empty}


def _load(kind, path):
    from factorcl_jax.data import multibench

    if kind == "affect":
        return multibench.load_affect(path, "mosi", label_scheme="binary_nonzero")
    return multibench.load_mimic(path)


LOADER_CASES = [
    (kind, split, degenerate)
    for kind, degenerates in (("affect", AFFECT_DEGENERATE), ("mimic", MIMIC_DEGENERATE))
    for split in ("train", "valid", "test")
    for degenerate in degenerates
]


@pytest.mark.parametrize(("kind", "split", "degenerate"), LOADER_CASES)
def test_a_split_left_without_samples_is_refused_naming_file_and_field(
    kind, split, degenerate, tmp_path
):
    """Every loader, every split, every way to leave it empty: a DataFormatError naming the
    file and the split, no warning, no NaN handed on."""
    import warnings

    from multibench_fixtures import affect_data, mimic_data, write_npz

    from factorcl_jax.data.multibench import DataFormatError

    data = affect_data() if kind == "affect" else mimic_data()
    cases = AFFECT_DEGENERATE if kind == "affect" else MIMIC_DEGENERATE
    data[split] = cases[degenerate](data[split])
    path = write_npz(tmp_path / "data.npz", data)
    before = snapshot(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}.*'{split}[/']"):
            _load(kind, path)
    assert snapshot(tmp_path) == before


def test_a_label_beyond_the_samples_is_refused(tmp_path):
    from multibench_fixtures import mimic_data, write_npz

    from factorcl_jax.data.multibench import DataFormatError

    data = mimic_data()
    data["train"]["labels"][0] = 10**9
    path = write_npz(tmp_path / "data.npz", data)
    with pytest.raises(DataFormatError, match=r"'train/labels' holds class 1000000000"):
        _load("mimic", path)
