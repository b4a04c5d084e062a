"""Interaction labels of the synthetic data, and the redundancy/uniqueness/synergy example."""

import json

import numpy as np
import pytest
from example_scripts import load_example

from factorcl_jax.data.synthetic import (
    LABEL_KINDS,
    interaction_labels,
    make_synthetic,
    train_test_split,
)
from factorcl_jax.evaluation import probe


@pytest.fixture(scope="module")
def splits():
    return train_test_split(make_synthetic(4000, seed=3), seed=3)


def raw_probe(splits, kind, views):
    features = [np.concatenate([getattr(s, v) for v in views], axis=1) for s in splits]
    labels = [interaction_labels(s, kind) for s in splits]
    return probe.linear_probe_accuracy(
        features[0], labels[0], features[1], labels[1], num_classes=2
    )


def test_every_label_kind_is_balanced():
    data = make_synthetic(20000, seed=1)
    for kind in LABEL_KINDS:
        labels = interaction_labels(data, kind)
        assert labels.dtype == np.int32 and set(np.unique(labels)) == {0, 1}
        assert abs(labels.mean() - 0.5) < 0.02, kind


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "decodable"),
    [
        ("redundant", {"x1": True, "x2": True}),
        ("unique", {"x1": True, "x2": False}),
        ("synergistic", {"x1": False, "x2": False}),
    ],
)
def test_which_modality_linearly_determines_which_label(splits, kind, decodable):
    for view, expected in decodable.items():
        accuracy = raw_probe(splits, kind, (view,))
        assert accuracy > 0.95 if expected else accuracy < 0.57, (kind, view, accuracy)


@pytest.mark.slow
def test_synergy_is_in_both_modalities_together_but_not_linearly(splits):
    assert raw_probe(splits, "synergistic", ("x1", "x2")) < 0.57  # XOR is not linear
    # ... yet the two modalities determine it: x_i = [z_12; z_i] W_i is invertible.
    train_split = splits[0]
    unique = [
        (x @ np.linalg.pinv(w))[:, 10]  # first coordinate of z_i after the 10 shared ones
        for x, w in zip(train_split.modalities, train_split.projections, strict=True)
    ]
    recovered = ((unique[0] >= 0) != (unique[1] >= 0)).astype(np.int32)
    agreement = np.mean(recovered == interaction_labels(train_split, "synergistic"))
    assert agreement > 0.995


def test_interaction_label_errors():
    data = make_synthetic(10, seed=0)
    with pytest.raises(ValueError, match="`kind` must be one of"):
        interaction_labels(data, "mixed")
    with pytest.raises(TypeError, match="`data` must be a SyntheticData"):
        interaction_labels({"x1": data.x1}, "unique")
    no_second = make_synthetic(10, feature_dims={"12": 3, "1": 2}, seed=0)
    with pytest.raises(ValueError, match=r"lacks \['2'\]"):
        interaction_labels(no_second, "synergistic")


@pytest.fixture(scope="module")
def example():
    return load_example("interactions")


@pytest.fixture(scope="module")
def relation_data(example):
    data = make_synthetic(40000, seed=5)
    permutation = example.relation_permutation(5)
    return data, permutation, example.biased_pairs(data, permutation, seed=5)


def test_relation_bins_are_equal_probability_and_the_permutation_is_seeded(example):
    bins = example.RELATION_BINS
    z = make_synthetic(40000, seed=2).latents["2"][:, 0]
    counts = np.bincount(example.coordinate_bins(z, bins), minlength=bins)
    assert counts.sum() == len(z) and np.all(np.abs(counts / len(z) - 1 / bins) < 0.01)
    permutation = example.relation_permutation(3)
    assert sorted(permutation.tolist()) == list(range(bins))
    np.testing.assert_array_equal(permutation, example.relation_permutation(3))
    with pytest.raises(ValueError, match="`bins` must be an int >= 2"):
        example.relation_permutation(0, bins=1)


def test_relation_label_is_independent_of_each_modality_on_unbiased_samples(example, relation_data):
    data, permutation, _ = relation_data
    bins = len(permutation)
    label = example.relation_labels(data, permutation)
    assert label.dtype == np.int32 and abs(label.mean() - 1 / bins) < 0.01
    for block in ("1", "2"):
        linked = example.coordinate_bins(data.latents[block][:, 0], bins)
        for b in range(bins):  # P(y = 1 | the bin of one modality) = 1 / K for every bin
            assert abs(label[linked == b].mean() - 1 / bins) < 0.02, (block, b)


