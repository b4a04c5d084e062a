"""MI estimators on tasks with known MI: held-out accuracy table and the Gaussian staircase.

* **Accuracy** (``--tasks``): every estimator through ``factorcl_jax.estimate.estimate_mi``
  (its default critic, batch and budget; train on half, early-stop and estimate on the other
  half) on tasks of Czyż et al. 2023, "Beyond Normal: On the Evaluation of Mutual
  Information Estimators" (NeurIPS; the ``bmi`` package), ``--fixed-samples`` pairs each,
  ``--seeds`` seeds: mean estimate, bias, std over seeds, in-sample value, seconds per call.
  With ``--bmi-python PY`` (an interpreter where ``pip install benchmark-mi`` works) bmi's
  own InfoNCE and NWJ estimators with their defaults run on the *same* samples beside ours.
  Writes ``estimates_vs_truth.png``.
* **Staircase** (``--dims``): the FactorCL paper's Experiment 1 (true MI 2, 4, 6, 8, 10
  nats; fresh batches; one critic through all levels). Estimators that share a training
  rule share one compiled program (``staircase.staircase_program``); per level the bias,
  variance and MSE of the last ``--window`` estimates, and ``staircase-{variant}.png``.

Usage: python benchmarks/mi_estimation.py [--out DIR] [--quick | --full] [--help]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from factorcl_jax import estimate
from factorcl_jax.data import mi_tasks
from factorcl_jax.estimate import staircase
from factorcl_jax.io import plotting
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.runs.rundir import make_run_dir

from common import compiled_cost, timed

RHO_BIVARIATE = 0.75
RHO_TWO_PAIR = 0.8  # bmi's 2-pair tasks: latent strength 2, unit noise -> correlation 4 / 5
TWO_PAIR_5 = mi_tasks.sparse_normal(5, 5, mi_tasks.mi_from_rho(RHO_TWO_PAIR, 2)).name

BMI_TASKS: dict[str, str] = {
    mi_tasks.correlated_gaussian(1, mi_tasks.mi_from_rho(RHO_BIVARIATE, 1)).name: (
        "Bivariate normal 1 x 1"
    ),
    TWO_PAIR_5: "Multinormal 5 x 5 (2-pair)",
    mi_tasks.sparse_normal(25, 25, mi_tasks.mi_from_rho(RHO_TWO_PAIR, 2)).name: (
        "Multinormal 25 x 25 (2-pair)"
    ),
    "mvn_equicorr-dx5-dy5-corr0.5": "Multinormal 5 x 5 (dense)",
    "mvn_equicorr-dx25-dy25-corr0.5": "Multinormal 25 x 25 (dense)",
    "student_t-df2.0-gaussian-d5-mi0.0": "Student-t 5 x 5 (dof=2)",
    "student_t-df3.0-gaussian-d5-mi0.0": "Student-t 5 x 5 (dof=3)",
    mi_tasks.transformed(
        mi_tasks.sparse_normal(5, 5, mi_tasks.mi_from_rho(RHO_TWO_PAIR, 2)),
        "half_cube",
        "half_cube",
    ).name: "Half-cube @ Multinormal 5 x 5 (2-pair)",
    "student_t-df2.0-gaussian-d5-mi0.0+x=asinh+y=asinh": "Asinh @ Student-t 5 x 5 (dof=2)",
}
"""Our task name -> the same distribution's name in bmi's benchmark (Czyż et al. 2023).

