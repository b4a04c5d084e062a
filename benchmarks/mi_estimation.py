"""MI estimators on bmi's v2 benchmark suite, beside bmi's own, and the Gaussian staircase.

* **Accuracy** (``--tasks``, default all 26 tasks of bmi's v2 suite: Czyż et al. 2023, "Beyond
  Normal: On the Evaluation of Mutual Information Estimators", NeurIPS; package
  ``benchmark-mi``; ``factorcl_jax.data.bmi_suite`` has its tasks, ids and rescaling): 5000
  pairs per seed (``--seeds`` 10, bmi's), every neural estimator through
  ``factorcl_jax.estimate.estimate_mi_seeds`` (its default critic, batch and budget; train on
  half, early-stop and estimate on the other half; all seeds of a task and estimator in one
  compiled program) and the classical KSG (k = 10) and CCA (``factorcl_jax.estimate.classical``,
  on all pairs). The table gives mean +- std over seeds beside the truth. With ``--bmi-python
  PY`` (an interpreter with ``benchmark-mi``; see the README) bmi's own InfoNCE, NWJ, MINE,
  DV, KSG-10 and CCA run on the *same* samples (its neural ones on the first
  ``--bmi-neural-seeds``), and every estimator of ours is compared with bmi's of the same
  name: on how many tasks ours is at least as close to the truth (means over the seeds both
  ran). Writes ``errors.png`` (a
  heat map of mean estimate - truth, tasks x estimators, like bmi's figure) and, for the fine
  distributions, ``pmi-TASK.png``: the histogram of the InfoNCE critic's per-pair estimates
  of the pointwise MI on held-out pairs beside the true PMI of the same pairs, with their
  1-Wasserstein distance in the table.
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
from factorcl_jax.data import bmi_suite, mi_tasks
from factorcl_jax.estimate import classical, staircase
from factorcl_jax.estimate.seeds import over_seeds
from factorcl_jax.io import plotting
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.runs.rundir import make_run_dir

from common import compiled_cost, timed

NEURAL = ("infonce", "nwj", "mine", "dv", "smile", "js", "nce_club", "club")
CLASSICAL = ("ksg", "cca")
BMI_NAMES = {
    "infonce": "InfoNCEEstimator",
    "nwj": "NWJEstimator",
    "mine": "MINEEstimator",
    "dv": "DonskerVaradhanEstimator",
    "ksg": "KSGEnsembleFirstEstimator",
    "cca": "CCAMutualInformationEstimator",
}
"""Our estimators with a namesake in bmi's v2 benchmark, and bmi's class for it."""
QUICK_TASKS = ("1v1-AI", "multinormal-sparse-5-5-2-2.0", "asinh-student-identity-2-2-1")

TIE = 1e-3
"""Nats within which our mean estimate and bmi's are equally close to the truth."""

ABLATIONS: dict[str, str] = {
    "ranks": "ranks=True: per-coordinate normal scores of the training part (MI unchanged)",
    "fixed_batch": "batch_size=128: the default batch, never doubled near log(batch)",
    "batch_256": "batch_size=256 (bmi's batch)",
    "deep": "hidden=(w, w): two hidden layers of the default's first width w",
    "one_layer": "hidden=(w,): one hidden layer (the default before a second one in few dims)",
    "short": "patience=3, max_steps=1/4 of the default's (the budget before patience 10)",
}
"""Changes to the default InfoNCE estimate that ``--ablation`` measures against it."""

