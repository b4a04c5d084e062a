"""Writers of tiny files in the real MultiBench formats, for tests.

Every writer writes a pickle, or the documented ``.npz`` (keys ``"split/field"``, or the bare
field names of ``im.pk``) when the path ends in ``.npz``.

* :func:`affect_data` / :func:`write_affect`: affect data ``{"train", "valid", "test"}``,
  each ``{"vision" [N, T, 5], "audio" [N, T, 3], "text" [N, T, 7], "labels" [N, 1, 1],
  "id" [N]}``. Sequences are left-padded with zeros to ``T`` (aligned: one length per sample
  for all modalities); the last sample of every split has all-zero text (MultiBench drops
  it). Labels use the task's encoding: sentiment in [-3, 3] with some exact zeros (MOSI,
  MOSEI), 0/1 (humor), -1/1 (sarcasm). Features carry the label so methods can learn.
* :func:`mimic_data` / :func:`write_mimic`: MIMIC in the split layout (pickle or ``.npz``,
  ``static [N, 5]``, ``timeseries [N, 6, 4]``, ``labels [N]``), or MultiBench's ``im.pk``.
"""

from __future__ import annotations

import pathlib
import pickle

import numpy as np

AFFECT_DIMS = {"vision": 5, "audio": 3, "text": 7}
SIZES = {"train": 30, "valid": 10, "test": 12}


def _labels(rng, task: str, num_samples: int) -> np.ndarray:
    if task in ("mosi", "mosei"):
        values = np.round(rng.uniform(-3, 3, num_samples), 1)
        values[::5] = 0.0
        return values.reshape(num_samples, 1, 1)
    positive = rng.random(num_samples) < 0.5
    negative = -1.0 if task == "sarcasm" else 0.0
    return np.where(positive, 1.0, negative).reshape(num_samples, 1)


def affect_split(rng, task: str, num_samples: int, steps: int) -> dict[str, np.ndarray]:
    """One split: left-padded sequences whose lengths are drawn in ``[1, steps]``."""
    labels = _labels(rng, task, num_samples)
    values = labels.reshape(num_samples)
    positive = values >= 0 if task in ("mosi", "mosei") else values > 0  # the binary class
    sign = np.where(positive, 1.0, -1.0)
    lengths = rng.integers(1, steps + 1, num_samples)
    lengths[0] = steps
    real = np.arange(steps)[None, :] >= (steps - lengths)[:, None]  # left padding
    real[-1] = False
    split = {}
    for name, dim in AFFECT_DIMS.items():
        values = rng.normal(size=(num_samples, steps, dim)) + 0.5 * sign[:, None, None] + 3.0
        split[name] = np.where(real[:, :, None], values, 0.0)
    for name in ("vision", "audio"):  # the last sample has vision and audio but no text
        split[name][-1, -1] = 1.0
    split["labels"] = labels
    split["id"] = np.array([f"video{index}" for index in range(num_samples)])
    return split


def affect_data(task: str = "mosi", steps: int = 8, seed: int = 0) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    return {split: affect_split(rng, task, size, steps) for split, size in SIZES.items()}


def write_pickle(path: pathlib.Path, data) -> pathlib.Path:
    with open(path, "wb") as file:
        pickle.dump(data, file)
    return path


def write_npz(path: pathlib.Path, data) -> pathlib.Path:
    """``{split: {field: array}}`` as ``"split/field"`` keys; top-level arrays by name."""
    flat = {}
    for name, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{name}/{field}": array for field, array in value.items()})
        else:
            flat[name] = value
    np.savez(path, **flat)
    return path


def write_data(path: pathlib.Path, data) -> pathlib.Path:
    return (write_npz if path.suffix == ".npz" else write_pickle)(path, data)


def write_affect(path: pathlib.Path, task: str = "mosi", steps: int = 8, seed: int = 0):
    """Writes :func:`affect_data` to ``path`` and returns ``(path, data)``."""
    data = affect_data(task, steps, seed)
    return write_data(path, data), data


def mimic_data(seed: int = 0, num_classes: int = 2) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    data = {}
    for split, size in SIZES.items():
        labels = rng.integers(0, num_classes, size)
        data[split] = {
            "static": rng.normal(size=(size, 5)) + labels[:, None],
            "timeseries": rng.normal(size=(size, 6, 4)) + labels[:, None, None],
            "labels": labels,
        }
    return data


def write_mimic(path: pathlib.Path, seed: int = 0):
    """Writes :func:`mimic_data` as a pickle, or an ``.npz`` when ``path`` ends in ``.npz``."""
    data = mimic_data(seed)
    return write_data(path, data), data


def write_multibench_mimic(path: pathlib.Path, num_samples: int = 50, seed: int = 0):
    """MultiBench's ``im.pk`` layout (static 5, 24 steps of 12, mortality and ICD-9 labels)."""
    rng = np.random.default_rng(seed)
    admission = np.zeros((num_samples, 6))
    admission[np.arange(num_samples), rng.integers(0, 6, num_samples)] = 1.0
    data = {
        "adm_features_all": rng.normal(size=(num_samples, 5)),
        "ep_tdata": rng.normal(size=(num_samples, 24, 12)),
        "adm_labels_all": admission,
        "y_icd9": rng.integers(0, 2, (num_samples, 20)),
    }
    return write_data(path, data), data
