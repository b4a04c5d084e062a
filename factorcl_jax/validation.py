"""Argument checks shared by the library's entry points.

Every check takes ``(value, name)`` in that order, returns the value in its canonical type and
raises :class:`TypeError` (wrong kind of value) or :class:`ValueError` (right kind, wrong
value) with a message that names the argument and says what is expected::

    >>> check_positive_float(3e-4, "learning_rate")
    0.0003
    >>> check_positive_float(float("nan"), "learning_rate")
    Traceback (most recent call last):
    ...
    ValueError: `learning_rate` must be a finite number > 0, got nan

Names are shown in backticks, except config keys, options and paths (``train.epochs``,
``--learning-rate``, ``data/x.npy``), which are shown as they are written. Integers that
reach a device are 32-bit there, so every integer is also capped at
:data:`INT32_MAX`; seeds are capped at :data:`SEED_MAX`, the widest seed both
``jax.random.key`` and NumPy's generators take.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FLOAT32_MAX",
    "INT32_MAX",
    "SEED_MAX",
    "check_finite_float",
    "check_float_matrix",
    "check_int",
    "check_nonnegative_int",
    "check_positive_float",
    "check_positive_int",
    "check_prng_key",
    "check_real_array",
    "check_seed",
]

INT32_MAX = 2**31 - 1
"""Largest integer accepted for counts and sizes."""
SEED_MAX = 2**32 - 1
"""Largest seed: seeds are in ``[0, 2**32 - 1]``."""
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest float32 magnitude (about 3.4e38); larger values overflow to inf."""


def _name(name: str) -> str:
    """An argument name in backticks; a config key, option or path (``train.epochs``,
    ``--learning-rate``, ``data/x.npy``) as it is."""
    return name if any(mark in name for mark in "`.-/") else f"`{name}`"


def check_int(
    value: Any, name: str, *, minimum: int | None = None, maximum: int = INT32_MAX
) -> int:
    """``value`` as a Python int in ``[minimum, maximum]`` (``bool`` is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{_name(name)} must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (minimum is not None and value < minimum) or value > maximum:
        wanted = f"<= {maximum}" if minimum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{_name(name)} must be an int {wanted}, got {value}")
    return value


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int in ``[1, INT32_MAX]``."""
    return check_int(value, name, minimum=1)


def check_nonnegative_int(value: Any, name: str) -> int:
    """``value`` as an int in ``[0, INT32_MAX]``."""
    return check_int(value, name, minimum=0)


def check_seed(value: Any, name: str) -> int:
    """``value`` as a seed, an int in ``[0, SEED_MAX]``."""
    return check_int(value, name, minimum=0, maximum=SEED_MAX)


def check_finite_float(
    value: Any,
    name: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
) -> float:
    """``value`` as a finite float, optionally ``> above``, ``>= at_least``, ``< below``,
    ``<= at_most``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{_name(name)} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    conditions = [
        ("> ", above, lambda bound: value > bound),
        (">= ", at_least, lambda bound: value >= bound),
        ("< ", below, lambda bound: value < bound),
        ("<= ", at_most, lambda bound: value <= bound),
    ]
    wanted = " and ".join(f"{op}{bound:g}" for op, bound, _ in conditions if bound is not None)
    if not math.isfinite(value) or not all(
        holds(bound) for _, bound, holds in conditions if bound is not None
    ):
        raise ValueError(
            f"{_name(name)} must be a finite number{' ' + wanted if wanted else ''}, got {value}"
        )
    return value


def check_positive_float(value: Any, name: str) -> float:
    """``value`` as a finite float ``> 0``."""
    return check_finite_float(value, name, above=0.0)


def check_float_matrix(value: Any, name: str, *, axes: str = "[n, m]") -> None:
    """Raises unless ``value`` is a floating-point array of rank 2 (``axes`` names its axes in
    the message). Reads only shape and dtype, so it works on traced arrays under ``jit``.

    Example:
      >>> check_float_matrix(np.zeros((2, 3), np.int32), "scores")
      Traceback (most recent call last):
      ...
      TypeError: `scores` must be a floating-point array, got dtype int32
    """
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise TypeError(f"{_name(name)} must be an array {axes}, got {type(value).__name__}")
    if value.ndim != 2:
        raise ValueError(f"{_name(name)} must have shape {axes} (rank 2), got shape {value.shape}")
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(f"{_name(name)} must be a floating-point array, got dtype {value.dtype}")


def check_real_array(
    array: Any, name: str, *, ndim: int | None = None, min_rows: int = 1, dtype: Any = np.float32
) -> np.ndarray:
    """``array`` as a finite NumPy array of real numbers, of ``dtype`` (float32 by default).

    ``dtype=np.float64`` keeps what float32 would round away (e.g. a small signal on a large
    offset) for a caller that rescales the data before computing in float32.

    Refuses, naming ``name``: masked arrays (their masked entries would be read as data),
    non-numeric, boolean and complex dtypes (``TypeError``; the imaginary part is never
    dropped), a rank other than ``ndim``, fewer than ``min_rows`` rows or a zero-width axis,
    NaN/inf, and magnitudes beyond the largest finite value of ``dtype``, which would
    overflow to inf (``ValueError``).
    """
    if isinstance(array, np.ma.MaskedArray):
        raise TypeError(
            f"{_name(name)} is a masked array: its masked entries would be read as data; "
            "drop those rows (e.g. np.ma.compress_rows) or fill them (.filled()) first"
        )
    try:
        array = np.asarray(array)
    except (ValueError, TypeError) as error:  # ragged nested sequences
        raise ValueError(f"{_name(name)} is not a rectangular array ({error})") from None
    if np.iscomplexobj(array):
        raise TypeError(
            f"{_name(name)} holds complex numbers (dtype {array.dtype}); pass the real and "
            "imaginary parts as separate features"
        )
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{_name(name)} must hold real numbers, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{_name(name)} must have {ndim} axes, got shape {array.shape}")
    if array.ndim and array.shape[0] < min_rows:
        raise ValueError(f"{_name(name)} needs at least {min_rows} row(s), got shape {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"{_name(name)} has an axis of length 0, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            count = int(array.size - np.count_nonzero(finite))
            raise ValueError(f"{_name(name)} holds {count} NaN or inf value(s)")
    limit = float(np.finfo(dtype).max)
    with np.errstate(over="ignore"):
        largest = float(np.max(np.abs(array.astype(np.float64))))
    if largest > limit:
        raise ValueError(
            f"{_name(name)} holds values up to {largest:.3g}, which overflow "
            f"{np.dtype(dtype).name} (largest {limit:.3g}); rescale the data"
        )
    return array.astype(dtype)


def check_prng_key(key: Any, name: str = "key") -> None:
    """Accepts one typed PRNG key (shape ``()``) or one legacy ``uint32[2]`` key; reads only
    dtype and shape, so it works on traced keys."""
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is None or shape is None:
        raise TypeError(
            f"{_name(name)} must be a JAX PRNG key (jax.random.key(seed) or "
            f"jax.random.PRNGKey(seed)), got {type(key).__name__}"
        )
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(
                f"{_name(name)} must be a single PRNG key of shape (), got shape {shape}"
            )
    elif not (dtype == jnp.uint32 and shape == (2,)):
        raise TypeError(
            f"{_name(name)} must be a JAX PRNG key (typed key of shape () or uint32 of shape "
            f"(2,)), got dtype {dtype} and shape {shape}"
        )