GRIDS: dict[str, dict[str, Any]] = {
    # About two minutes on 2 CPU cores.
    "quick": {
        "tasks": list(QUICK_TASKS),
        "estimators": ["infonce", "nwj", "ksg", "cca"],
        "seeds": 2,
        "fixed_samples": 5000,
        "dims": [],
        "levels": [2.0, 4.0],
        "steps": 300,
        "hidden": [128],
        "staircase_estimators": ["infonce", "nce_club", "club"],
        "critics": ["concat"],
    },
    # bmi's v2 suite as bmi runs it (26 tasks, 10 seeds, 5000 pairs), every estimator.
    "default": {
        "tasks": list(bmi_suite.BMI_V2_TASKS),
        "estimators": [*NEURAL, *CLASSICAL],
        "seeds": 10,
        "fixed_samples": 5000,
        "dims": [20],
        "levels": [2.0, 4.0, 6.0, 8.0, 10.0],
        "steps": 1000,
        "hidden": [512],
        "staircase_estimators": ["infonce", "nce_club", "club"],
        "critics": ["concat"],
    },
    # And the staircase figure's whole grid: every dimension, estimator and critic; hours.
    "full": {
        "tasks": list(bmi_suite.BMI_V2_TASKS),
        "estimators": [*NEURAL, *CLASSICAL],
        "seeds": 10,
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
    "std",
    "bmi_estimate",
    "bmi_std",
    "verdict",
    "pmi_w1",
    "seconds",
    "bmi_seconds",
    "diverged",
]
ABLATION_COLUMNS = [
    "task",
    "change",
    "true_mi",
    "estimate",
    "std",
    "error_change",
    "noise",
    "verdict",
    "seconds",
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
spec = json.loads(sys.argv[1])
out = {}
for path, names in spec.items():
    data = np.load(path)
    for name in names:
        cls = getattr(bmi.estimators, name)
        if name == "KSGEnsembleFirstEstimator":
            estimator = cls(neighborhoods=(10,))
        elif name == "CCAMutualInformationEstimator":
            estimator = cls()
        else:
            estimator = cls(verbose=False)
        start = time.perf_counter()
        value = estimator.estimate(data["x"], data["y"])
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
    add("--tasks", nargs="*", help="bmi v2 task ids (default all 26; none: skip the table)")
    add(
        "--estimators",
        nargs="+",
        choices=[*estimate.ESTIMATORS, *CLASSICAL],
        metavar="NAME",
        help=f"{names}, ksg, cca",
    )
    add("--seeds", type=int, help="seeds per task (bmi: 10)")
    add("--fixed-samples", type=int, help="pairs per task and seed (bmi: 5000)")
    add("--ranks", action="store_true", help="estimate_mi(..., ranks=True): normal scores")
    add(
        "--ablation",
        nargs="+",
        choices=list(ABLATIONS),
        help="InfoNCE's default beside these changes to it, on the same samples and seeds",
    )
    add("--bmi-python", help="a Python with benchmark-mi installed: run bmi beside ours")
    add("--bmi-neural-seeds", type=int, help="seeds bmi's neural estimators run (default all)")
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


def _samples(task: bmi_suite.BMITask, seed: int, num_samples: int) -> tuple[np.ndarray, ...]:
    """``(x, y, pmi)`` of seed ``seed``: bmi's rescaled pairs and their exact PMI."""
    x, y, pmi = task.sample_with_pointwise_mi(jax.random.key(seed), num_samples)
    return np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(pmi, np.float64)


def _run_bmi(python: str, jobs: dict[tuple[str, int], tuple[tuple, list[str]]]) -> dict:
    """bmi's estimators (their defaults) on our samples: ``{(task, seed): {bmi class name:
    [value, seconds]}}``; ``jobs[(task, seed)] = ((x, y), bmi class names)``."""
    with tempfile.TemporaryDirectory() as folder:
        spec, paths = {}, {}
        for index, (cell, ((x, y), names)) in enumerate(jobs.items()):
            paths[cell] = str(pathlib.Path(folder) / f"{index}.npz")
            np.savez(paths[cell], x=x, y=y)
            spec[paths[cell]] = names
        completed = subprocess.run(
            [python, "-c", BMI_SCRIPT, json.dumps(spec)], capture_output=True, text=True
        )
        if completed.returncode != 0:
            print(f"bmi failed, skipped:\n{completed.stderr[-2000:]}", file=sys.stderr)
            return {}
        by_path = json.loads(completed.stdout.strip().splitlines()[-1])
    return {cell: by_path[path] for cell, path in paths.items()}


def _wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """The 1-Wasserstein distance of two equal-size 1-D samples: mean |sorted a - sorted b|."""
    return float(np.mean(np.abs(np.sort(a) - np.sort(b))))


def _ours(name, task, samples, seeds, args) -> tuple[list, list, dict | None]:
    """Our ``name`` on every seed of ``task``: ``(estimates or None, seconds per seed,
    pointwise profile)``; neural estimators run all seeds as one program."""
    if name in CLASSICAL:
        run = classical.estimate_ksg if name == "ksg" else classical.estimate_cca
        results = [run(*samples[seed][:2]) for seed in seeds]
        return [r.estimate for r in results], [r.seconds for r in results], None
    fine = task.true_mi_stderr > 0 and name == "infonce"
    results = estimate.estimate_mi_seeds(
        [samples[seed][0] for seed in seeds],
        [samples[seed][1] for seed in seeds],
        seeds=list(seeds),
        bound=name,
        ranks=args.ranks,
        pointwise=fine,
        errors="return",
    )
    values, profile = [], None
    for seed, result in zip(seeds, results, strict=True):
        if isinstance(result, estimate.DivergedEstimateError):
            print(f"{task.task_id}, {name}, seed {seed}: {result}", file=sys.stderr)
            values.append(None)
            continue
        values.append(result.estimate)
        if fine and profile is None:
            true = samples[seed][2][result.pointwise_rows]
            profile = {"estimated": result.pointwise, "true": true}
    seconds = results[0].seconds / len(seeds) if hasattr(results[0], "seconds") else math.nan
    return values, [seconds] * len(seeds), profile


def suite_samples(args: argparse.Namespace) -> tuple[list, dict]:
    """The chosen tasks and ``{task id: {seed: (x, y, pmi)}}``, drawn once for every table."""
    tasks = [bmi_suite.bmi_v2_task(task_id) for task_id in args.tasks]
    samples = {
        task.task_id: {seed: _samples(task, seed, args.fixed_samples) for seed in range(args.seeds)}
        for task in tasks
    }
    return tasks, samples


def run_accuracy(
    args: argparse.Namespace, out: pathlib.Path, tasks: list, samples: dict
) -> tuple[list, list, dict]:
    """One row per (task, estimator): mean held-out estimate over seeds beside bmi's."""
    seeds = list(range(args.seeds))
    bmi_results = {}
    if args.bmi_python:
        neural_seeds = args.bmi_neural_seeds or args.seeds
        jobs = {}
        for task in tasks:
            for seed in seeds:
                names = [
                    BMI_NAMES[name]
                    for name in args.estimators
                    if name in BMI_NAMES and (name in CLASSICAL or seed < neural_seeds)
                ]
                if names:  # a seed past --bmi-neural-seeds with only neural estimators
                    jobs[(task.task_id, seed)] = (samples[task.task_id][seed][:2], names)
        start = time.perf_counter()
        bmi_results = _run_bmi(args.bmi_python, jobs)
        print(f"bmi's estimators: {time.perf_counter() - start:.0f} s", flush=True)
    rows, profiles = [], {}
    for task in tasks:
        for name in args.estimators:
            values, seconds, profile = _ours(name, task, samples[task.task_id], seeds, args)
            finite = [v for v in values if v is not None]
            bmi_cells = [
                bmi_results.get((task.task_id, seed), {}).get(BMI_NAMES.get(name, ""))
                for seed in seeds
            ]
            bmi_values = [cell[0] for cell in bmi_cells if cell is not None]
            bmi_seconds = [cell[1] for cell in bmi_cells if cell is not None]
            mean = float(np.mean(finite)) if finite else math.nan
            bmi_mean = float(np.mean(bmi_values)) if bmi_values else None
            # the verdict compares the two on the seeds both have (bmi's neural estimators may
            # run on fewer seeds than ours).
            shared = [
                (value, cell[0])
                for value, cell in zip(values, bmi_cells, strict=True)
                if value is not None and cell is not None
            ]
            verdict, margin, noise = compare_to_bmi(shared, task.true_mi)
            row = {
                "task": task.task_id,
                "estimator": name,
                "true_mi": task.true_mi,
                "true_mi_stderr": task.true_mi_stderr,
                "estimate": mean,
                "bias": mean - task.true_mi,
                "std": float(np.std(finite)) if finite else math.nan,
                "bmi_estimate": bmi_mean,
                "bmi_std": float(np.std(bmi_values)) if bmi_values else None,
                "bmi_seeds": len(bmi_values),
                "verdict": verdict,
                "error_margin": margin,
                "margin_noise": noise,
                "pmi_w1": None,
                "seconds": float(np.mean(seconds)),
                "bmi_seconds": float(np.mean(bmi_seconds)) if bmi_seconds else None,
                "diverged": len(values) - len(finite),
                "values": finite,
                "bmi_values": bmi_values,
                "seeds": args.seeds,
                "num_samples": args.fixed_samples,
            }
            if profile is not None:
                row["pmi_w1"] = _wasserstein(profile["estimated"], profile["true"])
                profiles[task.task_id] = profile
            rows.append(row)
            print(format_table([row], ACCURACY_COLUMNS), flush=True)
    pngs = []
    if not args.no_plots and rows:
        plotting.plot_error_heatmap(rows, out / "errors.png")
        pngs.append("errors.png")
        for task_id, profile in profiles.items():
            path = plotting.plot_pmi_profile(
                profile["true"], profile["estimated"], out / f"pmi-{task_id}.png", title=task_id
            )
            pngs.append(path.name)
    return rows, pngs, profiles


def _ablation_options(name: str, x_dim: int, y_dim: int, num_samples: int) -> dict[str, Any]:
    """``estimate_mi_seeds`` keywords of the change ``name`` (``"default"``: none)."""
    if name == "ranks":
        return {"ranks": True}
    if name == "fixed_batch":
        return {"batch_size": 128}
    if name == "batch_256":
        return {"batch_size": 256}
    if name in ("deep", "one_layer"):
        width = estimate.default_settings(num_samples // 2, x_dim, y_dim).hidden[0]
        return {"hidden": (width, width) if name == "deep" else (width,)}
    if name == "short":
        settings = estimate.default_settings(num_samples // 2, x_dim, y_dim)
        quarter = settings.max_steps // 4 // settings.eval_every * settings.eval_every
        return {"patience": 3, "max_steps": max(settings.eval_every, quarter)}
    return {}


def run_ablation(args: argparse.Namespace, tasks: list, samples: dict) -> tuple[list, dict]:
    """InfoNCE's default and each change of ``args.ablation`` on the same samples and seeds.

    Per task and change: the mean estimate, ``change`` = its absolute error minus the
    default's (negative: closer to the truth) and ``noise``, the standard error of the mean
    paired difference of the two over seeds; a change is ``better`` or ``worse`` where
    ``|change| > 2 noise``. The summary per change: the mean ``change`` over tasks and the
    counts of better, same and worse tasks, with the worst task.
    """
    seeds = list(range(args.seeds))
    rows = []
    for task in tasks:
        xs = [samples[task.task_id][seed][0] for seed in seeds]
        ys = [samples[task.task_id][seed][1] for seed in seeds]
        values, seconds = {}, {}
        for name in ("default", *args.ablation):
            options = _ablation_options(name, task.x_dim, task.y_dim, args.fixed_samples)
            start = time.perf_counter()
            results = estimate.estimate_mi_seeds(xs, ys, seeds=seeds, errors="return", **options)
            seconds[name] = (time.perf_counter() - start) / len(seeds)
            values[name] = np.array(
                [getattr(r, "estimate", math.nan) for r in results], dtype=np.float64
            )
        base = values["default"]
        for name, estimates in values.items():
            paired = estimates - base
            row = {
                "task": task.task_id,
                "change": name,
                "true_mi": task.true_mi,
                "estimate": float(np.mean(estimates)),
                "std": float(np.std(estimates)),
                "error_change": float(
                    abs(np.mean(estimates) - task.true_mi) - abs(np.mean(base) - task.true_mi)
                ),
                "noise": float(np.std(paired, ddof=1) / math.sqrt(len(seeds)))
                if len(seeds) > 1
                else math.nan,
                "seconds": seconds[name],
            }
            row["verdict"] = (
                "-"
                if name == "default"
                else "better"
                if row["error_change"] < -2 * row["noise"]
                else "worse"
                if row["error_change"] > 2 * row["noise"]
                else "same"
            )
            rows.append(row)
        print(format_table([r for r in rows if r["task"] == task.task_id], ABLATION_COLUMNS))
    summary = {}
    for name in args.ablation:
        mine = [r for r in rows if r["change"] == name]
        worst = max(mine, key=lambda r: r["error_change"])
        summary[name] = {
            "description": ABLATIONS[name],
            "mean_error_change": float(np.mean([r["error_change"] for r in mine])),
            **{v: sum(r["verdict"] == v for r in mine) for v in ("better", "same", "worse")},
            "worst_task": worst["task"],
            "worst_error_change": worst["error_change"],
            "seconds_ratio": float(
                sum(r["seconds"] for r in mine)
                / sum(r["seconds"] for r in rows if r["change"] == "default")
            ),
        }
    return rows, summary


def compare_to_bmi(
    shared: list[tuple[float, float]], true_mi: float
) -> tuple[str | None, float | None, float | None]:
    """``(verdict, margin, noise)`` of our estimates against bmi's on the seeds both ran.

    ``margin = |mean(ours) - I| - |mean(bmi) - I|`` (negative: ours closer to the truth);
    ``noise`` the standard error of the mean paired difference of the two estimates (None
    with one seed). The verdict is ``"same"`` where ``|margin| <= TIE`` (the two compute the
    same number up to floating point: KSG and CCA), else ``"closer"`` or ``"farther"``;
    ``(None, None, None)`` without shared seeds.
    """
    if not shared:
        return None, None, None
    pairs = np.asarray(shared, np.float64)
    ours, theirs = pairs.mean(axis=0)
    margin = float(abs(ours - true_mi) - abs(theirs - true_mi))
    noise = (
        float(np.std(pairs[:, 0] - pairs[:, 1], ddof=1) / math.sqrt(len(pairs)))
        if len(pairs) > 1
        else None
    )
    verdict = "same" if abs(margin) <= TIE else "closer" if margin < 0 else "farther"
    return verdict, margin, noise


def closer_counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per estimator with a bmi namesake, over the tasks compared: ``at_least_as_close``
    (verdict closer or same), each verdict's count, and ``farther_beyond_noise``, the
    farther tasks whose margin exceeds twice its noise (all of them with one seed)."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        if row["verdict"] is None:
            continue
        entry = counts.setdefault(
            row["estimator"],
            {
                "at_least_as_close": 0,
                "closer": 0,
                "same": 0,
                "farther": 0,
                "farther_beyond_noise": 0,
                "tasks": 0,
            },
        )
        entry["tasks"] += 1
        entry[row["verdict"]] += 1
        entry["at_least_as_close"] += int(row["verdict"] != "farther")
        noise = row["margin_noise"]
        entry["farther_beyond_noise"] += int(
            row["verdict"] == "farther" and (noise is None or row["error_margin"] > 2 * noise)
        )
    return counts


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
                compiled, compile_seconds, _ = compiled_cost(over_seeds(program), keys)
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
    tasks, samples = suite_samples(args) if args.tasks else ([], {})
    accuracy, pngs, _ = run_accuracy(args, out, tasks, samples) if tasks else ([], [], {})
    ablation, ablation_summary = (
        run_ablation(args, tasks, samples) if tasks and args.ablation else ([], {})
    )
    for name, entry in ablation_summary.items():
        print(
            f"{name} ({entry['description']}): mean change of |error| "
            f"{entry['mean_error_change']:+.3f} nats; better on {entry['better']}, same on "
            f"{entry['same']}, worse on {entry['worse']} of {len(tasks)} tasks (worst: "
            f"{entry['worst_task']}, {entry['worst_error_change']:+.3f}); "
            f"{entry['seconds_ratio']:.2f}x the default's time"
        )
    counts = closer_counts(accuracy)
    if accuracy:
        table = format_table(accuracy, ACCURACY_COLUMNS)
        print(f"\nheld-out estimates (nats), {args.seeds} seeds\n{table}")
        for name, entry in counts.items():
            print(
                f"{name}: at least as close to the truth as bmi's on "
                f"{entry['at_least_as_close']} of {entry['tasks']} tasks (closer "
                f"{entry['closer']}, the same to {TIE:g} nats {entry['same']}); farther on "
                f"{entry['farther']}, by more than twice the seeds' noise on "
                f"{entry['farther_beyond_noise']}"
            )
        ours = sum(row["seconds"] * row["seeds"] for row in accuracy)
        shared = [row for row in accuracy if row["bmi_seeds"]]
        ours_shared = sum(row["seconds"] * row["bmi_seeds"] for row in shared)
        theirs = sum(row["bmi_seconds"] * row["bmi_seeds"] for row in shared)
        print(f"our estimators: {ours:.0f} s in all")
        if shared:
            print(
                f"on the cells bmi ran too: ours {ours_shared:.0f} s, bmi's {theirs:.0f} s "
                f"({theirs / ours_shared:.1f}x)"
            )
    staircase, staircase_pngs, histories = run_staircases(args, out) if args.dims else ([], [], {})
    payload = {
        "accuracy": accuracy,
        "closer_than_bmi": counts,
        "ablation": ablation,
        "ablation_summary": ablation_summary,
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
