"""Redundancy, uniqueness, synergy: which contrastive method keeps which kind of information.

The synthetic data of the FactorCL paper (``factorcl_jax.data.synthetic``: a shared latent
block and one unique block per modality, mapped linearly to two 100-d modalities) gets four
labels, one per kind of interaction:

* *redundant*: the sign of the mean of the shared block (either modality determines it);
* *unique*: the sign of the mean of modality 1's unique block (only modality 1 does);
* *synergistic*: the XOR of the signs of the first coordinates of the two unique blocks
  (neither modality alone says anything about it, and it is not linear in both). The two
  coordinates are independent in the pretraining pairs, so no self-supervised objective has
  anything to learn about the XOR from the pairing: this label is the *control* (no
  dependency in the pairs, so nobody can learn it);
* *biased synergistic*: the same idea as bimodal Trifeatures' synergy, where a permutation
  links the texture of image 1 to the color of image 2. ``z_1[0]`` and ``z_2[0]`` are cut into
  ``K = 4`` equal-probability bins of ``N(0, 0.5)`` (:func:`coordinate_bins`) and a seeded
  permutation ``pi`` links them (:func:`relation_permutation`); the label is
  ``1[bin(z_2[0]) == pi(bin(z_1[0]))]`` (:func:`relation_labels`), true for a quarter of
  uniformly drawn samples and independent of either modality alone. The self-supervised
  methods pretrain on *biased* pairs (:func:`biased_pairs`: the training split with
  ``z_2[0]`` redrawn inside bin ``pi(bin(z_1[0]))`` and ``x_2`` recomputed, so the relation
  holds in every pair) and are probed on the unbiased splits. With ``K = 2`` the label would
  be the XOR or its complement.

Every method trains under the same budget (data, encoders, epochs, batch, optimizer) and is
scored by the **balanced** test accuracy of a linear probe on its frozen representation (the
concatenated heads; the fused representation for CoMM and InfMasking), over seeds; a test row
gets the class ``argmax_c (logit_c - log pi_c)`` (``pi_c`` the training class frequency), so a
probe that answers the majority class scores 50% on the 25%-positive relation label.
Self-supervised methods (SimCLR, FactorCL-SSL, CoMM, InfMasking) never see a label: they
train twice per seed, on the unbiased training split (probed on the first three labels, and
on the relation label as a second control) and on its biased version (probed on the relation
label). Supervised ones (SupCon, FactorCL-SUP) train once per seed *and* label kind on the
unbiased split (the biased split's relation label is constant). Probes on the raw inputs are
sanity rows: both synergistic labels must be at chance for them.

What it shows (default preset: 6000 samples, 8 epochs, 3 seeds; 2 CPU cores shared with
other jobs, 14.4 min wall for the whole script; balanced test accuracy %, mean ± std):

=============  ==========  ==========  ==========  ===========  ==================
method         trained     redundant   unique      synergistic  biased synergistic
=============  ==========  ==========  ==========  ===========  ==================
SimCLR         twice/seed  96.2 ± 1.2  74.1 ± 1.7  49.4 ± 1.6   51.2 ± 1.8
FactorCL-SSL   twice/seed  96.6 ± 1.1  94.3 ± 1.4  50.3 ± 0.4   49.2 ± 0.6
CoMM           twice/seed  95.0 ± 0.9  86.9 ± 3.7  50.1 ± 0.4   49.0 ± 0.5
InfMasking     twice/seed  94.4 ± 0.9  84.9 ± 7.3  49.3 ± 1.0   50.1 ± 1.2
SupCon         per kind    98.7 ± 0.4  97.2 ± 0.3  49.7 ± 0.5   50.6 ± 0.4
FactorCL-SUP   per kind    98.8 ± 0.3  98.0 ± 0.3  50.7 ± 0.5   51.3 ± 1.0
raw [x1; x2]   -           99.8 ± 0.1  99.6 ± 0.3  49.3 ± 1.7   51.1 ± 0.7
=============  ==========  ==========  ==========  ===========  ==================

FactorCL's advantage on the *unique* label reproduces without labels: FactorCL-SSL beats
SimCLR by 20.2 points and CoMM (86.9) and InfMasking (84.9, one seed at 74.5) by 7-9; with
labels FactorCL-SUP and SupCon both keep it (98.0 vs 97.2). On the XOR control every method
is at chance, as it must be. With the dependency in the pretraining pairs (*biased
synergistic*) every method is still at chance (49.0-51.3; after unbiased pretraining the
self-supervised methods score 49.4-51.8 on the same label). The representations do learn the
linked coordinates: on seed 0 and 1 a 4-class linear probe on the biased-pretrained
representations tells ``bin(z_1[0])`` and ``bin(z_2[0])`` at 38-42% (chance 25%) for SimCLR
and CoMM alike, yet not whether they are related; a linear probe on the bins' one-hot
encodings and their products scores 100%. With ``K = 2`` (the biased pairs then all have
``sign(z_2[0]) = ±sign(z_1[0])``) the signs are told at 66-74% and the relation at 49-52%.
So the fused representation, under this budget, holds each modality's part of the relation
as the per-modality ones do, not their conjunction.

Usage: python examples/interactions.py [--out DIR] [--quick] [--seeds N] [--epochs E]
           [--methods A,B] [--representation factorized|encoders]

Writes ``DIR/results.json`` (settings, which methods trained per label kind, and
``{"results": {row: {kind: {"mean", "std", "seeds"}}}}`` with accuracies in ``[0, 1]``, the
winner of each kind, training seconds and the wall time) and ``DIR/interactions.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import jax
import numpy as np

from factorcl_jax import objectives
from factorcl_jax.config import PRESETS, RunConfig, flatten, replace, to_dict
from factorcl_jax.data.synthetic import (
    LABEL_KINDS,
    LATENT_VARIANCE,
    SyntheticData,
    interaction_labels,
    make_synthetic,
    train_test_split,
)
from factorcl_jax.evaluation import probe
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.runs.rundir import make_run_dir
from factorcl_jax.training import loop
from factorcl_jax.training.builder import build_trainer

METHODS = ("SimCLR", "FactorCL-SSL", "CoMM", "InfMasking", "SupCon", "FactorCL-SUP")
RAW = {"raw x1": ("x1",), "raw x2": ("x2",), "raw [x1; x2]": ("x1", "x2")}
BIASED = "biased synergistic"
KINDS = (*LABEL_KINDS, BIASED)
"""The labels of the table: the three of ``interaction_labels`` (``"synergistic"`` is the XOR,
the control) and the relation label probed after pretraining on biased pairs."""
RELATION_BINS = 4
"""``K``: quantile bins of each linked coordinate (the relation label holds for ``1 / K``)."""


INTERACTIONS = replace(
    PRESETS["cpu"],
    model={"embed_dim": 32, "critic_hidden": 64},
    train={"lr_schedule": "constant"},
    augment={"scale": 0.1, "rate": 0.2},
)
"""The budget every method trains under: the ``cpu`` preset (6000 samples, 8 epochs, Adam at
1e-3, normalised heads) with embeddings of 32, critics of 64, a constant learning rate and
milder augmentations (noise 0.1, masking 0.2)."""

QUICK = replace(
    INTERACTIONS,
    data={"num_samples": 2000},
    model={
        "encoder_hidden": 64,
        "head_hidden": 64,
        "encoder_layers": 1,
        "embed_dim": 16,
        "critic_hidden": 32,
    },
    train={"epochs": 2},
)
"""``--quick``: :data:`INTERACTIONS` on 2000 samples with small networks for 2 epochs."""


# ------------------------------------------------------------------- the biased relation


def relation_permutation(seed: int, bins: int = RELATION_BINS) -> np.ndarray:
    """``pi``: the seeded random permutation of ``bins`` bins linking modality 1's first unique
    coordinate to modality 2's (bin ``b`` of ``z_1[0]`` goes with bin ``pi[b]`` of ``z_2[0]``)."""
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"`bins` must be an int >= 2, got {bins!r}")
    return np.random.default_rng([seed, bins]).permutation(bins)


