r"""FactorCL and the paper's baselines as lists of terms, evaluated by one function.

FactorCL (Liang et al. 2023) learns shared representations ``S1, S2`` and unique ones
``U1, U2`` by maximising (nats)

.. math::
    L_S &= I_{NCE}(S_1; S_2) - I_{NCE\text{-}CLUB}(S_1; S_2 \mid Y) \\
    L_{U_1} &= I_{NCE}(U_1; Y) - I_{NCE\text{-}CLUB}(U_1; U_2) + I_{NCE}(U_1; U_2 \mid Y) \\
    L_{U_2} &= I_{NCE}(U_2; Y) - I_{NCE\text{-}CLUB}(U_1; U_2) + I_{NCE}(U_1; U_2 \mid Y)

(the modality ``X_2`` in ``L_{U_1}`` is represented by ``U_2`` and vice versa, so the last two
terms are shared by ``L_{U_1}`` and ``L_{U_2}``; they are listed once with weight 2).

A :class:`Term` names its bound, weight, left and right representations and whether it is
conditioned on the *target*. The target is what ``Y`` stands for in the variant:

* **SUP** (``supervised=True``): the label, as a one-hot vector. ``I(Z; Y)`` scores ``Z``
  against the one-hot labels; conditioning concatenates the one-hot label to both sides.
* **SSL** (``supervised=False``): augmentations. ``I(Z; Y)`` becomes ``I(Z; Z')`` with ``Z'``
  the same representation of the augmented input; conditioning concatenates each side with
  *its own* augmented view, ``I(Z_1; Z_2 | Z_1', Z_2')`` with ``[Z_1; Z_1']`` and
  ``[Z_2; Z_2']`` (the paper's equation).

So SUP and SSL variants of a method are the same term list with a different switch.

**Fused methods** (CoMM, InfMasking; :mod:`factorcl_jax.fusion`) have no per-modality heads:
they declare named :class:`FusedView` s of the batch (which augmentation draw, which
modalities, how many tokens masked at random) and their terms read those views by name, e.g.
``Term("fused/infonce", "infonce", 0.5, "Z'", "Z''")``. The trainer computes the views a
method declares (:attr:`Method.fused_views`). A term's bound is a name of
:data:`factorcl_jax.bounds.BOUNDS`, with its options (e.g. InfMasking's ``draws``).
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
    "METHODS",
    "TARGET",
    "FusedView",
    "Method",
    "Term",
    "Views",
    "comm_method",
    "evaluate_values",
    "get_method",
    "infmasking_method",
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
    (:class:`factorcl_jax.fusion.FusionModel`) of every sample, ``draws`` times when tokens are
    masked at random, with draw ``t`` of sample ``i`` at row ``t * n + i``.

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


def _factorcl_terms(s1: str, s2: str, u1: str, u2: str) -> tuple[Term, ...]:
    return (
        Term("shared/infonce", "infonce", 1.0, s1, s2),
        Term("shared/club_given_target", "nce_club", -1.0, s1, s2, conditioned=True),
        Term("unique1/infonce_target", "infonce", 1.0, u1, TARGET),
        Term("unique2/infonce_target", "infonce", 1.0, u2, TARGET),
        Term("unique/club", "nce_club", -2.0, u1, u2),
        Term("unique/infonce_given_target", "infonce", 2.0, u1, u2, conditioned=True),
    )


FACTORIZED = {"S1": 0, "S2": 1, "U1": 0, "U2": 1}
UNFACTORIZED = {"Z1": 0, "Z2": 1}


def _comm_views_and_terms(
    num_modalities: int,
) -> tuple[dict[str, FusedView], tuple[Term, ...]]:
    """CoMM's ``I(Z'; Z'') + sum_i I(Z_i; Z')``, each term symmetrised over the augmentations."""
    views = {"Z'": FusedView(0), "Z''": FusedView(1)}
    terms = [
        Term("fused/infonce", "infonce", 0.5, "Z'", "Z''"),
        Term("fused/infonce_swapped", "infonce", 0.5, "Z''", "Z'"),
    ]
    for m in range(num_modalities):
        views[f"Z'_{m + 1}"] = FusedView(0, (m,))
        views[f"Z''_{m + 1}"] = FusedView(1, (m,))
        terms += [
            Term(f"modality{m + 1}/infonce", "infonce", 0.5, f"Z'_{m + 1}", "Z''"),
            Term(f"modality{m + 1}/infonce_swapped", "infonce", 0.5, f"Z''_{m + 1}", "Z'"),
        ]
    return views, tuple(terms)


def comm_method(num_modalities: int = 2, name: str = "CoMM") -> Method:
    r"""CoMM (Dufumier et al., ICLR 2025): maximises
    ``I(Z'; Z'') + sum_i I(Z_i; Z')`` over fused views.

    ``Z'``, ``Z''`` fuse two augmentations of the batch; ``Z'_i`` (``Z''_i``) fuses the first
    (second) augmentation with every modality but ``i`` (1-based) masked out. Every ``I`` is
    InfoNCE, symmetrised: ``(I(Z'; Z'') + I(Z''; Z')) / 2`` and
    ``(I(Z'_i; Z'') + I(Z''_i; Z')) / 2``. See :mod:`factorcl_jax.fusion` for the choices made.
    """
    views, terms = _comm_views_and_terms(num_modalities)
    return Method(name, {}, terms, supervised=False, fused_views=views)


def infmasking_method(
    num_modalities: int = 2,
    *,
    mask_ratio: float = 0.7,
    draws: int = 6,
    variance_scale: float = 1.0,
    name: str = "InfMasking",
) -> Method:
    r"""InfMasking (Wen et al., NeurIPS 2025): CoMM's terms plus ``Z'`` (``Z''``) aligned with
    ``draws`` fused views of the same augmentation whose modalities each have ``mask_ratio``
    of their tokens masked at random per sample, by :func:`factorcl_jax.bounds.infmasking`
    (``lambda = variance_scale``). The defaults are its code's synthetic-data settings.
    """
    views, terms = _comm_views_and_terms(num_modalities)
    options = MappingProxyType({"draws": draws, "variance_scale": variance_scale})
    views["Z'_masked"] = FusedView(0, mask_ratio=mask_ratio, draws=draws)
    views["Z''_masked"] = FusedView(1, mask_ratio=mask_ratio, draws=draws)
    terms += (
        Term("masked/infmasking", "infmasking", 1.0, "Z'", "Z'_masked", options=options),
        Term("masked/infmasking_swapped", "infmasking", 1.0, "Z''", "Z''_masked", options=options),
    )
    return Method(name, {}, terms, supervised=False, fused_views=views)


def _methods() -> dict[str, Method]:
    cross = Term("cross/infonce", "infonce", 1.0, "Z1", "Z2")
    methods = [
        Method("SimCLR", UNFACTORIZED, (cross,), supervised=False),
        Method(
            "Cross+Self",
            UNFACTORIZED,
            (
                cross,
                Term("self1/infonce", "infonce", 1.0, "Z1", TARGET),
                Term("self2/infonce", "infonce", 1.0, "Z2", TARGET),
            ),
            supervised=False,
        ),
        Method(
            "Cross+Self+Fact",
            FACTORIZED,
            (
                Term("shared/infonce", "infonce", 1.0, "S1", "S2"),
                Term("unique1/infonce_target", "infonce", 1.0, "U1", TARGET),
                Term("unique2/infonce_target", "infonce", 1.0, "U2", TARGET),
            ),
            supervised=False,
        ),
        Method(
            "OurCL-SSL", UNFACTORIZED, _factorcl_terms("Z1", "Z2", "Z1", "Z2"), supervised=False
        ),
        Method(
            "FactorCL-SSL", FACTORIZED, _factorcl_terms("S1", "S2", "U1", "U2"), supervised=False
        ),
        Method(
            "SupCon",
            UNFACTORIZED,
            (Term("cross/supcon", "supcon", 1.0, "Z1", "Z2"),),
            supervised=True,
        ),
        Method("OurCL-SUP", UNFACTORIZED, _factorcl_terms("Z1", "Z2", "Z1", "Z2"), supervised=True),
        Method(
            "FactorCL-SUP", FACTORIZED, _factorcl_terms("S1", "S2", "U1", "U2"), supervised=True
        ),
        comm_method(),
        infmasking_method(),
    ]
    return {method.name: method for method in methods}


METHODS: dict[str, Method] = _methods()
"""Every row of the paper's MultiBench table, then its successors CoMM and InfMasking."""


def get_method(name: str) -> Method:
    """The method called ``name`` (a key of :data:`METHODS`), with a clear error otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {list(METHODS)}")
    return METHODS[name]


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
