"""Bimodal Trifeatures: redundancy, uniqueness and a synergy that is in the pretraining pairs.

CoMM's controlled benchmark (Dufumier et al., ICLR 2025) on the pairs of
:mod:`factorcl_jax.data.trifeatures`: two procedurally drawn images that always share their
*shape*, each with its own *texture* and *color*, and a seeded permutation ``pi`` linking the
texture of image 1 to the color of image 2. Three labels, each scored by the **balanced
accuracy** of a linear probe on the frozen representation (the mean recall over classes):

* *redundancy*: ``y = shape`` (10 classes, chance 10%): either image tells it;
* *uniqueness*: ``y = texture_1`` (10 classes, chance 10%): only image 1 tells it;
* *synergy*: ``y = 1[color_2 == pi(texture_1)]`` (2 classes, chance 50%): neither image alone.

Pretraining. Self-supervised methods (SimCLR, i.e. CoMM's "Cross", Cross+Self, FactorCL-SSL,
CoMM, InfMasking) train twice per seed on the same image pools: on *unbiased* pairs (uniform
among the pairs that share a shape), probed for redundancy and uniqueness, and on *biased*
pairs (only pairs with ``color_2 == pi(texture_1)``), probed for synergy: the dependency the
label asks about exists only in the biased pairs. Supervised methods (SupCon, FactorCL-SUP)
train once per seed and label, on the unbiased pairs labelled with it (biased pairs all have
``y_synergy = 1``, nothing to supervise); they read every label as a 10-wide one-hot (synergy
fills two columns), so one compiled step serves all labels. Every probe is fitted on unbiased
pairs of the training images and scored on unbiased pairs of the held-out images (image
combinations never seen in training). Probes on the raw pixels (averaged to 8 x 8) are sanity
rows (synergy must be at chance).

Probe. Multinomial logistic regression (:func:`factorcl_jax.evaluation.probe.fit_linear_probe`)
on the standardised features; a test pair gets the class ``argmax_c (logit_c - log pi_c)``,
``pi_c`` the class frequency of the probe's training pairs. That is the Bayes decision for
balanced accuracy: without it, a probe for the synergy label (10% positives) would answer 0
everywhere and score exactly 50%.

Models (the same for every method). Per modality the AlexNet-style CNN of
:mod:`factorcl_jax.models.cnn` with widths ``(16, 32, 64, 64, 64)`` and 64 outputs: the
flattened last feature map through one linear layer for per-modality methods, its ``4 x 4``
positions as 16 patch tokens for CoMM and InfMasking's one-block fusion Transformer (width 64,
CLS token; cosine critic at temperature 0.1); heads ``64 -> 128 -> 64``, critics of two hidden
layers of 128. Augmentations per modality: SimCLR's (:func:`image_augment.simclr_augmentation`:
crop 0.08-1, jitter 0.4/0.4/0.4/0.1 at 0.8, grayscale 0.2, blur 0.5, flip), for the methods
that use augmented views. Adam, batch 64, constant learning rate 1e-3, no weight decay.

Budget. CoMM trains on 10k pairs for 100 epochs at batch 64 (15,600 steps of 64 pairs at 32 or
64 pixels, AlexNet's full widths, on a GPU). On 2 CPU cores one step of 64 pairs at 32 pixels
with these widths took 0.11 s (SimCLR) to 0.67 s (InfMasking, six masked views) on a machine
shared with another job; the seven methods train 16 models per seed (10 SSL, 6 SUP), 48 for
three seeds, so an hour allows about 300 steps per model. The default is therefore **10k pairs
(CoMM's count) for 2 epochs = 312 steps of 64 pairs, 2% of CoMM's steps**, at 32 pixels with a
quarter to a sixth of AlexNet's widths; the probes use 4096 training and up to 3584 test pairs.
Expected wall time: about an hour on 2 otherwise idle cores (from the step times above); on the
shared machine one seed of three methods (6 models) took 16 minutes, so a shared machine needs
two to three hours. It compares the methods under one small budget; it does not reproduce
CoMM's training. ``--epochs`` and ``--pairs`` scale it.

What that budget gives (seed 0, measured while choosing it). At the default budget Cross+Self,
CoMM and FactorCL-SSL reach 25.5, 20.6 and 35.2% on redundancy, 13.9, 14.1 and 19.1% on
uniqueness and 50.0, 49.7 and 49.4% on synergy, far below the published numbers. After 150
steps (probes on 2048 / 1024 pairs) SupCon's encoders already tell the shape at 78%, so the
encoders can learn it; the augmented self-supervised objectives are what is slow. Cross+Self
reaches 32% / 19% (redundancy / uniqueness) at learning rate 1e-3 and 60% / 13% at 3e-3; CoMM's
fused representation 25% / 9% and 23% / 7%, while its own per-modality encoder outputs reach
51% / 21% and 49% / 17%: at this budget the fused CLS output lags its encoders. 16 pixels with
three times the steps (the same time) did worse than 32 (25% / 15%), and mean-pooling the
feature map instead of flattening it was mixed (28% / 24%). The default keeps 1e-3, 32 pixels
and the flattened map.

Usage: python examples/trifeatures.py [--quick] [--seeds N] [--epochs E] [--pairs N]
           [--resolution R] [--methods A,B] [--out DIR]

``--quick`` (under 4 minutes on 2 shared cores): 16 pixels, 2048 pairs for 1 epoch, probes on
1024 / 512 pairs, one seed. Writes ``DIR/results.json`` (the budget; ``{"results": {row: {label:
{"mean", "std", "seeds"}}}}`` with balanced accuracies in ``[0, 1]``; ``"published"``, CoMM's
and InfMasking's linear-probe numbers in %; ``"diagnostics"``: the synergy probe of models
pretrained on *unbiased* pairs and every probe of the per-modality encoder outputs; training
seconds and wall time) and ``DIR/trifeatures.png`` (bars, published numbers as markers). An
existing run directory is refused, as by every example.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import numpy as np

from factorcl_jax import objectives
from factorcl_jax.config import PRESETS, RunConfig, replace, to_dict
from factorcl_jax.data.trifeatures import BimodalTrifeatures, bimodal_trifeatures
from factorcl_jax.evaluation import probe
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.plotting import pyplot
from factorcl_jax.io.tables import format_table
from factorcl_jax.models.cnn import AlexNetEncoder, feature_map_side
from factorcl_jax.models.image_augment import simclr_augmentation
from factorcl_jax.runs.rundir import make_run_dir
from factorcl_jax.training import loop
from factorcl_jax.training.builder import build_trainer

METHODS = ("SimCLR", "Cross+Self", "FactorCL-SSL", "CoMM", "InfMasking", "SupCon", "FactorCL-SUP")
LABELS = ("redundancy", "uniqueness", "synergy")
PAIR_LABEL = {"redundancy": "shape", "uniqueness": "texture1", "synergy": "synergy"}
"""The key of :meth:`BimodalTrifeatures.labels` each label reads."""
NUM_CLASSES = {"redundancy": 10, "uniqueness": 10, "synergy": 2}
CHANCE = {label: 1.0 / classes for label, classes in NUM_CLASSES.items()}
PRETRAINING = {"redundancy": "unbiased", "uniqueness": "unbiased", "synergy": "biased"}
"""Which pairs a self-supervised model is pretrained on before it is probed for a label."""
RAW = {"raw x1": ("x1",), "raw x2": ("x2",), "raw [x1; x2]": ("x1", "x2")}
RAW_SIDE = 8
"""Raw-input probes read the pixels averaged to ``8 x 8`` (full 32-pixel images would cost
minutes of probe fitting per seed for a sanity row)."""
REPRESENTATIONS = ("factorized", "encoders")
"""What is probed: the heads (fused representation for CoMM / InfMasking), main result; the
per-modality encoder outputs (tokens averaged), a diagnostic."""
EMBED_BATCH = 512
"""Rows per embedding batch; probe sets are cut to a multiple of it (one compiled shape)."""

PUBLISHED = {
    "SimCLR": {"redundancy": 100.0, "uniqueness": 11.6, "synergy": 50.0},
    "Cross+Self": {"redundancy": 100.0, "uniqueness": 86.9, "synergy": 50.0},
    "FactorCL-SSL": {"redundancy": 100.0, "uniqueness": 62.5, "synergy": 46.5},
    "CoMM": {"redundancy": 100.0, "uniqueness": 87.8, "synergy": 71.9},
    "InfMasking": {"redundancy": 100.0, "uniqueness": 90.6, "synergy": 77.0},
}
"""Linear-probe results in % (CoMM's figure: Cross, FactorCL, Cross+Self, CoMM; InfMasking's
README: InfMasking 90.6 ± 2.3 and 77.0 ± 4.2). Redundancy is "about 100" for all. CoMM's
"Cross" is the cross-modal InfoNCE called SimCLR here, and its FactorCL the SSL variant."""
PUBLISHED_STD = {"InfMasking": {"uniqueness": 2.3, "synergy": 4.2}}


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every method trains and is probed on.

    Attributes:
      num_pairs: pretraining pairs per split (unbiased and biased alike).
      epochs: passes over them.
      resolution: image side in pixels.
      probe_train: unbiased training pairs the probes are fitted on (a multiple of
        ``EMBED_BATCH``).
      probe_test: at most this many unbiased held-out pairs the probes are scored on.
      widths: the CNN's five convolution widths.
      embed_dim: encoder output, head and fusion width.
      learning_rate: Adam's (constant).
      batch_size: pairs per step.
    """

    num_pairs: int = 10_000
    epochs: int = 2
    resolution: int = 32
    probe_train: int = 4096
    probe_test: int = 3584
    widths: tuple[int, ...] = (16, 32, 64, 64, 64)
    embed_dim: int = 64
    learning_rate: float = 1e-3
    batch_size: int = 64


