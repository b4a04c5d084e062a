"""The memory a run's config needs, refused up front when it cannot fit."""

from __future__ import annotations

import os

import jax

from factorcl_jax.config import RunConfig

__all__ = ["check_memory"]


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.3g} GiB"


def check_memory(config: RunConfig, devices: int = 1, *, available: int | None = None) -> None:
    """Refuses a config that cannot fit in memory, before anything is allocated.

    Counts a lower bound of the bytes needed, so it never refuses a config that fits: the
    float32 data (``num_samples x (2 input_dim + latents)``); the parameters, with Adam's two
    moments, of two ``input_dim -> encoder_hidden x encoder_layers -> embed_dim`` encoders,
    two heads and one critic; and one critic's pair activations (``rows x batch_size x
    critic_hidden`` with ``rows`` the batch, or ``memory.block_size``). On CPU everything
    shares the host's memory; on an accelerator the parameters and one device's share of the
    activations must fit the device.

    Args:
      config: the run configuration.
      devices: devices the batch is split over.
      available: bytes of memory to assume for everything (default: measured).

    Raises:
      MemoryError: naming the largest part, the bytes needed and the bytes available.
    """
    data, model, batch = config.data, config.model, config.train.batch_size
    width, embed, critic = model.encoder_hidden, model.embed_dim, model.critic_hidden
    encoder = data.input_dim * width + (model.encoder_layers - 1) * width**2 + width * embed
    parameters = 2 * encoder + 4 * embed * model.head_hidden + 2 * embed * critic + critic**2
    block_size = config.memory.block_size
    rows = batch if block_size is None else min(batch, block_size)
    parts = {
        "data": 4 * data.num_samples * (2 * data.input_dim + sum(data.feature_dims.values())),
        "parameters and Adam state": 3 * 4 * parameters,
        "pair activations": 4 * rows * batch * critic,
    }
    hints = {
        "data": "lower data.num_samples or data.input_dim",
        "parameters and Adam state": "lower model.encoder_hidden, model.critic_hidden or "
        "data.input_dim",
        "pair activations": "lower train.batch_size or model.critic_hidden, or set "
        "memory.block_size",
    }
    device = jax.devices()[0]
    if available is None and device.platform != "cpu":
        limit = (device.memory_stats() or {}).get("bytes_limit")
        if limit:
            on_device = {k: v for k, v in parts.items() if k != "data"}
            on_device["pair activations"] //= max(devices, 1)
            _refuse_beyond(on_device, limit, f"one {device.platform} device", hints)
        parts = {"data": parts["data"]}
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    _refuse_beyond(parts, available, "this machine", hints)


def _refuse_beyond(parts: dict[str, int], limit: int, where: str, hints: dict[str, str]) -> None:
    if sum(parts.values()) > limit:
        largest = max(parts, key=parts.__getitem__)
        raise MemoryError(
            f"this config needs at least {_gib(sum(parts.values()))} ({largest}: "
            f"{_gib(parts[largest])}) but {where} has {_gib(limit)}; {hints[largest]}"
        )
