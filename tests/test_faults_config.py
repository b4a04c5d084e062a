"""Faults of configuration: every wrong value, key and config file is one line, exit 2."""

import pytest
from helpers import (
    assert_one_line,
    assert_refused,
    config_case,
    expect,
    mkdir,
    run_in_process,
    snapshot,
)

CASES = {
    "epochs float 1e30": expect(
        lambda t: ["train", "--out", t / "r", "train.epochs=1e30"], "must be int"
    ),
    "epochs beyond int32": expect(
        lambda t: ["train", "--out", t / "r", f"train.epochs={10**30}"], "train.epochs"
    ),
    "negative batch size": expect(
        lambda t: ["train", "--out", t / "r", "train.batch_size=-1"], "train.batch_size"
    ),
    "batch of one": expect(
        lambda t: ["train", "--out", t / "r", "train.batch_size=1"], "train.batch_size"
    ),
    "empty --out": expect(lambda t: ["train", "--out", ""], "--out must name a directory"),
    "zero embed_dim": expect(
        lambda t: ["train", "--out", t / "r", "model.embed_dim=0"], "model.embed_dim"
    ),
    "zero num_samples": expect(
        lambda t: ["train", "--out", t / "r", "data.num_samples=0"], "data.num_samples"
    ),
    "NaN learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=NaN"], "finite"
    ),
    "inf learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=Infinity"], "finite"
    ),
    "-inf learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=-Infinity"], "finite"
    ),
    "negative learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=-1"],
        "train.learning_rate must be a finite number > 0",
    ),
    "zero learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=0"],
        "train.learning_rate must be a finite number > 0",
    ),
    "string learning rate": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=nan"], "must be float"
    ),
    "bool where an int goes": expect(
        lambda t: ["train", "--out", t / "r", "train.epochs=true"], "must be int"
    ),
    "bool where a float goes": expect(
        lambda t: ["train", "--out", t / "r", "train.learning_rate=false"], "must be float"
    ),
    "int where a bool goes": expect(
        lambda t: ["train", "--out", t / "r", "model.normalize_heads=1"], "must be bool"
    ),
    "negative seed override": expect(
        lambda t: ["train", "--out", t / "r", "train.seed=-1"], "train.seed"
    ),
    "seed beyond the PRNG": expect(
        lambda t: ["train", "--out", t / "r", f"train.seed={2**32}"], "4294967295"
    ),
    "--seed beyond the PRNG": expect(
        lambda t: ["train", "--out", t / "r", "--seed", 2**64], "train.seed"
    ),
    "--seed not an int": expect(
        lambda t: ["train", "--out", t / "r", "--seed", "1e3"], "invalid int value"
    ),
    "negative data seed": expect(
        lambda t: ["train", "--out", t / "r", "data.seed=-5"], "data.seed"
    ),
    "fraction out of range": expect(
        lambda t: ["train", "--out", t / "r", "data.test_fraction=0.9"], "data.test_fraction"
    ),
    "negative latent size": expect(
        lambda t: ["train", "--out", t / "r", 'data.feature_dims={"12": -1}'], "feature_dims"
    ),
    "zero block size": expect(
        lambda t: ["train", "--out", t / "r", "memory.block_size=0"], "memory.block_size"
    ),
    "zero keep_last": expect(
        lambda t: ["train", "--out", t / "r", "checkpoint.keep_last=0"], "checkpoint.keep_last"
    ),
    "negative every_steps": expect(
        lambda t: ["train", "--out", t / "r", "checkpoint.every_steps=-1"], "every_steps"
    ),
    "mask rate above 1": expect(
        lambda t: ["train", "--out", t / "r", "augment.rate=2"], "augment.rate"
    ),
    "unknown augmentation": expect(
        lambda t: ["train", "--out", t / "r", "augment.names=bogus"], "augment.names"
    ),
    "unknown schedule": expect(
        lambda t: ["train", "--out", t / "r", "train.lr_schedule=linear"], "lr_schedule"
    ),
    "method twice": expect(
        lambda t: ["train", "--out", t / "r", "train.methods=SimCLR,SimCLR"], "twice"
    ),
    "empty methods": expect(
        lambda t: ["train", "--out", t / "r", "train.methods=[]"], "at least one method"
    ),
    "unknown method": expect(
        lambda t: ["train", "--out", t / "r", "train.methods=CLIP"], "unknown method"
    ),
    "unknown section": expect(lambda t: ["train", "--out", t / "r", "optim.lr=1"], "optim"),
    "unknown key": expect(lambda t: ["train", "--out", t / "r", "train.lr=1"], "train.lr"),
    "override without =": expect(lambda t: ["train", "--out", t / "r", "epochs"], "section.key"),
    "deeply nested override": expect(
        lambda t: ["train", "--out", t / "r", "train.epochs=" + "[" * 100000], "must be int"
    ),
    "unicode override value": expect(
        lambda t: ["train", "--out", t / "r", "train.lr_schedule=cösine"], "lr_schedule"
    ),
    "overrides on both sides of options": expect(
        lambda t: ["train", "model.embed_dim=8", "--out", t / "r", "train.epochs=0"],
        "train.epochs",
    ),
    "process id beyond the processes": expect(
        lambda t: ["train", "--out", t / "r", "--num-processes", 2, "--process-id", 2],
        "--process-id must be in [0, 1]",
    ),
    "negative process id": expect(
        lambda t: ["train", "--out", t / "r", "--process-id", -1], "--process-id"
    ),
    "devices zero": expect(lambda t: ["train", "--out", t / "r", "--devices", 0], "positive"),
    "devices beyond the machine": expect(
        lambda t: ["train", "--out", t / "r", "--devices", 4096], "--devices"
    ),
    "data too large for memory": expect(
        lambda t: [
            "train",
            "--out",
            t / "r",
            "data.num_samples=2000000000",
            "data.input_dim=100000",
        ],
        "needs at least",
    ),
    "pair activations too large": expect(
        lambda t: [
            "train",
            "--out",
            t / "r",
            "train.batch_size=2000000",
            "data.num_samples=3000000",
            "model.critic_hidden=4096",
        ],
        "pair activations",
    ),
    "model too large": expect(
        lambda t: ["train", "--out", t / "r", "model.encoder_hidden=2000000000"], "Adam state"
    ),
    "malformed TOML": config_case(".toml", b"[train\nepochs = 3\n", "line 1"),
    "malformed JSON": config_case(".json", b'{"train": {"epochs": 3,}}', "line 1"),
    "malformed YAML": config_case(".yaml", b"train:\n  epochs: [1\n", "YAML at line"),
    "non-UTF-8 TOML": config_case(".toml", b"[train]\nepochs = 3\n# \xff\xfe\n", "line 3"),
    "non-UTF-8 JSON": config_case(".json", b'{"train": "\xe9"}', "not UTF-8"),
    "binary junk config": config_case(".yaml", bytes(range(256)), "not UTF-8"),
    "empty JSON config": config_case(".json", b"", "not valid JSON"),
    "JSON list config": config_case(".json", b"[1, 2]", "top level"),
    "JSON NaN learning rate": config_case(".json", b'{"train": {"learning_rate": NaN}}', "finite"),
    "JSON nested too deep": config_case(".json", b"[" * 100000, "not valid JSON"),
    "YAML python tag": config_case(
        ".yaml", b"train: !!python/object/apply:os.system ['true']\n", "not valid YAML"
    ),
    "TOML wrong type": config_case(".toml", b"[train]\nepochs = 'many'\n", "must be int"),
    "TOML preset not a name": config_case(".toml", b"preset = 3\n", "preset"),
    "TOML unknown preset": config_case(".toml", b'preset = "tpu"\n', "unknown preset"),
    "unknown config suffix": config_case(".ini", b"[train]\n", "unknown config format"),
    "config is a directory": expect(
        lambda t: ["train", "--config", t, "--out", t / "r"], "unknown config format"
    ),
    "config is a directory named .toml": lambda t: (
        ["train", "--config", mkdir(t / "d.toml"), "--out", t / "r"],
        "cannot read config file",
    ),
    "missing config": expect(
        lambda t: ["train", "--config", t / "none.toml", "--out", t / "r"], "cannot read"
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_mistakes_are_one_line_exit_2_and_change_no_file(case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys, CASES)


# ------------------------------------------------------------------ every format, a key given twice

DUPLICATES = {
    ".toml": {
        "section twice": b"[train]\nepochs = 3\n[train]\nepochs = 4\n",
        "key twice": b"[train]\nepochs = 3\nepochs = 4\n",
        "nested key twice": b'[data.feature_dims]\n"12" = 3\n"12" = 4\n',
    },
    ".json": {
        "section twice": b'{"train": {"epochs": 3}, "train": {"epochs": 4}}',
        "key twice": b'{"train": {"epochs": 3, "epochs": 4}}',
        "nested key twice": b'{"data": {"feature_dims": {"12": 3, "12": 4}}}',
    },
    ".yaml": {
        "section twice": b"train:\n  epochs: 3\ntrain:\n  epochs: 4\n",
        "key twice": b"train:\n  epochs: 3\n  epochs: 4\n",
        "nested key twice": b"data:\n  feature_dims:\n    '12': 3\n    '12': 4\n",
    },
}
OVERRIDES = {
    "key twice": ["train.epochs=3", "train.epochs=4"],
    "nested key twice": ['data.feature_dims={"12": 3, "12": 4}'],
}


@pytest.mark.parametrize(
    ("suffix", "case"), [(suffix, case) for suffix, cases in DUPLICATES.items() for case in cases]
)
def test_a_config_file_giving_a_key_twice_is_refused(suffix, case, tmp_path, capsys):
    path = tmp_path / f"config{suffix}"
    path.write_bytes(DUPLICATES[suffix][case])
    before = snapshot(tmp_path)
    status, captured = run_in_process(["train", "--config", path, "--out", tmp_path / "r"], capsys)
    assert_one_line(status, captured.err, expected=str(path))
    assert "twice" in captured.err or "overwrite" in captured.err  # tomllib: "Cannot overwrite"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", list(OVERRIDES))
def test_overrides_giving_a_key_twice_are_refused(case, tmp_path, capsys):
    args = ["train", "--out", tmp_path / "r", *OVERRIDES[case]]
    status, captured = run_in_process(args, capsys)
    assert_one_line(status, captured.err, expected="twice")
    assert not (tmp_path / "r").exists()