def coordinate_bins(z: np.ndarray, bins: int) -> np.ndarray:
    """``[N]`` int bins of latent values ``z [N]``: equal-probability bins of ``N(0, 0.5)``
    (bin ``b`` is ``[q_b, q_{b+1})`` with ``q_b`` its ``b / bins`` quantile)."""
    spread = statistics.NormalDist(0.0, LATENT_VARIANCE**0.5)
    edges = [spread.inv_cdf(b / bins) for b in range(1, bins)]
    return np.searchsorted(np.asarray(edges, np.float32), z, side="right")


def relation_labels(data: SyntheticData, permutation: np.ndarray) -> np.ndarray:
    """``[N]`` int32 ``1[bin(z_2[0]) == pi[bin(z_1[0])]]``: whether the relation holds.

    On uniformly drawn samples ``z_1[0]`` and ``z_2[0]`` are independent, so the label holds
    for ``1 / K`` of them and neither modality alone says anything about it.
    """
    bins = len(permutation)
    first = coordinate_bins(data.latents["1"][:, 0], bins)
    second = coordinate_bins(data.latents["2"][:, 0], bins)
    return (second == permutation[first]).astype(np.int32)


def biased_pairs(data: SyntheticData, permutation: np.ndarray, seed: int) -> SyntheticData:
    """``data`` with ``z_2[0]`` redrawn so that the relation holds for every sample.

    ``z_2[0]`` is drawn from ``N(0, 0.5)`` conditioned on bin ``pi[bin(z_1[0])]`` (rejection
    sampling) and modality 2 recomputed, ``x_2 = [z_12; z_2] W_2``; the shared block, modality
    1 and the other coordinates are untouched. These are the self-supervised pairs of the
    biased experiment, like Trifeatures' pairs with ``color_2 == pi(texture_1)``.
    """
    if list(data.feature_dims) != ["12", "1", "2"]:
        raise ValueError(f"need the blocks '12', '1', '2', got {list(data.feature_dims)}")
    bins = len(permutation)
    target = permutation[coordinate_bins(data.latents["1"][:, 0], bins)]
    rng = np.random.default_rng([seed, bins, 1])
    linked = np.empty(len(data), np.float32)
    todo = np.arange(len(data))
    while todo.size:
        draws = rng.normal(0.0, LATENT_VARIANCE**0.5, todo.size).astype(np.float32)
        accepted = coordinate_bins(draws, bins) == target[todo]
        linked[todo[accepted]] = draws[accepted]
        todo = todo[~accepted]
    unique2 = data.latents["2"].copy()
    unique2[:, 0] = linked
    x2 = np.concatenate([data.latents["12"], unique2], axis=1) @ data.projections[1]
    return dataclasses.replace(
        data,
        modalities=(data.x1, x2.astype(np.float32), *data.modalities[2:]),
        latents={**data.latents, "2": unique2},
    )


