"""MultiBench loaders on tiny files in the real formats, their errors, and the table runner."""

import json

import numpy as np
import pytest
from example_scripts import load_example
from multibench_fixtures import (
    SIZES,
    write_affect,
    write_data,
    write_mimic,
    write_multibench_mimic,
    write_pickle,
)

from factorcl_jax.data import multibench
from factorcl_jax.models import augment, fusion


@pytest.fixture(scope="module")
def mosi(tmp_path_factory):
    return write_affect(tmp_path_factory.mktemp("affect") / "mosi.npz", "mosi")


def real_lengths(text: np.ndarray) -> np.ndarray:
    """Steps from the first non-zero text step to the end, per sample."""
    nonzero = np.any(text != 0, axis=2)
    return np.where(nonzero.any(1), text.shape[1] - nonzero.argmax(1), 0)


def test_affect_shapes_masks_and_dropped_samples(mosi):
    path, raw = mosi
    data = multibench.load_affect(path, "mosi", modalities=("vision", "text"), max_length=5)
    assert data.modalities == ("vision", "text") and data.input_dims == (5, 7)
    assert data.dropped == {"train": 1, "validation": 1, "test": 1}  # all-zero text
    for name, size in SIZES.items():
        split = getattr(data, "validation" if name == "valid" else name)
        assert set(split) == {"x1", "x2", "mask1", "mask2", "y"}
        assert all(type(array) is np.ndarray for array in split.values())  # host memory only
        assert split["x1"].shape == (size - 1, 5, 5) and split["x2"].shape == (size - 1, 5, 7)
        assert split["x1"].dtype == np.float32 and split["mask1"].dtype == bool
        expected = np.minimum(real_lengths(raw[name]["text"])[:-1], 5)
        np.testing.assert_array_equal(split["mask1"].sum(1), expected)
        np.testing.assert_array_equal(split["mask1"], split["mask2"])  # aligned
        # Right-padded: real steps first, padding exactly zero.
        np.testing.assert_array_equal(split["mask1"], np.arange(5)[None] < expected[:, None])
        assert not split["x1"][~split["mask1"]].any()


