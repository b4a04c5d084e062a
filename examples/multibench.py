"""The paper's MultiBench table: every method, linear probe on frozen representations.

For one dataset (``--task``) the script trains every row of the paper's table (SimCLR,
Cross+Self, Cross+Self+Fact, OurCL-SSL, FactorCL-SSL, SupCon, OurCL-SUP, FactorCL-SUP) and
FactorCL's successors CoMM and InfMasking on the training split, freezes the encoders and
heads, fits a logistic-regression probe on the concatenated head outputs (the fused
representation for CoMM and InfMasking) of the training split and reports its test accuracy,
next to the published number (FactorCL's paper for its rows; CoMM's and InfMasking's papers,
self-supervised linear probe, for theirs).

Data (``factorcl_jax.data.multibench``, as ``.npz``: convert each pickle once with
``factorcl-jax convert-multibench IN.pkl OUT.npz --trust-pickle``): the MultiBench affect data
for ``mosi``, ``mosei``, ``humor`` (UR-FUNNY) and ``sarcasm`` (MUStARD), two of
vision/audio/text (default
vision,text as in the reference MOSI run), or a MIMIC file for ``mimic`` (static + time
series). Encoders: Transformers sized like MultiBench's (``d -> 2 d``: MOSI vision
``20 -> 40``, text ``300 -> 600``; ``--encoder gru`` for GRUs); MIMIC uses MultiBench's MLP
``5 -> 10 -> 10`` and GRU ``12 -> 30``. CoMM and InfMasking put the same encoders under a
``fusion.FusionModel`` (4 tokens per modality of width ``embed_dim``, one Transformer block)
with the cosine critic at temperature 0.1. SSL methods augment each modality
(``augment.default_augmentation``) and, on the time-aligned affect files, then drop the same
time steps in both (``augment.aligned_time_mask``, the paper's multimodal augmentation for
aligned data). The default preset is the paper's protocol (batch 32,
100 epochs, Adam 1e-4): on 2 CPU cores one MOSI step takes about 2 CPU-seconds, so a row
takes hours — use a GPU. ``--quick`` is a smoke preset (tiny models, one epoch; about 20
CPU-seconds per row, nearly all of it compilation).

Usage: python examples/multibench.py --data PATH --task mosi|mosei|humor|sarcasm|mimic
           [--modalities vision,text] [--quick] [--out DIR] [--methods A,B] [--seeds N]
           [--epochs E] [--encoder transformer|gru] [--label-scheme binary] [--nonfinite zero]
           [--mimic-task 7]

Writes ``DIR/results.json``: the settings and one row per method with the test accuracy (%,
mean and std over seeds, and per seed), the paper's accuracy (%) and seconds per seed.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from factorcl_jax import evaluation, models
from factorcl_jax.config import PRESETS, RunConfig, flatten, replace, to_dict
from factorcl_jax.data import multibench
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.models import augment
from factorcl_jax.models.encoders import GRUEncoder
from factorcl_jax.runs.rundir import make_run_dir
from factorcl_jax.training.builder import build_trainer, config_encoder

TASKS = ("mosi", "mosei", "humor", "sarcasm", "mimic")
PAPER_COLUMNS = {
    "mimic": "MIMIC",
    "mosei": "MOSEI",
    "mosi": "MOSI",
    "humor": "UR-FUNNY",
    "sarcasm": "MUStARD",
}
PAPER = {  # Liang et al. 2023, MultiBench table: linear-probe accuracy (%)
    "SimCLR": (66.67, 71.03, 46.21, 50.09, 53.48),
    "Cross+Self": (65.20, 71.04, 46.92, 56.52, 53.91),
    "Cross+Self+Fact": (65.49, 71.07, 52.37, 59.91, 53.91),
    "OurCL-SSL": (65.22, 71.16, 48.98, 58.79, 53.98),
    "FactorCL-SSL": (67.34, 74.88, 52.91, 60.50, 55.80),
    "SupCon": (67.37, 72.71, 47.23, 50.98, 52.75),
    "OurCL-SUP": (68.16, 71.15, 65.32, 58.32, 65.05),
    "FactorCL-SUP": (76.79, 77.34, 70.69, 63.52, 69.86),
}
"""Rows of the paper's table; columns in the order of :data:`PAPER_COLUMNS`."""