# ------------------------------------------------------------------ training and probing


def train_and_embed(trainer, pretraining: dict, splits: list[dict], config) -> tuple[list, float]:
    """Trains a fresh state on ``pretraining``; returns the probed representation of
    ``splits`` (``[train, test]``) and the training seconds."""
    start = time.perf_counter()
    settings = config.train
    first = {key: value[: settings.batch_size] for key, value in pretraining.items()}
    state = trainer.init(jax.random.key(settings.seed), first)
    state, _ = loop.fit(
        trainer,
        state,
        pretraining,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        progress=False,
    )
    state = jax.block_until_ready(state)
    elapsed = time.perf_counter() - start
    representation = config.probe.representation
    features = [loop.embed_dataset(trainer, state.params, s)[representation] for s in splits]
    return features, elapsed


def probe_accuracy(features, labels) -> float:
    """Balanced test accuracy of a linear probe on ``features = (train [N, D], test [M, D])``
    for ``labels = (train [N], test [M])``.

    A test row gets ``argmax_c (logit_c - log pi_c)``, ``pi_c`` the training frequency of class
    ``c`` (the Bayes decision for balanced accuracy); the score is the mean of both classes'
    recall, so answering the majority class scores 50% however rare the other one is.
    """
    return probe.balanced_probe_accuracy(
        features[0], labels[0], features[1], labels[1], num_classes=2
    )


