"""bmi's v2 benchmark suite in JAX: the 26 tasks, their ids, parameters and rescaling.

Czyż et al. 2023, "Beyond Normal: On the Evaluation of Mutual Information Estimators"
(NeurIPS), and "The Mixtures and the Neural Critics" (the fine distributions); the suite is
``workflows/benchmark/v2/config.py`` of the ``bmi`` repository (package ``benchmark-mi``):
26 tasks, 5000 samples each, seeds 0..9. Each task here has bmi's id (``name``) and display
name (``task_name``), and is built from :mod:`factorcl_jax.data.mi_tasks` (closed-form MI)
or :mod:`factorcl_jax.data.fine` (Gaussian mixtures, MI by Monte Carlo over the exact
pointwise MI, with its standard error).

**Rescaling.** bmi wraps every v2 task in ``transform_rescale``: each drawn batch is
standardised per coordinate, x and y separately, by ``sklearn.preprocessing.scale``
(subtract the batch mean, divide by the batch standard deviation with ``ddof=0``; a
coordinate of zero spread is only centred). It is a data-dependent affine map, not a fixed
one; :func:`standardise` reproduces it and :meth:`BMITask.sample` applies it. Being affine
per coordinate, it keeps the MI, and the pointwise MI of each standardised pair is the
unscaled pair's (:meth:`BMITask.sample_with_pointwise_mi`).

bmi's numbers (its ground truths, and its estimators on our samples) come from a separate
interpreter, since bmi needs ``jax==0.4.33``::

  python3.11 -m venv /work/venvs/bmi
  /work/venvs/bmi/bin/pip install benchmark-mi 'jax==0.4.33' 'jaxlib==0.4.33'
  /work/venvs/bmi/bin/python benchmarks/bmi_reference.py --fixture tests/fixtures/bmi_v2_truths.json

Example::

  task = bmi_v2_task("1v1-X-0.9")               # task.task_name: bmi's "X 1 x 1"
  x, y = task.sample(jax.random.key(0), 5000)   # [5000, 1] each, standardised
  task.true_mi, task.true_mi_stderr             # 0.4088 +- 0.0002 (Monte Carlo)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType

import jax.numpy as jnp
from jax import Array

from factorcl_jax.data import fine, mi_tasks

__all__ = [
    "BMI_V2_NUM_SAMPLES",
    "BMI_V2_SEEDS",
    "BMI_V2_TASKS",
    "BMITask",
    "bmi_v2_suite",
    "bmi_v2_task",
    "standardise",
]

BMI_V2_NUM_SAMPLES = 5000
"""Pairs per task and seed in bmi's v2 benchmark."""
BMI_V2_SEEDS = tuple(range(10))
"""bmi's v2 seeds; here seed ``s`` means ``jax.random.key(s)``."""


def standardise(v: Array) -> Array:
    """Per-column standardisation of a batch ``v [n, d]``, as ``sklearn.preprocessing.scale``.

    ``(v - mean) / std`` with the batch's mean and ``ddof=0`` standard deviation, computed in
    two passes; a column whose std is below ``10 * eps`` of the dtype keeps scale 1 (only
    centred), as sklearn does.
    """
    if jnp.ndim(v) != 2:
        raise ValueError(f"`v` must have shape [n, d], got {jnp.shape(v)}")
    centred = v - jnp.mean(v, axis=0, keepdims=True)
    scale = jnp.sqrt(jnp.mean(jnp.square(centred), axis=0, keepdims=True))
    return centred / jnp.where(scale < 10 * jnp.finfo(v.dtype).eps, 1.0, scale)


