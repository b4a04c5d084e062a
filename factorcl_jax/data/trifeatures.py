"""Bimodal Trifeatures: pairs of procedurally drawn images with controllable interactions.

Pairs of Trifeatures images (:mod:`factorcl_jax.data.trifeatures_images`: one object of
one of ten shapes, ten textures and ten colors, Hermann & Lampinen 2020) whose features are
shared, unique to one image, or linked across the two, so that a label can need redundant,
unique or synergistic information.

**The image pool** (CoMM's protocol, Dufumier et al. 2025, "What to align in multimodal
contrastive learning?"). Of the 1000 (shape, texture, color) combinations a seeded random 20%
(``test_fraction``) are *test* combinations, drawn once each; the other 800 are *train*
combinations, each drawn ``num_per_combination`` (3) times with independent nuisance: 2400 train
and 200 test images. Train and test share no combination.

**Pairs.** A pair ``(i, j)`` of images of the same split is one sample; image ``i`` is modality
1, image ``j`` modality 2. Allowed pairs always share their shape; their textures and colors are
otherwise free:

* redundancy (``task="share"``): ``y = shape`` (either image tells it);
* uniqueness (``"unique1"`` / ``"unique2"``): ``y = texture_1`` / ``texture_2`` (only one
  image tells it);
* synergy (``"synergy"``): a seeded permutation ``pi`` of the ten colors links each texture to
  one color (``correlated_pairs``: ``(t, pi(t))``), and ``y = 1[color_2 == pi(texture_1)]``:
  neither image alone says anything about ``y``.

``biased=False`` draws ``num_pairs`` pairs uniformly without replacement among *all* allowed
pairs of a split (ordered, ``i == j`` included), so ``texture_1``, ``texture_2``, ``color_1``
and ``color_2`` are (up to the missing test combinations) independent, and about one pair in
ten has ``y_synergy = 1``. ``biased=True`` draws only among pairs with
``color_2 == pi(texture_1)`` (every such pair has ``y_synergy = 1``): the self-supervised data of
the synergy experiment, whose probe then trains and tests on unbiased pairs, scored by balanced
accuracy (chance 50%). A split with fewer allowed pairs than ``num_pairs`` holds all of them
(the 200 test images give about 4000 unbiased pairs).

Randomness comes from ``numpy.random.SeedSequence(seed)``, spawned into independent streams for
the combination split, the two renders, the permutation and the two pair draws: the same seed
gives the same images and permutation whatever ``biased`` and ``num_pairs`` are, so a biased
pretraining set and the unbiased probing sets share their pool (see
:meth:`BimodalTrifeatures.with_pairs`).

Example:
  >>> data = bimodal_trifeatures(500, resolution=16, num_per_combination=1, seed=0)
  >>> data.train["x1"].shape, data.train["y"].shape, data.num_classes
  ((500, 16, 16, 3), (500,), 10)
  >>> bool((data.labels("train")["shape"] == data.train["y"]).all())
  True
  >>> biased = data.with_pairs(biased=True).with_task("synergy")
  >>> int(biased.train["y"].min()), biased.num_classes
  (1, 2)
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Mapping

import numpy as np

from factorcl_jax import validation
from factorcl_jax.data.trifeatures_images import (
    COLORS,
    SHAPES,
    TEXTURES,
    check_labels,
    render_trifeatures,
)
from factorcl_jax.io.plotting import pyplot

__all__ = [
    "COLORS",
    "SHAPES",
    "TASKS",
    "TASK_LABELS",
    "TEXTURES",
    "BimodalTrifeatures",
    "TrifeaturesImages",
    "bimodal_trifeatures",
    "pair_labels",
    "sample_pairs",
    "save_pair_grid",
]

TASKS: tuple[str, ...] = ("share", "unique1", "unique2", "synergy")
TASK_LABELS: Mapping[str, str] = {
    "share": "shape",
    "unique1": "texture1",
    "unique2": "texture2",
    "synergy": "synergy",
}
"""The label each task reads from :meth:`BimodalTrifeatures.labels`."""


# -------------------------------------------------------------------------------- pairs


def _check_permutation(correlated_colors) -> np.ndarray:
    values = np.asarray(correlated_colors)
    if values.shape != (10,) or sorted(values.tolist()) != list(range(10)):
        raise ValueError(
            "`correlated_colors` must be a permutation of 0..9 (the color linked to each "
            f"texture), got {values!r}"
        )
    return values.astype(np.int64)


def sample_pairs(
    shape,
    texture,
    color,
    num_pairs: int,
    *,
    correlated_colors,
    biased: bool,
    seed: int,
) -> np.ndarray:
    """Draws ``min(num_pairs, A)`` of the ``A`` allowed pairs, uniformly without replacement.

    A pair ``(i, j)`` (ordered, ``i == j`` allowed) is allowed when ``shape[i] == shape[j]``
    and, if ``biased``, ``color[j] == correlated_colors[texture[i]]``. The allowed set is a
    union of blocks ``I_g x J_g`` (images grouped by the key they must share), so a draw of
    flat indices into the blocks enumerates nothing.

    Args:
      shape, texture, color: ``[P]`` integer labels of the image pool.
      num_pairs: pairs wanted, ``>= 1``.
      correlated_colors: ``[10]`` permutation, the color ``pi(t)`` linked to texture ``t``.
      biased: keep only pairs with ``color_2 == pi(texture_1)``.
      seed: seeds the draw.

    Returns:
      ``[N, 2]`` int64 rows ``(i, j)`` into the pool, in random order.
    """
    shape, texture, color = check_labels(shape, texture, color)
    num_pairs = validation.check_positive_int(num_pairs, "num_pairs")
    correlated_colors = _check_permutation(correlated_colors)
    seed = validation.check_seed(seed, "seed")
    if biased:
        key1 = shape * 10 + correlated_colors[texture]
        key2 = shape * 10 + color
    else:
        key1, key2 = shape, shape
    groups = 100
    order1, order2 = np.argsort(key1, kind="stable"), np.argsort(key2, kind="stable")
    count1 = np.bincount(key1, minlength=groups)
    count2 = np.bincount(key2, minlength=groups)
    start1 = np.concatenate([[0], np.cumsum(count1)[:-1]])
    start2 = np.concatenate([[0], np.cumsum(count2)[:-1]])
    block = count1 * count2
    block_end = np.cumsum(block)
    total = int(block_end[-1])
    if total == 0:
        raise ValueError("the image pool has no allowed pair (no two images share a shape)")
    rng = np.random.default_rng(seed)
    flat = rng.choice(total, size=min(num_pairs, total), replace=False)
    group = np.searchsorted(block_end, flat, side="right")
    first, second = np.divmod(flat - (block_end[group] - block[group]), count2[group])
    return np.stack([order1[start1[group] + first], order2[start2[group] + second]], axis=1)


def pair_labels(shape, texture, color, pairs, *, correlated_colors) -> dict[str, np.ndarray]:
    """Every label of the pairs ``[N, 2]`` of a pool, each ``[N]`` int32.

    ``shape`` (of image 1, shared), ``texture1``, ``texture2``, ``color1``, ``color2`` and
    ``synergy = 1[color2 == correlated_colors[texture1]]``.
    """
    shape, texture, color = check_labels(shape, texture, color)
    correlated_colors = _check_permutation(correlated_colors)
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"`pairs` must be an integer array [N, 2], got shape {pairs.shape}")
    first, second = pairs[:, 0], pairs[:, 1]
    labels = {
        "shape": shape[first],
        "texture1": texture[first],
        "texture2": texture[second],
        "color1": color[first],
        "color2": color[second],
        "synergy": color[second] == correlated_colors[texture[first]],
    }
    return {name: values.astype(np.int32) for name, values in labels.items()}


# ------------------------------------------------------------------------------ dataset


@dataclasses.dataclass(frozen=True, eq=False)
class TrifeaturesImages:
    """A pool of Trifeatures images and their labels.

    Attributes:
      images: ``[P, R, R, 3]`` float32 in ``[0, 1]``.
      shape, texture, color: ``[P]`` int32 labels (indices into ``SHAPES``, ``TEXTURES``,
        ``COLORS``).
    """

    images: np.ndarray
    shape: np.ndarray
    texture: np.ndarray
    color: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class BimodalTrifeatures:
    """Bimodal Trifeatures: two image pools and the pairs drawn from each.

    ``train`` / ``test`` materialise ``{"x1": [N, R, R, 3], "x2": [N, R, R, 3], "y": [N] int32}``
    (the layout ``loop.fit`` takes) on first access. At large resolutions gather batches from
    the pools instead: ``train_pool.images[train_pairs[rows, 0]]`` is modality 1 of ``rows``.

    Attributes:
      train_pool, test_pool: the images of the train and test combinations.
      train_pairs, test_pairs: ``[N, 2]`` int64 rows ``(image 1, image 2)`` into the pools.
      correlated_colors: ``[10]`` int32, the color ``pi(t)`` linked to texture ``t``.
      biased: whether the pairs were drawn among ``color_2 == pi(texture_1)`` only.
      task: one of ``TASKS``; it picks ``y`` (``TASK_LABELS``).
      num_pairs, seed: as passed to :func:`bimodal_trifeatures` (for :meth:`with_pairs`).
    """

    train_pool: TrifeaturesImages
    test_pool: TrifeaturesImages
    train_pairs: np.ndarray
    test_pairs: np.ndarray
    correlated_colors: np.ndarray
    biased: bool
    task: str
    num_pairs: int
    seed: int

    @property
    def num_classes(self) -> int:
        """2 for ``"synergy"``, 10 otherwise."""
        return 2 if self.task == "synergy" else 10

    @property
    def correlated_pairs(self) -> np.ndarray:
        """``[10, 2]`` int32 rows ``(texture t, color pi(t))``."""
        return np.stack([np.arange(10, dtype=np.int32), self.correlated_colors], axis=1)

    def _pool_and_pairs(self, split: str) -> tuple[TrifeaturesImages, np.ndarray]:
        if split == "train":
            return self.train_pool, self.train_pairs
        if split == "test":
            return self.test_pool, self.test_pairs
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}")

    def labels(self, split: str) -> dict[str, np.ndarray]:
        """:func:`pair_labels` of ``split`` (``"train"`` or ``"test"``), each ``[N]`` int32."""
        pool, pairs = self._pool_and_pairs(split)
        return pair_labels(
            pool.shape, pool.texture, pool.color, pairs, correlated_colors=self.correlated_colors
        )

    def split(self, split: str) -> dict[str, np.ndarray]:
        """``{"x1", "x2", "y"}`` of ``split``, a fresh copy of the pair images."""
        pool, pairs = self._pool_and_pairs(split)
        return {
            "x1": pool.images[pairs[:, 0]],
            "x2": pool.images[pairs[:, 1]],
            "y": self.labels(split)[TASK_LABELS[self.task]],
        }

    @functools.cached_property
    def train(self) -> dict[str, np.ndarray]:
        """``split("train")``, computed once."""
        return self.split("train")

    @functools.cached_property
    def test(self) -> dict[str, np.ndarray]:
        """``split("test")``, computed once."""
        return self.split("test")

    def with_task(self, task: str) -> BimodalTrifeatures:
        """The same pools and pairs with ``y`` read from ``task``."""
        return dataclasses.replace(self, task=_check_task(task))

    def with_pairs(self, *, biased: bool, num_pairs: int | None = None) -> BimodalTrifeatures:
        """Pairs drawn again from the same pools (e.g. unbiased probing pairs of a biased set)."""
        num_pairs = self.num_pairs if num_pairs is None else num_pairs
        train_pairs, test_pairs = _draw_pairs(
            self.train_pool, self.test_pool, self.correlated_colors, num_pairs, biased, self.seed
        )
        return dataclasses.replace(
            self,
            train_pairs=train_pairs,
            test_pairs=test_pairs,
            biased=bool(biased),
            num_pairs=num_pairs,
        )


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}")
    return task


def _streams(seed: int) -> dict[str, int]:
    """Independent seeds of the dataset's random streams."""
    names = ("split", "train_render", "test_render", "permutation", "train_pairs", "test_pairs")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {
        name: int(child.generate_state(1)[0]) for name, child in zip(names, children, strict=True)
    }