def test_affect_keeps_the_first_real_steps_standardised_with_train_statistics(mosi):
    path, raw = mosi
    data = multibench.load_affect(path, "mosi", modalities=("audio", "text"), max_length=4)
    train_text = raw["train"]["text"][:-1]
    lengths = real_lengths(train_text)
    real = np.concatenate(
        [train_text[i, -length:][:4] for i, length in enumerate(lengths)]
    )  # first 4 real steps
    mean, std = data.statistics["text"]
    np.testing.assert_allclose(mean, real.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, real.std(0), rtol=1e-4)
    standard = data.train["x2"][data.train["mask2"]]
    np.testing.assert_allclose(standard.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(standard.std(0), 1.0, atol=1e-4)
    # A test sample: its first real steps, standardised with the *training* statistics.
    test_audio = raw["test"]["audio"][1]
    length = real_lengths(raw["test"]["text"])[1]
    expected = (test_audio[-length:][:4] - data.statistics["audio"][0]) / data.statistics["audio"][
        1
    ]
    np.testing.assert_allclose(data.test["x1"][1, : min(length, 4)], expected, rtol=1e-5, atol=1e-5)


def test_sentiment_label_schemes(mosi):
    path, raw = mosi
    values = raw["test"]["labels"].reshape(-1)[:-1]
    binary = multibench.load_affect(path, "mosi")
    np.testing.assert_array_equal(binary.test["y"], values >= 0)
    assert binary.num_classes == 2 and (values == 0).any()
    nonzero = multibench.load_affect(path, "mosi", label_scheme="binary_nonzero")
    np.testing.assert_array_equal(nonzero.test["y"], values[values != 0] > 0)
    assert nonzero.dropped["test"] == 1 + int((values == 0).sum())
    three = multibench.load_affect(path, "mosi", label_scheme="three_class")
    np.testing.assert_array_equal(three.test["y"], np.sign(values).astype(int) + 1)
    assert three.num_classes == 3


@pytest.mark.parametrize(("task", "negative"), [("humor", 0.0), ("sarcasm", -1.0)])
def test_humor_and_sarcasm_labels_are_binary(tmp_path, task, negative):
    path, raw = write_affect(tmp_path / f"{task}.npz", task)
    values = raw["train"]["labels"].reshape(-1)[:-1]
    assert set(np.unique(values)) == {negative, 1.0}
    data = multibench.load_affect(path, task)
    np.testing.assert_array_equal(data.train["y"], values == 1.0)
    with pytest.raises(ValueError, match="label_scheme"):
        multibench.load_affect(path, task, label_scheme="three_class")


def test_unaligned_sequences_start_at_their_own_first_real_step(tmp_path):
    path, raw = write_affect(tmp_path / "mosi.npz")
    raw["train"]["vision"][0, :3] = 0.0  # sample 0: full-length text, vision starts at step 3
    write_data(path, raw)
    aligned = multibench.load_affect(path, "mosi", max_length=8)
    unaligned = multibench.load_affect(path, "mosi", max_length=8, aligned=False)
    assert aligned.train["mask1"][0].sum() == 8 and unaligned.train["mask1"][0].sum() == 5
    mean, std = unaligned.statistics["vision"]
    np.testing.assert_allclose(
        unaligned.train["x1"][0, :5] * std + mean, raw["train"]["vision"][0, 3:], rtol=1e-4
    )


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
def test_mimic_split_layout(tmp_path, suffix):
    path, raw = write_mimic(tmp_path / f"mimic{suffix}")
    data = multibench.load_mimic(path, trust_pickle=suffix == ".pkl")
    assert data.modalities == ("static", "timeseries") and data.num_classes == 2
    assert data.input_dims == (5, 4)
    for name, size in SIZES.items():
        split = getattr(data, "validation" if name == "valid" else name)
        assert set(split) == {"x1", "x2", "mask2", "y"}
        assert split["x1"].shape == (size, 5) and split["x2"].shape == (size, 6, 4)
        assert split["mask2"].all() and split["y"].dtype == np.int32
        np.testing.assert_array_equal(split["y"], raw[name]["labels"])
    np.testing.assert_allclose(data.train["x1"].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.train["x2"].reshape(-1, 4).std(0), 1.0, atol=1e-4)
    mean, std = data.statistics["static"]
    np.testing.assert_allclose(data.test["x1"], (raw["test"]["static"] - mean) / std, rtol=1e-4)


@pytest.mark.parametrize("name", ["im.pk", "im.npz"])
def test_mimic_multibench_im_pk_is_split_like_multibench(tmp_path, name):
    path, raw = write_multibench_mimic(tmp_path / name, num_samples=50)
    icd9 = multibench.load_mimic(path, mimic_task=7, trust_pickle=True)
    sizes = {name: len(getattr(icd9, name)["y"]) for name in ("train", "validation", "test")}
    assert sizes == {"train": 40, "validation": 5, "test": 5} and icd9.num_classes == 2
    assert icd9.train["x2"].shape == (40, 24, 12)
    mortality = multibench.load_mimic(path, mimic_task=-1, trust_pickle=True)
    assert mortality.num_classes == 6
    splits = ("train", "validation", "test")
    all_labels = np.concatenate([getattr(mortality, s)["y"] for s in splits])
    np.testing.assert_array_equal(np.sort(all_labels), np.sort(raw["adm_labels_all"].argmax(1)))


def corrupt(data, split, field, value):
    data[split][field] = value
    return data


def affect_cases():
    def nan(data):
        data["valid"]["vision"][2, -1, 0] = np.nan
        return data

    return {
        "missing split": (
            lambda d: {k: v for k, v in d.items() if k != "test"},
            "missing split 'test'",
        ),
        "missing key": (
            lambda d: {**d, "train": {k: v for k, v in d["train"].items() if k != "vision"}},
            "split 'train' has no field 'vision'",
        ),
        "ragged": (
            lambda d: corrupt(d, "train", "text", [np.zeros((8, 7)), np.zeros((5, 7))]),
            "'train/text' is ragged",
        ),
        "NaN features": (nan, "'valid/vision' holds 1 NaN/inf"),
        "label count mismatch": (
            lambda d: corrupt(d, "test", "labels", d["test"]["labels"][:-2]),
            "'test/labels' has 10 samples but 'test/vision' has 12",
        ),
        "labels not one per sample": (
            lambda d: corrupt(d, "train", "labels", np.zeros((30, 2))),
            r"'train/labels' must hold one value per sample",
        ),
        "modality shape mismatch": (
            lambda d: corrupt(d, "valid", "text", d["valid"]["text"][:, :5]),
            "'valid/text' has shape",
        ),
        "feature width differs across splits": (
            lambda d: corrupt(d, "test", "vision", d["test"]["vision"][..., :4]),
            "'test/vision' has 4 features but 'train/vision' has 5",
        ),
        "sentiment out of range": (
            lambda d: corrupt(d, "train", "labels", d["train"]["labels"] * 10),
            r"'train/labels' must hold sentiment in \[-3, 3\]",
        ),
        "wrong rank": (
            lambda d: corrupt(d, "train", "vision", d["train"]["vision"][:, 0]),
            r"'train/vision' must have shape \[N, T, D\]",
        ),
        "non-numeric": (
            lambda d: corrupt(d, "train", "text", np.full((30, 8, 7), "a")),
            "'train/text' must be numeric",
        ),
        "not a dict": (lambda d: [d], "expected a dict at the top level"),
    }


@pytest.mark.parametrize("case", list(affect_cases()))
def test_corrupt_affect_files_name_file_and_field(tmp_path, case):
    path, data = write_affect(tmp_path / "broken.pkl")
    change, message = affect_cases()[case]
    write_pickle(path, change(data))
    with pytest.raises(multibench.DataFormatError, match=message) as error:
        multibench.load_affect(path, "mosi", trust_pickle=True)
    assert "broken.pkl" in str(error.value)


def test_corrupt_mimic_files_name_file_and_field(tmp_path):
    path, data = write_mimic(tmp_path / "mimic.pkl")
    data["valid"]["static"][0, 0] = np.inf
    write_pickle(path, data)
    with pytest.raises(multibench.DataFormatError, match=r"mimic.pkl: field 'valid/static'"):
        multibench.load_mimic(path, trust_pickle=True)
    loaded = multibench.load_mimic(path, nonfinite="zero", trust_pickle=True)
    assert np.isfinite(loaded.validation["x1"]).all()
    data["valid"]["static"][0, 0] = 0.0
    data["train"]["labels"] = data["train"]["labels"][:5]
    write_pickle(path, data)
    with pytest.raises(multibench.DataFormatError, match="'train/labels' has 5 samples"):
        multibench.load_mimic(path, trust_pickle=True)
    bad_npz = tmp_path / "bad.npz"
    np.savez(bad_npz, static=np.zeros((3, 2)))
    with pytest.raises(multibench.DataFormatError, match=r"bad\.npz: missing split 'train'"):
        multibench.load_mimic(bad_npz)
    np.savez(bad_npz, **{"train/static/x": np.zeros((3, 2))})
    with pytest.raises(multibench.DataFormatError, match=r"bad\.npz: \.npz key 'train/static/x'"):
        multibench.load_mimic(bad_npz)
    not_pickle = tmp_path / "garbage.pkl"
    not_pickle.write_bytes(b"not a pickle")
    with pytest.raises(multibench.DataFormatError, match=r"garbage\.pkl: cannot be read"):
        multibench.load_mimic(not_pickle, trust_pickle=True)
    im_pk, raw = write_multibench_mimic(tmp_path / "im.npz")
    raw["ep_tdata"] = np.zeros((3, 24, 12))
    write_data(im_pk, raw)
    with pytest.raises(multibench.DataFormatError, match=r"im\.npz: fields disagree"):
        multibench.load_mimic(im_pk)


def test_nonfinite_zero_replaces_nan_like_multibench(tmp_path):
    path, data = write_affect(tmp_path / "mosi.npz")
    data["train"]["audio"][0, -1, :] = -np.inf
    write_data(path, data)
    loaded = multibench.load_affect(path, "mosi", modalities=("audio", "text"), nonfinite="zero")
    assert np.isfinite(loaded.train["x1"]).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "iemocap"}, "`task`"),
        ({"modalities": ("vision", "vision")}, "`modalities`"),
        ({"modalities": ("vision", "pose")}, "`modalities`"),
        ({"max_length": 0}, "`max_length`"),
        ({"label_scheme": "five_class"}, "`label_scheme`"),
        ({"nonfinite": "ignore"}, "`nonfinite`"),
    ],
)
def test_bad_arguments(mosi, kwargs, match):
    with pytest.raises(ValueError, match=match):
        multibench.load_affect(mosi[0], **{"task": "mosi", **kwargs})


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.pkl"):
        multibench.load_affect(tmp_path / "nothing.pkl", "mosi")