@dataclasses.dataclass(frozen=True)
class BMITask:
    """One task of bmi's suite: an unscaled ``base`` task, sampled then standardised.

    ``name`` is bmi's task id, ``task_name`` its display name (not unique in bmi: two
    "Concentric 3 x 1" tasks differ in their number of components). ``true_mi`` is the
    base's, with ``true_mi_stderr`` (0 for a closed form).
    """

    task_id: str
    task_name: str
    base: mi_tasks.MITask

    @property
    def name(self) -> str:
        return self.task_id

    @property
    def true_mi(self) -> float:
        return self.base.true_mi

    @property
    def true_mi_stderr(self) -> float:
        return fine.true_mi_stderr(self.base)

    @property
    def x_dim(self) -> int:
        return self.base.x_dim

    @property
    def y_dim(self) -> int:
        return self.base.y_dim

    def sample(self, key: Array, num_samples: int) -> tuple[Array, Array]:
        """``(x [n, x_dim], y [n, y_dim])`` float32: the base's pairs, each of x and y
        :func:`standardise`-d over the batch (bmi's ``transform_rescale``)."""
        x, y = self.base.sample(key, num_samples)
        return standardise(x), standardise(y)

    def sample_with_pointwise_mi(self, key: Array, num_samples: int) -> tuple[Array, Array, Array]:
        """``(x, y, pmi [n])``: :meth:`sample` and the exact pointwise MI of each pair (the
        base's at the pair before standardising; an affine map of x or y keeps it)."""
        x, y = self.base.sample(key, num_samples)
        return standardise(x), standardise(y), self.base.pointwise_mi(x, y)

    def pointwise_mi(self, x: Array, y: Array) -> Array:
        """Not defined on standardised points alone: the batch's mean and scale are gone.

        Raises:
          NotImplementedError: always; use :meth:`sample_with_pointwise_mi`, or
            ``task.base.pointwise_mi`` on unscaled pairs.
        """
        raise NotImplementedError(
            f"{self.task_id}: a standardised pair has no PMI without its batch's mean and "
            f"scale; use sample_with_pointwise_mi(key, n) or base.pointwise_mi on base pairs"
        )


def _two_pair(dim: int, strength: float = 2.0) -> mi_tasks.MultivariateNormalTask:
    """bmi's ``task_multinormal_2pair(dim, dim)``: 2 pairs of correlation ``s^2 / (1 + s^2)``."""
    return mi_tasks.sparse_normal(
        dim, dim, mi_tasks.mi_from_rho(strength**2 / (1 + strength**2), 2), num_pairs=2
    )


def _asinh_student(dim: int, df: float) -> mi_tasks.MITask:
    """bmi's ``asinh(task_student_identity(dim, dim, df))``: identity dispersion."""
    return mi_tasks.transformed(
        mi_tasks.student_t(mi_tasks.correlated_gaussian(dim, 0.0), df), "asinh", "asinh"
    )


def _spiral(dim: int) -> mi_tasks.MITask:
    """bmi's ``transform_spiral_task`` (speed 1 normalised by the dimension): x spirals in its
    plane (0, 1), y in its plane (1, 2), each at speed ``1 / dim``."""
    speed = mi_tasks._format_float(1.0 / dim)
    return mi_tasks.transformed(
        _two_pair(dim), f"spiral{speed}-plane0-1", f"spiral{speed}-plane1-2"
    )


def _swiss_roll() -> mi_tasks.MITask:
    """bmi's Swiss roll: a bivariate normal (correlation 0.75), both coordinates through the
    normal CDF (uniform marginals), then x rolled into the plane."""
    bivariate = mi_tasks.correlated_gaussian(1, mi_tasks.mi_from_rho(0.75, 1))
    return mi_tasks.transformed(bivariate, ("normal_cdf", "swissroll"), "normal_cdf")


def _by(x_dim: int, y_dim: int) -> str:
    """bmi's ``"{x_dim} x {y_dim}"`` with a multiplication sign for the x, as in its names."""
    return f"{x_dim} \N{MULTIPLICATION SIGN} {y_dim}"


