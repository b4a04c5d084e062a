"""Tests of the paper's synthetic data generator in ``factorcl_jax.data.synthetic``, and of
``examples/synthetic.py`` (its results.json and plot)."""

import json
import time

import numpy as np
import pytest
from example_scripts import load_example
from sklearn.linear_model import LogisticRegression

from factorcl_jax.config import PRESETS, replace
from factorcl_jax.data import synthetic


@pytest.fixture(scope="module")
def reference():
    """The paper's setting at its full size: 30000 samples, blocks {12: 10, 1: 6, 2: 6}."""
    return synthetic.make_synthetic(seed=0)


def test_shapes_and_dtypes(reference):
    assert reference.x1.shape == reference.x2.shape == (30000, 100)
    assert reference.x1.dtype == reference.x2.dtype == np.float32
    assert reference.y.shape == (30000,) and reference.y.dtype == np.int32
    assert set(np.unique(reference.y).tolist()) == {0, 1}
    assert {name: z.shape for name, z in reference.latents.items()} == {
        "12": (30000, 10),
        "1": (30000, 6),
        "2": (30000, 6),
    }
    assert all(z.dtype == np.float32 for z in reference.latents.values())
    assert [w.shape for w in reference.projections] == [(16, 100), (16, 100)]
    assert len(reference) == 30000 and reference.num_modalities == 2


def test_modalities_are_projected_blocks_in_documented_order(reference):
    z = reference.latents
    w1, w2 = reference.projections
    assert ((w1 >= 0) & (w1 < 1)).all() and 0.45 < w1.mean() < 0.55  # U(0, 1) entries
    np.testing.assert_allclose(
        reference.x1, np.concatenate([z["12"], z["1"]], axis=1) @ w1, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        reference.x2, np.concatenate([z["12"], z["2"]], axis=1) @ w2, rtol=1e-5, atol=1e-5
    )
    label = np.concatenate([z["12"], z["1"], z["2"]], axis=1).mean(axis=1) >= 0
    np.testing.assert_array_equal(reference.y, label.astype(np.int32))


def test_latent_variance_is_one_half(reference):
    for z in reference.latents.values():
        np.testing.assert_allclose(z.var(axis=0), synthetic.LATENT_VARIANCE, atol=0.03)
        np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.03)
    # Blocks are independent of each other.
    corr = np.corrcoef(reference.latents["1"][:, 0], reference.latents["2"][:, 0])[0, 1]
    assert abs(corr) < 0.03


def test_labels_balanced(reference):
    assert abs(reference.y.mean() - 0.5) < 0.02


def test_deterministic_per_seed():
    a = synthetic.make_synthetic(500, seed=3)
    b = synthetic.make_synthetic(500, seed=3)
    c = synthetic.make_synthetic(500, seed=4)
    for field in ("x1", "x2", "y"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x1, c.x1)
    # The projection is fixed by the seed alone, whatever the number of samples.
    np.testing.assert_array_equal(
        a.projections[0], synthetic.make_synthetic(7, seed=3).projections[0]
    )


def test_vectorised_generation_is_fast():
    # A per-sample Python loop over 30000 samples would take far longer; print for the log.
    start = time.perf_counter()
    synthetic.make_synthetic(30000, seed=1)
    print(f"make_synthetic(30000): {time.perf_counter() - start:.3f} s")