def test_the_relation_holds_in_every_biased_pretraining_pair(example, relation_data):
    data, permutation, biased = relation_data
    bins = len(permutation)
    assert example.relation_labels(biased, permutation).min() == 1
    # Only z_2[0] (and so x_2) changed; its marginal is still N(0, 0.5) binned uniformly.
    np.testing.assert_array_equal(biased.x1, data.x1)
    for block in ("12", "1"):
        np.testing.assert_array_equal(biased.latents[block], data.latents[block])
    np.testing.assert_array_equal(biased.latents["2"][:, 1:], data.latents["2"][:, 1:])
    counts = np.bincount(example.coordinate_bins(biased.latents["2"][:, 0], bins))
    assert np.all(np.abs(counts / len(data) - 1 / bins) < 0.01)
    assert abs(biased.latents["2"][:, 0].var() - 0.5) < 0.02
    recomputed = (
        np.concatenate([biased.latents["12"], biased.latents["2"]], 1) @ (biased.projections[1])
    )
    np.testing.assert_allclose(biased.x2, recomputed, rtol=1e-5, atol=1e-4)
    original = np.concatenate([data.latents["12"], data.latents["2"]], 1) @ data.projections[1]
    np.testing.assert_allclose(data.x2, original, rtol=1e-5, atol=1e-4)  # the same formula


@pytest.mark.slow
def test_the_relation_label_is_at_chance_for_linear_probes_on_raw_inputs(example):
    train_split, test_split = train_test_split(make_synthetic(4000, seed=4), seed=4)
    permutation = example.relation_permutation(4)
    labels = [example.relation_labels(s, permutation) for s in (train_split, test_split)]
    features = [np.concatenate([s.x1, s.x2], axis=1) for s in (train_split, test_split)]
    assert 0.43 < example.probe_accuracy(features, labels) < 0.57


@pytest.mark.slow
def test_probe_accuracy_is_balanced(example):
    """A feature that says nothing scores 50% however rare the positives are."""
    rng = np.random.default_rng(0)
    labels = [(rng.random(n) < 0.1).astype(np.int32) for n in (2000, 1000)]
    noise = [rng.normal(size=(n, 3)).astype(np.float32) for n in (2000, 1000)]
    assert abs(example.probe_accuracy(noise, labels) - 0.5) < 0.06
    signal = [
        np.concatenate([x, y[:, None].astype(np.float32)], axis=1)
        for x, y in zip(noise, labels, strict=True)
    ]
    assert example.probe_accuracy(signal, labels) == 1.0


@pytest.mark.slow
def test_example_writes_results_json_and_a_grouped_bar_png(tmp_path):
    example = load_example("interactions")
    payload = example.main(["--quick", "--methods", "CoMM,FactorCL-SUP", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == json.loads(json.dumps(payload))
    kinds = [*LABEL_KINDS, example.BIASED]
    assert written["label_kinds"] == kinds
    assert written["trained_per_split"] == ["CoMM"]
    assert written["trained_per_label_kind"] == ["FactorCL-SUP"]
    assert list(written["results"]) == ["CoMM", "FactorCL-SUP", *example.RAW]
    for row in written["results"].values():
        assert list(row) == kinds
        for summary in row.values():
            assert set(summary) == {"mean", "std", "seeds"} and len(summary["seeds"]) == 1
            assert 0.0 <= summary["mean"] <= 1.0
    assert list(written["relation_after_unbiased_pretraining"]) == ["CoMM"]
    raw = written["results"]["raw [x1; x2]"]
    assert raw["redundant"]["mean"] > 0.9 and raw["synergistic"]["mean"] < 0.6
    assert raw[example.BIASED]["mean"] < 0.6
    assert set(written["winners"]) == set(kinds)
    assert set(written["train_seconds"]) == {"CoMM", "FactorCL-SUP"}
    assert written["wall_seconds"] > 0 and written["findings"]
    assert (tmp_path / "interactions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
