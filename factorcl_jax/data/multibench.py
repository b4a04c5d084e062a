"""MultiBench data: the affect pickles (MOSI, MOSEI, UR-FUNNY, MUStARD) and MIMIC.

Both loaders return a :class:`MultimodalDataset`: ``train``, ``validation`` and ``test`` splits of
host NumPy arrays in the batch layout of :func:`factorcl_jax.training.loop.fit`,

* ``"x1"``: ``[N, T1, d1]`` float32 sequences (or ``[N, d1]`` vectors), ``"mask1"``: ``[N, T1]``
  bool, true at real steps (sequences only),
* ``"x2"``, ``"mask2"``: likewise for the second modality,
* ``"y"``: ``[N]`` int32 classes in ``[0, num_classes)``.

Nothing is put on a device: ``loop.fit`` and ``loop.embed_dataset`` move one batch at a time.
Features are standardised per feature with the *training* mean and standard deviation over
real steps only (a constant feature gets standard deviation 1); padding stays exactly 0.

**Affect pickles** (:func:`load_affect`), MultiBench's format::

    {"train" | "valid" | "test": {
        "vision": [N, T, Dv], "audio": [N, T, Da], "text": [N, T, Dt],  # left-padded with 0
        "labels": [N] or [N, 1] or [N, 1, 1],  # one value per sample
        "id": [N]}}                            # not read

Sequences are left-padded with zero steps. With ``aligned=True`` (the aligned MultiBench
files) every modality starts at the first non-zero *text* step; otherwise each modality starts
at its own first non-zero step. Samples without a non-zero step there are dropped (MultiBench
drops all-zero text). The first ``max_length`` real steps are kept and right-padded. Labels:

* MOSI, MOSEI (sentiment in ``[-3, 3]``): ``"binary"`` is ``y >= 0`` vs ``y < 0`` (the FactorCL
  reference), ``"binary_nonzero"`` drops ``y == 0`` then ``y > 0`` vs ``y < 0``,
  ``"three_class"`` is negative / zero / positive (0 / 1 / 2).
* UR-FUNNY ("humor", labels 0/1) and MUStARD ("sarcasm", labels -1/1): ``y > 0`` vs rest.

**MIMIC** (:func:`load_mimic`): a static tabular vector and a time series. Two layouts:

* split layout, a pickle or ``.npz``::

      {"train" | "valid" | "test": {"static": [N, Ds], "timeseries": [N, T, Dt],
                                    "labels": [N] integer classes >= 0}}

  (in an ``.npz`` the keys are ``"train/static"``, ``"train/timeseries"``, ...);
* MultiBench's ``im.pk``: ``"adm_features_all"`` ``[N, 5]``, ``"ep_tdata"`` ``[N, 24, 12]``,
  ``"adm_labels_all"`` ``[N, 6]``, ``"y_icd9"`` ``[N, 20]``, split as MultiBench does
  (``random.seed(10)`` shuffle; valid the first tenth, test the second, train the rest).

Every time step of a MIMIC series is real. A file that is missing a split or field, holds
ragged or non-numeric arrays, NaN/inf features (unless ``nonfinite="zero"``), or labels
that do not match the features raises :class:`DataFormatError` naming the file and field.

**File formats.** The documented format of every task is an ``.npz`` archive (read with
``allow_pickle=False``, so loading it never runs code) whose keys are ``"split/field"``
(``"train/vision"``, ``"test/labels"``, ...) or, for ``im.pk``'s layout, the bare field names.
MultiBench ships pickles, and unpickling a file runs whatever code it holds: the loaders
refuse ``.pkl``/``.pk``/``.pickle`` files unless called with ``trust_pickle=True``.
:func:`convert_pickle` (the command ``factorcl-jax convert-multibench IN.pkl OUT.npz
--trust-pickle``) unpickles a file you trust once and writes the ``.npz``. Suffixes are
matched case-insensitively.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import pickle
import random
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "AFFECT_MODALITIES",
    "AFFECT_TASKS",
    "LABEL_SCHEMES",
    "NPZ_SUFFIXES",
    "PICKLE_SUFFIXES",
    "SPLITS",
    "DataFormatError",
    "MultimodalDataset",
    "convert_pickle",
    "load_affect",
    "load_mimic",
]

SPLITS = ("train", "valid", "test")
"""Split names in MultiBench's files (the dataset calls ``"valid"`` ``validation``)."""
AFFECT_MODALITIES = ("vision", "audio", "text")
AFFECT_TASKS = {"mosi": "sentiment", "mosei": "sentiment", "humor": "binary", "sarcasm": "binary"}
"""Affect task -> kind of its labels."""
LABEL_SCHEMES = {"binary": 2, "binary_nonzero": 2, "three_class": 3}
"""Sentiment label scheme -> number of classes."""
NPZ_SUFFIXES = (".npz",)
PICKLE_SUFFIXES = (".pkl", ".pk", ".pickle")


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class MultimodalDataset:
    """Two modalities in three splits of host arrays (see the module docstring).

    Attributes:
      train: ``{"x1", "x2", "y"[, "mask1"][, "mask2"]}``, the layout ``loop.fit`` takes.
      validation: the same for the validation split (``"valid"`` in MultiBench's files).
      test: the same for the test split.
      modalities: names of ``x1`` and ``x2``, e.g. ``("vision", "text")``.
      num_classes: number of label classes.
      statistics: ``{modality: (mean [d], std [d])}`` training statistics used to standardise.
      dropped: ``{"train" | "validation" | "test": number of samples dropped}`` (no real
        step, or neutral labels).
      source: the file the data came from.
    """

    train: dict[str, np.ndarray]
    validation: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    modalities: tuple[str, str]
    num_classes: int
    statistics: dict[str, tuple[np.ndarray, np.ndarray]]
    dropped: dict[str, int]
    source: str

    @property
    def input_dims(self) -> tuple[int, int]:
        """Feature widths ``(d1, d2)`` of the two modalities."""
        return self.train["x1"].shape[-1], self.train["x2"].shape[-1]


