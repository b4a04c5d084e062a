"""The same workloads on two source trees, side by side: what a change did to their speed.

``--baseline DIR`` (and ``--candidate DIR``, default this checkout) is a source tree of
factorcl_jax at any revision, e.g. one made with ``git worktree add /tmp/before REV``. Each
tree runs in a subprocess of its own (``PYTHONPATH=DIR``, the same interpreter and JAX), the
trees alternate for ``--repeats`` rounds, and each round times, after compilation and one
warm-up call:

  staircase     the FactorCL paper's d = 20 Gaussian staircase: InfoNCE, a concat critic
                with one hidden layer of 512, batch 64, Adam 5e-3, 5 levels x ``--steps``
                steps (4000 in the paper), one seed, as one compiled program. A tree is run
                the way its own staircase runner runs one seed: ``staircase.over_seeds``
                where the tree has it, else ``jax.vmap`` (its runner's path); a tree without
                ``over_seeds`` is also timed called directly (``staircase, no vmap``), so
                the comparison does not hinge on that choice.
  estimate_mi   the default ``estimate_mi(x, y)`` on 5000 pairs of a sparse 5 + 5 Gaussian:
                the first call (compilation included, in a fresh process) and a second one.
  FactorCL-SSL  one training step at the paper's sizes (encoders 100 -> 512 x 3 -> 128,
  FactorCL-SUP  heads and critics of 512, batch 128, Adam 1e-4, both augmentations), built
                with ``build_trainer(PRESETS["paper"], ...)`` or, in trees before the config
                consolidation, ``train.default_trainer`` with the same sizes.

Reported per workload and tree: median seconds over the rounds, ms per step, the speed-up of
the candidate over the baseline; for the training steps XLA's own FLOP count of the compiled
step (cost analysis), the fraction of this machine's float32 matmul peak it reaches
(``flops / seconds / peak``, the peak measured in the same run) and where the time goes: the
step's matrix products, each timed alone at its shapes (``common.dot_breakdown``): their
FLOPs and the sum of their standalone times; for the staircase the InfoNCE estimate of each
level (mean of its last 500 steps), which must agree within noise.

Usage: python benchmarks/revisions.py --baseline DIR [--candidate DIR] [--steps N]
       [--repeats N] [--workloads NAME ...] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import jax

from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.runs.rundir import make_run_dir

from common import matmul_peak_gflops

WORKLOADS = ("staircase", "estimate_mi", "FactorCL-SSL", "FactorCL-SUP")
ROOT = pathlib.Path(__file__).resolve().parent.parent

DRIVER = r"""
import json, statistics, sys, time
import jax, numpy as np
from common import dot_breakdown, xla_cost  # this checkout's benchmarks/, on PYTHONPATH

spec = json.loads(sys.argv[1])
out = {}


def time_calls(compiled, args, calls, carry=False):
    # carry: the call returns (state, ...) and donates its first argument (a train step).
    times = []
    for index in range(calls + 1):  # the first call is a warm-up
        start = time.perf_counter()
        result = jax.block_until_ready(compiled(*args))
        if index:
            times.append(time.perf_counter() - start)
        if carry:
            args = (result[0], *args[1:])
    return statistics.median(times), result


if "staircase" in spec["workloads"]:
    from factorcl_jax import critics
    from factorcl_jax.data import mi_tasks
    try:  # the package by layer
        from factorcl_jax.estimate import staircase as mi_benchmark
    except ImportError:  # a tree before it
        from factorcl_jax import mi_benchmark

    steps = spec["steps"]
    program = mi_benchmark.staircase_program(
        mi_tasks.staircase(20), "infonce", critics.ConcatCritic(hidden=(512,)),
        steps_per_level=steps, batch_size=64, learning_rate=5e-3,
    )
    keys = jax.random.split(jax.random.key(0), 1)
    try:
        from factorcl_jax.estimate.seeds import over_seeds
    except ImportError:
        over_seeds = getattr(mi_benchmark, "over_seeds", None)
    ways = {"staircase": (over_seeds or jax.vmap)(program)}
    if over_seeds is None:
        ways["staircase, no vmap"] = lambda keys: program(keys[0])[None]
    for name, fn in ways.items():
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(keys).compile()
        compile_seconds = time.perf_counter() - start
        seconds, history = time_calls(compiled, (keys,), 1)
        history = np.asarray(history)[0]
        out[name] = {
            "seconds": seconds, "steps": 5 * steps, "compile_seconds": compile_seconds,
            "flops": None,  # a loop: XLA's cost analysis counts its body once
            "levels": [float(v) for v in history[:, -min(500, steps):].mean(axis=-1)],
        }

if "estimate_mi" in spec["workloads"]:
    from factorcl_jax.estimate import estimate_mi

    rng = np.random.default_rng(0)  # 5000 pairs of a sparse 5 + 5 Gaussian, the same in any tree
    x = rng.normal(size=(5000, 5))
    y = rng.normal(size=(5000, 5))
    y[:, :2] = 0.8 * x[:, :2] + 0.6 * y[:, :2]
    start = time.perf_counter()
    first = estimate_mi(x, y)
    first_seconds = time.perf_counter() - start
    start = time.perf_counter()
    again = estimate_mi(x, y)
    out["estimate_mi"] = {
        "seconds": time.perf_counter() - start, "steps": int(again.steps_run),
        "compile_seconds": first_seconds, "flops": None, "levels": [float(first.estimate)],
    }