_SUITE: tuple[tuple[str, str, Callable[[], mi_tasks.MITask]], ...] = (
    (
        "1v1-additive-0.75",
        f"Uniform {_by(1, 1)} (additive noise=0.75)",
        lambda: mi_tasks.additive_uniform(0.75),
    ),
    (
        "asinh-student-identity-1-1-1",
        f"Asinh @ Student-t {_by(1, 1)} (dof=1)",
        lambda: _asinh_student(1, 1),
    ),
    ("1v1-X-0.9", f"X {_by(1, 1)}", lambda: fine.x_distribution(0.9)),
    ("1v1-AI", f"AI {_by(1, 1)}", fine.ai_distribution),
    ("swissroll_x-normal_cdf-1v1-normal-0.75", f"Swiss roll {_by(2, 1)}", _swiss_roll),
    ("2v1-waves-12-5.0-3.0", f"Waves {_by(2, 1)}", lambda: fine.waves(12, 5.0, 3.0)),
    ("2v1-galaxy-0.5-3.0", f"Galaxy {_by(2, 1)}", lambda: fine.galaxy(0.5, 3.0)),
    (
        "3v1-concentric_gaussians-5",
        f"Concentric {_by(3, 1)}",
        lambda: fine.concentric_gaussians(3, 5),
    ),
    (
        "5v1-concentric_gaussians-5",
        f"Concentric {_by(5, 1)}",
        lambda: fine.concentric_gaussians(5, 5),
    ),
    (
        "3v1-concentric_gaussians-10",
        f"Concentric {_by(3, 1)}",
        lambda: fine.concentric_gaussians(3, 10),
    ),
    (
        "5v1-concentric_gaussians-10",
        f"Concentric {_by(5, 1)}",
        lambda: fine.concentric_gaussians(5, 10),
    ),
    (
        "25v1-concentric_gaussians-5",
        f"Concentric {_by(25, 1)}",
        lambda: fine.concentric_gaussians(25, 5),
    ),
    (
        "multinormal-dense-5-5-0.5",
        f"Multinormal {_by(5, 5)} (dense)",
        lambda: mi_tasks.equicorrelated_normal(5, 5, 0.5),
    ),
    (
        "multinormal-dense-25-25-0.5",
        f"Multinormal {_by(25, 25)} (dense)",
        lambda: mi_tasks.equicorrelated_normal(25, 25, 0.5),
    ),
    (
        "multinormal-dense-50-50-0.5",
        f"Multinormal {_by(50, 50)} (dense)",
        lambda: mi_tasks.equicorrelated_normal(50, 50, 0.5),
    ),
    ("multinormal-sparse-5-5-2-2.0", f"Multinormal {_by(5, 5)} (2-pair)", lambda: _two_pair(5)),
    (
        "multinormal-sparse-25-25-2-2.0",
        f"Multinormal {_by(25, 25)} (2-pair)",
        lambda: _two_pair(25),
    ),
    (
        "mult-sparse-w-inliers-5-5-2-2.0-0.2",
        f"Multinormal {_by(5, 5)} (sparse, 20% inliers)",
        lambda: fine.normal_with_inliers(5, 5, 0.2),
    ),
    (
        "mult-sparse-w-inliers-25-25-2-2.0-0.2",
        f"Multinormal {_by(25, 25)} (sparse, 20% inliers)",
        lambda: fine.normal_with_inliers(25, 25, 0.2),
    ),
    (
        "mult-sparse-w-inliers-5-5-2-2.0-0.5",
        f"Multinormal {_by(5, 5)} (sparse, 50% inliers)",
        lambda: fine.normal_with_inliers(5, 5, 0.5),
    ),
    (
        "mult-sparse-w-inliers-25-25-2-2.0-0.5",
        f"Multinormal {_by(25, 25)} (sparse, 50% inliers)",
        lambda: fine.normal_with_inliers(25, 25, 0.5),
    ),
    (
        "asinh-student-identity-2-2-1",
        f"Asinh @ Student-t {_by(2, 2)} (dof=1)",
        lambda: _asinh_student(2, 1),
    ),
    (
        "asinh-student-identity-3-3-2",
        f"Asinh @ Student-t {_by(3, 3)} (dof=2)",
        lambda: _asinh_student(3, 2),
    ),
    (
        "asinh-student-identity-5-5-2",
        f"Asinh @ Student-t {_by(5, 5)} (dof=2)",
        lambda: _asinh_student(5, 2),
    ),
    (
        "spiral-multinormal-sparse-3-3-2-2.0",
        f"Spiral @ Multinormal {_by(3, 3)} (2-pair)",
        lambda: _spiral(3),
    ),
    (
        "spiral-multinormal-sparse-5-5-2-2.0",
        f"Spiral @ Multinormal {_by(5, 5)} (2-pair)",
        lambda: _spiral(5),
    ),
)


def _factory(task_id: str, task_name: str, build: Callable[[], mi_tasks.MITask]):
    return lambda: BMITask(task_id, task_name, build())


BMI_V2_TASKS: Mapping[str, Callable[[], BMITask]] = MappingProxyType(
    {task_id: _factory(task_id, task_name, build) for task_id, task_name, build in _SUITE}
)
"""bmi's v2 task id -> a factory of the task, in bmi's order (``UNSCALED_TASKS``)."""


def bmi_v2_task(task_id: str) -> BMITask:
    """The task of bmi's v2 suite with id ``task_id`` (e.g. ``"1v1-AI"``)."""
    if task_id not in BMI_V2_TASKS:
        raise ValueError(
            f"`task_id` must be one of bmi's v2 ids {list(BMI_V2_TASKS)}, got {task_id!r}"
        )
    return BMI_V2_TASKS[task_id]()


def bmi_v2_suite() -> tuple[BMITask, ...]:
    """The 26 tasks of bmi's v2 benchmark, in bmi's order."""
    return tuple(build() for build in BMI_V2_TASKS.values())