FULL = Budget()
QUICK = Budget(num_pairs=2048, epochs=1, resolution=16, probe_train=1024, probe_test=512)


def check_budget(budget: Budget) -> Budget:
    """``budget``, or a ``ValueError`` naming what cannot work."""
    for count in (budget.probe_train, budget.probe_test):
        if count < EMBED_BATCH or count % EMBED_BATCH:
            raise ValueError(
                f"probe_train ({budget.probe_train}) and probe_test ({budget.probe_test}) must "
                f"be positive multiples of {EMBED_BATCH}"
            )
    if budget.probe_train > budget.num_pairs:
        raise ValueError(
            f"probe_train ({budget.probe_train}) cannot exceed the pairs ({budget.num_pairs}): "
            "the probe's training pairs are the first unbiased pretraining pairs"
        )
    if budget.resolution < 8:
        raise ValueError(f"--resolution must be at least 8 pixels, got {budget.resolution}")
    return budget


def run_config(budget: Budget) -> RunConfig:
    """The library config of the budget: networks, Adam, batch, epochs, temperature 0.1."""
    side = feature_map_side(budget.resolution)
    return replace(
        PRESETS["cpu"],
        model={
            "embed_dim": budget.embed_dim,
            "head_hidden": 2 * budget.embed_dim,
            "critic_hidden": 2 * budget.embed_dim,
            "tokens_per_modality": side * side,
            "temperature": 0.1,
        },
        train={
            "epochs": budget.epochs,
            "batch_size": budget.batch_size,
            "learning_rate": budget.learning_rate,
            "lr_schedule": "constant",
        },
    )


