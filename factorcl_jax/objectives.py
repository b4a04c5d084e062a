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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from factorcl_jax import bounds

__all__ = [
    "METHODS",
    "TARGET",
    "Method",
    "Term",
    "Views",
    "evaluate",
    "evaluate_values",
    "get_method",
    "term_inputs",
]

TARGET = "target"
"""Right-hand side meaning ``Y``: the one-hot label (SUP) or the augmented view (SSL)."""


class Term(NamedTuple):
    """One weighted bound in an objective.

    Attributes:
      name: unique name, also the key of the term's critic parameters.
      bound: ``"infonce"`` (critic trained with the main parameters), ``"nce_club"`` (critic
        trained separately by InfoNCE, held fixed in the main step) or ``"supcon"``.
      weight: multiplies the value in the objective (negative for minimised upper bounds).
      left: representation name of the rows.
      right: representation name of the columns, or :data:`TARGET`.
      conditioned: concatenate the target to both sides (conditional MI).
    """

    name: str
    bound: str
    weight: float
    left: str
    right: str
    conditioned: bool = False


@dataclasses.dataclass(frozen=True)
class Method:
    """A contrastive objective: representations (head -> modality), terms, and variant.

    Attributes:
      name: as in the paper's table, e.g. ``"FactorCL-SSL"``.
      representations: ``{head name: modality index}``.
      terms: the weighted terms whose sum is maximised.
      supervised: the target is the label (SUP) rather than augmentations (SSL).
    """

    name: str
    representations: Mapping[str, int]
    terms: tuple[Term, ...]
    supervised: bool

    @property
    def club_terms(self) -> tuple[Term, ...]:
        """Terms whose critic is trained separately (the NCE-CLUB upper bounds)."""
        return tuple(term for term in self.terms if term.bound == "nce_club")

    @property
    def uses_augmentation(self) -> bool:
        """Whether the objective needs the augmented views."""
        return not self.supervised and any(
            term.right == TARGET or term.conditioned for term in self.terms
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
    ]
    return {method.name: method for method in methods}


METHODS: dict[str, Method] = _methods()
"""Every row of the paper's MultiBench table, by name."""


def get_method(name: str) -> Method:
    """The method called ``name`` (a key of :data:`METHODS`), with a clear error otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {list(METHODS)}")
    return METHODS[name]


class Views(NamedTuple):
    """What the terms read for one batch.

    Attributes:
      representations: ``{name: [n, E]}`` of the original inputs.
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


ScoreFn = Callable[[Term, Array, Array], Array]


def evaluate(method: Method, views: Views, score: ScoreFn) -> tuple[Array, dict[str, Array]]:
    """Evaluates every term and their weighted sum.

    Args:
      method: the objective.
      views: representations, augmented views and/or labels of the batch.
      score: ``(term, left [n, dl], right [n, dr]) -> scores [n, n]``, the term's critic
        (the caller decides which parameters it uses and whether they are held fixed).

    Returns:
      ``(loss, values)``: ``loss = -sum_k weight_k * value_k`` (minimised) and the value of
      every term in nats by name.
    """

    def value(term: Term, left: Array, right: Array) -> Array:
        scores = score(term, left, right)
        if term.bound == "supcon":
            if views.labels is None:
                raise ValueError(f"term {term.name!r} needs labels")
            columns = views.labels if views.column_labels is None else views.column_labels
            return bounds.supcon(scores, views.labels, columns)
        return getattr(bounds, term.bound)(scores)

    return evaluate_values(method, views, value)


ValueFn = Callable[[Term, Array, Array], Array]


def evaluate_values(method: Method, views: Views, value: ValueFn) -> tuple[Array, dict[str, Array]]:
    """:func:`evaluate` with each term's value computed by ``value(term, left, right)``.

    For callers that compute a bound without its score matrix (tiled bounds).
    """
    values = {term.name: value(term, *term_inputs(method, term, views)) for term in method.terms}
    objective = sum(term.weight * values[term.name] for term in method.terms)
    return -objective, values