def seed_data(config: RunConfig, seed: int) -> tuple[dict, list[dict], dict]:
    """Seed ``seed``'s ``(labels, unbiased splits, biased pretraining split)``: ``labels`` is
    ``{kind: (train [N], test [M])}``, the splits ``{"x1", "x2"}`` dicts."""
    train_split, test_split = train_test_split(
        make_synthetic(config.data.num_samples, seed=seed), seed=seed
    )
    permutation = relation_permutation(seed)
    splits = (train_split, test_split)
    labels = {kind: tuple(interaction_labels(s, kind) for s in splits) for kind in LABEL_KINDS}
    labels[BIASED] = tuple(relation_labels(s, permutation) for s in splits)
    biased = biased_pairs(train_split, permutation, seed)
    inputs = [{"x1": s.x1, "x2": s.x2} for s in splits]
    return labels, inputs, {"x1": biased.x1, "x2": biased.x2}


def model_runs(trainer) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """``(pretraining pairs, kind trained on, kinds probed)`` per model of a method: a
    supervised method trains one model per kind on the unbiased split (the biased split's
    relation label is constant); a self-supervised one a model on the unbiased split, probed
    on the three kinds of ``interaction_labels`` and the relation label, and one on the
    biased split, probed on the relation label."""
    if trainer.method.supervised:
        return [("unbiased", kind, (kind,)) for kind in KINDS]
    return [("unbiased", None, (*LABEL_KINDS, BIASED)), ("biased", None, (BIASED,))]


def run(methods: tuple[str, ...], config: RunConfig, seeds: int) -> tuple[dict, dict, dict]:
    """``({row: {kind: [accuracy per seed]}}, {method: [training seconds]}, {method: [relation
    accuracy after unbiased pretraining]})``."""
    trainers = {method: build_trainer(config, method) for method in methods}  # compiled once
    accuracies = {row: {kind: [] for kind in KINDS} for row in (*methods, *RAW)}
    seconds: dict[str, list[float]] = {method: [] for method in methods}
    unbiased_relation: dict[str, list[float]] = {
        m: [] for m in methods if not objectives.METHODS[m].supervised
    }
    for seed in range(seeds):
        seeded = replace(config, train={"seed": seed})
        labels, inputs, biased = seed_data(config, seed)
        for row, views in RAW.items():
            features = [np.concatenate([split[v] for v in views], axis=1) for split in inputs]
            for kind in KINDS:
                accuracies[row][kind].append(probe_accuracy(features, labels[kind]))
        for method in methods:
            trainer = trainers[method]
            for pairs, trained_on, kinds in model_runs(trainer):
                pretraining = {**(inputs[0] if pairs == "unbiased" else biased)}
                pretraining["y"] = labels[trained_on or "redundant"][0]  # SSL: y unused
                features, elapsed = train_and_embed(trainer, pretraining, inputs, seeded)
                seconds[method].append(elapsed)
                for kind in kinds:
                    accuracy = probe_accuracy(features, labels[kind])
                    if kind == BIASED and pairs == "unbiased" and trained_on is None:
                        unbiased_relation[method].append(accuracy)
                        kind_shown = "relation, unbiased pretraining"
                    else:
                        accuracies[method][kind].append(accuracy)
                        kind_shown = kind
                    print(
                        f"seed {seed}  {method:<13} {pairs:<9} {kind_shown:<30} accuracy "
                        f"{accuracy:.4f}  (trained in {elapsed:.1f} s)"
                    )
    return accuracies, seconds, unbiased_relation


