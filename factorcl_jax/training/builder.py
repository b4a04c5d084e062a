"""From a run's config and a method to its :class:`~factorcl_jax.training.step.Trainer`.

:func:`build_trainer` is the one place a config becomes networks, critics, optimizers and
augmentations: the train job, :func:`factorcl_jax.evaluation.fit_and_probe`'s callers, the
examples and the benchmarks all build their trainers here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import optax

from factorcl_jax import critics, models, objectives, validation
from factorcl_jax.config import RunConfig, augmentation_hyperparameters
from factorcl_jax.models import augment
from factorcl_jax.models.encoders import GRUEncoder, TransformerEncoder
from factorcl_jax.networks.layers import compute_dtype_of
from factorcl_jax.objectives import Method
from factorcl_jax.training.schedules import learning_rate_schedule, per_main_step
from factorcl_jax.training.step import Trainer
from factorcl_jax.training.views import JointAugmentation

__all__ = ["build_trainer", "config_augmentation", "config_encoder"]


def config_augmentation(config: RunConfig) -> augment.Augmentation:
    """The unimodal augmentation of ``config.augment``: one of its ``names`` per sample."""
    return augment.make_augmentation(config.augment.names, **augmentation_hyperparameters(config))


def config_encoder(config: RunConfig) -> nn.Module:
    """One modality's encoder as ``config.model`` describes it (``encoder``: ``"mlp"``,
    ``"transformer"`` or ``"gru"``; sizes ``encoder_hidden``, ``encoder_layers``,
    ``encoder_heads``, ``max_length``, output ``embed_dim`` for the MLP)."""
    model = config.model
    if model.encoder == "transformer":
        return TransformerEncoder(
            model.encoder_hidden,
            num_heads=model.encoder_heads,
            num_layers=model.encoder_layers,
            max_length=model.max_length,
        )
    if model.encoder == "gru":
        return GRUEncoder(model.encoder_hidden)
    dtype = compute_dtype_of(config.memory.compute_dtype)
    return models.MLPEncoder(
        model.encoder_hidden, model.embed_dim, model.encoder_layers, dtype=dtype
    )


def build_trainer(
    config: RunConfig,
    method: str | Method,
    *,
    num_classes: int = 2,
    steps_per_epoch: int | None = None,
    encoders: Sequence[Any] | None = None,
    augmentations: tuple[augment.Augmentation, augment.Augmentation] | None = None,
    joint_augmentation: JointAugmentation | None = None,
) -> Trainer:
    """The trainer of ``method`` under ``config``.

    * encoders: ``encoders`` (one per modality, in any form of the network protocol: Flax
      Linen, NNX, Equinox or functions), or two of ``model.encoder``
      (:func:`config_encoder`);
    * model: a head per representation (:class:`models.MultimodalModel`), or for a fused
      method (CoMM, InfMasking) a :class:`models.FusionModel` over the same encoders;
    * critics: :class:`critics.ConcatCritic` with ``critic_layers`` hidden layers of
      ``critic_hidden`` (fused methods: :class:`critics.CosineCritic` at ``temperature``, as in
      their papers);
    * optimizers: Adam at ``train.learning_rate`` under ``train.lr_schedule`` for the main
      parameters, the same schedule stepped once per main step for the CLUB critics;
    * augmentations: ``augmentations``, or :func:`config_augmentation` on both modalities;
    * memory: ``memory.block_size``, ``column_block``, ``exchange``, ``compute_dtype``.

    Args:
      config: the run's configuration.
      method: a name of :data:`objectives.METHODS` or a :class:`objectives.Method`.
      num_classes: label classes (SUP methods' one-hot width).
      steps_per_epoch: steps of one epoch; a ``"cosine"`` schedule decays over
        ``train.epochs * steps_per_epoch`` steps and needs it.
      encoders: one encoder per modality instead of the config's (e.g. sequence encoders, or
        your own NNX / Equinox networks).
      augmentations: ``(augment_x1, augment_x2)`` instead of the config's.
      joint_augmentation: one draw for both modalities after ``augmentations`` (e.g.
        :func:`augment.aligned_time_mask` for time-aligned sequences).

    Example:
      >>> from factorcl_jax.config import PRESETS
      >>> trainer = build_trainer(PRESETS["cpu"], "FactorCL-SSL", steps_per_epoch=37)
      >>> sorted(trainer.method.representations)
      ['S1', 'S2', 'U1', 'U2']
    """
    method = objectives.get_method(method) if isinstance(method, str) else method
    validation.check_int(num_classes, "num_classes", minimum=2)
    model_config, train_config, memory = config.model, config.train, config.memory
    total_steps = None
    if steps_per_epoch is None and train_config.lr_schedule != "constant":
        raise ValueError(
            f"train.lr_schedule = {train_config.lr_schedule!r} decays over train.epochs * "
            "`steps_per_epoch` steps: pass `steps_per_epoch` (rows // train.batch_size)"
        )
    if steps_per_epoch is not None:
        total_steps = train_config.epochs * validation.check_positive_int(
            steps_per_epoch, "steps_per_epoch"
        )
    learning_rate = learning_rate_schedule(
        train_config.learning_rate, train_config.lr_schedule, total_steps
    )
    dtype = compute_dtype_of(memory.compute_dtype)
    if encoders is None:
        encoders = (config_encoder(config), config_encoder(config))
    if method.fused_views:
        model = models.FusionModel(
            tuple(encoders),
            tokens_per_modality=model_config.tokens_per_modality,
            width=model_config.embed_dim,
            num_heads=math.gcd(4, model_config.embed_dim),  # 4 heads unless the width forbids
            head_hidden=model_config.head_hidden,
            embed_dim=model_config.embed_dim,
        )
        critic = critics.CosineCritic(model_config.temperature)
    else:
        model = models.MultimodalModel(
            tuple(encoders),
            dict(method.representations),
            head_hidden=model_config.head_hidden,
            embed_dim=model_config.embed_dim,
            normalize_heads=model_config.normalize_heads,
            dtype=dtype,
        )
        critic = critics.ConcatCritic(
            hidden=(model_config.critic_hidden,) * model_config.critic_layers, dtype=dtype
        )
    if augmentations is None:
        augmentations = (config_augmentation(config),) * 2
    return Trainer(
        method=method,
        model=model,
        critic=critic,
        optimizer=optax.adam(learning_rate),
        club_optimizer=optax.adam(per_main_step(learning_rate, train_config.num_club_iter)),
        num_classes=num_classes,
        augmentations=augmentations,
        joint_augmentation=joint_augmentation,
        num_club_iter=train_config.num_club_iter,
        block_size=memory.block_size,
        column_block=memory.column_block,
        exchange=memory.exchange,
    )
