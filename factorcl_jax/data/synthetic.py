"""The paper's synthetic multimodal data with controllable shared and unique information.

Liang et al. 2023, "Factorized Contrastive Learning" (Sec. 4.1, synthetic experiment):

1. **Latent blocks.** Each block ``b`` has ``feature_dims[b]`` coordinates, every coordinate
   drawn i.i.d. from ``N(0, 0.5)`` (variance 0.5, standard deviation ``sqrt(0.5)``). A block's
   name lists the (1-based) modalities that contain it: ``"12"`` is shared by modalities 1
   and 2, ``"1"`` and ``"2"`` are unique to one modality, ``"123"`` would be shared by three.
2. **Modalities.** Modality ``i`` concatenates the blocks whose name holds ``i``, in the
   canonical block order (blocks shared by more modalities first, ties in string order:
   ``"12", "1", "2"``; for three modalities ``"123", "12", "13", "23", "1", "2", "3"``), so
   ``z_i = [z_12 ; z_1]`` for the default, and maps it to ``input_dim`` dimensions with a fixed
   matrix ``W_i`` of entries ``~ U(0, 1)``: ``x_i = z_i W_i`` (``[N, k_i] @ [k_i, input_dim]``).
3. **Label.** ``y = 1[ mean(selected coordinates) >= 0 ]``, where the first
   ``label_dims[b]`` coordinates of each block ``b`` are selected. Setting
   ``label_dims["1"] = 0`` puts no label information in the unique part of modality 1.

The paper's reference setting is ``feature_dims = label_dims = {"12": 10, "1": 6, "2": 6}``,
30000 samples, ``input_dim = 100`` and an 80/20 train/test split (``train_test_split``).

**Interaction labels.** :func:`interaction_labels` reads three other labels off the same
latents, one per kind of multimodal interaction (redundancy, uniqueness, synergy):
``"redundant"`` from the shared block (either modality determines it), ``"unique"`` from
modality 1's unique block (only modality 1 does), and ``"synergistic"``, the XOR of the signs
of the first coordinates of the two unique blocks: neither modality alone says anything about
it, and no linear function of both does either.

Randomness comes from ``numpy.random.SeedSequence(seed)``, spawned into one stream for the
projection matrices and one for the samples: the same seed always gives the same data, and the
matrices ``W_i`` do not depend on ``num_samples``. Generation is vectorised (one Gaussian draw
and one matmul per modality); 30000 samples take tens of milliseconds.

Example:
  >>> data = make_synthetic(num_samples=1000, seed=0)
  >>> data.x1.shape, data.x2.shape, data.y.shape, data.latents["12"].shape
  ((1000, 100), (1000, 100), (1000,), (1000, 10))
  >>> train, test = train_test_split(data, test_fraction=0.2, seed=0)
  >>> len(train), len(test)
  (800, 200)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping

import numpy as np

__all__ = [
    "DEFAULT_FEATURE_DIMS",
    "LABEL_KINDS",
    "LATENT_VARIANCE",
    "SyntheticData",
    "block_order",
    "interaction_labels",
    "make_splits",
    "make_synthetic",
    "train_test_split",
]

LATENT_VARIANCE = 0.5
"""Variance of every latent coordinate: ``z ~ N(0, 0.5)``."""

DEFAULT_FEATURE_DIMS: Mapping[str, int] = {"12": 10, "1": 6, "2": 6}
"""The paper's block sizes: 10 shared coordinates, 6 unique to each modality."""

