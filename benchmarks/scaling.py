"""Data-parallel FactorCL-SSL steps on 1, 2, 4 and 8 devices: throughput and memory per device.

One global batch is split over ``D`` devices by :func:`factorcl_jax.training.parallel.sharded_step`
(``shard_map`` over a ``('data',)`` mesh); every device scores its ``n / D`` rows against the
``n`` columns of the global batch. Each configuration runs three ways: ``dense`` and
``blocked`` pairwise scoring (``block_size`` rows of the critics' pairwise head at a time)
with the columns gathered from every device (``all_gather``), and ``ring``: row x column
tiles with the columns passed around the devices (``ppermute``), so no device holds more
than its own and one visiting block of columns.

Reported per row: steps/second and examples/second (median of timed steps after compilation)
and the peak bytes per device of XLA's buffer plan (``compiled.memory_analysis()``: arguments
+ outputs + temporaries - donated aliases, for one device's program).

On CPU the devices are simulated (``--xla_force_host_platform_device_count``, set below before
JAX starts) and share the machine's cores: the numbers show the overhead of splitting the
step, not a speed-up. On a machine with several accelerators the same script measures them.

Usage: python benchmarks/scaling.py [--out DIR] [--quick]
"""

from __future__ import annotations

import os

MAX_DEVICES = 8
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={MAX_DEVICES}"
    )

import argparse  # noqa: E402  (JAX must see XLA_FLAGS first)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from factorcl_jax.config import PRESETS, RunConfig, replace, to_dict  # noqa: E402
from factorcl_jax.io.atomic import write_json  # noqa: E402
from factorcl_jax.io.tables import format_table  # noqa: E402
from factorcl_jax.runs.rundir import make_run_dir  # noqa: E402
from factorcl_jax.training import parallel  # noqa: E402
from factorcl_jax.training.builder import build_trainer  # noqa: E402
from factorcl_jax.training.step import Trainer  # noqa: E402

from common import median_seconds, planned_peak_bytes  # noqa: E402

METHOD = "FactorCL-SSL"
CONFIGS = {
    "quick": replace(
        PRESETS["quick"],
        data={"input_dim": 32},
        model={"encoder_hidden": 64, "head_hidden": 64, "embed_dim": 32, "critic_hidden": 64},
        train={"batch_size": 64, "lr_schedule": "constant"},
        memory={"block_size": 4},
    ),
    "full": replace(
        PRESETS["cpu"],
        train={"batch_size": 256, "lr_schedule": "constant"},
        memory={"block_size": 16},
    ),
}
"""The benchmarked models (``train.batch_size`` is the global batch; ``memory.block_size``
the rows per block of ``blocked`` and the tile of ``ring``)."""
REPEATS = {"quick": 3, "full": 5}
SCORING = ("dense", "blocked", "ring")
COLUMNS = [
    "devices",
    "global_batch",
    "scoring",
    "steps_per_s",
    "examples_per_s",
    "peak_bytes_per_device",
]


def make_trainer(config: RunConfig, scoring: str) -> Trainer:
    block = config.memory.block_size
    memory = {
        "dense": {"block_size": None},
        "blocked": {},
        "ring": {"column_block": block, "exchange": "ring"},
    }[scoring]
    return build_trainer(replace(config, memory=memory), METHOD)


def make_batch(config: RunConfig) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (config.train.batch_size, config.data.input_dim)
    return {
        "x1": rng.normal(size=shape).astype(np.float32),
        "x2": rng.normal(size=shape).astype(np.float32),
    }


def measure(config: RunConfig, repeats: int, num_devices: int, scoring: str) -> dict:
    """One row: a compiled data-parallel step on ``num_devices`` devices, timed."""
    trainer = make_trainer(config, scoring)
    batch = make_batch(config)
    mesh = parallel.data_mesh(jax.devices()[:num_devices])
    state = parallel.replicate_state(trainer.init(jax.random.key(0), batch), mesh)
    batch = parallel.shard_batch(batch, mesh)
    compiled = parallel.sharded_step(trainer, mesh).lower(state, batch).compile()
    current = {"state": state}

    def run_step() -> None:
        current["state"], measured = compiled(current["state"], batch)
        jax.block_until_ready(measured)

    seconds = median_seconds(run_step, repeats)
    global_batch = config.train.batch_size
    return {
        "devices": num_devices,
        "global_batch": global_batch,
        "steps_per_s": 1.0 / seconds,
        "examples_per_s": global_batch / seconds,
        "peak_bytes_per_device": planned_peak_bytes(compiled),
        "scoring": scoring,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: runs/...)")
    parser.add_argument("--quick", action="store_true", help="small smoke preset (~1 min)")
    args = parser.parse_args(argv)
    out = make_run_dir(args.out, "bench-scaling")
    size = "quick" if args.quick else "full"
    device_counts = [d for d in (1, 2, 4, 8) if d <= jax.device_count()]
    simulated = jax.default_backend() == "cpu"

    rows = []
    for num_devices in device_counts:
        for scoring in SCORING:
            rows.append(measure(CONFIGS[size], REPEATS[size], num_devices, scoring))
            print(format_table(rows[-1:], COLUMNS), flush=True)
    print()
    print(format_table(rows, COLUMNS))
    note = (
        f"simulated CPU devices share the same {os.cpu_count()} CPU cores: the numbers show the "
        "overhead of splitting the step (collectives, partitioning), not a speed-up"
        if simulated
        else f"one {jax.default_backend()} device per mesh position"
    )
    print(f"\nnote: {note}")
    path = write_json(
        out / "results.json",
        {
            "rows": rows,
            "note": note,
            "method": METHOD,
            "config": to_dict(CONFIGS[size]),
            "repeats": REPEATS[size],
            "backend": jax.default_backend(),
            "simulated_devices": simulated,
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
