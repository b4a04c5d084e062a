"""Timing helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def compiled_cost(fn: Callable, *args: Any) -> tuple[Any, float, int]:
    """Compiles ``jax.jit(fn)`` for ``args``: ``(compiled, compile_seconds, peak_bytes)``.

    ``peak_bytes`` is XLA's buffer plan (arguments + outputs + temporaries - aliased): the
    memory the program needs on its device.
    """
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - start
    return compiled, seconds, planned_peak_bytes(compiled)


def planned_peak_bytes(compiled: Any) -> int:
    """Bytes a compiled program needs on its device, from XLA's buffer plan: arguments +
    outputs + temporaries - donated aliases."""
    memory = compiled.memory_analysis()
    return int(
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
    )


def timed(compiled: Callable, *args: Any) -> tuple[Any, float]:
    """``(compiled(*args), wall seconds)`` with the result ready on its device."""
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(*args))
    return result, time.perf_counter() - start


def median_seconds(run: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``run()`` (which must block until its result is ready)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Achieved GFLOP/s of a jitted float32 ``[size, size] @ [size, size]`` on this machine."""
    a = jax.random.normal(jax.random.key(0), (size, size))
    compiled = jax.jit(jnp.matmul).lower(a, a).compile()
    seconds = median_seconds(lambda: compiled(a, a).block_until_ready(), repeats)
    return 2 * size**3 / seconds / 1e9


def torch_available() -> bool:
    """Whether ``import torch`` works in a fresh interpreter (the PyTorch baselines run there)."""
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return probe.returncode == 0


def copy_bandwidth_gbs(megabytes: int = 256, repeats: int = 5) -> float:
    """Achieved memory bandwidth (GB/s) of a jitted float32 ``x + 1`` over ``megabytes``,
    in place (the input is donated, so no fresh pages are touched): each element is read
    once and written once."""
    x = jnp.zeros((megabytes * 2**20 // 4,), jnp.float32)
    nbytes = x.nbytes
    compiled = jax.jit(lambda a: a + 1.0, donate_argnums=0).lower(x).compile()
    buffer = [x]

    def step() -> None:
        buffer[0] = compiled(buffer[0])
        buffer[0].block_until_ready()

    seconds = median_seconds(step, repeats)
    return 2 * nbytes / seconds / 1e9
