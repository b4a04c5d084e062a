"""bmi's v2 suite in JAX: each task's ground truth beside bmi's, and its sampling time.

For the 26 tasks of ``factorcl_jax.data.bmi_suite`` (bmi's ids and order): our truth and its
standard error (0 for a closed form; Monte Carlo over the exact PMI for the 11 fine
distributions), bmi's truth and error from ``--reference`` (written by
``benchmarks/bmi_reference.py`` with bmi's package), their difference in nats and in combined
standard errors, and the wall time to draw bmi's 5000 rescaled pairs: the first call (eager,
with its compilations) and the median over the seeds of the jitted sampler.

Usage: python benchmarks/bmi_suite.py [--out DIR] [--quick] [--reference PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import time

import jax

from factorcl_jax.data import bmi_suite
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.runs.rundir import make_run_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLUMNS = [
    "task_id",
    "dim_x",
    "dim_y",
    "our_mi",
    "our_stderr",
    "bmi_mi",
    "bmi_stderr",
    "difference",
    "z",
    "first_sample_s",
    "sample_s",
]


def _seconds(run) -> float:
    start = time.perf_counter()
    jax.block_until_ready(run())
    return time.perf_counter() - start


def task_row(task: bmi_suite.BMITask, reference: dict, seeds: int) -> dict:
    """One task's truths, their difference and its sampling times for 5000 pairs."""
    size = bmi_suite.BMI_V2_NUM_SAMPLES
    first = _seconds(lambda: task.sample(jax.random.key(0), size))
    sampler = jax.jit(task.sample, static_argnums=1)
    _seconds(lambda: sampler(jax.random.key(0), size))  # compiles
    times = [_seconds(lambda s=s: sampler(jax.random.key(s), size)) for s in range(seeds)]
    bmi_stderr = reference["mc_stderr"] or 0.0
    combined = math.hypot(task.true_mi_stderr, bmi_stderr)
    difference = task.true_mi - reference["mi"]
    return {
        "task_id": task.task_id,
        "task_name": task.task_name,
        "dim_x": task.x_dim,
        "dim_y": task.y_dim,
        "our_mi": task.true_mi,
        "our_stderr": task.true_mi_stderr,
        "bmi_mi": reference["mi"],
        "bmi_stderr": bmi_stderr,
        "difference": difference,
        "z": difference / combined if combined > 0 else None,
        "first_sample_s": first,
        "sample_s": statistics.median(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="output directory (default runs/...)")
    parser.add_argument("--quick", action="store_true", help="2 seeds of timing instead of 10")
    parser.add_argument(
        "--reference",
        default=str(ROOT / "tests" / "fixtures" / "bmi_v2_truths.json"),
        help="bmi's truths, as written by benchmarks/bmi_reference.py --fixture",
    )
    args = parser.parse_args()
    out = make_run_dir(args.out, "bench-bmi-suite")
    reference = json.loads(pathlib.Path(args.reference).read_text())
    by_id = {row["task_id"]: row for row in reference["tasks"]}
    seeds = 2 if args.quick else len(bmi_suite.BMI_V2_SEEDS)
    rows = [task_row(task, by_id[task.task_id], seeds) for task in bmi_suite.bmi_v2_suite()]
    print(format_table(rows, COLUMNS))
    result = {
        "reference": {k: v for k, v in reference.items() if k != "tasks"},
        "num_samples": bmi_suite.BMI_V2_NUM_SAMPLES,
        "timing_seeds": seeds,
        "backend": jax.default_backend(),
        "rows": rows,
    }
    write_json(out / "results.json", result)
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
