"""Critics: the library's Linen critics, the fast pairwise heads, and scoring any critic.

* :mod:`~factorcl_jax.critics.modules`: :class:`ConcatCritic`, :class:`SeparableCritic`,
  :class:`GaussianCritic`, :class:`CosineCritic`;
* :mod:`~factorcl_jax.critics.heads`: :func:`pair_sums`, :func:`relu_pair_head`;
* :mod:`~factorcl_jax.critics.scoring`: :func:`pairwise_scores` (dense or row blocks),
  :func:`tiled_bound` and :func:`row_statistics` (tiles), for a critic in any form of the
  network protocol (:mod:`factorcl_jax.networks`).
"""

from factorcl_jax.critics.heads import pair_sums, relu_pair_head
from factorcl_jax.critics.modules import ConcatCritic, CosineCritic, GaussianCritic, SeparableCritic
from factorcl_jax.critics.scoring import pairwise_scores, row_statistics, tiled_bound

__all__ = [
    "ConcatCritic",
    "CosineCritic",
    "GaussianCritic",
    "SeparableCritic",
    "pair_sums",
    "pairwise_scores",
    "relu_pair_head",
    "row_statistics",
    "tiled_bound",
]
