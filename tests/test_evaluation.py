"""Evaluation: probe accuracies of trained models, train-then-probe, the raw-input probe."""

import numpy as np
import pytest
from helpers import tiny_config

from factorcl_jax import evaluation
from factorcl_jax.config import replace
from factorcl_jax.training.builder import build_trainer

CONFIG = tiny_config(model={"critic_hidden": 16})


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
    trainer = build_trainer(CONFIG, "FactorCL-SUP")
    result = evaluation.fit_and_probe(
        trainer,
        train_data,
        test_data,
        CONFIG,
        representations=evaluation.REPRESENTATIONS,
        progress=False,
    )
    return trainer, result


@pytest.mark.slow
def test_fit_and_probe_reports_accuracies_history_and_times(trained):
    _, trained = trained
    assert trained.method == "FactorCL-SUP"
    assert set(trained.accuracies) == set(evaluation.REPRESENTATIONS)
    # The label is linear in the inputs and the small encoders keep it: well above chance
    # (0.5; 0.7 of the 80 test rows is 3.6 standard errors above it).
    assert all(0.7 < accuracy <= 1.0 for accuracy in trained.accuracies.values())
    assert len(trained.history) == CONFIG.train.epochs * (240 // CONFIG.train.batch_size)
    assert "term/shared/infonce" in trained.history[-1]
    assert trained.train_seconds > 0 and trained.probe_seconds > 0
    assert trained.wall_seconds == trained.train_seconds + trained.probe_seconds
    assert int(trained.state.step) == len(trained.history)


@pytest.mark.slow
def test_probe_accuracies_reproduces_fit_and_probe(trained):
    trainer, trained = trained
    train_data, test_data = split_data()
    accuracies = evaluation.probe_accuracies(
        trainer, trained.state.params, train_data, test_data, representations="encoders"
    )
    assert accuracies == {"encoders": trained.accuracies["encoders"]}


@pytest.mark.slow
def test_ssl_method_trains_with_the_config_augmentations_and_probes_its_representation():
    train_data, test_data = split_data(num_rows=160)
    config = replace(CONFIG, train={"seed": 1}, probe={"representation": "encoders"})
    result = evaluation.fit_and_probe(
        build_trainer(config, "SimCLR"), train_data, test_data, config, progress=False
    )
    assert list(result.accuracies) == ["encoders"]
    assert 0.0 <= result.accuracies["encoders"] <= 1.0


@pytest.mark.slow
def test_raw_input_accuracy_reads_the_named_inputs():
    train_data, test_data = split_data()
    both = evaluation.raw_input_accuracy(train_data, test_data)
    only_x2 = evaluation.raw_input_accuracy(train_data, test_data, keys=("x2",))
    # y = shared_0 + x1_3 > 0: x1's unique coordinate is only in [x1; x2], not in x2 alone.
    assert both > 0.95 and only_x2 < both - 0.1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: {k: v for k, v in d.items() if k != "y"}, "lacks \\['y'\\]"),
        (lambda d: {**d, "y": d["y"][:-1]}, "same, non-zero number of rows"),
        (lambda d: {**d, "y": d["y"].astype(np.float32)}, "integer labels"),
    ],
)
def test_bad_data_fails_with_a_clear_error(trained, change, message):
    trainer, trained = trained
    train_data, test_data = split_data()
    with pytest.raises(ValueError, match=message):
        evaluation.probe_accuracies(trainer, trained.state.params, train_data, change(test_data))


@pytest.mark.slow
def test_unknown_representation_is_rejected(trained):
    trainer, trained = trained
    train_data, test_data = split_data()
    with pytest.raises(ValueError, match="subset of"):
        evaluation.probe_accuracies(
            trainer, trained.state.params, train_data, test_data, representations=["z"]
        )
