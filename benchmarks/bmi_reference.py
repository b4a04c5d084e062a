"""bmi's own v2 benchmark suite: every task's id, name, dimensions and ground-truth MI.

Runs in an interpreter with bmi installed (``benchmark-mi``, which needs ``jax==0.4.33``), not
with this project's: it imports nothing from ``factorcl_jax``. The suite is rebuilt exactly as
``workflows/benchmark/v2/config.py`` of bmi's repository builds it (that file is not part of
the installed package): 26 tasks, each wrapped in ``transform_rescale``, sampled with 5000
points and seeds 0..9. For the 13 Bend and Mix Model tasks (X, AI, Waves, Galaxy, five
concentric and four inlier mixtures) bmi's truth is its own Monte-Carlo mean of the pointwise
MI (100,000 samples, key ``PRNGKey(0)``); its standard error is recorded beside it. With the
sampling times comes the empirical characteristic function of bmi's unscaled pairs
(:func:`characteristic_function`), against which the tests check the JAX samplers' law.
``--fixture PATH`` writes the rows as the test fixture (``tests/fixtures/bmi_v2_truths.json``).

Usage (the venv is described in factorcl_jax/data/bmi_suite.py)::

  /work/venvs/bmi/bin/python benchmarks/bmi_reference.py \
      [--out DIR] [--quick] [--fixture tests/fixtures/bmi_v2_truths.json]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import pathlib
import time

import bmi.benchmark.tasks.additive_noise as additive_noise
import bmi.benchmark.tasks.bivariate_normal as binormal
import bmi.benchmark.tasks.embeddings as embeddings
import bmi.benchmark.tasks.mixtures as mixtures
import bmi.benchmark.tasks.multinormal as multinormal
import bmi.benchmark.tasks.student as student
import jax
import numpy as np
from bmi.benchmark.tasks import transform_rescale
from bmi.benchmark.tasks.asinh import transform_asinh_task as asinh
from bmi.benchmark.tasks.normal_cdf import transform_normal_cdf_task as normal_cdfise
from bmi.benchmark.tasks.spiral import transform_spiral_task as spiralise
from bmi.samplers import bmm

NUM_SAMPLES = 5_000
SEEDS = tuple(range(10))
FREQUENCY_SCALES = (0.5, 1.0, 2.0, 4.0)
NUM_DIRECTIONS = 12
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def frequencies(dim: int) -> np.ndarray:
    """``[48, dim]``: 12 fixed unit directions ``u_k`` (``u_kj ~ cos(2 pi frac(k j g))``, ``g``
    the golden ratio's fraction), each at the lengths ``FREQUENCY_SCALES``."""
    k = np.arange(1, NUM_DIRECTIONS + 1)[:, None]
    j = np.arange(1, dim + 1)[None, :]
    directions = np.cos(2.0 * np.pi * np.mod(k * j * _GOLDEN, 1.0))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return np.concatenate([scale * directions for scale in FREQUENCY_SCALES])


def characteristic_function(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """The empirical characteristic function of unscaled pairs at :func:`frequencies`.

    ``z = ((x, y) - location) / scale`` with the pooled per-coordinate mean and std of these
    pairs (stored, so that another sampler's pairs are put on the same axes), then
    ``mean cos(t . z)`` and ``mean sin(t . z)`` for each frequency ``t``. It pins the joint
    law of (x, y), dependence included; the tests compare the JAX samplers with it.
    """
    z = np.concatenate([x, y], axis=1)
    location, scale = z.mean(axis=0), z.std(axis=0)
    phase = ((z - location) / scale) @ frequencies(z.shape[1]).T
    values = {
        "location": location,
        "scale": scale,
        "real": np.cos(phase).mean(axis=0),
        "imag": np.sin(phase).mean(axis=0),
    }
    # 7 digits: far below the characteristic function's sampling error (about 3e-3).
    return {name: [float(f"{v:.7g}") for v in value] for name, value in values.items()}


def unscaled_tasks() -> tuple:
    """``UNSCALED_TASKS`` of bmi's ``workflows/benchmark/v2/config.py``, in its order."""
    bivariate = binormal.task_bivariate_normal(gaussian_correlation=0.75)
    uniform_from_bivariate = normal_cdfise(bivariate)
    return (
        additive_noise.task_additive_noise(epsilon=0.75),
        asinh(student.task_student_identity(dim_x=1, dim_y=1, df=1)),
        mixtures.task_x(),
        mixtures.task_ai(),
        embeddings.transform_swissroll_task(
            uniform_from_bivariate, task_name="Swiss roll 2 \N{MULTIPLICATION SIGN} 1"
        ),
        mixtures.task_waves(),
        mixtures.task_galaxy(),
        mixtures.task_concentric_multinormal(dim_x=3, n_components=5),
        mixtures.task_concentric_multinormal(dim_x=5, n_components=5),
        mixtures.task_concentric_multinormal(dim_x=3, n_components=10),
        mixtures.task_concentric_multinormal(dim_x=5, n_components=10),
        mixtures.task_concentric_multinormal(dim_x=25, n_components=5),
        multinormal.task_multinormal_dense(5, 5),
        multinormal.task_multinormal_dense(25, 25),
        multinormal.task_multinormal_dense(50, 50),
        multinormal.task_multinormal_2pair(5, 5),
        multinormal.task_multinormal_2pair(25, 25),
        mixtures.task_multinormal_sparse_w_inliers(dim_x=5, dim_y=5, inlier_fraction=0.2),
        mixtures.task_multinormal_sparse_w_inliers(dim_x=25, dim_y=25, inlier_fraction=0.2),
        mixtures.task_multinormal_sparse_w_inliers(dim_x=5, dim_y=5, inlier_fraction=0.5),
        mixtures.task_multinormal_sparse_w_inliers(dim_x=25, dim_y=25, inlier_fraction=0.5),
        asinh(student.task_student_identity(dim_x=2, dim_y=2, df=1)),
        asinh(student.task_student_identity(dim_x=3, dim_y=3, df=2)),
        asinh(student.task_student_identity(dim_x=5, dim_y=5, df=2)),
        spiralise(multinormal.task_multinormal_2pair(3, 3)),
        spiralise(multinormal.task_multinormal_2pair(5, 5)),
    )


def v2_tasks() -> list:
    """``TASKS`` of the config: each task rescaled, keeping its id and name."""
    return [
        transform_rescale(base_task=task, task_name=task.name, task_id=task.id)
        for task in unscaled_tasks()
    ]


def _mixture_sampler(sampler):
    """The Bend and Mix Model sampler under a chain of transformed samplers, or None."""
    while not isinstance(sampler, bmm.BMMSampler):
        sampler = getattr(sampler, "_base_sampler", None)
        if sampler is None:
            return None
    return sampler


def reference_row(task, *, time_sampling: bool) -> dict:
    """One task's id, name, dimensions, bmi's truth and (optionally) its sampling time."""
    start = time.perf_counter()
    truth = float(task.mutual_information)
    truth_seconds = time.perf_counter() - start
    mixture = _mixture_sampler(task.sampler)
    row = {
        "task_id": task.id,
        "task_name": task.name,
        "dim_x": task.dim_x,
        "dim_y": task.dim_y,
        "mi": truth,
        "method": "closed_form" if mixture is None else "monte_carlo",
        "mc_samples": None if mixture is None else int(mixture._mi_estimate_sample),
        "mc_stderr": None if mixture is None else float(mixture._mi_stderr),
        "truth_seconds": truth_seconds,
    }
    if time_sampling:
        seconds = []
        for seed in SEEDS:
            start = time.perf_counter()
            x, y = task.sample(NUM_SAMPLES, seed)
            np.asarray(x), np.asarray(y)
            seconds.append(time.perf_counter() - start)
        assert np.shape(x) == (NUM_SAMPLES, task.dim_x), (task.id, np.shape(x))
        row["sample_seconds_first"] = seconds[0]
        row["sample_seconds_median"] = float(np.median(seconds[1:]))
        # The law is pinned on the unscaled pairs: iid, where rescaled batches are not.
        unscaled = [task.sampler._base_sampler.sample(NUM_SAMPLES, seed) for seed in SEEDS]
        row["characteristic_function"] = characteristic_function(
            np.concatenate([np.asarray(x, np.float64) for x, _ in unscaled]),
            np.concatenate([np.asarray(y, np.float64) for _, y in unscaled]),
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="output directory (default runs/bmi-...)")
    parser.add_argument("--quick", action="store_true", help="truths only, no sampling times")
    parser.add_argument("--fixture", default=None, help="also write the rows as a test fixture")
    args = parser.parse_args()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = pathlib.Path(args.out or f"runs/bmi-reference-{stamp}")
    out.mkdir(parents=True, exist_ok=True)

    rows = [reference_row(task, time_sampling=not args.quick) for task in v2_tasks()]
    header = f"{'task_id':<44} {'dx':>3} {'dy':>3} {'mi':>10} {'mc_stderr':>10} {'sample_s':>9}"
    print(header)
    for row in rows:
        stderr = "" if row["mc_stderr"] is None else f"{row['mc_stderr']:.5f}"
        seconds = row.get("sample_seconds_median")
        print(
            f"{row['task_id']:<44} {row['dim_x']:>3} {row['dim_y']:>3} {row['mi']:>10.6f} "
            f"{stderr:>10} {'' if seconds is None else f'{seconds:9.3f}'}"
        )
    result = {
        "source": (
            "bmi (benchmark-mi) workflows/benchmark/v2/config.py, rebuilt by "
            "benchmarks/bmi_reference.py; Task.mutual_information of each rescaled task. "
            "Monte-Carlo truths: bmi's BMMSampler, mean pointwise MI over mc_samples draws "
            "with key PRNGKey(0); mc_stderr = std / sqrt(mc_samples)."
        ),
        "bmi_version": importlib.metadata.version("benchmark-mi"),
        "jax_version": jax.__version__,
        "num_samples": NUM_SAMPLES,
        "seeds": list(SEEDS),
        "characteristic_function": (
            "characteristic_function(x, y) of the unscaled pairs of all seeds (NUM_SAMPLES "
            "each, bmi's sampler under transform_rescale, seed s = PRNGKey(s) or NumPy seed s)"
        ),
        "frequency_scales": list(FREQUENCY_SCALES),
        "num_directions": NUM_DIRECTIONS,
        "tasks": rows,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    if args.fixture:
        keys = ("task_id", "task_name", "dim_x", "dim_y", "mi", "method", "mc_samples")
        keys += ("mc_stderr", "characteristic_function")
        header = {k: v for k, v in result.items() if k != "tasks"}
        tasks = [json.dumps({k: row.get(k) for k in keys}, ensure_ascii=False) for row in rows]
        # One task a line: small, and a regenerated fixture diffs task by task.
        text = json.dumps(header, indent=1, ensure_ascii=False)[:-2]
        text += ',\n "tasks": [\n  ' + ",\n  ".join(tasks) + "\n ]\n}\n"
        path = pathlib.Path(args.fixture)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