@pytest.mark.slow
def test_table_runner_quick_end_to_end(mosi, tmp_path, capsys):
    # One row keeps the test short (each row compiles its own step); every row runs the same
    # code, and FactorCL-SUP uses labels, conditioning and the NCE-CLUB critics. (The SSL path
    # on sequences is trained in test_encoders.py.)
    runner = load_example("multibench")
    argv = ["--data", str(mosi[0]), "--task", "mosi", "--quick", "--out", str(tmp_path)]
    results = runner.main([*argv, "--methods", "FactorCL-SUP", "--seeds", "2"])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == results
    assert [row["method"] for row in written["rows"]] == ["FactorCL-SUP"]
    assert written["rows"][0]["paper"] == 70.69 and len(written["rows"][0]["seeds"]) == 2
    assert written["paper_column"] == "MOSI" and written["modalities"] == ["vision", "text"]
    assert all(0 <= row["accuracy"] <= 100 and row["seconds"] > 0 for row in written["rows"])
    out = capsys.readouterr().out
    assert "MOSI (ours)" in out and "MOSI (paper)" in out


@pytest.mark.slow
def test_table_runner_on_mimic(tmp_path):
    path, _ = write_mimic(tmp_path / "mimic.npz")
    runner = load_example("multibench")
    argv = ["--data", str(path), "--task", "mimic", "--quick", "--out", str(tmp_path / "run")]
    results = runner.main([*argv, "--methods", "SupCon"])
    assert results["modalities"] == ["static", "timeseries"]
    assert results["rows"][0]["paper"] == 67.37