SUCCESSORS = {  # self-supervised linear probe (%), as each paper reports it; None: not reported
    "CoMM": (66.4, None, 67.5, 63.1, 63.9),  # Dufumier et al., ICLR 2025
    "InfMasking": (68.1, None, 69.0, 64.3, 66.8),  # Wen et al., NeurIPS 2025
}
"""FactorCL's successors, in the columns of :data:`PAPER_COLUMNS`."""


MULTIBENCH = replace(
    PRESETS["paper"],
    model={"encoder": "transformer", "encoder_layers": 5, "encoder_heads": 5, "max_length": 50},
    train={"epochs": 100, "batch_size": 32},
)
"""The reference MOSI protocol: the ``paper`` preset's heads (``128`` wide, hidden 512),
critics (512) and Adam at a constant 1e-4, with Transformer encoders of 5 layers and 5 heads
over at most 50 time steps, batch 32, 100 epochs. A sequence encoder's width is twice its
modality's input width, rounded up to a multiple of the heads (:func:`sequence_encoder`)."""

QUICK = replace(
    MULTIBENCH,
    model={
        "encoder_layers": 1,
        "encoder_heads": 2,
        "encoder_hidden": 16,
        "head_hidden": 32,
        "embed_dim": 16,
        "critic_hidden": 32,
    },
    train={"epochs": 1, "batch_size": 16},
)
"""``--quick``: tiny networks (sequence encoders of width ``encoder_hidden`` = 16), one epoch."""


def paper_accuracy(method: str, task: str) -> float | None:
    """The published linear-probe accuracy (%) of ``method`` on ``task`` (``None``: none)."""
    return (PAPER | SUCCESSORS)[method][list(PAPER_COLUMNS).index(task)]


def sequence_encoder(input_dim: int, config: RunConfig, *, quick: bool):
    """A Transformer or GRU (``model.encoder``) for one modality of width ``input_dim``: its
    width is ``model.encoder_hidden`` with ``quick``, else ``2 * input_dim`` rounded up to a
    multiple of ``model.encoder_heads`` (MultiBench's ``20 -> 40``, ``300 -> 600``)."""
    heads = config.model.encoder_heads
    width = config.model.encoder_hidden if quick else heads * math.ceil(2 * input_dim / heads)
    return config_encoder(replace(config, model={"encoder_hidden": width}))


def make_encoders(data: multibench.MultimodalDataset, config: RunConfig, *, quick: bool) -> tuple:
    """One encoder per modality: MultiBench's MLP + GRU for MIMIC, else sequence encoders."""
    if data.modalities == ("static", "timeseries"):
        return models.MLPEncoder(hidden_dim=10, output_dim=10, num_layers=1), GRUEncoder(30)
    return tuple(sequence_encoder(dim, config, quick=quick) for dim in data.input_dims)


def joint_augmentation(data: multibench.MultimodalDataset):
    """The paper's multimodal augmentation for time-aligned data: one time mask for both
    modalities (:func:`augment.aligned_time_mask`) when both are sequences of the same length
    (the aligned affect files); ``None`` otherwise (MIMIC's static vector + time series)."""
    x1, x2 = data.train["x1"], data.train["x2"]
    aligned = x1.ndim == x2.ndim == 3 and x1.shape[1] == x2.shape[1]
    return augment.aligned_time_mask if aligned else None


def make_trainer(method: str, encoders: tuple, data: multibench.MultimodalDataset, config):
    """The trainer of ``method`` with the given per-modality encoders; SSL methods augment
    each modality by its kind (:func:`augment.default_augmentation`) and then, on aligned
    data, both together."""
    return build_trainer(
        config,
        method,
        num_classes=data.num_classes,
        encoders=encoders,
        augmentations=(augment.default_augmentation,) * 2,
        joint_augmentation=joint_augmentation(data),
    )


