"""Keyed, jit-able data augmentations, vectorised over the batch.

FactorCL-SSL replaces the label ``Y`` by augmented views: ``I(X_i; Y)`` becomes
``I(X_i; X_i')`` and ``I(X_1; X_2 | Y)`` becomes ``I(X_1; X_2 | X_1', X_2')`` (Liang et al.
2023, "Factorized Contrastive Learning", Sec. 3.3). The paper uses *unimodal* augmentations
(noise, masking, crops, permutations) and a *multimodal* one for time-aligned data that masks
the same time steps in both modalities, so that what one modality shares with the other
survives the augmentation (``aligned_time_mask``).

Every augmentation is a pure function ``fn(key, x, *, ..., mask=None) -> x_aug``:

- ``key``: a JAX PRNG key (``jax.random.key(0)`` or a legacy ``uint32[2]`` key), first;
- ``x``: floating array ``[n, d]`` (vectors) or ``[n, T, d]`` (sequences);
- ``mask``: optional ``[n, T]`` validity mask of sequences (``True``/non-zero where a time step
  holds data, ``False`` on padding). Padding steps are left untouched.

The output has the shape and dtype of ``x``; the input is never modified. Each sample gets its
own random draw from a single key, with no Python loop over samples, so every function works
under ``jax.jit`` (hyperparameters such as ``rate`` may be Python numbers or traced scalars;
structural ones such as ``num_segments`` must be Python ints).

Example:
  >>> import jax, jax.numpy as jnp
  >>> x = jnp.ones((4, 8))
  >>> augment = make_augmentation(["gaussian_noise", "feature_mask"], scale=0.1, rate=0.2)
  >>> jax.jit(augment)(jax.random.key(0), x).shape
  (4, 8)
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax import validation

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_SEQUENCE_AUGMENTATIONS",
    "DEFAULT_VECTOR_AUGMENTATIONS",
    "Augmentation",
    "aligned_time_mask",
    "default_augmentation",
    "feature_mask",
    "gaussian_noise",
    "hyperparameters_of",
    "identity",
    "make_augmentation",
    "mixup",
    "permute_segments",
    "random_choice",
    "time_mask",
]


class Augmentation(Protocol):
    """``fn(key, x, *, mask=None) -> x_aug`` with ``x_aug`` of the shape and dtype of ``x``."""

    def __call__(self, key: Array, x: Array, *, mask: Array | None = None) -> Array: ...


# --------------------------------------------------------------------------- validation


def _as_batch(x: Any, name: str = "x", ranks: tuple[int, ...] = (2, 3)) -> Array:
    """Converts ``x`` to a JAX array and checks it is floating with one of ``ranks``."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}")
    x = jnp.asarray(x)
    expected = " or ".join({2: "[n, d]", 3: "[n, T, d]"}[r] for r in ranks)
    if x.ndim not in ranks:
        raise ValueError(f"`{name}` must have shape {expected}, got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a floating array of shape {expected}, got {x.dtype}")
    return x


def _as_mask(mask: Any, x: Array, name: str = "x") -> Array | None:
    """Checks a ``[n, T]`` validity mask of a sequence batch and returns it as bool."""
    if mask is None:
        return None
    if not hasattr(mask, "shape") or not hasattr(mask, "dtype"):
        raise TypeError(f"`mask` must be an array of shape [n, T], got {type(mask).__name__}")
    if x.ndim != 3:
        raise ValueError(
            f"`mask` is only defined for sequences `{name}` of shape [n, T, d], "
            f"got `{name}` of shape {x.shape}"
        )
    mask = jnp.asarray(mask)
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"`mask` must have shape [n, T] = {x.shape[:2]} to match `{name}` of shape "
            f"{x.shape}, got {mask.shape}"
        )
    return mask.astype(bool)