def build_trainers(methods: tuple[str, ...], config: RunConfig, budget: Budget) -> dict:
    """``{method: Trainer}``: the CNN per modality (patch tokens for fused methods), SimCLR's
    augmentations per modality, labels as 10-wide one-hots."""
    trainers = {}
    for method in methods:
        fused = bool(objectives.METHODS[method].fused_views)
        encoder = AlexNetEncoder(
            output_dim=budget.embed_dim,
            output="tokens" if fused else "pooled",
            widths=budget.widths,
        )
        trainers[method] = build_trainer(
            config,
            method,
            num_classes=10,
            encoders=(encoder, encoder),
            augmentations=(simclr_augmentation, simclr_augmentation),
        )
    return trainers


# ---------------------------------------------------------------------------------- data


def images(data: BimodalTrifeatures, split: str, count: int) -> dict[str, np.ndarray]:
    """``{"x1", "x2": [count, R, R, 3]}``: the first ``count`` pairs of ``split``."""
    pool, pairs = (
        (data.train_pool, data.train_pairs)
        if split == "train"
        else (data.test_pool, data.test_pairs)
    )
    return {f"x{m + 1}": pool.images[pairs[:count, m]] for m in range(2)}


def probe_sets(data: BimodalTrifeatures, budget: Budget) -> dict[str, dict]:
    """Unbiased probe pairs: ``{"train" | "test": {"x1", "x2", "labels": {label: [n]}}}``."""
    if data.biased:
        raise ValueError("probe pairs must be unbiased")
    test_count = min(budget.probe_test, len(data.test_pairs) // EMBED_BATCH * EMBED_BATCH)
    sets = {}
    for split, count in (("train", budget.probe_train), ("test", test_count)):
        labels = data.labels(split)
        sets[split] = {
            **images(data, split, count),
            "labels": {label: labels[PAIR_LABEL[label]][:count] for label in LABELS},
        }
    return sets


def pretraining_sets(datasets: dict[str, BimodalTrifeatures]) -> dict[str, dict]:
    """``{pairs: {"x1", "x2": [N, R, R, 3], "labels": {label: [N]}}}``: every training pair of
    each dataset, and each label of :data:`LABELS` on them."""
    sets = {}
    for pairs, data in datasets.items():
        labels = data.labels("train")
        sets[pairs] = {
            **images(data, "train", len(data.train_pairs)),
            "labels": {label: labels[PAIR_LABEL[label]] for label in LABELS},
        }
    return sets


# --------------------------------------------------------------------------------- probe


def probe_features(features: dict, sets: dict, labels: tuple[str, ...], l2: float) -> dict:
    """``{label: balanced accuracy}`` of ``features = {"train": [N, D], "test": [M, D]}``."""
    return {
        label: probe.balanced_probe_accuracy(
            features["train"],
            sets["train"]["labels"][label],
            features["test"],
            sets["test"]["labels"][label],
            num_classes=NUM_CLASSES[label],
            l2=l2,
        )
        for label in labels
    }


def pooled_pixels(x: np.ndarray) -> np.ndarray:
    """``[n, R, R, 3] -> [n, 8 * 8 * 3]``: pixels averaged over squares of ``R // 8`` pixels
    (``R >= 8``; rows and columns beyond ``8 * (R // 8)`` are dropped)."""
    n, side = len(x), x.shape[1]
    cell = side // RAW_SIDE
    cropped = x[:, : cell * RAW_SIDE, : cell * RAW_SIDE]
    return cropped.reshape(n, RAW_SIDE, cell, RAW_SIDE, cell, 3).mean(axis=(2, 4)).reshape(n, -1)


def raw_accuracies(sets: dict, l2: float) -> dict[str, dict[str, float]]:
    """``{raw row: {label: balanced accuracy}}`` of probes on :func:`pooled_pixels`."""
    found = {}
    for row, views in RAW.items():
        features = {
            split: np.concatenate([pooled_pixels(sets[split][v]) for v in views], axis=1)
            for split in ("train", "test")
        }
        found[row] = probe_features(features, sets, LABELS, l2)
    return found


# ------------------------------------------------------------------------------ training


def train(trainer, data: dict, config: RunConfig, seed: int):
    """Trains a fresh state on ``data`` (``{"x1", "x2", "y"}``); ``(params, seconds)``."""
    start = time.perf_counter()
    first = {key: value[: config.train.batch_size] for key, value in data.items()}
    state = trainer.init(jax.random.key(seed), first)
    state, _ = loop.fit(
        trainer,
        state,
        data,
        epochs=config.train.epochs,
        batch_size=config.train.batch_size,
        seed=seed,
        progress=False,
    )
    state = jax.block_until_ready(state)
    return state.params, time.perf_counter() - start


def probe_model(trainer, params, sets: dict, labels: tuple[str, ...], l2: float) -> dict:
    """``{representation: {label: balanced accuracy}}`` of a trained model."""
    embedded = {
        split: loop.embed_dataset(trainer, params, sets[split], batch_size=EMBED_BATCH)
        for split in ("train", "test")
    }
    return {
        name: probe_features({split: embedded[split][name] for split in embedded}, sets, labels, l2)
        for name in REPRESENTATIONS
    }


def model_runs(trainer) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(pretraining pairs, label trained on, labels probed)`` of each model of a method: a
    SUP method trains one model per label on unbiased pairs; an SSL one a model per kind of
    pairs (its ``y`` is unused), probed on every label."""
    if trainer.method.supervised:
        return [("unbiased", label, (label,)) for label in LABELS]
    return [(pairs, LABELS[0], LABELS) for pairs in ("unbiased", "biased")]


def chance_spread(labels: np.ndarray) -> float:
    """Largest standard error of the balanced accuracy of a classifier that ignores its input,
    on binary test labels ``[M]``: ``sqrt(1 / n_1 + 1 / n_0) / 4``."""
    counts = np.bincount(labels, minlength=2)
    return float(np.sqrt(1 / counts[1] + 1 / counts[0]) / 4)


def run_seed(
    trainers: dict, config: RunConfig, budget: Budget, seed: int
) -> tuple[list, dict, float]:
    """Trains and probes every method on seed ``seed``'s data.

    Returns:
      ``(measurements, {method: [training seconds per model]}, chance spread of the synergy
      test pairs)``, each measurement a dict ``{"row", "pairs", "representation", "label",
      "accuracy"}``.
    """
    unbiased = bimodal_trifeatures(budget.num_pairs, resolution=budget.resolution, seed=seed)
    pretraining = pretraining_sets(
        {"unbiased": unbiased, "biased": unbiased.with_pairs(biased=True)}
    )
    sets = probe_sets(unbiased, budget)
    measurements = [
        {"row": row, "pairs": "-", "representation": "raw", "label": label, "accuracy": accuracy}
        for row, accuracies in raw_accuracies(sets, config.probe.l2).items()
        for label, accuracy in accuracies.items()
    ]
    seconds: dict[str, list[float]] = {method: [] for method in trainers}
    seeded = replace(config, train={"seed": seed})
    for method, trainer in trainers.items():
        for pairs, trained_on, labels in model_runs(trainer):
            chosen = pretraining[pairs]
            data = {"x1": chosen["x1"], "x2": chosen["x2"], "y": chosen["labels"][trained_on]}
            params, elapsed = train(trainer, data, seeded, seed)
            seconds[method].append(elapsed)
            measured = probe_model(trainer, params, sets, labels, config.probe.l2)
            measurements += [
                {
                    "row": method,
                    "pairs": pairs,
                    "representation": representation,
                    "label": label,
                    "accuracy": accuracy,
                }
                for representation, accuracies in measured.items()
                for label, accuracy in accuracies.items()
            ]
            shown = ", ".join(f"{k} {v:.3f}" for k, v in measured["factorized"].items())
            print(f"seed {seed}  {method:<13} {pairs:<9} {shown}  (trained in {elapsed:.1f} s)")
    return measurements, seconds, chance_spread(sets["test"]["labels"]["synergy"])


# ------------------------------------------------------------------------------- results


def summary(values: list[float]) -> dict:
    """``{"mean", "std", "seeds"}`` of per-seed accuracies."""
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "seeds": values}


def collect(measurements: list[dict], methods: tuple[str, ...]) -> tuple[dict, dict]:
    """``(results, diagnostics)`` from the flat measurements (see the module docstring)."""

    def values(row, pairs, representation, label):
        return [
            m["accuracy"]
            for m in measurements
            if (m["row"], m["pairs"], m["representation"], m["label"])
            == (row, pairs, representation, label)
        ]

    def pairs_of(row, label):
        if row in RAW:
            return "-"
        return "unbiased" if objectives.METHODS[row].supervised else PRETRAINING[label]

    def table(representation, rows):
        return {
            row: {
                label: summary(values(row, pairs_of(row, label), representation, label))
                for label in LABELS
            }
            for row in rows
        }

    results = {**table("factorized", methods), **table("raw", RAW)}
    self_supervised = [m for m in methods if not objectives.METHODS[m].supervised]
    diagnostics = {
        "synergy_after_unbiased_pretraining": {
            m: summary(values(m, "unbiased", "factorized", "synergy")) for m in self_supervised
        },
        "encoders": table("encoders", methods),
    }
    return results, diagnostics


def percent(entry: dict) -> str:
    """``"mean ± std"`` in percent."""
    return f"{100 * entry['mean']:.1f} ± {100 * entry['std']:.1f}"


def published(row: str, label: str) -> str:
    """The published number of ``row`` on ``label`` as a table cell (``"-"`` if none)."""
    value = PUBLISHED.get(row, {}).get(label)
    if value is None:
        return "-"
    std = PUBLISHED_STD.get(row, {}).get(label)
    return f"{value:.1f}" + (f" ± {std:.1f}" if std is not None else "")


def table_rows(results: dict, seconds: dict) -> list[dict]:
    """One row per method or raw baseline: ours and the published number per label."""
    rows = []
    for row, labels in results.items():
        entry = {"method": row}
        for label in LABELS:
            entry[label] = percent(labels[label])
            entry[f"{label} (pub.)"] = published(row, label)
        entry["s / model"] = float(np.mean(seconds[row])) if row in seconds else None
        rows.append(entry)
    return rows


def above(entry: dict, level: float, spread: float) -> bool:
    """Whether a mean is above ``level`` by more than twice its seeds' std, twice ``spread``
    (the standard error of chance) and 2 points."""
    return entry["mean"] - level > max(2 * entry["std"], 2 * spread, 0.02)


def findings(results: dict, diagnostics: dict, methods: tuple[str, ...]) -> list[str]:
    """The published orderings, checked against the measurements (either way)."""
    lines = []
    synergy = {m: results[m]["synergy"] for m in methods}
    spread = diagnostics["synergy_chance_spread"]
    for m in methods:
        verdict = (
            "above chance" if above(synergy[m], 0.5, spread) else "not distinguishable from chance"
        )
        lines.append(f"synergy: {m} {percent(synergy[m])} ({verdict}, 50%)")
    for m, entry in diagnostics["synergy_after_unbiased_pretraining"].items():
        lines.append(f"synergy after unbiased pretraining (no dependency): {m} {percent(entry)}")
    if "FactorCL-SSL" in methods:
        base = results["FactorCL-SSL"]["uniqueness"]
        for m in ("Cross+Self", "CoMM", "InfMasking"):
            if m in methods:
                gap = results[m]["uniqueness"]["mean"] - base["mean"]
                lines.append(
                    f"uniqueness: {m} - FactorCL-SSL = {100 * gap:+.1f} points (published "
                    f"{PUBLISHED[m]['uniqueness'] - PUBLISHED['FactorCL-SSL']['uniqueness']:+.1f})"
                )
    for m in methods:
        if objectives.METHODS[m].fused_views:
            fused, encoders = results[m]["synergy"], diagnostics["encoders"][m]["synergy"]
            lines.append(
                f"synergy of {m}: fused {percent(fused)} vs its per-modality encoder outputs "
                f"{percent(encoders)}"
            )
    return lines


def plot(results: dict, path) -> None:
    """Grouped bars per label (ours, mean ± std), published numbers as black diamonds."""
    plt = pyplot()
    rows = list(results)
    width = 0.8 / len(rows)
    colors = plt.get_cmap("tab10")
    greys = iter(("0.75", "0.6", "0.45"))
    figure, axis = plt.subplots(figsize=(11, 4.2))
    for index, row in enumerate(rows):
        positions = np.arange(len(LABELS)) + (index - (len(rows) - 1) / 2) * width
        axis.bar(
            positions,
            [100 * results[row][label]["mean"] for label in LABELS],
            width,
            yerr=[100 * results[row][label]["std"] for label in LABELS],
            color=next(greys) if row in RAW else colors(index),
            capsize=2,
            label=row,
        )
        for position, label in zip(positions, LABELS, strict=True):
            if label in PUBLISHED.get(row, {}):
                axis.plot(position, PUBLISHED[row][label], "kD", markersize=3.5)
    for index, label in enumerate(LABELS):
        axis.hlines(100 * CHANCE[label], index - 0.45, index + 0.45, colors="k", linestyles=":")
    axis.plot([], [], "kD", markersize=3.5, label="published")
    axis.set_xticks(
        np.arange(len(LABELS)),
        ["redundancy\n(shape)", "uniqueness\n(texture 1)", "synergy (biased pretraining)"],
    )
    axis.set_ylim(0, 105)
    axis.set_ylabel("linear-probe balanced accuracy (%)")
    axis.set_title("Bimodal Trifeatures: mean ± std over seeds (dotted: chance)")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(methods: tuple[str, ...], budget: Budget, seeds: int) -> tuple[dict, dict, dict]:
    """``(results, diagnostics, {method: [training seconds per model]})`` over ``seeds``."""
    config = run_config(budget)
    trainers = build_trainers(methods, config, budget)  # compiled once, reused by every seed
    measurements: list[dict] = []
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    spreads = []
    for seed in range(seeds):
        measured, elapsed, spread = run_seed(trainers, config, budget, seed)
        measurements += measured
        spreads.append(spread)
        for method, values in elapsed.items():
            seconds[method] += values
    results, diagnostics = collect(measurements, methods)
    # The standard error of a mean over seeds of chance-level balanced accuracies.
    diagnostics["synergy_chance_spread"] = float(np.mean(spreads) / np.sqrt(seeds))
    return results, diagnostics, seconds


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="run directory (default: runs/trifeatures-*)")
    parser.add_argument("--quick", action="store_true", help="smoke budget (about 3 minutes)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per model")
    parser.add_argument("--pairs", type=int, default=None, help="pretraining pairs per split")
    parser.add_argument("--resolution", type=int, default=None, help="image side in pixels")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    args = parser.parse_args(argv)
    args.methods = tuple(args.methods.split(","))
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: {unknown} do not apply here; choose from {list(METHODS)}")
    for name in ("seeds", "epochs", "pairs", "resolution"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be a positive integer, got {value}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    budget = QUICK if args.quick else FULL
    changes = {
        field: value
        for field, value in (
            ("epochs", args.epochs),
            ("num_pairs", args.pairs),
            ("resolution", args.resolution),
        )
        if value is not None
    }
    budget = check_budget(dataclasses.replace(budget, **changes))
    seeds = args.seeds or (1 if args.quick else 3)
    out = make_run_dir(args.out, "trifeatures")
    print(f"{seeds} seed(s); budget: {budget}")
    start = time.perf_counter()
    results, diagnostics, seconds = run(args.methods, budget, seeds)
    wall_seconds = time.perf_counter() - start
    columns = ["method"]
    for label in LABELS:
        columns += [label, f"{label} (pub.)"]
    print(format_table(table_rows(results, seconds), [*columns, "s / model"]))
    print(
        "linear-probe balanced accuracy (%), mean ± std over seeds; redundancy and uniqueness "
        "after unbiased pretraining, synergy after biased pretraining (SUP: trained on the label)"
    )
    lines = findings(results, diagnostics, args.methods)
    print("\n".join(lines))
    print(f"wall time {wall_seconds:.0f} s")
    payload = {
        "budget": dataclasses.asdict(budget),
        "config": to_dict(run_config(budget)),
        "seeds": seeds,
        "methods": list(args.methods),
        "labels": {
            label: {
                "pair_label": PAIR_LABEL[label],
                "classes": NUM_CLASSES[label],
                "chance": CHANCE[label],
                "pretraining_pairs": PRETRAINING[label],
            }
            for label in LABELS
        },
        "metric": "balanced accuracy of a prior-corrected linear probe",
        "results": results,
        "published": {"percent": PUBLISHED, "std": PUBLISHED_STD},
        "diagnostics": diagnostics,
        "findings": lines,
        "train_seconds": {m: float(np.mean(v)) for m, v in seconds.items() if v},
        "wall_seconds": wall_seconds,
    }
    write_json(out / "results.json", payload)
    plot(results, out / "trifeatures.png")
    print(f"wrote {out / 'results.json'} and {out / 'trifeatures.png'}")
    return payload


if __name__ == "__main__":
    main()