def summarise(accuracies: dict) -> dict:
    """``{row: {kind: {"mean", "std", "seeds"}}}``."""
    return {
        row: {
            kind: {"mean": float(np.mean(v)), "std": float(np.std(v)), "seeds": v}
            for kind, v in kinds.items()
        }
        for row, kinds in accuracies.items()
    }


def plot(results: dict, path) -> None:
    """Grouped bars: one group per label kind, one bar per method (raw inputs in grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(results)
    width = 0.8 / len(rows)
    colors = plt.get_cmap("tab10")
    greys = iter(("0.75", "0.6", "0.45"))
    figure, axis = plt.subplots(figsize=(10, 4))
    for index, row in enumerate(rows):
        color = next(greys) if row in RAW else colors(index)
        positions = np.arange(len(KINDS)) + (index - (len(rows) - 1) / 2) * width
        axis.bar(
            positions,
            [100 * results[row][kind]["mean"] for kind in KINDS],
            width,
            yerr=[100 * results[row][kind]["std"] for kind in KINDS],
            color=color,
            capsize=2,
            label=row,
        )
    axis.axhline(50, color="black", linewidth=0.8, linestyle=":")
    axis.set_xticks(
        np.arange(len(KINDS)), ["redundant", "unique", "synergistic\n(XOR, control)", BIASED]
    )
    axis.set_ylim(40, 100)
    axis.set_ylabel("linear-probe balanced test accuracy (%)")
    axis.set_title("Redundant, unique and synergistic labels: mean ± std over seeds")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def percent(summary: dict) -> str:
    """``"mean ± std"`` in percent."""
    return f"{100 * summary['mean']:.1f} ± {100 * summary['std']:.1f}"


def chance_spread(config: RunConfig, kind: str, seeds: int) -> float:
    """Standard error of the seeds' mean balanced accuracy of a classifier that ignores its
    input: ``sqrt(1 / n_1 + 1 / n_0) / 4 / sqrt(seeds)`` at most, for ``n_1`` / ``n_0`` test
    rows of each class (``1 / K`` of them hold the relation label)."""
    rows = round(config.data.num_samples * 0.2)  # train_test_split's default test fraction
    share = 1 / RELATION_BINS if kind == BIASED else 0.5
    return float(np.sqrt(1 / (rows * share) + 1 / (rows * (1 - share))) / 4 / np.sqrt(seeds))


def findings(
    results: dict, unbiased_relation: dict, methods: tuple[str, ...], spread: dict
) -> list[str]:
    """The comparisons the experiment is about, as measured (either way); ``spread`` holds
    :func:`chance_spread` per kind."""

    def score(method: str, kind: str) -> str:
        return f"{method} {percent(results[method][kind])}"

    def above_chance(entry: dict, kind: str) -> bool:
        return entry["mean"] - 0.5 > max(2 * entry["std"], 2 * spread[kind], 0.02)

    lines = []
    for kind in KINDS:
        ranked = sorted(methods, key=lambda m: -results[m][kind]["mean"])
        line = f"{kind}: best {score(ranked[0], kind)}"
        if len(ranked) > 1:
            line += f"; then {score(ranked[1], kind)}"
        if not above_chance(results[ranked[0]][kind], kind):
            line += " (no method distinguishable from chance, 50%)"
        lines.append(line)
    pairs = [
        ("unique", "FactorCL-SSL", "SimCLR"),
        ("unique", "FactorCL-SUP", "SupCon"),
        ("synergistic", "CoMM", "FactorCL-SSL"),
        ("synergistic", "InfMasking", "CoMM"),
        (BIASED, "CoMM", "FactorCL-SSL"),
        (BIASED, "CoMM", "SimCLR"),
        (BIASED, "InfMasking", "CoMM"),
    ]
    for kind, better, baseline in pairs:
        if better in methods and baseline in methods:
            gap = results[better][kind]["mean"] - results[baseline][kind]["mean"]
            lines.append(
                f"{kind}: {better} - {baseline} = {100 * gap:+.1f} points "
                f"({score(better, kind)} vs {score(baseline, kind)})"
            )
    for method, entry in unbiased_relation.items():
        lines.append(
            f"relation label of {method}: {percent(results[method][BIASED])} after biased "
            f"pretraining, {percent(entry)} after unbiased pretraining (no dependency)"
        )
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="run directory (default: runs/interactions-*)")
    parser.add_argument("--quick", action="store_true", help="smoke preset (about a minute)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per model")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument(
        "--representation",
        choices=("factorized", "encoders"),
        default=None,
        help="probe the heads (fused representation for fused methods) or the encoder outputs",
    )
    args = parser.parse_args(argv)
    methods = tuple(args.methods.split(","))
    unknown = [m for m in methods if m not in objectives.METHODS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {list(objectives.METHODS)}")
    config = QUICK if args.quick else INTERACTIONS
    if args.epochs is not None:
        config = replace(config, train={"epochs": args.epochs})
    if args.representation is not None:
        config = replace(config, probe={"representation": args.representation})
    seeds = args.seeds or (1 if args.quick else 3)
    out = make_run_dir(args.out, "interactions")
    print(f"{seeds} seed(s); config: {flatten(config)}")
    start = time.perf_counter()
    accuracies, seconds, unbiased_relation = run(methods, config, seeds)
    wall_seconds = time.perf_counter() - start
    results = summarise(accuracies)
    relation = summarise({"relation": unbiased_relation})["relation"]
    supervised = [m for m in methods if objectives.METHODS[m].supervised]
    rows = [
        {
            "method": row,
            "trained": "-" if row in RAW else "per kind" if row in supervised else "twice/seed",
            **{kind: percent(results[row][kind]) for kind in KINDS},
            "s / model": float(np.mean(seconds[row])) if row in seconds else None,
        }
        for row in results
    ]
    print(format_table(rows, ["method", "trained", *KINDS, "s / model"]))
    print("linear-probe balanced test accuracy (%), mean ± std over seeds")
    print(
        "self-supervised methods are trained twice per seed (no label): on the unbiased split, "
        f"probed on {list(LABEL_KINDS)}, and on the biased split, probed on {BIASED!r}; "
        "supervised ones are trained per seed and label kind on the unbiased split"
    )
    spread = {kind: chance_spread(config, kind, seeds) for kind in KINDS}
    lines = findings(results, relation, methods, spread)
    print("\n".join(lines))
    print(f"wall time {wall_seconds:.0f} s")
    payload = {
        "config": to_dict(config),
        "seeds": seeds,
        "methods": list(methods),
        "label_kinds": list(KINDS),
        "relation_bins": RELATION_BINS,
        "metric": "balanced accuracy of a prior-corrected linear probe",
        "trained_per_split": [m for m in methods if m not in supervised],
        "trained_per_label_kind": supervised,
        "results": results,
        "relation_after_unbiased_pretraining": relation,
        "chance_spread": spread,
        "winners": {
            kind: max(methods, key=lambda m, kind=kind: results[m][kind]["mean"]) for kind in KINDS
        },
        "findings": lines,
        "train_seconds": {m: float(np.mean(v)) for m, v in seconds.items()},
        "wall_seconds": wall_seconds,
    }
    write_json(out / "results.json", payload)
    plot(results, out / "interactions.png")
    print(f"wrote {out / 'results.json'} and {out / 'interactions.png'}")
    return payload


if __name__ == "__main__":
    main()