def _check_real(
    name: str,
    value: Any,
    *,
    low: float,
    high: float = float("inf"),
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Range check of a concrete scalar hyperparameter; traced values pass unchecked."""
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, bool) or not (
        isinstance(value, numbers.Real) or getattr(value, "shape", None) == ()
    ):
        raise TypeError(f"`{name}` must be a real scalar, got {type(value).__name__}")
    value = float(value)
    above = value >= low if low_inclusive else value > low
    below = value <= high if high_inclusive else value < high
    if not (above and below):
        interval = (
            ("[" if low_inclusive else "(") + f"{low}, {high}" + ("]" if high_inclusive else ")")
        )
        raise ValueError(f"`{name}` must lie in {interval}, got {value}")


def _expand(values: Array, ndim: int) -> Array:
    """Appends singleton axes so that ``values`` broadcasts against an array of rank ``ndim``."""
    return values.reshape(values.shape + (1,) * (ndim - values.ndim))


# ------------------------------------------------------------------------- augmentations


def identity(key: Array, x: Array, *, mask: Array | None = None) -> Array:
    """Returns ``x`` unchanged (the "no augmentation" choice of ``random_choice``).

    Args:
      key: PRNG key (unused, validated for a uniform signature).
      x: ``[n, d]`` or ``[n, T, d]`` floating array.
      mask: optional ``[n, T]`` validity mask (unused).

    Returns:
      ``x`` as a JAX array.

    Example:
      >>> identity(jax.random.key(0), jnp.ones((2, 3))).shape
      (2, 3)
    """
    validation.check_prng_key(key)
    x = _as_batch(x)
    _as_mask(mask, x)
    return x


def gaussian_noise(key: Array, x: Array, *, scale: float = 0.1, mask: Array | None = None) -> Array:
    """Adds isotropic Gaussian noise: ``x' = x + scale * eps``, ``eps ~ N(0, I)``.

    Args:
      key: PRNG key.
      x: ``[n, d]`` or ``[n, T, d]`` floating array.
      scale: standard deviation of the noise, ``>= 0``.
      mask: optional ``[n, T]`` validity mask; padding steps get no noise.

    Returns:
      Array of the shape and dtype of ``x``.

    Example:
      >>> gaussian_noise(jax.random.key(0), jnp.zeros((2, 3)), scale=0.5).shape
      (2, 3)
    """
    validation.check_prng_key(key)
    x = _as_batch(x)
    mask = _as_mask(mask, x)
    _check_real("scale", scale, low=0.0)
    noise = jnp.asarray(scale, x.dtype) * jax.random.normal(key, x.shape, x.dtype)
    if mask is not None:
        noise = jnp.where(mask[:, :, None], noise, jnp.zeros((), x.dtype))
    return x + noise


def feature_mask(key: Array, x: Array, *, rate: float = 0.2, mask: Array | None = None) -> Array:
    """Sets each feature to 0 independently with probability ``rate``.

    For vectors ``[n, d]`` every entry ``x[i, k]`` is dropped independently. For sequences
    ``[n, T, d]`` a dropped feature channel ``k`` of sample ``i`` is zero at every time step
    (channel dropout), i.e. ``x'[i, t, k] = b[i, k] * x[i, t, k]`` with
    ``b[i, k] ~ Bernoulli(1 - rate)``. No rescaling by ``1 / (1 - rate)``.

    Args:
      key: PRNG key.
      x: ``[n, d]`` or ``[n, T, d]`` floating array.
      rate: drop probability in ``[0, 1]``.
      mask: optional ``[n, T]`` validity mask (accepted for a uniform signature; zeroing a
        channel keeps zero padding zero).

    Returns:
      Array of the shape and dtype of ``x``.

    Example:
      >>> feature_mask(jax.random.key(0), jnp.ones((2, 5)), rate=0.0).sum()
      Array(10., dtype=float32)
    """
    validation.check_prng_key(key)
    x = _as_batch(x)
    _as_mask(mask, x)
    _check_real("rate", rate, low=0.0, high=1.0)
    keep_shape = (x.shape[0], x.shape[-1])
    keep = jax.random.uniform(key, keep_shape) >= rate
    if x.ndim == 3:
        keep = keep[:, None, :]
    return jnp.where(keep, x, jnp.zeros((), x.dtype))


def _time_drop(key: Array, shape: tuple[int, int], rate: Any, mask: Array | None) -> Array:
    """``[n, T]`` bool, True where a (valid) time step is dropped."""
    drop = jax.random.uniform(key, shape) < rate
    return drop if mask is None else drop & mask


def time_mask(key: Array, x: Array, *, rate: float = 0.2, mask: Array | None = None) -> Array:
    """Sets whole time steps of sequences to 0 independently with probability ``rate``.

    ``x'[i, t, :] = 0`` where ``b[i, t] ~ Bernoulli(rate)`` is 1 and step ``t`` is valid.
    Padding steps (``mask[i, t]`` False) are left untouched, so the rate is relative to the
    valid steps. A short sequence may lose all its valid steps when ``rate`` is large.

    Args:
      key: PRNG key.
      x: ``[n, T, d]`` floating array.
      rate: drop probability in ``[0, 1]``.
      mask: optional ``[n, T]`` validity mask.

    Returns:
      Array of the shape and dtype of ``x``.

    Example:
      >>> time_mask(jax.random.key(0), jnp.ones((2, 4, 3)), rate=1.0).sum()
      Array(0., dtype=float32)
    """
    validation.check_prng_key(key)
    x = _as_batch(x, ranks=(3,))
    mask = _as_mask(mask, x)
    _check_real("rate", rate, low=0.0, high=1.0)
    drop = _time_drop(key, x.shape[:2], rate, mask)
    return jnp.where(drop[:, :, None], jnp.zeros((), x.dtype), x)


def aligned_time_mask(
    key: Array,
    x1: Array,
    x2: Array,
    *,
    rate: float = 0.2,
    mask: Array | None = None,
) -> tuple[Array, Array]:
    """The paper's multimodal augmentation: one time mask applied to both modalities.

    For time-aligned sequences ``x1 [n, T, d1]`` and ``x2 [n, T, d2]`` one Bernoulli mask
    ``b[i, t] ~ Bernoulli(rate)`` zeroes step ``t`` of sample ``i`` in *both* modalities, so
    the two augmented views still describe the same moments and keep their shared
    information (``time_mask`` with one key per modality would not).

    Args:
      key: PRNG key.
      x1: ``[n, T, d1]`` floating array.
      x2: ``[n, T, d2]`` floating array with the same ``n`` and ``T``.
      rate: drop probability in ``[0, 1]``.
      mask: optional shared ``[n, T]`` validity mask; padding steps are left untouched.

    Returns:
      ``(x1_aug, x2_aug)`` with the shapes and dtypes of ``x1`` and ``x2``.

    Example:
      >>> a, b = aligned_time_mask(jax.random.key(0), jnp.ones((2, 5, 3)), jnp.ones((2, 5, 7)))
      >>> bool(((a[..., 0] == 0) == (b[..., 0] == 0)).all())
      True
    """
    validation.check_prng_key(key)
    x1 = _as_batch(x1, "x1", ranks=(3,))
    x2 = _as_batch(x2, "x2", ranks=(3,))
    if x1.shape[:2] != x2.shape[:2]:
        raise ValueError(
            "`x1` [n, T, d1] and `x2` [n, T, d2] must share n and T, got shapes "
            f"{x1.shape} and {x2.shape}"
        )
    mask = _as_mask(mask, x1, "x1")
    _check_real("rate", rate, low=0.0, high=1.0)
    drop = _time_drop(key, x1.shape[:2], rate, mask)[:, :, None]
    return (
        jnp.where(drop, jnp.zeros((), x1.dtype), x1),
        jnp.where(drop, jnp.zeros((), x2.dtype), x2),
    )


def permute_segments(
    key: Array, x: Array, *, num_segments: int = 4, mask: Array | None = None
) -> Array:
    """Splits one axis into ``num_segments`` contiguous segments and shuffles them per sample.

    Vectors ``[n, d]`` are split along the feature axis, sequences ``[n, T, d]`` along the
    time axis. With ``L`` positions (``d``, ``T``, or the number of valid steps of a masked
    sequence), position of rank ``r`` belongs to segment ``floor(r * S / L)``, so segments
    differ in length by at most one. Each sample draws its own permutation ``pi`` of the ``S``
    segments and the output is the segments concatenated in the order ``pi`` (order inside a
    segment kept). The values of each sample are only reordered, never changed. With a
    ``mask`` only valid steps are permuted, and they are written back to the valid positions,
    so padding stays where it was.

    Args:
      key: PRNG key.
      x: ``[n, d]`` or ``[n, T, d]`` floating array.
      num_segments: number of segments ``S``, a Python int in ``[1, d]`` (vectors) or
        ``[1, T]`` (sequences).
      mask: optional ``[n, T]`` validity mask.

    Returns:
      Array of the shape and dtype of ``x``.

    Example:
      >>> x = jnp.arange(8.0)[None]
      >>> y = permute_segments(jax.random.key(1), x, num_segments=4)
      >>> sorted(y[0].tolist()) == x[0].tolist()
      True
    """
    validation.check_prng_key(key)
    x = _as_batch(x)
    mask = _as_mask(mask, x)
    length = x.shape[1]
    if isinstance(num_segments, bool) or not isinstance(num_segments, numbers.Integral):
        raise TypeError(f"`num_segments` must be a Python int, got {type(num_segments).__name__}")
    if not 1 <= num_segments <= length:
        raise ValueError(
            f"`num_segments` must lie in [1, {length}] (the length of axis 1 of `x`, shape "
            f"{x.shape}), got {num_segments}"
        )
    valid = jnp.ones(x.shape[:2], bool) if mask is None else mask
    source = _segment_permutation(key, valid, num_segments)
    return jnp.take_along_axis(x, _expand(source, x.ndim), axis=1)


@functools.partial(jax.jit, static_argnums=2)
def _segment_permutation(key: Array, valid: Array, num_segments: int) -> Array:
    """Source position ``[n, L]`` of every output position; padding maps to itself.

    Jitted on its own so that eager calls compile once per ``(n, L, num_segments)``.
    """
    n, length = valid.shape
    rank = jnp.cumsum(valid, axis=1) - 1  # rank of each valid position among valid ones
    num_valid = jnp.maximum(valid.sum(axis=1, keepdims=True), 1)
    segment = (rank * num_segments) // num_valid
    # Argsort of uniforms is a uniform permutation; its inverse gives each segment's new slot.
    order_of_segments = jnp.argsort(jax.random.uniform(key, (n, num_segments)), axis=1)
    new_slot = jnp.argsort(order_of_segments, axis=1)
    slot = jnp.take_along_axis(new_slot, jnp.clip(segment, 0, num_segments - 1), axis=1)
    # Valid positions sorted by (new slot, rank) give the permuted sequence of sources.
    position = jnp.arange(length)[None, :]
    sort_key = jnp.where(valid, slot * length + rank, num_segments * length + position)
    sources = jnp.argsort(sort_key, axis=1)
    from_rank = jnp.take_along_axis(sources, jnp.clip(rank, 0, length - 1), axis=1)
    return jnp.where(valid, from_rank, position)


@functools.partial(jax.jit, static_argnums=1)
def _mixup_partner_and_weight(key: Array, n: int, alpha: Any) -> tuple[Array, Array]:
    """Partner index ``[n]`` and weight ``lam`` ``[n]`` in ``[0.5, 1]`` of each sample.

    Jitted on its own (keyed by ``n`` only) because Beta sampling is slow to compile.
    """
    key_perm, key_beta = jax.random.split(key)
    perm = jax.random.permutation(key_perm, n)
    partner = jnp.zeros((n,), perm.dtype).at[perm].set(jnp.roll(perm, -1))
    weight = jax.random.beta(key_beta, alpha, alpha, (n,))
    return partner, jnp.maximum(weight, 1.0 - weight)


def mixup(key: Array, x: Array, *, alpha: float = 0.2, mask: Array | None = None) -> Array:
    """Mixes each sample with another sample of the batch, keeping most weight on itself.

    ``x'_i = lam_i * x_i + (1 - lam_i) * x_{p(i)}`` with ``lam_i = max(b_i, 1 - b_i)``,
    ``b_i ~ Beta(alpha, alpha)``, so ``lam_i`` is in ``[0.5, 1]``. The partner ``p`` is a
    random cyclic derangement (``p(i) != i`` when ``n >= 2``). For masked sequences, steps
    valid in ``x_i`` but not in its partner keep ``x_i`` (padding is never mixed in), and
    padding steps of ``x_i`` are untouched.

    Args:
      key: PRNG key.
      x: ``[n, d]`` or ``[n, T, d]`` floating array.
      alpha: Beta concentration, ``> 0`` (small values keep samples nearly unchanged).
      mask: optional ``[n, T]`` validity mask.

    Returns:
      Array of the shape and dtype of ``x``; every entry lies between ``x_i`` and
      ``x_{p(i)}``.

    Example:
      >>> mixup(jax.random.key(0), jnp.eye(3), alpha=0.4).shape  # doctest: +SLOW
      (3, 3)
    """
    validation.check_prng_key(key)
    x = _as_batch(x)
    mask = _as_mask(mask, x)
    _check_real("alpha", alpha, low=0.0, low_inclusive=False)
    partner, weight = _mixup_partner_and_weight(key, x.shape[0], alpha)
    weight = _expand(weight.astype(x.dtype), x.ndim)
    mixed = weight * x + (jnp.ones((), x.dtype) - weight) * x[partner]
    if mask is not None:
        both = (mask & mask[partner])[:, :, None]
        mixed = jnp.where(both, mixed, x)
    return mixed


def random_choice(
    key: Array,
    x: Array,
    augmentations: Sequence[Callable[..., Array]],
    *,
    mask: Array | None = None,
) -> Array:
    """Applies one augmentation per sample, chosen uniformly at random.

    All ``K`` augmentations run on the whole batch (each with its own key) and sample ``i``
    takes the output of augmentation ``c_i ~ U{0, ..., K-1}``: ``x'_i = aug_{c_i}(x)_i``.
    Batch-level augmentations such as ``mixup`` therefore see the full batch.

    Args:
      key: PRNG key.
      x: ``[n, d]`` or ``[n, T, d]`` floating array.
      augmentations: non-empty sequence of ``fn(key, x, *, mask=None) -> x_aug``.
      mask: optional ``[n, T]`` validity mask, passed on (only when given) to each
        augmentation.

    Returns:
      Array of the shape and dtype of ``x``.

    Example:
      >>> y = random_choice(jax.random.key(0), jnp.ones((4, 3)), [identity, gaussian_noise])
      >>> y.shape
      (4, 3)
    """
    validation.check_prng_key(key)
    x = _as_batch(x)
    mask = _as_mask(mask, x)
    if callable(augmentations) or not isinstance(augmentations, Sequence):
        raise TypeError(
            "`augmentations` must be a sequence of callables fn(key, x) -> x_aug, got "
            f"{type(augmentations).__name__}"
        )
    if len(augmentations) == 0:
        raise ValueError("`augmentations` must hold at least one callable, got an empty sequence")
    for index, fn in enumerate(augmentations):
        if not callable(fn):
            raise TypeError(f"`augmentations[{index}]` must be callable, got {type(fn).__name__}")
    key_choice, *keys = jax.random.split(key, len(augmentations) + 1)
    extra = {} if mask is None else {"mask": mask}
    outputs = []
    for index, (fn, fn_key) in enumerate(zip(augmentations, keys, strict=True)):
        out = fn(fn_key, x, **extra)
        if getattr(out, "shape", None) != x.shape or out.dtype != x.dtype:
            raise ValueError(
                f"`augmentations[{index}]` must return an array of shape {x.shape} and dtype "
                f"{x.dtype}, got {getattr(out, 'shape', type(out).__name__)}"
            )
        outputs.append(out)
    if len(outputs) == 1:
        return outputs[0]
    n = x.shape[0]
    choice = jax.random.randint(key_choice, (n,), 0, len(outputs))
    return jnp.stack(outputs)[choice, jnp.arange(n)]


# ----------------------------------------------------------------------- config by name

AUGMENTATIONS: Mapping[str, Callable[..., Array]] = {
    "identity": identity,
    "gaussian_noise": gaussian_noise,
    "feature_mask": feature_mask,
    "time_mask": time_mask,
    "permute_segments": permute_segments,
    "mixup": mixup,
}
"""Per-modality augmentations selectable by name in ``make_augmentation``."""

DEFAULT_VECTOR_AUGMENTATIONS: tuple[str, ...] = ("gaussian_noise", "feature_mask")
DEFAULT_SEQUENCE_AUGMENTATIONS: tuple[str, ...] = ("gaussian_noise", "time_mask")


def _keywords(fn: Callable[..., Array]) -> set[str]:
    return {
        name
        for name, parameter in inspect.signature(fn).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "mask"
    }


def hyperparameters_of(names: Sequence[str]) -> set[str]:
    """The keyword hyperparameters the named augmentations take, e.g. ``{"scale", "rate"}``.

    Raises:
      ValueError: a name that is not in ``AUGMENTATIONS``.
    """
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; known: {sorted(AUGMENTATIONS)}")
    return set().union(*(_keywords(AUGMENTATIONS[name]) for name in names))


def make_augmentation(
    names: Sequence[str] | str, *, compose: str = "choice", **kwargs: Any
) -> Augmentation:
    """Builds one augmentation ``fn(key, x, *, mask=None) -> x_aug`` from registry names.

    Each keyword argument goes to every named augmentation that takes it (``rate=0.3``
    configures both ``feature_mask`` and ``time_mask``); a keyword no named augmentation takes
    is an error, so typos fail loudly.

    Args:
      names: one name or a non-empty sequence of names from ``AUGMENTATIONS``.
      compose: ``"choice"`` picks one augmentation per sample (``random_choice``);
        ``"sequence"`` applies them all in order, each with its own key.
      **kwargs: hyperparameters, e.g. ``scale``, ``rate``, ``num_segments``, ``alpha``.

    Returns:
      A pure, jit-able augmentation function.

    Example:
      >>> augment = make_augmentation("gaussian_noise", scale=0.0)
      >>> bool((augment(jax.random.key(0), jnp.ones((2, 3))) == 1.0).all())
      True
    """
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, Sequence) or len(names) == 0:
        raise ValueError(
            f"`names` must be a non-empty sequence of names from {sorted(AUGMENTATIONS)}, "
            f"got {names!r}"
        )
    for name in names:
        if name not in AUGMENTATIONS:
            raise ValueError(
                f"`names` holds unknown augmentation {name!r}; known: {sorted(AUGMENTATIONS)}"
            )
    if compose not in ("choice", "sequence"):
        raise ValueError(f"`compose` must be 'choice' or 'sequence', got {compose!r}")
    unused = set(kwargs) - hyperparameters_of(names)
    if unused:
        raise TypeError(
            f"keyword arguments {sorted(unused)} are taken by none of the augmentations "
            f"{list(names)}"
        )
    bound = []
    for name in names:
        fn = AUGMENTATIONS[name]
        options = {k: v for k, v in kwargs.items() if k in _keywords(fn)}
        bound.append(functools.partial(fn, **options))

    if compose == "choice":

        def augment(key: Array, x: Array, *, mask: Array | None = None) -> Array:
            return random_choice(key, x, bound, mask=mask)

    else:

        def augment(key: Array, x: Array, *, mask: Array | None = None) -> Array:
            validation.check_prng_key(key)
            for fn, fn_key in zip(bound, jax.random.split(key, len(bound)), strict=True):
                x = fn(fn_key, x, mask=mask)
            return x

    augment.__doc__ = f"Augmentation {compose} over {list(names)} with {kwargs}."
    return augment


def default_augmentation(key: Array, x: Array, *, mask: Array | None = None) -> Array:
    """The default unimodal augmentation: one random choice per sample.

    Vectors ``[n, d]``: ``gaussian_noise(scale=0.1)`` or ``feature_mask(rate=0.2)``.
    Sequences ``[n, T, d]``: ``gaussian_noise(scale=0.1)`` or ``time_mask(rate=0.2)``.

    Example:
      >>> default_augmentation(jax.random.key(0), jnp.ones((4, 6, 2))).shape  # doctest: +SLOW
      (4, 6, 2)
    """
    x = _as_batch(x)
    names = DEFAULT_VECTOR_AUGMENTATIONS if x.ndim == 2 else DEFAULT_SEQUENCE_AUGMENTATIONS
    return make_augmentation(names, scale=0.1, rate=0.2)(key, x, mask=mask)