LABEL_KINDS: tuple[str, ...] = ("redundant", "unique", "synergistic")
"""The kinds of label :func:`interaction_labels` reads off the latents."""


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticData:
    """One synthetic dataset.

    Attributes:
      modalities: tuple of ``num_modalities`` float32 arrays ``[N, input_dim]``;
        ``x1``/``x2`` are the first two.
      y: int32 labels ``[N]`` in ``{0, 1}``.
      latents: block name -> float32 latent block ``[N, feature_dims[name]]``.
      projections: tuple of the fixed float32 matrices ``W_i`` ``[k_i, input_dim]``.
      feature_dims: block name -> number of latent coordinates, in canonical block order.
      label_dims: block name -> number of leading coordinates the label reads.
    """

    modalities: tuple[np.ndarray, ...]
    y: np.ndarray
    latents: dict[str, np.ndarray]
    projections: tuple[np.ndarray, ...]
    feature_dims: dict[str, int]
    label_dims: dict[str, int]

    @property
    def x1(self) -> np.ndarray:
        """Modality 1, ``[N, input_dim]`` float32."""
        return self.modalities[0]

    @property
    def x2(self) -> np.ndarray:
        """Modality 2, ``[N, input_dim]`` float32."""
        if len(self.modalities) < 2:
            raise AttributeError("this dataset has a single modality; there is no `x2`")
        return self.modalities[1]

    def arrays(self) -> dict[str, np.ndarray]:
        """``{"x1": [N, input_dim], "x2": [N, input_dim], "y": [N]}``, the trainers' format."""
        return {"x1": self.x1, "x2": self.x2, "y": self.y}

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, indices: np.ndarray) -> SyntheticData:
        """The samples at ``indices`` (``[M]`` ints), sharing the projections."""
        indices = np.asarray(indices)
        return dataclasses.replace(
            self,
            modalities=tuple(x[indices] for x in self.modalities),
            y=self.y[indices],
            latents={name: z[indices] for name, z in self.latents.items()},
        )