def test_train_test_split(reference):
    train, test = synthetic.train_test_split(reference, test_fraction=0.2, seed=0)
    assert len(train) == 24000 and len(test) == 6000
    assert train.latents["12"].shape == (24000, 10) and test.x2.shape == (6000, 100)
    # A partition of the samples, rows kept together.
    rows = np.concatenate([train.latents["12"][:, 0], test.latents["12"][:, 0]])
    np.testing.assert_array_equal(np.sort(rows), np.sort(reference.latents["12"][:, 0]))
    again, _ = synthetic.train_test_split(reference, test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(again.y, train.y)
    other, _ = synthetic.train_test_split(reference, test_fraction=0.2, seed=1)
    assert not np.array_equal(other.y, train.y)


def _probe_accuracy_of_block(label_dims, block="1", seed=0):
    data = synthetic.make_synthetic(8000, label_dims=label_dims, seed=seed)
    train, test = synthetic.train_test_split(data, seed=seed)
    probe = LogisticRegression(max_iter=1000).fit(train.latents[block], train.y)
    majority = max(test.y.mean(), 1 - test.y.mean())
    return probe.score(test.latents[block], test.y), majority


def test_label_reads_the_declared_unique_block():
    accuracy, majority = _probe_accuracy_of_block({"12": 10, "1": 6, "2": 6})
    # Block 1 carries 6 of the 22 label coordinates: expected accuracy
    # 1/2 + arcsin(sqrt(6/22)) / pi = 0.68.
    assert accuracy > majority + 0.1


def test_label_ignores_a_block_with_zero_label_dims():
    accuracy, majority = _probe_accuracy_of_block({"12": 10, "1": 0, "2": 6})
    assert abs(accuracy - majority) < 0.05
    # The shared block still predicts the label.
    shared, _ = _probe_accuracy_of_block({"12": 10, "1": 0, "2": 6}, block="12")
    assert shared > majority + 0.15


def test_partial_label_dims_read_leading_coordinates():
    data = synthetic.make_synthetic(2000, label_dims={"1": 2}, seed=2)
    np.testing.assert_array_equal(data.y, (data.latents["1"][:, :2].mean(axis=1) >= 0))
    assert data.label_dims == {"12": 0, "1": 2, "2": 0}


def test_three_modalities():
    data = synthetic.make_synthetic(
        100, feature_dims={"123": 4, "12": 2, "3": 3, "1": 1}, num_modalities=3, input_dim=8
    )
    assert list(data.feature_dims) == ["123", "12", "1", "3"]
    assert [w.shape for w in data.projections] == [(7, 8), (6, 8), (7, 8)]
    z = data.latents
    np.testing.assert_allclose(
        data.modalities[2], np.concatenate([z["123"], z["3"]], axis=1) @ data.projections[2]
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"label_dims": {"12": 11}}, ValueError, r"exceeds `feature_dims\['12'\]`"),
        ({"label_dims": {"3": 1}}, ValueError, "block name '3'"),
        ({"label_dims": {"13": 1}}, ValueError, "block name '13'"),
        ({"feature_dims": {"12": 4, "1": 2, "x": 1}}, ValueError, "block name 'x'"),
        ({"feature_dims": {"12": 4, "23": 1}}, ValueError, "block name '23'"),
        ({"feature_dims": {"21": 4}}, ValueError, "increasing order"),
        ({"feature_dims": {"12": 4, "1": -1}}, ValueError, "feature_dims"),
        ({"feature_dims": {"1": 4}}, ValueError, "modality 2 contains no latent"),
        ({"feature_dims": [("12", 4)]}, TypeError, "mapping"),
        ({"label_dims": {"12": 0, "1": 0, "2": 0}}, ValueError, "selects no coordinate"),
        ({"label_dims": {"12": 0}}, ValueError, "selects no coordinate"),
        ({"label_dims": {"12": 1.5}}, TypeError, "label_dims"),
        ({"feature_dims": {"12": 2, "1": 1, "2": 1}, "label_dims": {"1": 2}}, ValueError, "1"),
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"input_dim": 2.0}, TypeError, "input_dim"),
        ({"num_modalities": 10}, ValueError, "num_modalities"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        synthetic.make_synthetic(**{"num_samples": 10, **kwargs})


def test_bad_split_raises(reference):
    with pytest.raises(ValueError, match="test_fraction"):
        synthetic.train_test_split(reference, test_fraction=1.0)
    with pytest.raises(TypeError, match="data"):
        synthetic.train_test_split(reference.x1)


@pytest.mark.slow
def test_example_writes_results_json_and_sweep_png(tmp_path, monkeypatch):
    example = load_example("synthetic")
    tiny = replace(
        PRESETS["quick"],
        data={"num_samples": 600},
        model={"encoder_hidden": 16, "head_hidden": 16, "embed_dim": 8, "critic_hidden": 16},
        train={"epochs": 1},
    )
    monkeypatch.setitem(example.PRESETS, "quick", tiny)
    example.main(["--quick", "--methods", "FactorCL-SSL", "SimCLR", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["reference_setting"]) == {"FactorCL-SSL", "SimCLR", example.RAW}
    assert all(0.0 <= acc <= 1.0 for acc in results["reference_setting"].values())
    assert results["reference_setting"][example.RAW] > 0.9  # linear latents: a linear probe
    assert [point["unique_share"] for point in results["sweep"]] == [0.0, 1.0]
    assert results["sweep"][1]["label_dims"] == {"12": 0, "1": 8, "2": 8}
    assert results["config"]["model"]["normalize_heads"] is True
    assert results["config"]["data"]["num_samples"] == 600
    assert (tmp_path / "sweep.png").stat().st_size > 0
