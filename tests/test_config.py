"""Configs: presets, file formats, overrides with type checks, round trip."""

import json

import jax.numpy as jnp
import pytest

from factorcl_jax import config as config_lib
from factorcl_jax.config import ConfigError


def test_presets_are_valid_and_paper_uses_the_paper_sizes():
    paper = config_lib.PRESETS["paper"]
    assert (
        paper.model.encoder_hidden,
        paper.model.embed_dim,
        paper.train.batch_size,
        paper.train.epochs,
        paper.train.learning_rate,
        paper.data.num_samples,
    ) == (512, 128, 256, 10, 1e-4, 30000)
    assert config_lib.PRESETS["cpu"].train.methods == ("FactorCL-SSL", "SimCLR")


def test_dict_round_trip_is_exact():
    for preset in config_lib.PRESETS.values():
        assert config_lib.from_dict(config_lib.to_dict(preset)) == preset
        assert json.loads(json.dumps(config_lib.to_dict(preset))) == config_lib.to_dict(preset)


def test_save_and_load_round_trip(tmp_path):
    config = config_lib.apply_overrides(config_lib.PRESETS["cpu"], ["train.epochs=3"])
    path = config_lib.save_config(config, tmp_path / "config.json")
    assert config_lib.load_config(path) == config


def test_toml_and_yaml_files(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(
        'preset = "paper"\n[train]\nepochs = 2\nmethods = ["SupCon"]\n'
        '[data.feature_dims]\n"12" = 4\n"1" = 2\n"2" = 2\n'
    )
    config = config_lib.load_config(toml)
    assert config.train.epochs == 2 and config.train.methods == ("SupCon",)
    assert config.model.encoder_hidden == 512  # from the paper preset
    assert config.data.feature_dims == {"12": 4, "1": 2, "2": 2}
    import yaml

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"train": {"batch_size": 64}}))
    assert config_lib.load_config(path).train.batch_size == 64


def test_overrides_parse_types_and_lists():
    config = config_lib.apply_overrides(
        config_lib.PRESETS["cpu"],
        [
            "train.learning_rate=3e-4",
            "train.methods=FactorCL-SUP,SupCon",
            "train.epochs=4",
            "memory.block_size=null",
            "model.normalize_heads=true",
            "train.lr_schedule=cosine",
        ],
    )
    assert config.model.normalize_heads is True and config.train.lr_schedule == "cosine"
    assert config.train.learning_rate == 3e-4
    assert config.train.methods == ("FactorCL-SUP", "SupCon")
    assert config.train.epochs == 4 and config.memory.block_size is None
    single = config_lib.apply_overrides(config, ["train.methods=SimCLR"])
    assert single.train.methods == ("SimCLR",)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochz=3", r"unknown key train\.epochz"),
        ("trian.epochs=3", r"unknown config section"),
        ("train.epochs=three", r"train\.epochs must be int, got 'three'"),
        ("train.epochs=2.5", r"train\.epochs must be int"),
        ("train.epochs=0", r"train\.epochs must be an int in \[1, 2147483647\], got 0"),
        ("train.methods=CLIP", r"unknown method 'CLIP'"),
        ("train.learning_rate=-1", r"train\.learning_rate must be a finite number > 0"),
        ("train.lr_schedule=linear", r"train\.lr_schedule must be one of"),
        ("model.normalize_heads=1", r"model\.normalize_heads must be bool"),
        ("epochs", r"must look like section\.key=value"),
        ("data.feature_dims=3", r"data\.feature_dims must be a table"),
        ("memory.column_block=0", r"memory\.column_block must be an int in \[1, "),
        ("memory.exchange=allreduce", r"memory\.exchange must be one of \('all_gather', 'ring'\)"),
        ("memory.compute_dtype=float16", r"memory\.compute_dtype must be one of"),
        ("model.encoder=lstm", r"model\.encoder must be one of \('mlp', 'transformer', 'gru'\)"),
        ("augment.rate=1.5", r"augment\.rate must be a finite number >= 0 and <= 1"),
        ("augment.names=bogus", r"unknown augmentation"),
        ("probe.representation=heads", r"probe\.representation must be one of"),
        ("model.block_size=4", r"unknown key model\.block_size"),
    ],
)
def test_bad_overrides_say_which_key(override, message):
    with pytest.raises(ConfigError, match=message):
        config_lib.apply_overrides(config_lib.PRESETS["cpu"], [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        config_lib.load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_lib.load_config(bad)
    other = tmp_path / "run.ini"
    other.write_text("x")
    with pytest.raises(ConfigError, match="unknown config format"):
        config_lib.load_config(other)
    with pytest.raises(ConfigError, match="unknown preset"):
        config_lib.from_dict({"preset": "tpu"})


def test_memory_keys_reach_the_trainer():
    from factorcl_jax.training.builder import build_trainer

    config = config_lib.apply_overrides(
        config_lib.PRESETS["cpu"],
        ["memory.column_block=64", "memory.exchange=ring", "memory.compute_dtype=bfloat16"],
    )
    trainer = build_trainer(config, "SimCLR", num_classes=2, steps_per_epoch=1)
    assert (trainer.column_block, trainer.exchange, trainer.memory.tiled) == (64, "ring", True)
    assert trainer.critic.module.dtype == jnp.bfloat16 and trainer.model.dtype == jnp.bfloat16


def test_replace_derives_a_validated_config_and_flatten_names_every_key():
    cpu = config_lib.PRESETS["cpu"]
    derived = config_lib.replace(cpu, model={"embed_dim": 16}, train={"epochs": 1})
    assert (derived.model.embed_dim, derived.train.epochs) == (16, 1)
    assert derived.model.encoder_hidden == cpu.model.encoder_hidden and cpu.train.epochs != 1
    with pytest.raises(ConfigError, match="unknown config section"):
        config_lib.replace(cpu, optimiser={"epochs": 1})
    with pytest.raises(ConfigError, match="unknown key"):
        config_lib.replace(cpu, model={"width": 1})
    with pytest.raises(ConfigError, match=r"train\.epochs must be an int in"):
        config_lib.replace(cpu, train={"epochs": 0})
    flat = config_lib.flatten(cpu)
    assert flat["model.head_hidden"] == cpu.model.head_hidden and flat["probe.l2"] == 1e-4
    assert len(flat) == sum(len(vars(getattr(cpu, section))) for section in config_lib.to_dict(cpu))


def test_every_preset_has_one_meaning_and_builds_every_method():
    from factorcl_jax import objectives
    from factorcl_jax.training.builder import build_trainer

    names = list(config_lib.PRESETS)
    assert len(set(names)) == len(names) and {"cpu", "quick", "paper"} <= set(names)
    for name in names:
        for method in objectives.METHODS:
            trainer = build_trainer(config_lib.PRESETS[name], method, steps_per_epoch=10)
            assert trainer.method.name == method
