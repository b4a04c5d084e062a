"""The named configurations: each defined once, derived from one another with :func:`replace`."""

from __future__ import annotations

from factorcl_jax.config.sections import ConfigError, RunConfig, replace

__all__ = ["PRESETS", "get_preset"]


_CPU = RunConfig()
PRESETS: dict[str, RunConfig] = {
    "cpu": _CPU,
    "quick": replace(
        _CPU,
        data={"num_samples": 1200},
        model={"encoder_hidden": 32, "embed_dim": 16, "head_hidden": 32, "critic_hidden": 32},
        train={"epochs": 2, "batch_size": 64},
    ),
    "synthetic": replace(_CPU, data={"num_samples": 30000}, train={"epochs": 10}),
    "paper": replace(
        _CPU,
        data={"num_samples": 30000},
        model={
            "encoder_hidden": 512,
            "encoder_layers": 3,
            "embed_dim": 128,
            "head_hidden": 512,
            "critic_hidden": 512,
            "normalize_heads": False,
        },
        train={"epochs": 10, "batch_size": 256, "learning_rate": 1e-4, "lr_schedule": "constant"},
    ),
}
"""Named configurations, each with one meaning:

* ``cpu`` (the default, ``factorcl-jax train`` with no arguments): the synthetic data at 6000
  samples, small MLPs, 8 epochs of Adam at 1e-3 with cosine decay and L2-normalised heads;
  about a minute on 2 CPU cores.
* ``quick``: a smoke test of ``cpu`` (tiny networks, 2 epochs), seconds.
* ``synthetic``: ``cpu`` on the paper's 30000 samples for its 10 epochs
  (``examples/synthetic.py``).
* ``paper``: the paper's synthetic setting: encoders ``100 -> 512 -> 512 -> 512 -> 128``,
  critics of width 512, batch 256, 10 epochs, Adam at a constant 1e-4, 30000 samples.
"""


def get_preset(name: str) -> RunConfig:
    """The preset called ``name``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]