def load(args: argparse.Namespace, config: RunConfig) -> multibench.MultimodalDataset:
    if args.task == "mimic":
        return multibench.load_mimic(
            args.data, mimic_task=args.mimic_task, nonfinite=args.nonfinite
        )
    return multibench.load_affect(
        args.data,
        args.task,
        modalities=tuple(args.modalities.split(",")),
        max_length=config.model.max_length,
        label_scheme=args.label_scheme,
        nonfinite=args.nonfinite,
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", required=True, help="MultiBench .npz (factorcl-jax convert-multibench)"
    )
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--modalities", default=None, help="two of vision,audio,text")
    parser.add_argument("--quick", action="store_true", help="smoke preset: tiny models, 1 epoch")
    parser.add_argument("--out", default=None, help="run directory (default: runs/multibench-*)")
    parser.add_argument(
        "--methods", default=",".join(PAPER | SUCCESSORS), help="comma-separated rows"
    )
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--encoder", choices=("transformer", "gru"), default=None)
    parser.add_argument("--label-scheme", choices=tuple(multibench.LABEL_SCHEMES), default="binary")
    parser.add_argument("--nonfinite", choices=("raise", "zero"), default="raise")
    parser.add_argument("--mimic-task", type=int, default=7, help="im.pk only: -1 or 0..19")
    args = parser.parse_args(argv)
    if args.task == "mimic" and args.modalities is not None:
        parser.error("--modalities does not apply to mimic (static + timeseries)")
    args.modalities = args.modalities or "vision,text"
    unknown = set(args.methods.split(",")) - set(PAPER | SUCCESSORS)
    if unknown:
        parser.error(
            f"--methods: unknown {sorted(unknown)}; choose from {list(PAPER | SUCCESSORS)}"
        )
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    config = QUICK if args.quick else MULTIBENCH
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size}
    config = replace(config, train={k: v for k, v in overrides.items() if v is not None})
    if args.encoder is not None:
        config = replace(config, model={"encoder": args.encoder})
    seeds = args.seeds or 1
    out = make_run_dir(args.out, f"multibench-{args.task}")
    data = load(args, config)
    encoders = make_encoders(data, config, quick=args.quick)
    column = PAPER_COLUMNS[args.task]
    print(
        f"{column}: modalities {data.modalities}, dims {data.input_dims}, classes "
        f"{data.num_classes}, samples train/valid/test "
        f"{len(data.train['y'])}/{len(data.validation['y'])}/{len(data.test['y'])}; "
        f"{seeds} seed(s); config: {flatten(config)}"
    )
    rows = []
    for method in args.methods.split(","):
        trainer = make_trainer(method, encoders, data, config)
        accuracies, seconds = [], []
        for seed in range(seeds):
            start = time.perf_counter()
            result = evaluation.fit_and_probe(
                trainer,
                data.train,
                data.test,
                replace(config, train={"seed": seed}),
                representations=("factorized",),
                num_classes=data.num_classes,
                progress=False,
            )
            accuracies.append(100 * result.accuracies["factorized"])
            seconds.append(time.perf_counter() - start)
        rows.append(
            {
                "method": method,
                "accuracy": float(np.mean(accuracies)),
                "std": float(np.std(accuracies)),
                "seeds": accuracies,
                "paper": paper_accuracy(method, args.task),
                "seconds": float(np.mean(seconds)),
            }
        )
        print(f"{method:<16} {rows[-1]['accuracy']:6.2f}%  ({rows[-1]['seconds']:.1f} s / seed)")
    table = [
        {
            "model": row["method"],
            f"{column} (ours)": f"{row['accuracy']:.2f} ± {row['std']:.2f}",
            f"{column} (paper)": None if row["paper"] is None else f"{row['paper']:.2f}",
            "s / seed": row["seconds"],
        }
        for row in rows
    ]
    print(format_table(table, list(table[0])))
    results = {
        "task": args.task,
        "paper_column": column,
        "data": str(args.data),
        "modalities": list(data.modalities),
        "num_classes": data.num_classes,
        "unit": "%",
        "config": to_dict(config),
        "seeds": seeds,
        "rows": rows,
    }
    write_json(out / "results.json", results)
    print(f"wrote {out / 'results.json'}")
    return results


if __name__ == "__main__":
    main()
