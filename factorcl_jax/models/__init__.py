"""The networks of a training run: encoders, heads, the fused model, and augmentations.

* :mod:`~factorcl_jax.models.multimodal`: :class:`MLPEncoder`, :class:`MultimodalModel`
  (encoders of any form of the network protocol plus one head per representation),
  :func:`embed`;
* :mod:`~factorcl_jax.models.encoders`: sequence encoders (:class:`TransformerEncoder`,
  :class:`GRUEncoder`);
* :mod:`~factorcl_jax.models.fusion`: :class:`FusionModel`, the fused model of CoMM and
  InfMasking;
* :mod:`~factorcl_jax.models.augment`: keyed, vectorised augmentations;
* :mod:`~factorcl_jax.models.image_augment`: SimCLR's image augmentations;
* :mod:`~factorcl_jax.models.cnn`: :class:`AlexNetEncoder`, pooled vectors or patch tokens.
"""

from factorcl_jax.models import augment, image_augment
from factorcl_jax.models.cnn import AlexNetEncoder
from factorcl_jax.models.encoders import GRUEncoder, TransformerEncoder, masked_mean
from factorcl_jax.models.fusion import FusionCore, FusionModel
from factorcl_jax.models.multimodal import (
    MLPEncoder,
    MultimodalModel,
    embed,
    encode_modalities,
    init_encoders,
)

__all__ = [
    "AlexNetEncoder",
    "FusionCore",
    "FusionModel",
    "GRUEncoder",
    "MLPEncoder",
    "MultimodalModel",
    "TransformerEncoder",
    "augment",
    "embed",
    "encode_modalities",
    "image_augment",
    "init_encoders",
    "masked_mean",
]
