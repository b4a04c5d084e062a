"""Small configurations and trainers shared by the tests (tiny networks, seconds to compile)."""

from factorcl_jax.builder import build_trainer
from factorcl_jax.config import PRESETS, RunConfig, replace

TINY = replace(
    PRESETS["quick"],
    model={
        "encoder_hidden": 32,
        "encoder_layers": 1,
        "embed_dim": 8,
        "head_hidden": 32,
        "critic_hidden": 32,
        "normalize_heads": False,
    },
    train={"learning_rate": 3e-3, "lr_schedule": "constant"},
    augment={"scale": 0.1, "rate": 0.2},
)
"""Tiny networks, Adam at a constant 3e-3, unnormalised heads, mild augmentations."""


def tiny_config(**sections) -> RunConfig:
    """:data:`TINY` with fields of its sections replaced (``model={"embed_dim": 4}``)."""
    return replace(TINY, **sections)


def tiny_trainer(method, *, num_classes=2, steps_per_epoch=None, **sections):
    """The trainer of ``method`` under :func:`tiny_config` of ``sections``."""
    return build_trainer(
        tiny_config(**sections),
        method,
        num_classes=num_classes,
        steps_per_epoch=steps_per_epoch,
    )