def test_table_runner_masks_time_aligned_modalities_jointly(mosi, tmp_path):
    runner = load_example("multibench")
    affect = multibench.load_affect(mosi[0], "mosi")
    assert runner.joint_augmentation(affect) is augment.aligned_time_mask
    mimic = multibench.load_mimic(write_mimic(tmp_path / "mimic.npz")[0])
    assert runner.joint_augmentation(mimic) is None


@pytest.mark.parametrize(
    "extra",
    [["--task", "mimic", "--modalities", "vision,text"], ["--task", "mosi", "--methods", "CLIP"]],
)
def test_table_runner_rejects_bad_arguments(mosi, extra, capsys):
    runner = load_example("multibench")
    with pytest.raises(SystemExit):
        runner.main(["--data", str(mosi[0]), *extra])
    assert "error" in capsys.readouterr().err


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: a stand-in for a malicious pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["evil.pkl", "evil.PKL", "evil.pk", "evil.Pickle"])
def test_pickles_are_refused_without_running_them(tmp_path, name):
    marker = tmp_path / "pwned"
    path = write_pickle(tmp_path / name, {"train": _Payload(marker)})
    for load in (lambda: multibench.load_affect(path, "mosi"), lambda: multibench.load_mimic(path)):
        with pytest.raises(multibench.DataFormatError, match="refusing to unpickle"):
            load()
    assert not marker.exists()


