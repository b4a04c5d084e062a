"""Estimating mutual information from samples, and the programs that benchmark estimators.

* :mod:`~factorcl_jax.estimate.protocol`: :func:`estimate_mi`, the one held-out protocol;
* :mod:`~factorcl_jax.estimate.estimators`: how each estimator trains its critic;
* :mod:`~factorcl_jax.estimate.settings`: the default critic, batch and step budget;
* :mod:`~factorcl_jax.estimate.samples`: validation, the split by unique pair, standardisation;
* :mod:`~factorcl_jax.estimate.seeds`: several seeds or sample sets as one compiled program
  (:func:`estimate_mi_seeds`);
* :mod:`~factorcl_jax.estimate.staircase`: the Gaussian staircase as one compiled program;
* :mod:`~factorcl_jax.estimate.classical`: the classical baselines KSG and CCA.
"""

from factorcl_jax.estimate.estimators import (
    CRITIC_KINDS,
    ESTIMATORS,
    SEPARABLE_EMBED_DIM,
    CriticState,
    Estimator,
    critic_outputs,
    critic_step,
    get_estimator,
    init_critic_state,
    make_critic,
)
from factorcl_jax.estimate.protocol import (
    DivergedEstimateError,
    ImplausibleEstimateError,
    MIEstimate,
    NonFiniteEstimateError,
    estimate_mi,
    estimate_mi_seeds,
)
from factorcl_jax.estimate.settings import Settings, default_settings

__all__ = [
    "CRITIC_KINDS",
    "ESTIMATORS",
    "SEPARABLE_EMBED_DIM",
    "CriticState",
    "DivergedEstimateError",
    "Estimator",
    "ImplausibleEstimateError",
    "MIEstimate",
    "NonFiniteEstimateError",
    "Settings",
    "critic_outputs",
    "critic_step",
    "default_settings",
    "estimate_mi",
    "estimate_mi_seeds",
    "get_estimator",
    "init_critic_state",
    "make_critic",
]
