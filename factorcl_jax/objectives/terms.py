"""The vocabulary of objectives: a method is a list of weighted terms over named views.

A :class:`Term` is one weighted bound of :data:`factorcl_jax.bounds.BOUNDS` between two named
representations (or fused views) of a batch, optionally conditioned on the target; a
:class:`Method` gathers the terms of an objective with the representations it needs;
:class:`Views` is what one batch provides; :func:`evaluate_values` is the one function that
turns a method's terms into its loss, with each term's value computed by the caller (the
training step scores pairs densely, in row blocks or over tiles).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax.numpy as jnp
from jax import Array

from factorcl_jax.bounds.formulas import get_bound

__all__ = [
    "TARGET",
    "FusedView",
    "Method",
    "Term",
    "ValueFn",
    "Views",
    "evaluate_values",
    "term_inputs",
]

TARGET = "target"
"""Right-hand side meaning ``Y``: the one-hot label (SUP) or the augmented view (SSL)."""


class Term(NamedTuple):
    """One weighted bound in an objective.

    Attributes:
      name: unique name, also the key of the term's critic parameters.
      bound: a name of :data:`factorcl_jax.bounds.BOUNDS`: ``"infonce"`` (critic trained with
        the main parameters), ``"nce_club"`` (critic trained separately by InfoNCE, held fixed
        in the main step), ``"supcon"``, ``"infmasking"``, ...
      weight: multiplies the value in the objective (negative for minimised upper bounds).
      left: representation (or fused view) name of the rows.
      right: representation (or fused view) name of the columns, or :data:`TARGET`.
      conditioned: concatenate the target to both sides (conditional MI).
      options: the bound's own options, e.g. ``{"draws": 6}`` for ``"infmasking"``.
    """

    name: str
    bound: str
    weight: float
    left: str
    right: str
    conditioned: bool = False
    options: Mapping[str, Any] = MappingProxyType({})


@dataclasses.dataclass(frozen=True)
class FusedView:
    """One fused representation of the batch, read by name by the terms of a fused method.

    The view of ``n`` rows is ``[draws * n, E]``: the projected fused representation
    (:class:`factorcl_jax.models.fusion.FusionModel`) of every sample, ``draws`` times when tokens
    are masked at random, with draw ``t`` of sample ``i`` at row ``t * n + i``.

    Attributes:
      augmentation: which independent draw of the trainer's augmentations (of both
        modalities) is fused: ``0`` is ``t'(X)``, ``1`` is ``t''(X)``; ``None`` fuses the
        batch as is.
      modalities: the (0-based) modalities the fusion sees; the others are masked out
        (excluded from attention). ``None``: all.
      mask_ratio: fraction of every seen modality's tokens replaced by the mask token, at
        random per sample and draw (InfMasking); 0 masks none.
      draws: independent random maskings (> 1 only with a ``mask_ratio``).
    """

    augmentation: int | None = 0
    modalities: tuple[int, ...] | None = None
    mask_ratio: float = 0.0
    draws: int = 1

    def __post_init__(self) -> None:
        if self.augmentation is not None and (
            not isinstance(self.augmentation, int) or self.augmentation < 0
        ):
            raise ValueError(
                f"`augmentation` must be an int >= 0 or None, got {self.augmentation!r}"
            )
        if self.modalities is not None and (
            not isinstance(self.modalities, tuple)
            or not self.modalities
            or any(not isinstance(m, int) or m < 0 for m in self.modalities)
        ):
            raise ValueError(
                f"`modalities` must be None or a non-empty tuple of ints >= 0, "
                f"got {self.modalities!r}"
            )
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"`mask_ratio` must be in [0, 1), got {self.mask_ratio!r}")
        if not isinstance(self.draws, int) or self.draws < 1:
            raise ValueError(f"`draws` must be an int >= 1, got {self.draws!r}")
        if self.draws > 1 and self.mask_ratio == 0:
            raise ValueError(f"`draws` = {self.draws} without a `mask_ratio` repeats one view")


@dataclasses.dataclass(frozen=True)
class Method:
    """A contrastive objective: representations (head -> modality), terms, and variant.

    Attributes:
      name: as in the paper's table, e.g. ``"FactorCL-SSL"``.
      representations: ``{head name: modality index}`` (``{}`` for a fused method).
      terms: the weighted terms whose sum is maximised.
      supervised: the target is the label (SUP) rather than augmentations (SSL).
      fused_views: ``{name: FusedView}`` the terms read instead of per-modality heads
        (CoMM, InfMasking); ``{}`` for every other method.
    """

    name: str
    representations: Mapping[str, int]
    terms: tuple[Term, ...]
    supervised: bool
    fused_views: Mapping[str, FusedView] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for term in self.terms:
            try:
                get_bound(term.bound).check_options(term.options, 1)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{self.name}: term {term.name!r}: {error}") from None
        if not self.fused_views:
            return
        if self.representations:
            raise ValueError(
                f"{self.name}: a fused method reads its views, not heads; got representations "
                f"{dict(self.representations)}"
            )
        for term in self.terms:
            unknown = [side for side in (term.left, term.right) if side not in self.fused_views]
            if unknown or term.conditioned:
                raise ValueError(
                    f"{self.name}: term {term.name!r} must read declared fused views "
                    f"{list(self.fused_views)} without conditioning, got left={term.left!r}, "
                    f"right={term.right!r}, conditioned={term.conditioned}"
                )

    @property
    def club_terms(self) -> tuple[Term, ...]:
        """Terms whose critic is trained separately (the NCE-CLUB upper bounds)."""
        return tuple(term for term in self.terms if term.bound == "nce_club")

    @property
    def uses_augmentation(self) -> bool:
        """Whether the objective needs the augmented views."""
        fused = any(view.augmentation is not None for view in self.fused_views.values())
        return fused or (
            not self.supervised
            and any(term.right == TARGET or term.conditioned for term in self.terms)
        )


class Views(NamedTuple):
    """What the terms read for one batch.

    Attributes:
      representations: ``{name: [n, E]}`` of the original inputs; for a fused method its
        fused views ``{name: [draws * n, E]}``.
      augmented: ``{name: [n, E]}`` of the augmented inputs (SSL), or ``None``.
      target_onehot: ``[n, C]`` one-hot labels (SUP), or ``None``.
      labels: ``[n]`` integer labels of the rows (SUP), or ``None``.
      column_labels: ``[m]`` labels of the critics' columns when they differ from the rows
        (data-parallel: the global batch), or ``None`` for ``labels``.
    """

    representations: Mapping[str, Array]
    augmented: Mapping[str, Array] | None = None
    target_onehot: Array | None = None
    labels: Array | None = None
    column_labels: Array | None = None


def _target(method: Method, views: Views, name: str) -> Array:
    if method.supervised:
        if views.target_onehot is None:
            raise ValueError(f"{method.name} is supervised: labels are required")
        return views.target_onehot
    if views.augmented is None:
        raise ValueError(f"{method.name} needs augmented views")
    return views.augmented[name]


def term_inputs(method: Method, term: Term, views: Views) -> tuple[Array, Array]:
    """The ``[n, d_left]`` rows and ``[n, d_right]`` columns a term's critic scores."""
    if term.conditioned and term.right == TARGET:
        raise ValueError(f"term {term.name!r}: conditioning a term on its own target")
    left = views.representations[term.left]
    if term.right == TARGET:
        right = _target(method, views, term.left)
    else:
        right = views.representations[term.right]
    if term.conditioned:
        left = jnp.concatenate([left, _target(method, views, term.left)], axis=-1)
        right = jnp.concatenate([right, _target(method, views, term.right)], axis=-1)
    return left, right


ValueFn = Callable[[Term, Array, Array], Array]


def evaluate_values(method: Method, views: Views, value: ValueFn) -> tuple[Array, dict[str, Array]]:
    """Every term's value and the method's loss.

    Args:
      method: the objective.
      views: representations, augmented views and/or labels of the batch.
      value: ``(term, left [n, dl], right [n, dr]) -> value``, the term's bound on the
        inputs :func:`term_inputs` gives (the caller picks the critic parameters, whether they
        are held fixed, and how pairs are scored).

    Returns:
      ``(loss, values)``: ``loss = -sum_k weight_k * value_k`` (minimised) and the value of
      every term in nats by name.
    """
    values = {term.name: value(term, *term_inputs(method, term, views)) for term in method.terms}
    objective = sum(term.weight * values[term.name] for term in method.terms)
    return -objective, values
