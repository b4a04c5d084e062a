"""factorcl_jax: Factorized Contrastive Learning and mutual-information bounds in JAX/Flax.

Modules:
  bounds    MI lower/upper bounds as pure functions of a critic score matrix.
  critics   two-tower critics scoring all pairs of a batch, with optional row blocking.
  tiled     bounds over row x column tiles (online log-sum-exp, recomputing backward, ring).
  estimate  fit a critic to samples and report an MI estimate.
"""

from factorcl_jax import bounds, critics, estimate
from factorcl_jax.estimate import estimate_mi

__all__ = ["bounds", "critics", "estimate", "estimate_mi"]
__version__ = "0.1.0"