def _by_attribute(per_split: dict[str, Any]) -> dict[str, Any]:
    """``{"train", "valid", "test"}`` (file names) -> ``{"train", "validation", "test"}``."""
    return {"validation" if name == "valid" else name: value for name, value in per_split.items()}


# ------------------------------------------------------------------------- reading files


def _read_npz(path: pathlib.Path) -> dict[str, Any]:
    """An ``.npz``'s arrays, ``"split/field"`` keys nested as ``{split: {field: array}}``."""
    nested: dict[str, Any] = {}
    try:
        # NumPy leaks the file it opened when a .npz is not a zip; open it here instead.
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
            for key in archive.files:
                split, separator, field = key.partition("/")
                if not separator:
                    nested[key] = archive[key]
                elif "/" in field or not split or not field:
                    raise DataFormatError(
                        f"{path}: .npz key {key!r} is not of the form 'split/field' "
                        "(e.g. 'train/static')"
                    )
                elif not isinstance(nested.setdefault(split, {}), dict):
                    raise DataFormatError(f"{path}: .npz has both {split!r} and {key!r}")
                else:
                    nested[split][field] = archive[key]
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as error:
        if isinstance(error, DataFormatError):
            raise
        detail = " ".join(str(error).split())[:160]
        raise DataFormatError(f"{path}: not a readable .npz archive ({detail})") from None
    return nested


def _unpickle(path: pathlib.Path) -> Any:
    try:
        with path.open("rb") as file:
            return pickle.load(file)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as error:
        raise DataFormatError(f"{path}: cannot be read as a pickle ({error})") from error


