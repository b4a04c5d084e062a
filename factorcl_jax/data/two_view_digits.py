"""A real two-view dataset that works offline: scikit-learn's 8x8 handwritten digits, cut in two.

Each of the 1797 images (digits 0-9, 8x8 pixels with values 0..16, bundled with scikit-learn) is
scaled to ``[0, 1]`` and cut into two overlapping strips:

* ``split="top_bottom"``: view 1 holds the top rows, view 2 the bottom rows;
* ``split="left_right"``: view 1 holds the left columns, view 2 the right columns.

With ``overlap = k`` (even), each view holds ``4 + k / 2`` of the 8 rows (or columns) and the
middle ``k`` are seen by both. Each view then gets its own Gaussian pixel noise of standard
deviation ``noise``. So the digit is predicted partly by information the views *share* (the
overlapping strip, and whatever one half says about the other) and partly by information
*unique* to one view (the strip only it sees): the setting FactorCL is built for, where
methods that keep only what the views share (SimCLR-style) lose task information.

The train/test split is stratified by digit and seeded; the same ``seed`` also draws the noise,
so a seed fixes the whole dataset.

Example:
  >>> data = load_two_view_digits(seed=0)
  >>> data.train["x1"].shape, data.test["x2"].shape, data.num_classes
  ((1347, 40), (450, 40), 10)
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

__all__ = ["SPLITS", "TwoViewDigits", "load_two_view_digits"]

SPLITS = ("top_bottom", "left_right")
IMAGE_SIZE = 8


@dataclasses.dataclass(frozen=True)
class TwoViewDigits:
    """The two-view digits, in the batch layout of :func:`factorcl_jax.training.loop.fit`.

    Attributes:
      train: ``{"x1": [N, D] float32, "x2": [N, D] float32, "y": [N] int32}``.
      test: the same for the test split.
      num_classes: 10.
      strips: ``(rows or columns of view 1, of view 2)`` as index tuples.
    """

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    num_classes: int
    strips: tuple[tuple[int, ...], tuple[int, ...]]


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """``([1797, 8, 8]`` images in ``[0, 1]``, ``[1797]`` labels``)`` from scikit-learn."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "factorcl_jax.data.two_view_digits reads scikit-learn's bundled digits images; "
            "install scikit-learn (pip install scikit-learn)"
        ) from error
    digits = load_digits()
    return digits.images.astype(np.float32) / 16.0, digits.target.astype(np.int32)


def _stratified_test_rows(labels: np.ndarray, test_fraction: float, rng) -> np.ndarray:
    """Boolean ``[N]``: a seeded ``test_fraction`` of every class."""
    test = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        test[rows[: round(test_fraction * len(rows))]] = True
    return test


def load_two_view_digits(
    *,
    split: str = "top_bottom",
    overlap: int = 2,
    noise: float = 0.1,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> TwoViewDigits:
    """Loads the digits as two noisy overlapping strips (see the module docstring).

    Args:
      split: ``"top_bottom"`` (rows) or ``"left_right"`` (columns).
      overlap: strips both views see, an even int in ``[0, 8]``; each view holds
        ``4 + overlap / 2`` strips, so ``D = 8 * (4 + overlap / 2)``.
      noise: standard deviation of the Gaussian pixel noise added to each view, ``>= 0``.
      test_fraction: fraction of every digit held out for testing, in ``(0, 1)``.
      seed: seeds the split and the noise.

    Returns:
      A :class:`TwoViewDigits` with ``x1, x2 [N, D]`` float32 and ``y [N]`` int32 per split.

    Raises:
      ImportError: when scikit-learn (which ships the images) is not installed.
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}")
    if (
        isinstance(overlap, bool)
        or not isinstance(overlap, numbers.Integral)
        or overlap % 2
        or not 0 <= overlap <= IMAGE_SIZE
    ):
        raise ValueError(f"`overlap` must be an even int in [0, {IMAGE_SIZE}], got {overlap!r}")
    if not isinstance(noise, numbers.Real) or not noise >= 0:
        raise ValueError(f"`noise` must be a real number >= 0, got {noise!r}")
    if not isinstance(test_fraction, numbers.Real) or not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must lie in (0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"`seed` must be an int >= 0, got {seed!r}")
    images, labels = _digits()
    if split == "left_right":
        images = images.transpose(0, 2, 1)
    width = IMAGE_SIZE // 2 + overlap // 2
    strips = (tuple(range(width)), tuple(range(IMAGE_SIZE - width, IMAGE_SIZE)))
    rng = np.random.default_rng(seed)
    views = [
        images[:, strip, :].reshape(len(images), -1)
        + rng.normal(0.0, noise, (len(images), width * IMAGE_SIZE)).astype(np.float32)
        for strip in strips
    ]
    test = _stratified_test_rows(labels, test_fraction, rng)
    splits = {
        name: {"x1": views[0][rows], "x2": views[1][rows], "y": labels[rows]}
        for name, rows in (("train", ~test), ("test", test))
    }
    return TwoViewDigits(**splits, num_classes=10, strips=strips)
