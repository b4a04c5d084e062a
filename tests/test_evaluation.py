"""Evaluation: probe accuracies of trained models and the train-then-probe convenience."""

import numpy as np
import pytest

from factorcl_jax import evaluation

TINY = dict(
    epochs=2,
    batch_size=64,
    learning_rate=3e-3,
    encoder_hidden=32,
    encoder_layers=1,
    embed_dim=8,
    critic_hidden=16,
    progress=False,
)


def split_data(num_rows=320, seed=0):
    """Two modalities sharing 3 coordinates; the label reads one shared, one unique to x1."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(num_rows, 3))
    x1 = np.concatenate([shared, rng.normal(size=(num_rows, 3))], axis=1).astype(np.float32)
    x2 = np.concatenate([shared, rng.normal(size=(num_rows, 3))], axis=1).astype(np.float32)
    y = (shared[:, 0] + x1[:, 3] > 0).astype(np.int32)
    data = {"x1": x1, "x2": x2, "y": y}
    cut = num_rows * 3 // 4
    return {k: v[:cut] for k, v in data.items()}, {k: v[cut:] for k, v in data.items()}


@pytest.fixture(scope="module")
def trained():
    train_data, test_data = split_data()
    return evaluation.train_and_probe("FactorCL-SUP", train_data, test_data, seed=0, **TINY)


def test_train_and_probe_reports_accuracies_history_and_times(trained):
    assert trained.method == "FactorCL-SUP"
    assert set(trained.accuracies) == set(evaluation.REPRESENTATIONS)
    # The label is linear in the inputs and the small encoders keep it: well above chance.
    assert all(0.8 < accuracy <= 1.0 for accuracy in trained.accuracies.values())
    assert len(trained.history) == TINY["epochs"] * (240 // TINY["batch_size"])
    assert "term/shared/infonce" in trained.history[-1]
    assert trained.train_seconds > 0 and trained.probe_seconds > 0
    assert trained.wall_seconds == trained.train_seconds + trained.probe_seconds
    assert int(trained.state.step) == len(trained.history)


def test_probe_accuracies_reproduces_train_and_probe(trained):
    train_data, test_data = split_data()
    accuracies = evaluation.probe_accuracies(
        trained.trainer, trained.state.params, train_data, test_data, representations="encoders"
    )
    assert accuracies == {"encoders": trained.accuracies["encoders"]}
    factorized = evaluation.probe_accuracy(
        trained.trainer,
        trained.state.params,
        train_data,
        test_data,
        representation="factorized",
    )
    assert factorized == trained.accuracies["factorized"]


def test_ssl_method_trains_with_default_augmentations():
    train_data, test_data = split_data(num_rows=160)
    result = evaluation.train_and_probe(
        "SimCLR", train_data, test_data, representations=["factorized"], seed=1, **TINY
    )
    assert list(result.accuracies) == ["factorized"]
    assert 0.0 <= result.accuracies["factorized"] <= 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: {k: v for k, v in d.items() if k != "y"}, "lacks \\['y'\\]"),
        (lambda d: {**d, "y": d["y"][:-1]}, "same, non-zero number of rows"),
        (lambda d: {**d, "y": d["y"].astype(np.float32)}, "integer labels"),
    ],
)
def test_bad_data_fails_with_a_clear_error(trained, change, message):
    train_data, test_data = split_data()
    with pytest.raises(ValueError, match=message):
        evaluation.probe_accuracies(
            trained.trainer, trained.state.params, train_data, change(test_data)
        )


def test_unknown_representation_is_rejected(trained):
    train_data, test_data = split_data()
    with pytest.raises(ValueError, match="subset of"):
        evaluation.probe_accuracies(
            trained.trainer, trained.state.params, train_data, test_data, representations=["z"]
        )
