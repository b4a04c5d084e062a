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


@pytest.mark.slow
def test_example_writes_results_json_and_a_grouped_bar_png(tmp_path):
    example = load_example("interactions")
    payload = example.main(["--quick", "--methods", "CoMM,FactorCL-SUP", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == json.loads(json.dumps(payload))
    assert written["label_kinds"] == list(LABEL_KINDS)
    assert written["trained_once_per_seed"] == ["CoMM"]
    assert written["trained_per_label_kind"] == ["FactorCL-SUP"]
    assert list(written["results"]) == ["CoMM", "FactorCL-SUP", *example.RAW]
    for row in written["results"].values():
        assert list(row) == list(LABEL_KINDS)
        for summary in row.values():
            assert set(summary) == {"mean", "std", "seeds"} and len(summary["seeds"]) == 1
            assert 0.0 <= summary["mean"] <= 1.0
    raw = written["results"]["raw [x1; x2]"]
    assert raw["redundant"]["mean"] > 0.9 and raw["synergistic"]["mean"] < 0.6
    assert set(written["winners"]) == set(LABEL_KINDS)
    assert set(written["train_seconds"]) == {"CoMM", "FactorCL-SUP"}
    assert written["wall_seconds"] > 0 and written["findings"]
    assert (tmp_path / "interactions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
