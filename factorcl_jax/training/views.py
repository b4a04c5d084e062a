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

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax.models.fusion import FusionModel
from factorcl_jax.objectives import FusedView, Method, Views
from factorcl_jax.training.scoring import global_columns

__all__ = [
    "Augmenter",
    "Batch",
    "JointAugmentation",
    "augment_batch",
    "batch_inputs",
    "batch_views",
    "token_masks",
    "view_representations",
]

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


@dataclasses.dataclass(frozen=True)
class Augmenter:
    """The augmentations of a run: one per modality, then an optional joint one.

    Attributes:
      per_modality: ``(augment_x1, augment_x2)``, each ``(key, x, *, mask=None) -> x_aug``.
      joint: optional :data:`JointAugmentation` applied to both modalities together after
        ``per_modality``; it gets the first modality's mask as the shared validity mask of
        time-aligned sequences.
    """

    per_modality: tuple[Callable[..., Array], ...]
    joint: JointAugmentation | None = None

    def __post_init__(self) -> None:
        if self.joint is not None and not callable(self.joint):
            raise TypeError(
                "`joint_augmentation` must be a function (key, x1, x2, *, mask) -> (x1, x2), "
                f"got {type(self.joint).__name__}"
            )


def batch_views(
    method: Method,
    model: Any,
    augmenter: Augmenter | None,
    num_classes: int,
    model_params: Any,
    batch: Batch,
    key: Array,
    axis_name: str | None = None,
) -> Views:
    """Representations of the batch (and of its augmented views / one-hot labels).

    For a fused method the representations are its fused views (:func:`_fused_views`).
    Under ``axis_name`` the augmented views of this device's rows are drawn as if the global
    batch were augmented at once.

    Args:
      method: which representations, views and targets the terms read.
      model: the model (``apply(params, inputs, masks) -> (encoded, {name: z})``; a
        :class:`~factorcl_jax.models.FusionModel` for a fused method).
      augmenter: the augmentations (SSL and fused methods), or ``None``.
      num_classes: one-hot width of SUP targets.
      model_params: the model's parameters.
      batch: this device's rows.
      key: the step's key.
      axis_name: the data-parallel axis, or ``None``.
    """
    inputs, masks = batch_inputs(batch)
    augmented = None
    if method.fused_views:
        representations = _fused_views(
            method, model, augmenter, model_params, batch, key, axis_name
        )
    else:
        _, representations = model.apply(model_params, inputs, masks)
        if method.uses_augmentation:
            augmented_inputs = augment_batch(augmenter, batch, key, axis_name)
            _, augmented = model.apply(model_params, augmented_inputs, masks)
    labels = batch.get("y")
    onehot = column_labels = None
    if method.supervised:
        if labels is None:
            raise ValueError(f"{method.name} is supervised: the batch needs 'y'")
        onehot = jax.nn.one_hot(labels, num_classes)
        column_labels = global_columns(labels, axis_name)
    return Views(representations, augmented, onehot, labels, column_labels)


def augment_batch(
    augmenter: Augmenter | None, batch: Batch, key: Array, axis_name: str | None = None
) -> tuple[Array, Array]:
    """The augmented modalities ``(x1_aug, x2_aug)`` of a batch (shapes of ``x1``, ``x2``).

    Each modality goes through its own augmentation (keys ``split(key, 2)``), then both
    through the joint augmentation when set (key ``fold_in(key, 2)``). Under ``axis_name``
    the draws are those of the global batch.
    """
    if augmenter is None:
        raise ValueError("this trainer has no `augmentations`")
    inputs, masks = batch_inputs(batch)
    keys = jax.random.split(key, len(inputs))
    augmented = tuple(
        _augment_global_batch(augment, k, (x,), mask, axis_name)
        for augment, k, x, mask in zip(augmenter.per_modality, keys, inputs, masks, strict=True)
    )
    if augmenter.joint is not None:
        joint_key = jax.random.fold_in(key, len(inputs))
        augmented = tuple(
            _augment_global_batch(augmenter.joint, joint_key, augmented, masks[0], axis_name)
        )
    return augmented


def _fused_views(
    method: Method,
    model: FusionModel,
    augmenter: Augmenter | None,
    model_params: Any,
    batch: Batch,
    key: Array,
    axis_name: str | None,
) -> dict[str, Array]:
    """``{name: [draws * n, E]}``: every fused view the method declares.

    Augmentation draw ``a`` is :func:`augment_batch` with key ``fold_in(k1, a)``; the random
    token masks of the ``k``-th declared view come from uniform noise with key
    ``fold_in(k2, k)`` (``k1, k2 = split(key)``). Under ``axis_name`` both are drawn for the
    global batch, so every row gets the draws it gets on one device.
    """
    inputs, masks = batch_inputs(batch)
    views = method.fused_views
    augment_key, mask_key = jax.random.split(key)
    drawn = {None: inputs}
    for augmentation in {view.augmentation for view in views.values()} - {None}:
        drawn[augmentation] = augment_batch(
            augmenter, batch, jax.random.fold_in(augment_key, augmentation), axis_name
        )
    rows = jnp.zeros((inputs[0].shape[0], 0))  # only its row count is read
    noise = {
        name: _augment_global_batch(
            _uniform_noise((view.draws, model.num_tokens)),
            jax.random.fold_in(mask_key, index),
            (rows,),
            None,
            axis_name,
        )
        for index, (name, view) in enumerate(views.items())
        if view.mask_ratio > 0
    }
    return view_representations(model, model_params, drawn, masks, views, noise)


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


