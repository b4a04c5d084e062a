"""Data-parallel FactorCL-SSL steps on 1, 2, 4 and 8 devices: throughput and memory per device.

One global batch is split over ``D`` devices by :func:`factorcl_jax.parallel.sharded_step`
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

from factorcl_jax import augment, parallel, train  # noqa: E402
from factorcl_jax.reporting import format_table, make_run_dir, write_json  # noqa: E402

from common import median_seconds  # noqa: E402

METHOD = "FactorCL-SSL"
PRESETS = {
    "quick": dict(global_batch=64, input_dim=32, hidden=64, embed_dim=32, block_size=4, repeats=3),
    "full": dict(
        global_batch=256, input_dim=100, hidden=128, embed_dim=64, block_size=16, repeats=5
    ),
}
SCORING = ("dense", "blocked", "ring")
COLUMNS = [
    "devices",
    "global_batch",
    "scoring",
    "steps_per_s",
    "examples_per_s",
    "peak_bytes_per_device",
]


def make_trainer(preset: dict, scoring: str) -> train.Trainer:
    block = preset["block_size"]
    options = {
        "dense": {},
        "blocked": dict(block_size=block),
        "ring": dict(block_size=block, column_block=block, exchange="ring"),
    }[scoring]
    return train.default_trainer(
        METHOD,
        encoder_hidden=preset["hidden"],
        encoder_layers=2,
        embed_dim=preset["embed_dim"],
        critic_hidden=preset["hidden"],
        augmentations=(augment.default_augmentation,) * 2,
        **options,
    )


def make_batch(preset: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (preset["global_batch"], preset["input_dim"])
    return {
        "x1": rng.normal(size=shape).astype(np.float32),
        "x2": rng.normal(size=shape).astype(np.float32),
    }


def planned_peak_bytes(compiled) -> int:
    """Bytes one device's program needs: arguments + outputs + temporaries - donated aliases."""
    memory = compiled.memory_analysis()
    return int(
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
    )


def measure(preset: dict, num_devices: int, scoring: str) -> dict:
    """One row: a compiled data-parallel step on ``num_devices`` devices, timed."""
    trainer = make_trainer(preset, scoring)
    batch = make_batch(preset)
    mesh = parallel.data_mesh(jax.devices()[:num_devices])
    state = parallel.replicate_state(trainer.init(jax.random.key(0), batch), mesh)
    batch = parallel.shard_batch(batch, mesh)
    compiled = parallel.sharded_step(trainer, mesh).lower(state, batch).compile()
    current = {"state": state}

    def run_step() -> None:
        current["state"], measured = compiled(current["state"], batch)
        jax.block_until_ready(measured)

    seconds = median_seconds(run_step, preset["repeats"])
    return {
        "devices": num_devices,
        "global_batch": preset["global_batch"],
        "steps_per_s": 1.0 / seconds,
        "examples_per_s": preset["global_batch"] / seconds,
        "peak_bytes_per_device": planned_peak_bytes(compiled),
        "scoring": scoring,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: runs/...)")
    parser.add_argument("--quick", action="store_true", help="small smoke preset (~1 min)")
    args = parser.parse_args(argv)
    out = make_run_dir(args.out, "bench-scaling")
    preset = PRESETS["quick" if args.quick else "full"]
    device_counts = [d for d in (1, 2, 4, 8) if d <= jax.device_count()]
    simulated = jax.default_backend() == "cpu"

    rows = []
    for num_devices in device_counts:
        for scoring in SCORING:
            rows.append(measure(preset, num_devices, scoring))
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
            "preset": preset,
            "backend": jax.default_backend(),
            "simulated_devices": simulated,
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
