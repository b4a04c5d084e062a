"""FactorCL, the paper's baselines and the successors CoMM and InfMasking as lists of terms.

* :mod:`~factorcl_jax.objectives.terms`: :class:`Term`, :class:`FusedView`, :class:`Method`,
  :class:`Views` and :func:`evaluate_values`, the one term-dispatch path;
* :mod:`~factorcl_jax.objectives.methods`: :data:`METHODS`, the paper's table as data.
"""

from factorcl_jax.objectives.methods import (
    FACTORIZED,
    METHODS,
    UNFACTORIZED,
    comm_method,
    get_method,
    infmasking_method,
)
from factorcl_jax.objectives.terms import (
    TARGET,
    FusedView,
    Method,
    Term,
    ValueFn,
    Views,
    evaluate_values,
    term_inputs,
)

__all__ = [
    "FACTORIZED",
    "METHODS",
    "TARGET",
    "UNFACTORIZED",
    "FusedView",
    "Method",
    "Term",
    "ValueFn",
    "Views",
    "comm_method",
    "evaluate_values",
    "get_method",
    "infmasking_method",
    "term_inputs",
]
