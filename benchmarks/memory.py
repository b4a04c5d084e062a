"""Peak memory and step time of one training step as the batch grows: dense, blocked, tiled.

Two workloads:

* ``factorcl``: one FactorCL-SSL step at the paper's sizes (encoders ``100 -> 512 -> 512 ->
  512 -> 128``, heads ``128 -> 512 -> 128``, concat critics with two hidden layers of 512,
  augmented views, one CLUB update), state from the eager ``Trainer.init(key, batch)``;
* ``simclr``: one SimCLR step with the same encoders and a separable critic (towers
  ``128 -> 512 -> 128``, scores are dot products).

Modes: ``dense`` (the whole ``[n, m]`` pairwise head at once), ``blocked`` (row blocks),
``tiled`` (row x column tiles, :mod:`factorcl_jax.bounds.tiled`). On 8 devices the step is the
``shard_map`` data-parallel one and the columns are exchanged by ``all_gather`` or by the
``ring``. Every configuration runs in a fresh subprocess and reports:

* ``planned_gib``: XLA's buffer plan of the compiled step for one device (arguments +
  outputs + temporaries - donated aliases, ``compiled.memory_analysis()``);
* ``temp_gib``: the temporaries alone (what tiling bounds);
* ``rss_gib``: the process's peak resident memory (``ru_maxrss``) after the eager init and one
  step, whole process (all simulated devices, the Python runtime, the compiler), and
  ``baseline_gib``, the same right after importing JAX;
* ``step_s``: wall time of that one step after compilation, and ``tflops_per_s``: the
  step's model FLOPs (matmuls of the forward and backward pass, counted layer by layer as in
  ``train_step.py``; the tiled backward's recomputation not included) per second;
* ``device_peak_gib``: on an accelerator, the device's peak bytes in use.

A configuration whose plan exceeds ``--max-run-gib`` is compiled but not run. The log-log plot
shows memory against the batch with ``N`` and ``N^2`` reference slopes, and the table ends
with the fitted slope of the tiled step's memory. On CPU the 8 devices are simulated
(``--xla_force_host_platform_device_count``) and share the machine's cores.

Usage: python benchmarks/memory.py [--out DIR] [--quick] [--max-run-gib G] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

GIB = 2.0**30
COLUMNS = [
    "workload",
    "mode",
    "devices",
    "exchange",
    "dtype",
    "batch",
    "planned_gib",
    "temp_gib",
    "rss_gib",
    "device_peak_gib",
    "step_s",
    "tflops_per_s",
    "compile_s",
    "loss",
]


def sizes_config(preset: str):
    """The benchmarked model: the ``paper`` preset (``full``), or a small one (``quick``)."""
    from factorcl_jax.config import PRESETS, replace

    if preset == "full":
        return PRESETS["paper"]
    return replace(
        PRESETS["quick"],
        data={"input_dim": 32},
        model={"encoder_hidden": 64, "head_hidden": 64, "embed_dim": 32, "critic_hidden": 64},
        train={"lr_schedule": "constant"},
    )


TILES = {  # (rows per block, columns per tile)
    "factorcl": {"blocked": (64, None), "tiled": (64, 256)},
    "simclr": {"blocked": (256, None), "tiled": (1024, 1024)},
}
ACCELERATOR_TILES = {  # larger tiles keep an accelerator's matmul units busy
    "factorcl": {"blocked": (256, None), "tiled": (256, 1024)},
    "simclr": {"blocked": (1024, None), "tiled": (4096, 4096)},
}


def case(workload, mode, batch, devices=1, exchange="all_gather", dtype="float32", run=True):
    return dict(
        workload=workload,
        mode=mode,
        batch=batch,
        devices=devices,
        exchange=exchange,
        dtype=dtype,
        run=run,
    )


def full_cases() -> list[dict]:
    """The sweep, the figures that matter most first: runs where a step takes minutes at most
    on CPU, compile-only beyond."""
    cases = [
        case("factorcl", "tiled", 8192, run=False),
        case("simclr", "tiled", 65536, devices=8, exchange="ring"),
        case("simclr", "dense", 8192),
        case("simclr", "tiled", 8192, devices=8, exchange="ring"),
        case("factorcl", "tiled", 2048),
        case("factorcl", "blocked", 2048),
    ]
    for batch in (256, 512, 1024):
        cases.append(case("factorcl", "tiled", batch, run=batch <= 512))
        cases.append(case("factorcl", "blocked", batch, run=batch <= 512))
        cases.append(case("factorcl", "dense", batch, run=batch <= 512))
    cases.append(case("factorcl", "dense", 2048, run=False))
    cases += [case("factorcl", "blocked", batch, run=False) for batch in (4096, 8192)]
    cases += [case("factorcl", "tiled", batch, run=False) for batch in (4096, 16384, 32768)]
    cases.append(case("factorcl", "tiled", 512, dtype="bfloat16"))
    for batch in (1024, 4096, 8192):
        for mode in ("dense", "blocked", "tiled"):
            if (mode, batch) != ("dense", 8192):
                cases.append(case("simclr", mode, batch))
    cases += [case("simclr", "tiled", batch, run=False) for batch in (16384, 65536)]
    for batch in (16384, 32768):
        cases.append(case("simclr", "tiled", batch, devices=8, exchange="ring"))
    for batch in (8192, 16384, 32768, 65536):
        cases.append(case("simclr", "tiled", batch, devices=8, run=batch <= 16384))
    cases.append(case("simclr", "dense", 8192, devices=8))
    return cases


def accelerator_cases() -> list[dict]:
    """The largest sizes on one accelerator, most telling first (a few minutes in all, most
    of it compiling)."""
    return [
        case("factorcl", "tiled", 8192, dtype="bfloat16"),
        case("simclr", "tiled", 262144, dtype="bfloat16"),
        case("factorcl", "tiled", 8192),
        case("simclr", "tiled", 262144),
        case("factorcl", "blocked", 4096),
    ]


def quick_cases() -> list[dict]:
    return [
        case("factorcl", "dense", 128),
        case("factorcl", "tiled", 128),
        case("factorcl", "tiled", 512, run=False),
        case("simclr", "dense", 1024),
        case("simclr", "tiled", 1024, devices=8, exchange="ring"),
        case("simclr", "tiled", 1024, devices=8),
    ]


# --------------------------------------------------------------------------- one configuration


def worker(spec: dict) -> dict:
    """Runs one configuration in this (fresh) process and returns its row."""
    import resource

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    import dataclasses

    import jax
    import numpy as np
    from train_step import jax_step_flops

    from factorcl_jax import critics
    from factorcl_jax.config import replace
    from factorcl_jax.models import augment
    from factorcl_jax.training import parallel
    from factorcl_jax.training.builder import build_trainer

    from common import planned_peak_bytes

    baseline = max(baseline, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    config = sizes_config(spec["preset"])
    tiles = ACCELERATOR_TILES if spec["accelerator"] else TILES
    block_size, column_block = tiles[spec["workload"]].get(spec["mode"], (None, None))
    factorcl = spec["workload"] == "factorcl"
    memory = {
        "block_size": block_size,
        "column_block": column_block,
        "exchange": spec["exchange"],
        "compute_dtype": spec["dtype"],
    }
    trainer = build_trainer(
        replace(config, memory=memory),
        "FactorCL-SSL" if factorcl else "SimCLR",
        augmentations=(augment.default_augmentation,) * 2,
    )
    if not factorcl:
        separable = critics.SeparableCritic(
            hidden=(config.model.critic_hidden,),
            embed_dim=config.model.embed_dim,
            dtype=trainer.critic.module.dtype,
        )
        trainer = dataclasses.replace(trainer, critic=separable)
    rng = np.random.default_rng(0)
    shape = (spec["batch"], config.data.input_dim)
    batch = {name: rng.normal(size=shape).astype(np.float32) for name in ("x1", "x2")}

    start = time.perf_counter()
    state = trainer.init(jax.random.key(0), batch)  # eager, as a user calls it
    if spec["devices"] == 1:
        step = trainer.jit_step
    else:
        mesh = parallel.data_mesh(jax.devices()[: spec["devices"]])
        state = parallel.replicate_state(state, mesh)
        batch = parallel.shard_batch(batch, mesh)
        step = parallel.sharded_step(trainer, mesh)
    compiled = step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    planned = planned_peak_bytes(compiled)
    if factorcl:
        flops = jax_step_flops("FactorCL-SSL", spec["batch"], config)
    else:
        flops = simclr_flops(spec["batch"], config)
    row = {
        **{k: spec[k] for k in ("workload", "mode", "devices", "exchange", "dtype", "batch")},
        "model_tflop": flops / 1e12,
        "planned_gib": planned / GIB,
        "temp_gib": memory.temp_size_in_bytes / GIB,
        "compile_s": compile_seconds,
        "baseline_gib": baseline / GIB,
        "block_size": block_size,
        "column_block": column_block,
        "backend": jax.default_backend(),
        "ran": False,
    }
    if spec["run"] and planned <= spec["max_run_gib"] * GIB:
        start = time.perf_counter()
        state, measured = compiled(state, batch)
        loss = float(measured["loss"])  # waits for the step
        seconds = time.perf_counter() - start
        row.update(
            ran=True,
            step_s=seconds,
            tflops_per_s=flops / seconds / 1e12,
            loss=loss,
            rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        )
        stats = jax.local_devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            row["device_peak_gib"] = stats["peak_bytes_in_use"] / GIB
    return row


def simclr_flops(n: int, config) -> int:
    """Model FLOPs of one SimCLR step with the separable critic: encoders, heads and critic
    towers on ``n`` rows of each modality, and the ``n x n`` dot products (forward and the
    two input gradients)."""
    from train_step import dense_flops, encoder_widths

    model = config.model
    encoder = encoder_widths(config)
    head = [model.embed_dim, model.head_hidden, model.embed_dim]
    tower = [model.embed_dim, model.critic_hidden, model.embed_dim]
    total = 2 * dense_flops(n, encoder, weight_grad=True, input_grad=False)
    for widths in (head, tower):
        total += 2 * dense_flops(n, widths, weight_grad=True, input_grad=True)
    return total + 3 * 2 * n * n * model.embed_dim


def measure(spec: dict) -> dict:
    """``worker(spec)`` in a fresh interpreter with ``spec['devices']`` (simulated) devices."""
    env = dict(os.environ)
    if spec["devices"] > 1:
        flags = env.get("XLA_FLAGS", "")
        flags = " ".join(f for f in flags.split() if "force_host_platform_device_count" not in f)
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={spec['devices']}"
    result = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-3:]
        print(f"failed: {spec}: {' | '.join(tail)}", file=sys.stderr, flush=True)
        return {**{k: spec[k] for k in COLUMNS if k in spec}, "error": "\n".join(tail)}
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- summary


def slope(rows: list[dict], key: str) -> float | None:
    """Least-squares slope of ``log(key)`` against ``log(batch)`` (1: linear, 2: quadratic)."""
    points = [(math.log(r["batch"]), math.log(r[key])) for r in rows if r.get(key)]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return covariance / sum((x - mean_x) ** 2 for x, _ in points)


def series(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped by configuration (all but the batch), sorted by batch."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if "error" in row:
            continue
        exchange = f" {row['exchange']}" if row["devices"] > 1 else ""
        name = f"{row['workload']} {row['mode']} {row['devices']}dev{exchange} {row['dtype']}"
        groups.setdefault(name, []).append(row)
    return {name: sorted(group, key=lambda r: r["batch"]) for name, group in groups.items()}


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    for axis, key, title in (
        (axes[0], "planned_gib", "XLA's plan of the compiled step (per device)"),
        (axes[1], "rss_gib", "process peak RSS (eager init + one step)"),
    ):
        smallest = None
        for name, group in series(rows).items():
            points = [(r["batch"], r[key]) for r in group if r.get(key)]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=name)
                smallest = min(smallest or points[0], points[0])
        if smallest is not None:
            n0, m0 = smallest
            batches = [r["batch"] for r in rows if "batch" in r]
            reference = [n0, max(batches)]
            axis.plot(reference, [m0, m0 * reference[1] / n0], "k--", lw=1, label="slope N")
            axis.plot(reference, [m0, m0 * (reference[1] / n0) ** 2], "k:", lw=1, label="slope N^2")
        axis.set(xscale="log", yscale="log", xlabel="global batch N", title=title)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("GiB")
    axes[1].set_ylim(bottom=0.05)
    figure.tight_layout(rect=(0, 0, 0.8, 1))
    figure.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="center right")
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: runs/...)")
    parser.add_argument("--quick", action="store_true", help="small models and batches (~1 min)")
    parser.add_argument(
        "--accelerator",
        action="store_true",
        help="the largest sizes on one accelerator (see benchmarks/accelerator_check.sh)",
    )
    parser.add_argument(
        "--max-run-gib", type=float, default=6.0, help="compile only above this planned memory"
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="keep configurations whose 'workload mode devices exchange dtype batch' contains "
        "every given word (e.g. --only simclr ring 65536)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    from factorcl_jax.config import to_dict
    from factorcl_jax.io.atomic import write_json
    from factorcl_jax.io.tables import format_table
    from factorcl_jax.runs.rundir import make_run_dir

    out = make_run_dir(args.out, "bench-memory")
    preset = "quick" if args.quick else "full"
    cases = quick_cases() if args.quick else full_cases()
    if args.accelerator:
        cases = accelerator_cases()
    if args.only:
        label = lambda c: " ".join(
            str(c[k]) for k in ("workload", "mode", "devices", "exchange", "dtype", "batch")
        )
        cases = [c for c in cases if all(word in label(c).split() for word in args.only)]
    rows = []
    for spec in cases:
        options = dict(preset=preset, max_run_gib=args.max_run_gib, accelerator=args.accelerator)
        rows.append(measure({**spec, **options}))
        print(format_table(rows[-1:], COLUMNS), flush=True)
        write_json(out / "results.json", {"rows": rows, "complete": False})

    summary = {}
    for name, group in series(rows).items():
        if "tiled" in name:
            large = [r for r in group if r["batch"] >= (512 if preset == "full" else 128)]
            summary[name] = {
                "batches": [large[0]["batch"], large[-1]["batch"]] if large else None,
                "slope_planned": slope(large, "planned_gib"),
                "slope_temp": slope(large, "temp_gib"),
                "slope_rss_above_baseline": slope(
                    [
                        {**r, "rss": r["rss_gib"] - r["baseline_gib"]}
                        for r in large
                        if r.get("rss_gib")
                    ],
                    "rss",
                ),
            }
    equal = check_ring_equals_dense(rows)
    print()
    print(format_table(rows, COLUMNS))
    print("\nlog-log slope of memory against the batch (1 = linear, 2 = quadratic):")
    for name, fit in summary.items():
        print(f"  {name}: {fit}")
    if equal is not None:
        print(f"\nring on 8 devices vs dense on 1 at batch {equal['batch']}: {equal}")
    plot(rows, out / "memory.png")
    path = write_json(
        out / "results.json",
        {
            "rows": rows,
            "complete": True,
            "slopes": summary,
            "ring_equals_dense": equal,
            "preset": preset,
            "config": to_dict(sizes_config(preset)),
            "tiles": ACCELERATOR_TILES if args.accelerator else TILES,
            "max_run_gib": args.max_run_gib,
            "accelerator": args.accelerator,
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
    )
    print(f"wrote {path} and {out / 'memory.png'}")


def check_ring_equals_dense(rows: list[dict]) -> dict | None:
    """The SimCLR loss of the ring on 8 devices against the dense single-device one, at the
    largest batch where both ran."""
    by_key = {
        (r["workload"], r["mode"], r["devices"], r["exchange"], r["batch"]): r
        for r in rows
        if r.get("ran")
    }
    pairs = [
        (batch, ring, by_key.get(("simclr", "dense", 1, "all_gather", batch)))
        for (workload, mode, devices, exchange, batch), ring in by_key.items()
        if workload == "simclr" and devices == 8 and exchange == "ring"
    ]
    pairs = [p for p in pairs if p[2] is not None]
    if not pairs:
        return None
    batch, ring, dense = max(pairs, key=lambda p: p[0])
    # SimCLR's loss is -InfoNCE = mean(logsumexp - positive) - log N: a small difference of
    # terms of size log N, so the difference is also given relative to log N.
    difference = abs(ring["loss"] - dense["loss"])
    return {
        "batch": batch,
        "ring_loss": ring["loss"],
        "dense_loss": dense["loss"],
        "absolute_difference": difference,
        "difference_over_log_batch": difference / math.log(batch),
    }


if __name__ == "__main__":
    main()