def _read(
    path: str | pathlib.Path, *, trust_pickle: bool = False
) -> tuple[pathlib.Path, Mapping[str, Any]]:
    """The file's top-level dict; ``.npz`` keys ``"split/field"`` become nested dicts.

    Pickles are refused unless ``trust_pickle`` (unpickling runs code the file holds).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES:
        return path, _read_npz(path)
    if suffix not in PICKLE_SUFFIXES:
        raise DataFormatError(
            f"{path}: unknown data format {path.suffix!r}; use an .npz archive "
            "(see factorcl_jax.data.multibench)"
        )
    if not trust_pickle:
        raise DataFormatError(
            f"{path}: refusing to unpickle (loading a pickle runs any code it holds); convert "
            f"a file you trust once with `factorcl-jax convert-multibench {path} "
            f"{path.with_suffix('.npz')} --trust-pickle`, or pass trust_pickle=True"
        )
    data = _unpickle(path)
    if not isinstance(data, Mapping):
        raise DataFormatError(
            f"{path}: expected a dict at the top level, got {type(data).__name__}"
        )
    return path, data


def _as_plain_array(value: Any, path: pathlib.Path, key: str) -> np.ndarray:
    """``value`` as an array ``np.load(allow_pickle=False)`` can read back (no objects)."""
    try:
        array = np.asarray(value)
    except ValueError as error:  # NumPy refuses inhomogeneous nested sequences
        raise DataFormatError(f"{path}: field {key!r} is ragged ({error})") from None
    if array.dtype == object:
        items = array.ravel().tolist()
        if all(isinstance(item, (str, bytes)) for item in items):
            texts = [
                item.decode("utf-8", "replace") if isinstance(item, bytes) else item
                for item in items
            ]
            return np.array(texts, dtype=str).reshape(array.shape)
        try:
            array = np.array(items, dtype=np.float64).reshape(array.shape)
        except (TypeError, ValueError):
            raise DataFormatError(
                f"{path}: field {key!r} holds Python objects that are neither numbers nor text"
            ) from None
    return array


def convert_pickle(
    source: str | pathlib.Path, target: str | pathlib.Path, *, trust_pickle: bool = False
) -> dict[str, tuple[int, ...]]:
    """Unpickles a MultiBench file you trust and writes it as an ``.npz`` the loaders read.

    ``{split: {field: array}}`` becomes keys ``"split/field"``; top-level arrays (``im.pk``)
    keep their names. Object arrays of text become string arrays, of numbers float64. The
    ``.npz`` is written to a temporary file and renamed, and never over an existing file.

    Args:
      source: the pickle (``.pkl``, ``.pk``, ``.pickle``).
      target: the ``.npz`` to write; must not exist.
      trust_pickle: must be ``True``: unpickling runs any code the file holds.

    Returns:
      ``{key: shape}`` of every array written.

    Raises:
      DataFormatError: ``trust_pickle`` is false, the source is not a pickle of dicts of
        arrays, or the target is not a new ``.npz``.
    """
    source, target = pathlib.Path(source), pathlib.Path(target)
    if target.suffix.lower() not in NPZ_SUFFIXES:
        raise DataFormatError(f"{target}: the output must be an .npz file")
    if os.path.lexists(target):
        raise DataFormatError(f"{target} already exists; choose a new file name")
    if source.suffix.lower() not in PICKLE_SUFFIXES:
        raise DataFormatError(
            f"{source}: expected a pickle ({', '.join(PICKLE_SUFFIXES)}), got {source.suffix!r}"
        )
    if not trust_pickle:
        raise DataFormatError(
            f"{source}: refusing to unpickle without trust_pickle=True (--trust-pickle); "
            "loading a pickle runs any code it holds"
        )
    path, data = _read(source, trust_pickle=True)
    flat: dict[str, np.ndarray] = {}
    for name, value in data.items():
        if isinstance(value, Mapping):
            for field, item in value.items():
                if isinstance(item, Mapping):
                    raise DataFormatError(
                        f"{path}: {name}/{field} is nested too deep (expected split/field)"
                    )
                key = f"{name}/{field}"
                flat[key] = _as_plain_array(item, path, key)
        else:
            flat[str(name)] = _as_plain_array(value, path, str(name))
    if any("/" in str(name) for name in data) or not flat:
        raise DataFormatError(f"{path}: expected a dict of splits or arrays with plain names")
    temporary = target.with_name(f".{target.stem}.tmp-{os.getpid()}.npz")
    try:
        np.savez(temporary, **flat)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return {key: array.shape for key, array in flat.items()}


def _split(data: Mapping[str, Any], path: pathlib.Path, split: str) -> Mapping[str, Any]:
    if split not in data:
        raise DataFormatError(
            f"{path}: missing split {split!r}; the file has {sorted(map(str, data))}"
        )
    if not isinstance(data[split], Mapping):
        raise DataFormatError(
            f"{path}: split {split!r} must be a dict of arrays, got {type(data[split]).__name__}"
        )
    return data[split]


def _lookup(container: Mapping[str, Any], path: pathlib.Path, key: str) -> np.ndarray:
    """The numeric array at ``key`` (``"split/field"``, or ``"field"`` at the top level)."""
    field = key.rpartition("/")[2]
    if field not in container:
        where = f"split {key.partition('/')[0]!r}" if "/" in key else "the file"
        raise DataFormatError(
            f"{path}: {where} has no field {field!r}; it has {sorted(map(str, container))}"
        )
    try:
        array = np.asarray(container[field])
    except ValueError as error:  # NumPy refuses inhomogeneous nested sequences
        raise DataFormatError(f"{path}: field {key!r} is ragged ({error})") from error
    if array.dtype == object:
        raise DataFormatError(f"{path}: field {key!r} is ragged or holds objects (dtype object)")
    if array.dtype.kind not in "biuf":
        raise DataFormatError(f"{path}: field {key!r} must be numeric, got dtype {array.dtype}")
    return array


def _array(container: Mapping[str, Any], path: pathlib.Path, key: str, rank: int) -> np.ndarray:
    """:func:`_lookup` with ``rank`` axes required."""
    array = _lookup(container, path, key)
    expected = {2: "[N, D]", 3: "[N, T, D]"}[rank]
    if array.ndim != rank:
        raise DataFormatError(
            f"{path}: field {key!r} must have shape {expected}, got {array.shape}"
        )
    if 0 in array.shape:
        raise DataFormatError(
            f"{path}: field {key!r} has an empty axis: shape {array.shape}, expected {expected} "
            "with every size >= 1"
        )
    return array


def _finite(array: np.ndarray, path: pathlib.Path, key: str, nonfinite: str) -> np.ndarray:
    """``array`` as float32, with NaN/inf replaced by 0 (``"zero"``) or refused (``"raise"``).

    Finite values too large for float32 are refused either way: they are not NaN, and
    casting would silently turn them into inf.
    """
    if array.size and array.dtype.kind == "f":
        magnitude = np.abs(array[np.isfinite(array)])
        if magnitude.size and magnitude.max() > np.finfo(np.float32).max:
            raise DataFormatError(
                f"{path}: field {key!r} holds values up to {magnitude.max():.3g}, which "
                f"overflow float32 (largest {np.finfo(np.float32).max:.3g}); rescale them"
            )
    array = array.astype(np.float32)
    bad = ~np.isfinite(array)
    if not bad.any():
        return array
    if nonfinite == "zero":
        return np.where(bad, np.float32(0), array)
    sample = int(np.argwhere(bad)[0][0])
    raise DataFormatError(
        f"{path}: field {key!r} holds {int(bad.sum())} NaN/inf values (first in sample "
        f"{sample}); pass nonfinite='zero' to replace them with 0, as MultiBench does"
    )


def _labels(
    split: Mapping[str, Any], path: pathlib.Path, key: str, num_samples: int, of: str
) -> np.ndarray:
    """``[N]`` float32 label values: one per sample, as many as field ``of`` has samples."""
    labels = _lookup(split, path, key)
    if labels.ndim == 0 or labels.size != len(labels):
        raise DataFormatError(
            f"{path}: field {key!r} must hold one value per sample ([N], [N, 1] or [N, 1, 1]), "
            f"got shape {labels.shape}"
        )
    if len(labels) != num_samples:
        raise DataFormatError(
            f"{path}: field {key!r} has {len(labels)} samples but {of!r} has {num_samples}"
        )
    return _finite(labels.reshape(-1), path, key, "raise")


def _check_widths(
    splits: Mapping[str, Mapping[str, np.ndarray]], path: pathlib.Path, fields: Mapping[str, str]
) -> None:
    """Every split has the training split's feature width in ``x1`` and ``x2``."""
    for name, field in fields.items():
        width = splits["train"][name].shape[-1]
        for split_name, split in splits.items():
            if split[name].shape[-1] != width:
                raise DataFormatError(
                    f"{path}: field '{split_name}/{field}' has {split[name].shape[-1]} features "
                    f"but 'train/{field}' has {width}"
                )


