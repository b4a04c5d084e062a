"""The bimodal Trifeatures example: its probe, its data plumbing and a tiny end-to-end run."""

import json

import numpy as np
import pytest
from example_scripts import load_example

from factorcl_jax.data.trifeatures import bimodal_trifeatures
from factorcl_jax.runs.rundir import RunDirectoryError


@pytest.fixture(scope="module")
def example():
    return load_example("trifeatures")


@pytest.fixture(scope="module")
def data():
    return bimodal_trifeatures(1024, resolution=16, num_per_combination=1, seed=0)


def test_probe_sets_are_unbiased_pairs_with_their_labels(example, data):
    budget = example.Budget(num_pairs=1024, resolution=16, probe_train=512, probe_test=512)
    sets = example.probe_sets(data, budget)
    assert sets["train"]["x1"].shape == (512, 16, 16, 3)
    assert len(sets["test"]["x2"]) % example.EMBED_BATCH == 0
    labels = data.labels("train")
    np.testing.assert_array_equal(sets["train"]["labels"]["uniqueness"], labels["texture1"][:512])
    np.testing.assert_array_equal(
        sets["train"]["x2"], data.train_pool.images[data.train_pairs[:512, 1]]
    )
    assert 0.03 < sets["test"]["labels"]["synergy"].mean() < 0.2  # about one pair in ten
    with pytest.raises(ValueError, match="unbiased"):
        example.probe_sets(data.with_pairs(biased=True), budget)


def test_biased_pretraining_pairs_all_hold_the_synergy_relation(example, data):
    sets = example.pretraining_sets({"unbiased": data, "biased": data.with_pairs(biased=True)})
    assert sets["biased"]["labels"]["synergy"].min() == 1
    assert sets["unbiased"]["labels"]["synergy"].mean() < 0.2
    assert sets["biased"]["x1"].shape == (1024, 16, 16, 3)


def test_pooled_pixels_average_squares(example):
    x = np.arange(2 * 16 * 16 * 3, dtype=np.float32).reshape(2, 16, 16, 3)
    pooled = example.pooled_pixels(x)
    assert pooled.shape == (2, 8 * 8 * 3)
    np.testing.assert_allclose(pooled[0, :3], x[0, :2, :2].mean(axis=(0, 1)))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"probe_train": 1000}, "multiples of"),
        ({"probe_test": 0}, "positive multiples"),
        ({"num_pairs": 512}, "cannot exceed"),
        ({"resolution": 4}, "at least 8"),
    ],
)
def test_bad_budgets_are_refused(example, changes, match):
    budget = example.Budget(num_pairs=2048, probe_train=1024, probe_test=512)
    for field, value in changes.items():
        budget = example.dataclasses.replace(budget, **{field: value})
    with pytest.raises(ValueError, match=match):
        example.check_budget(budget)


def test_bad_arguments_and_a_used_directory_are_refused(example, tmp_path, capsys):
    with pytest.raises(SystemExit):
        example.main(["--methods", "SimCLR,OurCL-SSL"])
    assert "do not apply here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        example.main(["--seeds", "0"])
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(RunDirectoryError):
        example.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "results.json").read_text() == "{}"


@pytest.mark.slow
def test_tiny_run_writes_results_json_and_a_png(example, tmp_path):
    methods = ["SimCLR", "CoMM", "SupCon"]
    payload = example.main(
        ["--quick", "--pairs", "1024", "--methods", ",".join(methods), "--out", str(tmp_path)]
    )
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == json.loads(json.dumps(payload))
    assert written["seeds"] == 1 and written["methods"] == methods
    assert list(written["labels"]) == list(example.LABELS)
    assert written["labels"]["synergy"]["pretraining_pairs"] == "biased"
    assert list(written["results"]) == [*methods, *example.RAW]
    for row in written["results"].values():
        assert list(row) == list(example.LABELS)
        for entry in row.values():
            assert set(entry) == {"mean", "std", "seeds"} and len(entry["seeds"]) == 1
            assert 0.0 <= entry["mean"] <= 1.0
    published = written["published"]["percent"]
    assert published["CoMM"] == {"redundancy": 100.0, "uniqueness": 87.8, "synergy": 71.9}
    assert published["InfMasking"]["synergy"] == 77.0
    assert written["published"]["std"]["InfMasking"] == {"uniqueness": 2.3, "synergy": 4.2}
    diagnostics = written["diagnostics"]
    assert list(diagnostics["synergy_after_unbiased_pretraining"]) == ["SimCLR", "CoMM"]
    assert list(diagnostics["encoders"]) == methods
    assert 0.0 < diagnostics["synergy_chance_spread"] < 0.1
    assert set(written["train_seconds"]) == set(methods) and written["wall_seconds"] > 0
    assert written["findings"]
    assert (tmp_path / "trifeatures.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