def test_a_pickle_named_npz_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = write_pickle(tmp_path / "evil.NPZ", {"train": _Payload(marker)})
    with pytest.raises(multibench.DataFormatError, match=r"evil\.NPZ: not a readable \.npz"):
        multibench.load_mimic(path)
    assert not marker.exists()


def test_unknown_suffixes_are_refused(tmp_path):
    path = tmp_path / "data.h5"
    path.write_bytes(b"\x89HDF\r\n")
    with pytest.raises(multibench.DataFormatError, match=r"unknown data format '\.h5'"):
        multibench.load_mimic(path)


def test_convert_pickle_writes_an_npz_the_loaders_read_identically(tmp_path):
    source, _ = write_affect(tmp_path / "mosi.pkl")
    target = tmp_path / "mosi.npz"
    with pytest.raises(multibench.DataFormatError, match="trust_pickle"):
        multibench.convert_pickle(source, target)
    assert not target.exists()
    shapes = multibench.convert_pickle(source, target, trust_pickle=True)
    assert shapes["train/vision"] == (30, 8, 5) and shapes["test/id"] == (12,)
    with np.load(target, allow_pickle=False) as archive:
        assert archive["train/id"].dtype.kind == "U"
    converted = multibench.load_affect(target, "mosi")
    original = multibench.load_affect(source, "mosi", trust_pickle=True)
    for split in ("train", "validation", "test"):
        for key, array in getattr(original, split).items():
            np.testing.assert_array_equal(getattr(converted, split)[key], array)
    before = target.read_bytes()
    with pytest.raises(multibench.DataFormatError, match="already exists"):
        multibench.convert_pickle(source, target, trust_pickle=True)
    assert target.read_bytes() == before
    im_pk, _ = write_multibench_mimic(tmp_path / "im.pk")
    multibench.convert_pickle(im_pk, tmp_path / "im.npz", trust_pickle=True)
    converted = multibench.load_mimic(tmp_path / "im.npz")
    original = multibench.load_mimic(im_pk, trust_pickle=True)
    np.testing.assert_array_equal(converted.train["x2"], original.train["x2"])


def test_values_beyond_float32_are_called_overflow_not_nan(tmp_path):
    path, data = write_mimic(tmp_path / "mimic.npz")
    data["train"]["static"][3, 1] = 1e300
    write_data(path, data)
    with pytest.raises(
        multibench.DataFormatError, match=r"'train/static' holds values up to 1e\+300"
    ):
        multibench.load_mimic(path, nonfinite="zero")


def test_empty_feature_axis_is_refused(tmp_path):
    path, data = write_mimic(tmp_path / "mimic.npz")
    data["valid"]["timeseries"] = data["valid"]["timeseries"][..., :0]
    write_data(path, data)
    with pytest.raises(multibench.DataFormatError, match="'valid/timeseries' has an empty axis"):
        multibench.load_mimic(path)


@pytest.mark.slow
def test_table_runner_trains_the_fused_successors(mosi, tmp_path, capsys):
    # The sequence encoders sit under the fusion model (InfMasking differs in its terms only).
    runner = load_example("multibench")
    argv = ["--data", str(mosi[0]), "--task", "mosi", "--quick", "--out", str(tmp_path)]
    results = runner.main([*argv, "--methods", "CoMM"])
    (row,) = results["rows"]
    assert row["method"] == "CoMM" and row["paper"] == 67.5
    assert 0 <= row["accuracy"] <= 100 and row["seconds"] > 0
    assert "CoMM" in capsys.readouterr().out
    assert runner.paper_accuracy("InfMasking", "mosi") == 69.0
    assert runner.paper_accuracy("CoMM", "mosei") is None  # not reported: a "-" in the table
    affect = multibench.load_affect(mosi[0], "mosi")
    encoders = runner.make_encoders(affect, runner.QUICK, quick=True)
    trainer = runner.make_trainer("InfMasking", encoders, affect, runner.QUICK)
    assert isinstance(trainer.model, fusion.FusionModel)
    assert trainer.joint_augmentation is augment.aligned_time_mask