def _draw_pairs(train_pool, test_pool, correlated_colors, num_pairs, biased, seed):
    streams = _streams(seed)
    return tuple(
        sample_pairs(
            pool.shape,
            pool.texture,
            pool.color,
            num_pairs,
            correlated_colors=correlated_colors,
            biased=bool(biased),
            seed=streams[stream],
        )
        for pool, stream in ((train_pool, "train_pairs"), (test_pool, "test_pairs"))
    )


def bimodal_trifeatures(
    num_pairs: int = 10_000,
    *,
    biased: bool = False,
    task: str = "share",
    resolution: int = 32,
    num_per_combination: int = 3,
    test_fraction: float = 0.2,
    texture_period: float | None = None,
    supersample: int = 2,
    seed: int = 0,
) -> BimodalTrifeatures:
    """Renders the image pools and draws the pairs of bimodal Trifeatures (module docstring).

    Args:
      num_pairs: pairs per split (a split with fewer allowed pairs holds all of them).
      biased: draw only pairs with ``color_2 == pi(texture_1)`` (synergy pretraining).
      task: ``"share"``, ``"unique1"``, ``"unique2"`` or ``"synergy"``: which label is ``y``.
      resolution: image side in pixels (32 on CPU; 64 or 224 on accelerators).
      num_per_combination: images drawn per train combination (test combinations: one).
      test_fraction: fraction of the 1000 combinations held out for testing, in ``(0, 1)``.
      texture_period, supersample: see :func:`render_trifeatures`.
      seed: seeds everything (see the module docstring).

    Returns:
      A :class:`BimodalTrifeatures`.
    """
    task = _check_task(task)
    num_pairs = validation.check_positive_int(num_pairs, "num_pairs")
    num_per_combination = validation.check_positive_int(num_per_combination, "num_per_combination")
    test_fraction = validation.check_finite_float(
        test_fraction, "test_fraction", above=0.0, below=1.0
    )
    seed = validation.check_seed(seed, "seed")
    streams = _streams(seed)
    combinations = np.arange(1000)
    num_test = 1000 - int((1 - test_fraction) * 1000)
    shuffled = np.random.default_rng(streams["split"]).permutation(combinations)
    test_combinations = np.sort(shuffled[:num_test])
    train_combinations = np.repeat(np.sort(shuffled[num_test:]), num_per_combination)
    pools = []
    for combos, stream in (
        (train_combinations, "train_render"),
        (test_combinations, "test_render"),
    ):
        shape, texture, color = combos // 100, (combos // 10) % 10, combos % 10
        images = render_trifeatures(
            shape,
            texture,
            color,
            resolution=resolution,
            texture_period=texture_period,
            supersample=supersample,
            seed=streams[stream],
        )
        labels = (values.astype(np.int32) for values in (shape, texture, color))
        pools.append(TrifeaturesImages(images, *labels))
    correlated_colors = (
        np.random.default_rng(streams["permutation"]).permutation(10).astype(np.int32)
    )
    train_pairs, test_pairs = _draw_pairs(
        pools[0], pools[1], correlated_colors, num_pairs, biased, seed
    )
    return BimodalTrifeatures(
        train_pool=pools[0],
        test_pool=pools[1],
        train_pairs=train_pairs,
        test_pairs=test_pairs,
        correlated_colors=correlated_colors,
        biased=bool(biased),
        task=task,
        num_pairs=num_pairs,
        seed=seed,
    )


