"""Mutual-information bounds as pure functions: each formula once, over row statistics.

* :mod:`~factorcl_jax.bounds.statistics`: the row statistics of a score matrix and the one
  offset check;
* :mod:`~factorcl_jax.bounds.formulas`: each bound's formula over those statistics, and the
  registry :data:`BOUNDS` of every bound's name, kind, options and plausible range;
* :mod:`~factorcl_jax.bounds.dense`: the bounds of a score matrix ``[n, m]``
  (``infonce(scores, offset=0)``, ...);
* :mod:`~factorcl_jax.bounds.tiled`: the same statistics accumulated over row x column tiles
  of a critic (and a ring over devices), without the score matrix;
* :mod:`~factorcl_jax.bounds.gaussian`: CLUB with a Gaussian ``q(y | x)``.
"""

from factorcl_jax.bounds.dense import (
    dv,
    evaluate,
    infmasking,
    infonce,
    js,
    js_fgan,
    mine,
    nce_club,
    nwj,
    smile,
    supcon,
    tuba,
)
from factorcl_jax.bounds.formulas import (
    BOUNDS,
    DIVERGED_NATS,
    Bound,
    MineState,
    get_bound,
    mine_init,
)
from factorcl_jax.bounds.gaussian import club_gaussian, gaussian_log_likelihood

__all__ = [
    "BOUNDS",
    "DIVERGED_NATS",
    "Bound",
    "MineState",
    "club_gaussian",
    "dv",
    "evaluate",
    "gaussian_log_likelihood",
    "get_bound",
    "infmasking",
    "infonce",
    "js",
    "js_fgan",
    "mine",
    "mine_init",
    "nce_club",
    "nwj",
    "smile",
    "supcon",
    "tuba",
]
