"""The two-view digits dataset and the digits example."""

import json
import sys

import numpy as np
import pytest
from example_scripts import load_example
from sklearn.datasets import load_digits

from factorcl_jax.data import two_view_digits
from factorcl_jax.evaluation import probe


@pytest.fixture(scope="module")
def digits():
    return two_view_digits.load_two_view_digits(seed=0)


def test_shapes_split_and_stratification(digits):
    assert digits.train["x1"].shape == (1347, 40) and digits.test["x2"].shape == (450, 40)
    assert digits.train["x1"].dtype == np.float32 and digits.train["y"].dtype == np.int32
    assert digits.num_classes == 10
    counts = np.bincount(digits.test["y"], minlength=10)
    assert counts.min() >= 44 and counts.max() <= 46  # a quarter of every digit
    assert digits.strips == ((0, 1, 2, 3, 4), (3, 4, 5, 6, 7))


def test_views_are_overlapping_strips_of_the_images():
    clean = two_view_digits.load_two_view_digits(noise=0.0, seed=1)
    x = np.concatenate([clean.train["x1"], clean.test["x1"]]).reshape(-1, 5, 8)
    y = np.concatenate([clean.train["x2"], clean.test["x2"]]).reshape(-1, 5, 8)
    np.testing.assert_array_equal(x[:, 3:], y[:, :2])  # rows 3 and 4 are in both views
    # Every (top strip, bottom strip) pair is a strip pair of some image, with its label.
    reference = load_digits()
    labels_of = {
        image.astype(np.float32).tobytes(): label
        for image, label in zip(reference.images / 16.0, reference.target, strict=True)
    }
    labels = np.concatenate([clean.train["y"], clean.test["y"]])
    for top, bottom, label in zip(x[:20], y[:20], labels[:20], strict=True):
        assert labels_of[np.concatenate([top, bottom[2:]]).tobytes()] == label
    left_right = two_view_digits.load_two_view_digits(split="left_right", overlap=0, noise=0.0)
    assert left_right.train["x1"].shape == (1347, 32)


def test_seeded_and_noisy_per_view():
    a = two_view_digits.load_two_view_digits(seed=3)
    b = two_view_digits.load_two_view_digits(seed=3)
    c = two_view_digits.load_two_view_digits(seed=4)
    np.testing.assert_array_equal(a.train["x1"], b.train["x1"])
    assert not np.array_equal(a.test["y"], c.test["y"])
    shared = a.train["x1"].reshape(-1, 5, 8)[:, 3:] - a.train["x2"].reshape(-1, 5, 8)[:, :2]
    assert 0.12 < shared.std() < 0.16  # two independent noises of std 0.1: sqrt(2) * 0.1


@pytest.mark.slow
def test_each_view_lacks_information_the_other_holds(digits):
    def accuracy(*views):
        features = [
            np.concatenate([s[v] for v in views], axis=1) for s in (digits.train, digits.test)
        ]
        return probe.linear_probe_accuracy(
            features[0], digits.train["y"], features[1], digits.test["y"], num_classes=10
        )

    both = accuracy("x1", "x2")
    assert both > accuracy("x1") + 0.02 and both > accuracy("x2") + 0.02


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "diagonal"}, "`split`"),
        ({"overlap": 3}, "`overlap`"),
        ({"overlap": 10}, "`overlap`"),
        ({"noise": -1.0}, "`noise`"),
        ({"test_fraction": 1.0}, "`test_fraction`"),
        ({"seed": -1}, "`seed`"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        two_view_digits.load_two_view_digits(**kwargs)


def test_missing_scikit_learn_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="install scikit-learn"):
        two_view_digits.load_two_view_digits()


@pytest.mark.slow
def test_example_writes_results_json_and_png(tmp_path):
    example = load_example("digits")
    argv = ["--quick", "--epochs", "1", "--methods", "SupCon", "--out", str(tmp_path)]
    results = example.main(argv)
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == results
    assert list(written) == ["SupCon", *example.RAW]
    for row in written.values():
        assert set(row) == {"mean", "std", "seeds", "seconds"} and len(row["seeds"]) == 1
        assert 0.0 <= row["mean"] <= 1.0
    assert written["SupCon"]["mean"] > 0.5
    assert (tmp_path / "digits.png").stat().st_size > 0