bmi's 2-pair normal has variance 5 per coordinate where ours has 1; every estimator here
standardises its inputs and half-cube is homogeneous, so the samples are equal in law after
scaling. Their Student-t tasks have identity dispersion: our ``student_t`` of a Gaussian with
zero MI."""

OWN_TASKS = ("gaussian-d5-mi1.0+x=spiral0.5+y=spiral0.5",)
"""Tasks without a bmi counterpart (our spiral rotates every coordinate plane)."""

GRIDS: dict[str, dict[str, Any]] = {
    # About a minute on 2 CPU cores.
    "quick": {
        "tasks": [TWO_PAIR_5, "student_t-df3.0-gaussian-d5-mi0.0"],
        "estimators": ["infonce", "nce_club"],
        "seeds": 1,
        "fixed_samples": 2000,
        "dims": [20],
        "levels": [2.0, 4.0],
        "steps": 300,
        "hidden": [128],
        "staircase_estimators": ["infonce", "nce_club", "club"],
        "critics": ["concat"],
    },
    # Every estimator of the table on every task, 3 seeds, and the d = 20 staircase.
    "default": {
        "tasks": [*BMI_TASKS, *OWN_TASKS],
        "estimators": ["infonce", "nwj", "smile", "nce_club", "club"],
        "seeds": 3,
        "fixed_samples": 5000,
        "dims": [20],
        "levels": [2.0, 4.0, 6.0, 8.0, 10.0],
        "steps": 1000,
        "hidden": [512],
        "staircase_estimators": ["infonce", "nce_club", "club"],
        "critics": ["concat"],
    },
    # The staircase figure's whole grid: every dimension, estimator and critic; hours on CPU.
    "full": {
        "tasks": [*BMI_TASKS, *OWN_TASKS],
        "estimators": list(estimate.ESTIMATORS),
        "seeds": 5,
        "fixed_samples": 5000,
        "dims": [20, 50, 100, 200],
        "levels": [2.0, 4.0, 6.0, 8.0, 10.0],
        "steps": 4000,
        "hidden": [512],
        "staircase_estimators": list(estimate.ESTIMATORS),
        "critics": list(estimate.CRITIC_KINDS),
    },
}
"""The benchmark's grids (its own names, not run presets); an explicit flag overrides the
chosen grid's value."""

PAPER_FIGURE = {"infonce": "InfoNCE", "club": "CLUB", "nce_club": "NCE-CLUB"}

ACCURACY_COLUMNS = [
    "task",
    "estimator",
    "true_mi",
    "estimate",
    "bias",
    "std",
    "stderr",
    "in_sample",
    "best_step",
    "seconds",
    "diverged",
]
STAIRCASE_COLUMNS = [
    "task",
    "estimator",
    "critic",
    "true_mi",
    "estimate",
    "bias",
    "variance",
    "mse",
    "optimal_value",
]

