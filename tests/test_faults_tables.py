"""Faults of data files read by the command: empty, truncated, garbage, pickled, non-finite,
wrongly shaped; never unpickled, never read wrong."""

import numpy as np
import pytest
from helpers import (
    Payload,
    assert_refused,
    dump,
    estimate_case,
    put,
    save,
    savez,
    symlink,
)

CASES = {
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
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_mistakes_are_one_line_exit_2_and_change_no_file(case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys, CASES)


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
