"""Networks as pure functions over parameter pytrees: the protocol, its adapters, the MLP.

* :mod:`~factorcl_jax.networks.protocol`: what a critic, an encoder and a Gaussian model
  are (``init`` plus pure functions of ``params``);
* :mod:`~factorcl_jax.networks.adapters`: Flax Linen, Flax NNX, Equinox modules and plain
  functions as such objects (:func:`as_critic`, :func:`as_encoder`, :func:`as_gaussian`);
* :mod:`~factorcl_jax.networks.layers`: the MLP block and the compute dtype.
"""

from factorcl_jax.networks.adapters import (
    EquinoxCritic,
    EquinoxEncoder,
    EquinoxGaussian,
    FunctionCritic,
    FunctionEncoder,
    FunctionGaussian,
    LinenCritic,
    LinenEncoder,
    LinenGaussian,
    NnxCritic,
    NnxEncoder,
    NnxGaussian,
    as_critic,
    as_encoder,
    as_gaussian,
)
from factorcl_jax.networks.protocol import Critic, Encoder, GaussianModel

__all__ = [
    "Critic",
    "Encoder",
    "EquinoxCritic",
    "EquinoxEncoder",
    "EquinoxGaussian",
    "FunctionCritic",
    "FunctionEncoder",
    "FunctionGaussian",
    "GaussianModel",
    "LinenCritic",
    "LinenEncoder",
    "LinenGaussian",
    "NnxCritic",
    "NnxEncoder",
    "NnxGaussian",
    "as_critic",
    "as_encoder",
    "as_gaussian",
]