# ----------------------------------------------------------------------------- plotting


def save_pair_grid(
    data: BimodalTrifeatures,
    path: str | pathlib.Path,
    *,
    split: str = "train",
    num_pairs: int = 8,
) -> pathlib.Path:
    """Saves the first ``num_pairs`` pairs of ``split`` as a PNG: one column per pair, image 1
    above image 2, each titled with its shape, texture and color (and the pair's synergy label).
    """
    num_pairs = validation.check_positive_int(num_pairs, "num_pairs")
    pool, pairs = data._pool_and_pairs(split)
    labels = data.labels(split)
    count = min(num_pairs, len(pairs))
    plt = pyplot()
    figure, axes = plt.subplots(2, count, figsize=(1.9 * count, 4.4), squeeze=False)
    names = list(COLORS)
    for column in range(count):
        for row in range(2):
            image = pool.images[pairs[column, row]]
            axis = axes[row, column]
            axis.imshow(image, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            texture = TEXTURES[labels[f"texture{row + 1}"][column]]
            color = names[labels[f"color{row + 1}"][column]]
            axis.set_title(f"{SHAPES[labels['shape'][column]]}\n{texture}, {color}", fontsize=7)
        axes[1, column].set_xlabel(f"synergy={labels['synergy'][column]}", fontsize=7)
    axes[0, 0].set_ylabel("image 1", fontsize=8)
    axes[1, 0].set_ylabel("image 2", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pathlib.Path(path)