# bmi runs in its own interpreter (its JAX pin differs from ours): samples in, estimates out.
BMI_SCRIPT = """
import json, sys, time
import numpy as np
import bmi
out = {}
for path in sys.argv[1:]:
    data = np.load(path)
    for name, cls in (("bmi_infonce", bmi.estimators.InfoNCEEstimator),
                      ("bmi_nwj", bmi.estimators.NWJEstimator)):
        start = time.perf_counter()
        value = cls(verbose=False).estimate(data["x"], data["y"])
        out.setdefault(path, {})[name] = [float(value), time.perf_counter() - start]
print(json.dumps(out))
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="MI estimators on tasks with known MI: held-out accuracy and the "
        "Gaussian staircase. Options left unset come from the grid.",
    )
    add = parser.add_argument
    add("--out", default=None, help="output directory (default: a fresh runs/bench-mi-...)")
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument("--quick", action="store_true", help="smoke grid, ~1 min on 2 cores")
    grid.add_argument("--full", action="store_true", help="every dimension and critic (hours)")
    names = ", ".join(estimate.ESTIMATORS)
    add("--tasks", nargs="*", help="accuracy tasks by name (none: skip the table)")
    add("--estimators", nargs="+", choices=list(estimate.ESTIMATORS), metavar="NAME", help=names)
    add("--seeds", type=int, help="seeds per accuracy cell (sample and estimator)")
    add("--fixed-samples", type=int, help="pairs per accuracy task (default 5000)")
    add("--bmi-python", help="a Python with benchmark-mi installed: run bmi beside ours")
    add("--dims", type=int, nargs="*", help="staircase dimensions (none: skip the staircase)")
    add("--variants", nargs="+", default=["gaussian"], choices=["gaussian", "cubic"])
    add("--levels", type=float, nargs="+", help="staircase MI levels in nats (2 4 6 8 10)")
    add("--steps", type=int, help="staircase steps per level (paper: 4000)")
    add("--batch-size", type=int, default=64, help="staircase pairs per batch (default 64)")
    add("--hidden", type=int, nargs="+", help="staircase critic hidden widths (paper: 512)")
    add("--learning-rate", type=float, default=5e-3, help="staircase Adam rate (5e-3)")
    add("--staircase-estimators", nargs="+", choices=list(estimate.ESTIMATORS), metavar="NAME")
    add("--critics", nargs="+", choices=estimate.CRITIC_KINDS, help="staircase critics")
    add("--staircase-seeds", type=int, default=1, help="staircase seeds, vmapped (default 1)")
    add("--window", type=int, default=500, help="trailing steps per level for the metrics")
    add("--span", type=int, default=200, help="EMA span of the staircase curves")
    add("--no-plots", action="store_true", help="skip the PNGs (no matplotlib needed)")
    return parser


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    args.grid = "quick" if args.quick else "full" if args.full else "default"
    for name, value in GRIDS[args.grid].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


# ------------------------------------------------------------------------------- accuracy


def _samples(task: mi_tasks.MITask, seed: int, num_samples: int) -> tuple[np.ndarray, ...]:
    x, y = task.sample(jax.random.key(seed), num_samples)
    return np.asarray(x), np.asarray(y)


def _run_bmi(python: str, samples: dict[tuple[str, int], tuple[np.ndarray, ...]]) -> dict:
    """bmi's InfoNCE and NWJ (their defaults) on our samples: ``{(task, seed): {name: [value,
    seconds]}}``."""
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for index, (cell, (x, y)) in enumerate(samples.items()):
            paths[cell] = str(pathlib.Path(folder) / f"{index}.npz")
            np.savez(paths[cell], x=x, y=y)
        completed = subprocess.run(
            [python, "-c", BMI_SCRIPT, *paths.values()], capture_output=True, text=True
        )
        if completed.returncode != 0:
            print(f"bmi failed, skipped:\n{completed.stderr[-2000:]}", file=sys.stderr)
            return {}
        by_path = json.loads(completed.stdout.strip().splitlines()[-1])
    return {cell: by_path[path] for cell, path in paths.items()}


def run_accuracy(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per (task, estimator): mean held-out estimate over seeds, and bmi's."""
    tasks = [mi_tasks.make_task(name) for name in args.tasks]
    samples = {
        (task.name, seed): _samples(task, seed, args.fixed_samples)
        for task in tasks
        for seed in range(args.seeds)
    }
    bmi_results = _run_bmi(args.bmi_python, samples) if args.bmi_python else {}
    rows = []
    for task in tasks:
        for name in [*args.estimators, *(["bmi_infonce", "bmi_nwj"] if bmi_results else [])]:
            values, seconds, stderr, in_sample, best = [], [], [], [], []
            diverged = 0
            for seed in range(args.seeds):
                if name.startswith("bmi_"):
                    value, spent = bmi_results[(task.name, seed)][name]
                    values.append(value)
                    seconds.append(spent)
                    continue
                try:
                    result = estimate.estimate_mi(
                        *samples[(task.name, seed)], bound=name, seed=seed
                    )
                except estimate.NonFiniteEstimateError as error:
                    # Counted in the row's `diverged` column, left out of its mean.
                    print(f"{task.name}, seed {seed}: {error}", file=sys.stderr)
                    diverged += 1
                    continue
                values.append(result.estimate)
                seconds.append(result.seconds)
                stderr.append(result.stderr)
                in_sample.append(result.in_sample)
                best.append(result.best_step)
            row = {
                "task": task.name,
                "bmi_task": BMI_TASKS.get(task.name, "-"),
                "estimator": name,
                "true_mi": task.true_mi,
                "estimate": float(np.mean(values)) if values else math.nan,
                "bias": float(np.mean(values) - task.true_mi) if values else math.nan,
                "std": float(np.std(values)) if values else math.nan,
                "stderr": float(np.mean(stderr)) if stderr else None,
                "in_sample": float(np.mean(in_sample)) if in_sample else None,
                "best_step": float(np.mean(best)) if best else None,
                "seconds": float(np.mean(seconds)) if seconds else math.nan,
                "first_call_seconds": seconds[0] if seconds else math.nan,
                "diverged": diverged,
                "values": values,
                "seeds": args.seeds,
                "num_samples": args.fixed_samples,
            }
            rows.append(row)
            print(format_table([row], ACCURACY_COLUMNS), flush=True)
    return rows


# ------------------------------------------------------------------------------ staircase


def _programs(estimators: Sequence[str], kinds: Sequence[str]) -> list[tuple[tuple, str]]:
    """``[(estimators sharing one program, critic kind)]``: pairwise stateless estimators of
    one critic kind share a program; CLUB and MINE get their own."""
    programs = []
    for kind in kinds:
        shared = [
            name for name in estimators if not estimate.ESTIMATORS[name].gaussian and name != "mine"
        ]
        if shared:
            programs.append((tuple(shared), kind))
        if "mine" in estimators:
            programs.append((("mine",), kind))
    if "club" in estimators:
        programs.append((("club",), "gaussian"))
    return programs