def token_masks(
    view: FusedView,
    num_rows: int,
    num_modalities: int,
    tokens_per_modality: int,
    noise: Array | None = None,
) -> tuple[Array, Array]:
    """``(attend, replace)``, each ``[draws * n, M * T]`` bool: which tokens a view fuses.

    ``attend`` is false at the tokens of modalities not in ``view.modalities``. With
    ``view.mask_ratio = rho > 0``, every seen modality keeps ``k = floor(T (1 - rho))`` tokens
    per row and draw, those of smallest ``noise``; ``replace`` is true at the others. Row
    ``t * n + i`` is draw ``t`` of sample ``i``.

    Args:
      view: the :class:`~factorcl_jax.objectives.FusedView`.
      num_rows: ``n``.
      num_modalities: ``M``.
      tokens_per_modality: ``T``.
      noise: ``[n, draws, M * T]`` uniform noise; needed when ``view.mask_ratio > 0``.

    Raises:
      ValueError: a view that names a missing modality, keeps no token, or lacks its noise.
    """
    length = num_modalities * tokens_per_modality
    seen = range(num_modalities) if view.modalities is None else view.modalities
    if any(m >= num_modalities for m in seen):
        raise ValueError(
            f"fused view {view} sees modality {max(seen)}, but the model has {num_modalities}"
        )
    modality_of = jnp.arange(length) // tokens_per_modality
    attend_row = jnp.isin(modality_of, jnp.asarray(tuple(seen)))
    rows = view.draws * num_rows
    attend = jnp.broadcast_to(attend_row[None, :], (rows, length))
    if view.mask_ratio == 0:
        return attend, jnp.zeros((rows, length), bool)
    kept = math.floor(tokens_per_modality * (1 - view.mask_ratio))
    if kept < 1:
        raise ValueError(
            f"fused view {view}: mask_ratio {view.mask_ratio} of {tokens_per_modality} tokens "
            "per modality keeps none; use more tokens_per_modality or a smaller ratio"
        )
    expected = (num_rows, view.draws, length)
    if noise is None or noise.shape != expected:
        raise ValueError(
            f"fused view {view} needs `noise` of shape {expected}, "
            f"got {None if noise is None else noise.shape}"
        )
    per_modality = noise.reshape(num_rows, view.draws, num_modalities, tokens_per_modality)
    rank = jnp.argsort(jnp.argsort(per_modality, axis=-1), axis=-1)
    keep = (rank < kept).reshape(num_rows, view.draws, length)
    keep = jnp.swapaxes(keep, 0, 1).reshape(rows, length)
    return attend, attend & ~keep


def view_representations(
    model: FusionModel,
    params: Any,
    inputs: Mapping[int | None, Sequence[Array]],
    masks: Sequence[Array | None] | None,
    views: Mapping[str, FusedView],
    noise: Mapping[str, Array],
) -> dict[str, Array]:
    """``{name: [draws * n, embed_dim]}``: the projected fused representation of every view.

    Each input is encoded and tokenised once; the rows of every view of that input (one per
    sample and draw) are fused in one Transformer call.

    Args:
      model: the fused model.
      params: its parameters.
      inputs: ``{augmentation: modalities}``, the batch as each view's ``augmentation`` draws
        it (``None``: as is).
      masks: the sequences' validity masks (``None`` where absent).
      views: ``{name: FusedView}`` of the method.
      noise: ``{name: [n, draws, M * T] uniform}`` for the views with a ``mask_ratio``.
    """
    representations = {}
    for augmentation in dict.fromkeys(view.augmentation for view in views.values()):
        names = [name for name, view in views.items() if view.augmentation == augmentation]
        _, tokens = model.tokens(params, inputs[augmentation], masks)
        n = tokens.shape[0]
        parts = []
        for name in names:
            view = views[name]
            attend, replace = token_masks(
                view, n, len(model.encoders), model.tokens_per_modality, noise.get(name)
            )
            parts.append((jnp.tile(tokens, (view.draws, 1, 1)), attend, replace))
        stacked = [jnp.concatenate(arrays, axis=0) for arrays in zip(*parts, strict=True)]
        projected = model.fuse_and_project(params, *stacked)
        ends = list(itertools.accumulate(views[name].draws * n for name in names))
        for name, z in zip(names, jnp.split(projected, ends[:-1]), strict=True):
            representations[name] = z
    return representations