def _check_options(nonfinite: str) -> None:
    if nonfinite not in ("raise", "zero"):
        raise ValueError(f"`nonfinite` must be 'raise' or 'zero', got {nonfinite!r}")


# ---------------------------------------------------------------- sequences and statistics


def _first_real_step(x: np.ndarray) -> np.ndarray:
    """``[N]`` index of the first step with a non-zero feature (``T`` if there is none)."""
    nonzero = np.any(x != 0, axis=2)
    return np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), x.shape[1])


def _pack(x: np.ndarray, start: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps ``start_i, start_i + 1, ...`` of each sample, right-padded to ``length``.

    Returns ``([N, length, D]`` float32 with zeros on padding, ``[N, length]`` bool mask``)``.
    """
    steps = start[:, None] + np.arange(length)[None, :]
    mask = steps < x.shape[1]
    gathered = np.take_along_axis(x, np.minimum(steps, x.shape[1] - 1)[:, :, None], axis=1)
    return np.where(mask[:, :, None], gathered, np.float32(0)), mask


def _statistics(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of ``[M, D]`` values (std 1 where constant)."""
    mean = values.mean(axis=0, dtype=np.float64)
    std = values.std(axis=0, dtype=np.float64)
    std = np.where(std > 1e-8 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def _standardise(
    splits: dict[str, dict[str, np.ndarray]],
    name: str,
    mask_name: str | None,
    path: pathlib.Path,
    field: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Standardises ``splits[*][name]`` in place with training statistics over real steps
    (``field`` names the modality in the file, for errors)."""
    train = splits["train"]
    real = train[name] if mask_name is None else train[name][train[mask_name]]
    if real.shape[0] == 0:
        raise DataFormatError(
            f"{path}: field 'train/{field}' has no real (non-padding) steps to standardise "
            "with: the training split is empty after cleaning"
        )
    mean, std = _statistics(real)
    for split in splits.values():
        standard = (split[name] - mean) / std
        if mask_name is not None:
            standard = np.where(split[mask_name][:, :, None], standard, np.float32(0))
        split[name] = standard.astype(np.float32)
    return mean, std


def _check_nonempty(
    splits: dict[str, dict[str, np.ndarray]], path: pathlib.Path, why: Mapping[str, str]
) -> None:
    """Refuses a split left without samples (``why[split]`` says what emptied it)."""
    for split_name, split in splits.items():
        if len(split["y"]) == 0:
            raise DataFormatError(f"{path}: split {split_name!r} has no samples{why[split_name]}")


def _check_classes(splits: dict[str, dict[str, np.ndarray]], path: pathlib.Path) -> int:
    """``max label + 1`` (at least 2), refused when the classes outnumber the samples: labels
    must be class indices ``0 .. C - 1``."""
    samples = sum(len(split["y"]) for split in splits.values())
    largest = {name: int(split["y"].max()) for name, split in splits.items()}
    num_classes = max(2, 1 + max(largest.values()))
    if num_classes > samples:
        where = max(largest, key=largest.__getitem__)
        raise DataFormatError(
            f"{path}: field '{where}/labels' holds class {largest[where]}, more classes than the "
            f"file's {samples} samples: labels must be class indices 0 .. C - 1"
        )
    return num_classes


def _select(split: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {name: array[keep] for name, array in split.items()}


# ------------------------------------------------------------------------------ affect


def _affect_classes(
    values: np.ndarray, kind: str, scheme: str, path: pathlib.Path, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """``([N]`` int32 classes, ``[N]`` bool keep``)`` of raw affect labels."""
    if kind == "binary":
        present = set(np.unique(values).tolist())
        if not present <= {-1.0, 0.0, 1.0} or {-1.0, 0.0} <= present:
            raise DataFormatError(
                f"{path}: field {key!r} must hold binary labels 0/1 or -1/1, got values "
                f"{sorted(present)[:10]}"
            )
        return (values > 0).astype(np.int32), np.ones(len(values), bool)
    if values.size and (values.min() < -3 or values.max() > 3):
        raise DataFormatError(
            f"{path}: field {key!r} must hold sentiment in [-3, 3], got values in "
            f"[{values.min()}, {values.max()}]"
        )
    positive, nonnegative = values > 0, values >= 0
    if scheme == "binary":
        return nonnegative.astype(np.int32), np.ones(len(values), bool)
    if scheme == "binary_nonzero":
        return positive.astype(np.int32), values != 0
    return nonnegative.astype(np.int32) + positive.astype(np.int32), np.ones(len(values), bool)


def _check_affect_arguments(
    task: str, modalities: Sequence[str], max_length: int, label_scheme: str
) -> tuple[str, str]:
    if task not in AFFECT_TASKS:
        raise ValueError(f"`task` must be one of {list(AFFECT_TASKS)}, got {task!r}")
    modalities = tuple(modalities)
    if (
        len(modalities) != 2
        or len(set(modalities)) != 2
        or not set(modalities) <= set(AFFECT_MODALITIES)
    ):
        raise ValueError(
            f"`modalities` must be two different names from {AFFECT_MODALITIES}, got {modalities}"
        )
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"`max_length` must be an int >= 1, got {max_length!r}")
    if label_scheme not in LABEL_SCHEMES:
        raise ValueError(
            f"`label_scheme` must be one of {list(LABEL_SCHEMES)}, got {label_scheme!r}"
        )
    if AFFECT_TASKS[task] == "binary" and label_scheme != "binary":
        raise ValueError(f"{task} labels are binary: `label_scheme` must be 'binary'")
    return modalities


def load_affect(
    path: str | pathlib.Path,
    task: str,
    *,
    modalities: Sequence[str] = ("vision", "text"),
    max_length: int = 50,
    aligned: bool = True,
    label_scheme: str = "binary",
    nonfinite: str = "raise",
    trust_pickle: bool = False,
) -> MultimodalDataset:
    """Loads MultiBench affect data as two standardised, masked sequence modalities.

    Args:
      path: an ``.npz`` (converted from ``mosi_data.pkl``, ``mosei_senti_data.pkl``,
        ``humor.pkl`` or ``sarcasm.pkl``) in the layout of the module docstring, or the
        pickle itself with ``trust_pickle=True``.
      task: ``"mosi"``, ``"mosei"``, ``"humor"`` or ``"sarcasm"`` (decides the labels).
      modalities: two of ``"vision"``, ``"audio"``, ``"text"``: ``x1`` and ``x2``.
      max_length: real steps kept per sample (MultiBench: 50); ``T`` of the output is
        ``min(max_length, T of the file)``.
      aligned: start every modality at the first non-zero text step (aligned data), else
        each at its own first non-zero step.
      label_scheme: sentiment classes, ``"binary"``, ``"binary_nonzero"`` or
        ``"three_class"`` (humor and sarcasm: ``"binary"``).
      nonfinite: ``"raise"`` on NaN/inf features, or ``"zero"`` to replace them with 0.
      trust_pickle: allow reading a pickle, which runs any code it holds.

    Returns:
      A :class:`MultimodalDataset` with ``x1 [N, T, d1]``, ``mask1 [N, T]``, ``x2 [N, T, d2]``,
      ``mask2 [N, T]`` and ``y [N]`` per split.

    Raises:
      DataFormatError: naming the file and field of a missing split or field, a ragged or
        non-numeric array, NaN/inf features, labels that do not match the features, a split
        left without samples (in the file or after cleaning), or more classes than samples.
    """
    modalities = _check_affect_arguments(task, modalities, max_length, label_scheme)
    _check_options(nonfinite)
    path, data = _read(path, trust_pickle=trust_pickle)
    read = dict.fromkeys((*modalities, "text") if aligned else modalities)
    splits, dropped = {}, {}
    for split_name in SPLITS:
        split = _split(data, path, split_name)
        arrays = {
            name: _finite(_array(split, path, key, 3), path, key, nonfinite)
            for name, key in ((name, f"{split_name}/{name}") for name in read)
        }
        first = modalities[0]
        for name, array in arrays.items():
            if array.shape[0] != arrays[first].shape[0] or (
                aligned and array.shape[1] != arrays[first].shape[1]
            ):
                raise DataFormatError(
                    f"{path}: field '{split_name}/{name}' has shape {array.shape} but "
                    f"'{split_name}/{first}' has {arrays[first].shape}; they must agree in N"
                    + (" and T (aligned data)" if aligned else "")
                )
        label_key = f"{split_name}/labels"
        values = _labels(split, path, label_key, len(arrays[first]), f"{split_name}/{first}")
        classes, keep = _affect_classes(values, AFFECT_TASKS[task], label_scheme, path, label_key)
        packed = {"y": classes}
        for index, name in enumerate(modalities, start=1):
            start = _first_real_step(arrays["text" if aligned else name])
            keep &= start < arrays[name].shape[1]
            length = min(max_length, arrays[name].shape[1])
            packed[f"x{index}"], packed[f"mask{index}"] = _pack(arrays[name], start, length)
        splits[split_name] = _select(packed, keep)
        dropped[split_name] = int(np.sum(~keep))
    reference = "text" if aligned else "/".join(modalities)
    _check_nonempty(
        splits,
        path,
        {
            name: (
                f" (of its {dropped[name]}, every one has an all-zero '{name}/{reference}' or "
                "a neutral label dropped by the label scheme)"
                if dropped[name]
                else ""
            )
            for name in splits
        },
    )
    _check_widths(splits, path, {"x1": modalities[0], "x2": modalities[1]})
    statistics = {
        name: _standardise(splits, f"x{index}", f"mask{index}", path, name)
        for index, name in enumerate(modalities, start=1)
    }
    return MultimodalDataset(
        **_by_attribute(splits),
        modalities=modalities,
        num_classes=LABEL_SCHEMES[label_scheme],
        statistics=statistics,
        dropped=_by_attribute(dropped),
        source=str(path),
    )


# ------------------------------------------------------------------------------- MIMIC


def _multibench_mimic_splits(
    data: Mapping[str, Any], path: pathlib.Path, mimic_task: int
) -> dict[str, dict[str, np.ndarray]]:
    """MultiBench's ``im.pk`` in the split layout, split exactly as MultiBench splits it."""
    static = _array(data, path, "adm_features_all", 2)
    series = _array(data, path, "ep_tdata", 3)
    if mimic_task < 0:
        admission = _array(data, path, "adm_labels_all", 2)
        positive = admission[:, 1:6] > 0  # the first positive column 1..5 is the class
        labels = np.where(positive.any(axis=1), positive.argmax(axis=1) + 1, 0)
    else:
        labels = _array(data, path, "y_icd9", 2)[:, mimic_task]
    sizes = {"adm_features_all": len(static), "ep_tdata": len(series), "labels": len(labels)}
    if len(set(sizes.values())) != 1:
        raise DataFormatError(f"{path}: fields disagree on the number of samples: {sizes}")
    order = list(range(len(labels)))
    random.Random(10).shuffle(order)  # MultiBench: random.seed(10); random.shuffle(datasets)
    tenth, fifth = len(order) // 10, len(order) // 5
    parts = {"valid": order[:tenth], "test": order[tenth:fifth], "train": order[fifth:]}
    return {
        split: {"static": static[rows], "timeseries": series[rows], "labels": labels[rows]}
        for split, rows in parts.items()
    }


def load_mimic(
    path: str | pathlib.Path,
    *,
    mimic_task: int = 7,
    nonfinite: str = "raise",
    trust_pickle: bool = False,
) -> MultimodalDataset:
    """Loads MIMIC-style data: ``x1`` the static vector, ``x2`` the time series.

    Args:
      path: an ``.npz`` in the split layout or in MultiBench's ``im.pk`` layout (module
        docstring), or such a pickle with ``trust_pickle=True``.
      mimic_task: only for ``im.pk``: ``-1`` mortality (6 classes), ``0..19`` the ICD-9 group
        (binary); MultiBench's examples use group 7.
      nonfinite: ``"raise"`` on NaN/inf features, or ``"zero"`` to replace them with 0.
      trust_pickle: allow reading a pickle, which runs any code it holds.

    Returns:
      A :class:`MultimodalDataset` with ``x1 [N, Ds]``, ``x2 [N, T, Dt]``, ``mask2 [N, T]``
      (all true) and ``y [N]`` per split; ``modalities == ("static", "timeseries")``.

    Raises:
      DataFormatError: naming the file and field of a missing split or field, a ragged or
        non-numeric array, NaN/inf features, labels that do not match the features, a split
        left without samples (in the file or after cleaning), or more classes than samples.
    """
    _check_options(nonfinite)
    if isinstance(mimic_task, bool) or not isinstance(mimic_task, int) or not -1 <= mimic_task < 20:
        raise ValueError(f"`mimic_task` must be an int in [-1, 19], got {mimic_task!r}")
    path, data = _read(path, trust_pickle=trust_pickle)
    if "ep_tdata" in data:
        data = _multibench_mimic_splits(data, path, mimic_task)
    splits = {}
    for split_name in SPLITS:
        split = _split(data, path, split_name)
        static_key, series_key = f"{split_name}/static", f"{split_name}/timeseries"
        static = _finite(_array(split, path, static_key, 2), path, static_key, nonfinite)
        series = _finite(_array(split, path, series_key, 3), path, series_key, nonfinite)
        if len(series) != len(static):
            raise DataFormatError(
                f"{path}: field {series_key!r} has {len(series)} samples but {static_key!r} has "
                f"{len(static)}"
            )
        label_key = f"{split_name}/labels"
        values = _labels(split, path, label_key, len(static), static_key)
        if np.any(values < 0) or np.any(values != np.round(values)):
            raise DataFormatError(f"{path}: field {label_key!r} must hold integer classes >= 0")
        splits[split_name] = {
            "x1": static,
            "x2": series,
            "mask2": np.ones(series.shape[:2], bool),
            "y": values.astype(np.int32),
        }
    _check_nonempty(splits, path, dict.fromkeys(splits, ""))
    _check_widths(splits, path, {"x1": "static", "x2": "timeseries"})
    statistics = {
        "static": _standardise(splits, "x1", None, path, "static"),
        "timeseries": _standardise(splits, "x2", "mask2", path, "timeseries"),
    }
    num_classes = _check_classes(splits, path)
    return MultimodalDataset(
        **_by_attribute(splits),
        modalities=("static", "timeseries"),
        num_classes=num_classes,
        statistics=statistics,
        dropped=_by_attribute(dict.fromkeys(SPLITS, 0)),
        source=str(path),
    )