def run_staircases(args: argparse.Namespace, out: pathlib.Path) -> tuple[list, list, dict]:
    rows, pngs, histories = [], [], {}
    for variant in args.variants:
        panels = []
        for dim in args.dims:
            tasks = mi_tasks.staircase(dim, args.levels, family=variant)
            true_mi, optimal = staircase.optimal_values(tasks)
            curves = {}
            for names, kind in _programs(args.staircase_estimators, args.critics):
                program = staircase.staircase_program(
                    tasks,
                    names,
                    estimate.make_critic(kind, args.hidden),
                    steps_per_level=args.steps,
                    batch_size=args.batch_size,
                    learning_rate=args.learning_rate,
                )
                keys = jax.random.split(jax.random.key(0), args.staircase_seeds)
                compiled, compile_seconds, _ = compiled_cost(staircase.over_seeds(program), keys)
                history, run_seconds = timed(compiled, keys)
                history = np.asarray(history)  # [seeds, estimators, levels, steps]
                window = min(args.window, args.steps)
                for index, name in enumerate(names):
                    histories[f"{variant}-d{dim}.{name}.{kind}"] = history[:, index]
                    if name in PAPER_FIGURE and kind != "separable":
                        curves[PAPER_FIGURE[name]] = history[:, index]
                    metrics = staircase.level_metrics(history[:, index], true_mi, window)
                    for level, task in enumerate(tasks):
                        rows.append(
                            {
                                "staircase": f"{variant}-d{dim}",
                                "task": task.name,
                                "level": level,
                                "estimator": name,
                                "critic": kind,
                                "true_mi": float(true_mi[level]),
                                **{k: float(v[level]) for k, v in metrics.items()},
                                "optimal_value": float(optimal[level]),
                                "log_batch": math.log(args.batch_size),
                                "program": "+".join(names),
                                "compile_seconds": compile_seconds,
                                "run_seconds": run_seconds,
                            }
                        )
                print(
                    format_table(rows[-len(names) * len(tasks) :], STAIRCASE_COLUMNS),
                    f"\n{'+'.join(names)} ({kind}): compiled in {compile_seconds:.1f} s, "
                    f"ran in {run_seconds:.1f} s\n",
                    flush=True,
                )
            if curves:
                panels.append(plotting.StaircasePanel(f"d = {dim}", true_mi, optimal, curves))
        if panels and not args.no_plots:
            path = plotting.plot_staircase(
                panels,
                out / f"staircase-{variant}.png",
                batch_size=args.batch_size,
                span=args.span,
                title=f"{variant} staircase: batch {args.batch_size}, critic hidden "
                f"{list(args.hidden)}, EMA span {args.span}",
            )
            pngs.append(path.name)
    return rows, pngs, histories


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark, prints tables, writes ``results.json`` (``accuracy`` and
    ``staircase`` rows, the resolved config, PNG names) and ``histories.npz``."""
    args = _resolve(_parser().parse_args(argv))
    out = make_run_dir(args.out, "bench-mi")
    print(f"backend {jax.default_backend()}, devices {jax.devices()}; writing to {out}\n")
    start = time.perf_counter()
    accuracy = run_accuracy(args) if args.tasks else []
    pngs = []
    if accuracy:
        columns = [*ACCURACY_COLUMNS[:3], "bmi_task", *ACCURACY_COLUMNS[3:]]
        print(f"\nheld-out estimates (nats), {args.seeds} seeds\n{format_table(accuracy, columns)}")
        if not args.no_plots:
            ours = [row for row in accuracy if not row["estimator"].startswith("bmi_")]
            plotting.plot_estimates_vs_truth(ours, out / "estimates_vs_truth.png")
            pngs.append("estimates_vs_truth.png")
    staircase, staircase_pngs, histories = run_staircases(args, out) if args.dims else ([], [], {})
    payload = {
        "accuracy": accuracy,
        "staircase": staircase,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "pngs": [*pngs, *staircase_pngs],
        "histories": "histories.npz" if histories else None,
        "seconds": time.perf_counter() - start,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "reference": "Czyż et al. 2023, Beyond Normal: On the Evaluation of Mutual "
        "Information Estimators (NeurIPS); bmi columns: their estimators run here",
    }
    if histories:
        np.savez_compressed(out / "histories.npz", **histories)
    write_json(out / "results.json", payload)
    print(f"\nwrote {out / 'results.json'}" + "".join(f", {out / p}" for p in payload["pngs"]))
    return payload


if __name__ == "__main__":
    main()
