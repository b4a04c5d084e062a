"""Timing helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import functools
import math
import re
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


def xla_cost(compiled: Any) -> dict[str, float]:
    """XLA's cost analysis of a compiled program (``"flops"``, ``"bytes accessed"``, ...);
    a loop's body is counted once."""
    cost = compiled.cost_analysis()
    return dict(cost[0] if isinstance(cost, list) else cost)


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


_DECLARATION = re.compile(r"^\s*(?:ROOT )?%(\S+) = (\w+)\[([\d,]*)\]")
_DOT = re.compile(r" dot\(%(\S+), %(\S+)\)")


def _dims(line: str, name: str) -> tuple[int, ...]:
    found = re.search(name + r"=\{([\d,]*)\}", line)
    return tuple(int(d) for d in found.group(1).split(",") if d) if found else ()


def dot_breakdown(compiled: Any, repeats: int = 5) -> dict[str, Any]:
    """The matrix products of a compiled program, each timed alone at its shapes.

    Every ``dot`` of the optimised HLO (inside fusions too) is rebuilt as a float32
    ``lax.dot_general`` with the same operand shapes and dimension numbers, compiled and timed
    (median of ``repeats``); identical products are timed once and counted as often as they
    occur. A program whose products run faster inside it than alone spends nothing worth
    closing outside them. Loop bodies count once (this is for straight-line steps).

    Returns:
      ``{"dots", "gflop", "seconds", "shapes"}``: the number of products, their FLOPs
      (``2 * output size * contracted size``), the sum of their standalone times, and per
      distinct product ``{"lhs", "rhs", "dimension_numbers", "count", "seconds", "gflops"}``
      sorted by total time.
    """
    text = compiled.as_text()
    shapes = {}
    for line in text.splitlines():
        declared = _DECLARATION.match(line)
        if declared:
            dims = tuple(int(d) for d in declared.group(3).split(",") if d)
            shapes[declared.group(1)] = dims
    counts: dict[tuple, int] = {}
    for line in text.splitlines():
        found = _DOT.search(line)
        if not found:
            continue
        numbers = (
            (_dims(line, "lhs_contracting_dims"), _dims(line, "rhs_contracting_dims")),
            (_dims(line, "lhs_batch_dims"), _dims(line, "rhs_batch_dims")),
        )
        key = (shapes[found.group(1)], shapes[found.group(2)], numbers)
        counts[key] = counts.get(key, 0) + 1
    rows = []
    for (lhs, rhs, numbers), count in counts.items():
        a, b = jnp.ones(lhs, jnp.float32), jnp.ones(rhs, jnp.float32)
        product = jax.jit(lambda a, b, n=numbers: jax.lax.dot_general(a, b, n))
        call = functools.partial(product.lower(a, b).compile(), a, b)
        size = call().size
        seconds = median_seconds(lambda call=call: call().block_until_ready(), repeats)
        flops = 2 * size * math.prod(lhs[d] for d in numbers[0][0])
        rows.append(
            {
                "lhs": list(lhs),
                "rhs": list(rhs),
                "dimension_numbers": [[list(d) for d in pair] for pair in numbers],
                "count": count,
                "seconds": count * seconds,
                "gflops": flops / seconds / 1e9,
                "gflop": count * flops / 1e9,
            }
        )
    rows.sort(key=lambda row: -row["seconds"])
    return {
        "dots": sum(counts.values()),
        "gflop": sum(row["gflop"] for row in rows),
        "seconds": sum(row["seconds"] for row in rows),
        "shapes": rows,
    }