variants = [w for w in spec["workloads"] if w.startswith("FactorCL")]
if variants:
    try:
        from factorcl_jax.models import augment
    except ImportError:
        from factorcl_jax import augment
    from factorcl_jax.data.synthetic import make_synthetic

    data = make_synthetic(128, input_dim=100, seed=0)
    batch = jax.device_put({"x1": data.x1, "x2": data.x2, "y": data.y})
    pair = (augment.default_augmentation,) * 2
    for variant in variants:
        try:
            from factorcl_jax.config import PRESETS
            try:
                from factorcl_jax.training import build_trainer
            except ImportError:
                from factorcl_jax.builder import build_trainer
            trainer = build_trainer(PRESETS["paper"], variant, augmentations=pair)
        except ImportError:
            from factorcl_jax import train
            trainer = train.default_trainer(
                variant, num_classes=2, encoder_hidden=512, encoder_layers=3, embed_dim=128,
                critic_hidden=512, learning_rate=1e-4, augmentations=pair,
            )
        state = trainer.init(jax.random.key(0), batch)
        start = time.perf_counter()
        compiled = trainer.jit_step.lower(state, batch).compile()
        compile_seconds = time.perf_counter() - start
        seconds, _ = time_calls(compiled, (state, batch), spec["step_calls"], carry=True)
        out[variant] = {
            "seconds": seconds, "steps": 1, "compile_seconds": compile_seconds,
            "flops": float(xla_cost(compiled).get("flops", 0.0)),
        }
        if spec["breakdown"]:
            out[variant]["products"] = dot_breakdown(compiled, 3)
print("RESULT " + json.dumps(out))
"""


def run_tree(tree: pathlib.Path, spec: dict[str, Any]) -> dict[str, Any]:
    """The driver's measurements of ``spec["workloads"]`` on source tree ``tree``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(ROOT / "benchmarks")])}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the workloads failed on {tree}:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def _source_tree(path: str, flag: str) -> pathlib.Path:
    tree = pathlib.Path(path).expanduser().resolve()
    if not (tree / "factorcl_jax" / "__init__.py").is_file():
        raise SystemExit(f"{flag} {path}: not a source tree of factorcl_jax (no factorcl_jax/)")
    return tree


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="source tree to compare against")
    parser.add_argument("--candidate", default=str(ROOT), help="source tree (default: this one)")
    parser.add_argument("--steps", type=int, help="staircase steps per level (default 4000)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds, trees alternating")
    parser.add_argument("--step-calls", type=int, default=5, help="timed training steps")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--quick", action="store_true", help="300 staircase steps per level")
    parser.add_argument("--out", default=None, help="output directory (default: runs/...)")
    args = parser.parse_args(argv)
    trees = {
        "baseline": _source_tree(args.baseline, "--baseline"),
        "candidate": _source_tree(args.candidate, "--candidate"),
    }
    spec = {
        "workloads": args.workloads,
        "steps": args.steps or (300 if args.quick else 4000),
        "step_calls": args.step_calls,
    }
    peak = matmul_peak_gflops(1024 if args.quick else 2048)
    load = os.getloadavg()[0]
    print(f"matmul peak {peak:.1f} GFLOP/s, load average {load:.2f}\n", flush=True)

    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for index in range(args.repeats):
        for name, tree in trees.items():
            # The steps' matrix products are timed alone once, in the first round.
            rounds[name].append(run_tree(tree, spec | {"breakdown": index == 0}))

    rows = []
    for name in trees:
        for workload in rounds[name][0]:
            runs = [measured[workload] for measured in rounds[name]]
            seconds = statistics.median(run["seconds"] for run in runs)
            first = runs[0]
            products = first.get("products") or {}
            flops = first["flops"]
            rows.append(
                {
                    "tree": name,
                    "workload": workload,
                    "seconds": seconds,
                    "ms_per_step": 1e3 * seconds / first["steps"],
                    "compile_seconds": first["compile_seconds"],
                    "xla_gflop": flops / 1e9 if flops else None,
                    "fraction_of_peak": flops / seconds / (peak * 1e9) if flops else None,
                    "product_gflop": products.get("gflop"),
                    "products_alone_seconds": products.get("seconds"),
                    "products": products.get("shapes", [])[:5],
                    "levels": first.get("levels"),
                    "all_seconds": [run["seconds"] for run in runs],
                }
            )
    # Every baseline row against the candidate's run of the same workload ("staircase, no
    # vmap" against the candidate's "staircase").
    candidate = {row["workload"]: row for row in rows if row["tree"] == "candidate"}
    for row in rows:
        match = candidate.get(row["workload"].split(",")[0])
        baseline = row["tree"] == "baseline" and match is not None
        row["candidate_speedup"] = row["seconds"] / match["seconds"] if baseline else None
    columns = [
        "tree",
        "workload",
        "seconds",
        "ms_per_step",
        "compile_seconds",
        "xla_gflop",
        "fraction_of_peak",
        "product_gflop",
        "products_alone_seconds",
        "candidate_speedup",
    ]
    print(format_table(rows, columns))
    staircase = [row for row in rows if row["levels"]]
    if staircase:
        print("\nInfoNCE per level (mean of the last 500 steps):")
        for row in staircase:
            print(f"  {row['tree']}, {row['workload']}: {[round(v, 3) for v in row['levels']]}")
    out = make_run_dir(args.out, "bench-revisions")
    payload = {
        "trees": {name: str(tree) for name, tree in trees.items()},
        "matmul_peak_gflops": peak,
        "load_average": load,
        "jax": jax.__version__,
        "settings": spec | {"repeats": args.repeats},
        "rows": rows,
    }
    write_json(out / "results.json", payload)
    print(f"\nwrote {out / 'results.json'}")
    return payload


if __name__ == "__main__":
    main()