def block_order(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Canonical order of blocks: more modalities first, then string order.

    Example:
      >>> block_order(["1", "2", "12"])
      ('12', '1', '2')
    """
    return tuple(sorted(names, key=lambda name: (-len(name), name)))


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"`{name}` must be {bounds}, got {value}")
    return int(value)


def _check_dims(argument: str, dims: object, num_modalities: int) -> dict[str, int]:
    """Validates a block name -> size mapping and returns it in canonical order."""
    if not isinstance(dims, Mapping):
        raise TypeError(
            f"`{argument}` must be a mapping block name -> int such as {{'12': 10, '1': 6}}, "
            f"got {type(dims).__name__}"
        )
    allowed = "".join(str(i) for i in range(1, num_modalities + 1))
    for name, size in dims.items():
        if not isinstance(name, str) or not name or any(c not in allowed for c in name):
            raise ValueError(
                f"`{argument}` has block name {name!r}; a block name is a non-empty string of "
                f"modality indices in {list(allowed)} (num_modalities={num_modalities}), "
                "e.g. '12' for a block shared by modalities 1 and 2"
            )
        if "".join(sorted(set(name))) != name:
            raise ValueError(
                f"`{argument}` has block name {name!r}; write each modality index once, in "
                f"increasing order ({''.join(sorted(set(name)))!r})"
            )
        _check_int(f"{argument}[{name!r}]", size, 0)
    return {name: int(dims[name]) for name in block_order(list(dims))}


def make_synthetic(
    num_samples: int = 30000,
    feature_dims: Mapping[str, int] | None = None,
    label_dims: Mapping[str, int] | None = None,
    input_dim: int = 100,
    num_modalities: int = 2,
    seed: int = 0,
) -> SyntheticData:
    """Draws the synthetic dataset of the FactorCL paper.

    ``z_b ~ N(0, 0.5 I)`` per block ``b``; ``x_i = [z_b for b containing i] @ W_i`` with
    ``W_i ~ U(0, 1)^{k_i x input_dim}``; ``y = 1[mean_b(z_b[:, :label_dims[b]]) >= 0]``.

    Args:
      num_samples: ``N``, number of samples (>= 1).
      feature_dims: block name -> number of latent coordinates (default
        ``{"12": 10, "1": 6, "2": 6}``). A block name is the increasing string of the 1-based
        modalities that contain the block.
      label_dims: block name -> number of leading coordinates of that block the label reads,
        each in ``[0, feature_dims[name]]``, not all zero; missing blocks read 0 coordinates.
        ``None`` reads every coordinate (``label_dims = feature_dims``).
      input_dim: dimension of each modality's raw vector (>= 1).
      num_modalities: number of modalities, in ``[1, 9]`` (one digit per modality index).
      seed: non-negative int seed; the data is a deterministic function of the arguments.

    Returns:
      ``SyntheticData`` with ``x1, x2`` float32 ``[N, input_dim]``, ``y`` int32 ``[N]`` and
      ``latents`` (block name -> float32 ``[N, k]``).

    Example:
      >>> data = make_synthetic(100, label_dims={"12": 10, "1": 0, "2": 6}, seed=1)
      >>> data.x1.dtype, data.y.dtype, sorted(data.latents)
      (dtype('float32'), dtype('int32'), ['1', '12', '2'])
    """
    num_samples = _check_int("num_samples", num_samples, 1)
    input_dim = _check_int("input_dim", input_dim, 1)
    num_modalities = _check_int("num_modalities", num_modalities, 1, 9)
    seed = _check_int("seed", seed, 0)
    feature_dims = _check_dims(
        "feature_dims",
        DEFAULT_FEATURE_DIMS if feature_dims is None else feature_dims,
        num_modalities,
    )
    label_dims = _check_dims(
        "label_dims", feature_dims if label_dims is None else label_dims, num_modalities
    )
    for name, size in label_dims.items():
        if name not in feature_dims:
            raise ValueError(
                f"`label_dims` names block {name!r}, which is not in `feature_dims` "
                f"(blocks {list(feature_dims)})"
            )
        if size > feature_dims[name]:
            raise ValueError(
                f"`label_dims[{name!r}]` = {size} exceeds `feature_dims[{name!r}]` = "
                f"{feature_dims[name]}; the label can read at most every coordinate of a block"
            )
    label_dims = {name: label_dims.get(name, 0) for name in feature_dims}
    if sum(label_dims.values()) == 0:
        raise ValueError(
            f"`label_dims` selects no coordinate ({label_dims}); at least one must be > 0"
        )
    blocks_of = [
        [name for name in feature_dims if str(i) in name] for i in range(1, num_modalities + 1)
    ]
    for i, blocks in enumerate(blocks_of, start=1):
        if sum(feature_dims[name] for name in blocks) == 0:
            raise ValueError(
                f"modality {i} contains no latent coordinate: give some block whose name holds "
                f"{i!s} a positive size in `feature_dims` (got {feature_dims})"
            )

    projection_seed, sample_seed = np.random.SeedSequence(seed).spawn(2)
    projection_rng = np.random.default_rng(projection_seed)
    projections = tuple(
        projection_rng.random((sum(feature_dims[b] for b in blocks), input_dim), np.float32)
        for blocks in blocks_of
    )
    sample_rng = np.random.default_rng(sample_seed)
    all_latents = sample_rng.standard_normal((num_samples, sum(feature_dims.values())), np.float32)
    all_latents *= np.float32(math.sqrt(LATENT_VARIANCE))
    starts = np.cumsum([0, *feature_dims.values()])
    latents = {
        name: all_latents[:, start : start + size]
        for (name, size), start in zip(feature_dims.items(), starts, strict=False)
    }

    modalities = tuple(
        np.concatenate([latents[b] for b in blocks], axis=1) @ projection
        for blocks, projection in zip(blocks_of, projections, strict=True)
    )
    selected = np.concatenate([latents[b][:, :k] for b, k in label_dims.items()], axis=1)
    y = (selected.mean(axis=1) >= 0).astype(np.int32)
    return SyntheticData(
        modalities=modalities,
        y=y,
        latents=latents,
        projections=projections,
        feature_dims=feature_dims,
        label_dims=label_dims,
    )


def train_test_split(
    data: SyntheticData, *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[SyntheticData, SyntheticData]:
    """Shuffles the samples (seeded) and splits them into train and test sets.

    The test set holds ``round(N * test_fraction)`` samples (the paper uses 80/20).

    Args:
      data: a ``SyntheticData`` of ``N`` samples.
      test_fraction: fraction of samples in the test set, in ``(0, 1)``; both sets must be
        non-empty.
      seed: non-negative int seed of the shuffle.

    Returns:
      ``(train, test)``, two ``SyntheticData`` with the same projections.

    Example:
      >>> train, test = train_test_split(make_synthetic(50), test_fraction=0.2)
      >>> len(train), len(test)
      (40, 10)
    """
    if not isinstance(data, SyntheticData):
        raise TypeError(f"`data` must be a SyntheticData, got {type(data).__name__}")
    seed = _check_int("seed", seed, 0)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real):
        raise TypeError(f"`test_fraction` must be a float in (0, 1), got {test_fraction!r}")
    num_test = round(len(data) * float(test_fraction))
    if not 0 < num_test < len(data):
        raise ValueError(
            f"`test_fraction` must leave both sets non-empty: {test_fraction} of {len(data)} "
            f"samples gives {num_test} test samples"
        )
    order = np.random.default_rng(seed).permutation(len(data))
    return data.take(order[num_test:]), data.take(order[:num_test])


def interaction_labels(data: SyntheticData, kind: str) -> np.ndarray:
    """A label of one kind of multimodal interaction, from the latents of ``data``.

    * ``"redundant"``: ``1[mean(z_12) >= 0]``, shared by both modalities;
    * ``"unique"``: ``1[mean(z_1) >= 0]``, only in modality 1;
    * ``"synergistic"``: ``1[z_1[:, 0] >= 0] XOR 1[z_2[:, 0] >= 0]``: independent of each
      modality alone (the other sign is a fair coin), and, as XOR is not linear, a linear
      probe on the raw ``[x_1; x_2]`` is at chance too.

    Every coordinate is a symmetric Gaussian, so each label is balanced (half ones).

    Args:
      data: two-modality data with blocks ``"12"``, ``"1"`` and ``"2"`` of at least one
        coordinate each (the default ``feature_dims``).
      kind: one of :data:`LABEL_KINDS`.

    Returns:
      int32 labels ``[N]`` in ``{0, 1}``.

    Example:
      >>> data = make_synthetic(2000, seed=0)
      >>> [round(float(interaction_labels(data, kind).mean()), 1) for kind in LABEL_KINDS]
      [0.5, 0.5, 0.5]
    """
    if not isinstance(data, SyntheticData):
        raise TypeError(f"`data` must be a SyntheticData, got {type(data).__name__}")
    if kind not in LABEL_KINDS:
        raise ValueError(f"`kind` must be one of {LABEL_KINDS}, got {kind!r}")
    missing = [b for b in ("12", "1", "2") if data.latents.get(b, np.empty((0, 0))).shape[1] < 1]
    if missing:
        raise ValueError(
            f"interaction labels need latent blocks '12', '1' and '2' with at least one "
            f"coordinate each; `data` lacks {missing} (feature_dims {data.feature_dims})"
        )
    if kind == "redundant":
        label = data.latents["12"].mean(axis=1) >= 0
    elif kind == "unique":
        label = data.latents["1"].mean(axis=1) >= 0
    else:
        label = (data.latents["1"][:, 0] >= 0) != (data.latents["2"][:, 0] >= 0)
    return label.astype(np.int32)


def make_splits(
    num_samples: int,
    feature_dims: Mapping[str, int] | None = None,
    label_dims: Mapping[str, int] | None = None,
    input_dim: int = 100,
    *,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """``{"train", "validation", "test"}`` array dicts (:meth:`SyntheticData.arrays`) of one
    generated dataset: ``test_fraction`` and ``validation_fraction`` of the rows held out
    (seeded shuffles), the rest for training.

    Example:
      >>> splits = make_splits(100, test_fraction=0.2, validation_fraction=0.1)
      >>> {name: len(split["y"]) for name, split in splits.items()}
      {'train': 70, 'validation': 10, 'test': 20}
    """
    data = make_synthetic(num_samples, feature_dims, label_dims, input_dim, seed=seed)
    rest, test = train_test_split(data, test_fraction=test_fraction, seed=seed)
    fraction = validation_fraction / (1 - test_fraction)
    training, validation = train_test_split(rest, test_fraction=fraction, seed=seed)
    return {
        "train": training.arrays(),
        "validation": validation.arrays(),
        "test": test.arrays(),
    }
