"""What a training step's terms read: representations of a batch and of its augmented views.

For a batch ``{"x1", "x2", "y", "mask1", "mask2"}`` a method reads (:class:`objectives.Views`)

* the representations of the inputs (``S1, S2, U1, U2`` for FactorCL, ``Z1, Z2`` otherwise),
* SSL: the same representations of the augmented inputs (``Z'``, the SSL target),
* SUP: the one-hot labels (the SUP target) and the labels of every column,
* fused methods (CoMM, InfMasking): fused representations of the views they declare.

Augmentations draw every row's randomness from one key for the whole batch, so under data
parallelism each device augments the *global* batch and keeps its rows
(:func:`_augment_global_batch`): a step on ``D`` devices sees the draws of one device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax import fusion
from factorcl_jax.objectives import Views
from factorcl_jax.scoring import global_columns

if TYPE_CHECKING:
    from factorcl_jax.train import Trainer

__all__ = ["Batch", "JointAugmentation", "augment_batch", "batch_inputs", "batch_views"]

Batch = Mapping[str, Array]
"""``{"x1": [n, ...], "x2": [n, ...], "y": [n] int, "mask1": [n, T1], "mask2": [n, T2]}``.

``y`` is needed by SUP methods; the masks (true at real time steps) only by sequence data.
"""

JointAugmentation = Callable[..., tuple[Array, Array]]
"""``(key, x1, x2, *, mask=None) -> (x1_aug, x2_aug)``: one draw for both modalities, e.g.
:func:`augment.aligned_time_mask` (the same time steps dropped in time-aligned sequences)."""


def batch_inputs(batch: Batch) -> tuple[tuple[Array, Array], tuple[Array | None, Array | None]]:
    """The modalities of a batch and their masks (``None`` where absent)."""
    return (batch["x1"], batch["x2"]), (batch.get("mask1"), batch.get("mask2"))


def batch_views(
    trainer: Trainer, model_params: Any, batch: Batch, key: Array, axis_name: str | None = None
) -> Views:
    """Representations of the batch (and of its augmented views / one-hot labels).

    For a fused method the representations are its fused views (:func:`_fused_views`).
    Under ``axis_name`` the augmented views of this device's rows are drawn as if the global
    batch were augmented at once.
    """
    method, model = trainer.method, trainer.model
    inputs, masks = batch_inputs(batch)
    augmented = None
    if method.fused_views:
        representations = _fused_views(trainer, model_params, batch, key, axis_name)
    else:
        _, representations = model.apply(model_params, inputs, masks)
        if method.uses_augmentation:
            augmented_inputs = augment_batch(trainer, batch, key, axis_name)
            _, augmented = model.apply(model_params, augmented_inputs, masks)
    labels = batch.get("y")
    onehot = column_labels = None
    if method.supervised:
        if labels is None:
            raise ValueError(f"{method.name} is supervised: the batch needs 'y'")
        onehot = jax.nn.one_hot(labels, trainer.num_classes)
        column_labels = global_columns(labels, axis_name)
    return Views(representations, augmented, onehot, labels, column_labels)


def augment_batch(
    trainer: Trainer, batch: Batch, key: Array, axis_name: str | None = None
) -> tuple[Array, Array]:
    """The augmented modalities ``(x1_aug, x2_aug)`` of a batch (shapes of ``x1``, ``x2``).

    Each modality goes through its own augmentation (keys ``split(key, 2)``), then both
    through the trainer's ``joint_augmentation`` when set (key ``fold_in(key, 2)``). Under
    ``axis_name`` the draws are those of the global batch.
    """
    if trainer.augmentations is None:
        raise ValueError("this trainer has no `augmentations`")
    inputs, masks = batch_inputs(batch)
    keys = jax.random.split(key, len(inputs))
    augmented = tuple(
        _augment_global_batch(augment, k, (x,), mask, axis_name)
        for augment, k, x, mask in zip(trainer.augmentations, keys, inputs, masks, strict=True)
    )
    if trainer.joint_augmentation is not None:
        joint_key = jax.random.fold_in(key, len(inputs))
        augmented = tuple(
            _augment_global_batch(
                trainer.joint_augmentation, joint_key, augmented, masks[0], axis_name
            )
        )
    return augmented


def _fused_views(
    trainer: Trainer, model_params: Any, batch: Batch, key: Array, axis_name: str | None
) -> dict[str, Array]:
    """``{name: [draws * n, E]}``: every fused view the method declares.

    Augmentation draw ``a`` is :func:`augment_batch` with key ``fold_in(k1, a)``; the random
    token masks of the ``k``-th declared view come from uniform noise with key
    ``fold_in(k2, k)`` (``k1, k2 = split(key)``). Under ``axis_name`` both are drawn for the
    global batch, so every row gets the draws it gets on one device.
    """
    inputs, masks = batch_inputs(batch)
    views = trainer.method.fused_views
    augment_key, mask_key = jax.random.split(key)
    drawn = {None: inputs}
    for augmentation in {view.augmentation for view in views.values()} - {None}:
        drawn[augmentation] = augment_batch(
            trainer, batch, jax.random.fold_in(augment_key, augmentation), axis_name
        )
    rows = jnp.zeros((inputs[0].shape[0], 0))  # only its row count is read
    noise = {
        name: _augment_global_batch(
            _uniform_noise((view.draws, trainer.model.num_tokens)),
            jax.random.fold_in(mask_key, index),
            (rows,),
            None,
            axis_name,
        )
        for index, (name, view) in enumerate(views.items())
        if view.mask_ratio > 0
    }
    return fusion.view_representations(trainer.model, model_params, drawn, masks, views, noise)


def _augment_global_batch(
    augment: Callable[..., Any],
    key: Array,
    arrays: tuple[Array, ...],
    mask: Array | None,
    axis_name: str | None,
) -> Any:
    """``augment(key, *arrays, mask=mask)`` of this device's ``[n_local, ...]`` rows, drawn for
    the global batch; the result has ``augment``'s structure (an array, or a tuple of them).

    An augmentation draws the randomness of every row from one key for the whole batch (and
    mixup pairs rows across it), so a row's draw depends on its global index and the global
    batch size. Augmenting the gathered global batch and keeping this device's rows gives every
    row the draw it gets on one device, whatever the device count; the price is one gather of
    the raw inputs and an augmentation of ``n_global`` rows per device.
    """
    if axis_name is None:
        return augment(key, *arrays, mask=mask)
    n_local = arrays[0].shape[0]
    gather = lambda value: jax.lax.all_gather(value, axis_name, tiled=True)
    augmented = augment(key, *map(gather, arrays), mask=None if mask is None else gather(mask))
    start = jax.lax.axis_index(axis_name) * n_local
    local = lambda value: jax.lax.dynamic_slice_in_dim(value, start, n_local, axis=0)
    return jax.tree.map(local, augmented)


def _uniform_noise(shape: tuple[int, ...]) -> Callable[..., Array]:
    """``(key, x, *, mask=None) -> [n, *shape]`` uniform noise, one row per row of ``x``: random
    draws shaped like an augmentation, so :func:`_augment_global_batch` can draw them."""

    def draw(key: Array, x: Array, *, mask: Array | None = None) -> Array:
        return jax.random.uniform(key, (x.shape[0], *shape))

    return draw
