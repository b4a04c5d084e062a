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

**Fused methods** (CoMM, InfMasking; :mod:`factorcl_jax.models.fusion`) have no per-modality heads:
they declare named :class:`FusedView` s of the batch (which augmentation draw, which
modalities, how many tokens masked at random) and their terms read those views by name, e.g.
``Term("fused/infonce", "infonce", 0.5, "Z'", "Z''")``. The trainer computes the views a
method declares (:attr:`Method.fused_views`). A term's bound is a name of
:data:`factorcl_jax.bounds.BOUNDS`, with its options (e.g. InfMasking's ``draws``).
"""

from __future__ import annotations

from types import MappingProxyType

from factorcl_jax.objectives.terms import TARGET, FusedView, Method, Term

__all__ = [
    "FACTORIZED",
    "METHODS",
    "UNFACTORIZED",
    "comm_method",
    "get_method",
    "infmasking_method",
]


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
    InfoNCE, symmetrised: ``(I(Z'; Z'') + I(Z''; Z')) / 2`` and ``(I(Z'_i; Z'') + I(Z''_i; Z')) /
    2``. See :mod:`factorcl_jax.models.fusion` for the choices made.
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
