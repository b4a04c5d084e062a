"""The paper's synthetic experiment: shared and unique information, FactorCL against baselines.

Liang et al. 2023, "Factorized Contrastive Learning", Sec. 4.1. Two modalities are linear maps
(``100``-d) of Gaussian latent blocks: one shared by both (``12``) and one unique to each
(``1``, ``2``); the binary label reads coordinates of the blocks (see
:mod:`factorcl_jax.data.synthetic`). Each method trains encoders and heads without touching the
test split, then a linear probe (logistic regression) on the frozen representation is scored on
it.

1. **Reference setting**: feature dims = label dims = ``{12: 10, 1: 6, 2: 6}``. Methods
   FactorCL-SUP, FactorCL-SSL, SimCLR and SupCon, plus a probe on the raw concatenated inputs
   ``[x1, x2]`` as a sanity row: the inputs are a linear map of the latents, so that probe is
   already near 1.0 and is no target for the contrastive methods.
2. **Sweep** over the unique share of the label: feature dims ``{12: 16, 1: 8, 2: 8}`` and
   label dims ``{12: s, 1: u, 2: u}`` with ``s + 2u = 16`` from ``s = 16`` (all shared) to
   ``s = 0`` (all unique); the unique share is ``2u / 16``. Methods that keep only what the
   modalities share (SimCLR, SupCon) should fall as it grows; FactorCL should hold.

The probed representation is the concatenated encoder outputs (``"encoders"``, as in the
reference code); the concatenated heads (``"factorized"``, ``[Z_S1, Z_S2, Z_U1, Z_U2]`` for
FactorCL) are probed and reported too.

Configurations (:data:`factorcl_jax.config.PRESETS`, ``factorcl-jax presets``): ``synthetic``
(default: the ``cpu`` preset on the paper's 30000 samples for its 10 epochs), ``quick`` with
``--quick`` (a smoke test) and ``paper`` with ``--paper`` (the paper's sizes and optimiser:
Adam at a constant ``1e-4``, unnormalised heads; use a GPU). The CPU configuration trains a
smaller model for the same 10 epochs, so it takes a larger step (Adam at ``1e-3`` with cosine
decay) and L2-normalises the heads' outputs (``model.normalize_heads``): without that, FactorCL
at ``1e-3`` inflates its embeddings against the CLUB critics held fixed in the main step
(upper-bound terms of ``±1e4``) and the probe accuracy collapses.

Usage: python examples/synthetic.py [--out DIR] [--quick | --paper] [--no-sweep]
Writes DIR/results.json and DIR/sweep.png.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from collections.abc import Mapping, Sequence

from factorcl_jax import evaluation
from factorcl_jax.config import PRESETS, RunConfig, replace, to_dict
from factorcl_jax.data.synthetic import make_synthetic, train_test_split
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.runs.rundir import make_run_dir
from factorcl_jax.training.builder import build_trainer

METHODS = ("FactorCL-SUP", "FactorCL-SSL", "SimCLR", "SupCon")
RAW = "raw inputs"
REFERENCE_DIMS = {"12": 10, "1": 6, "2": 6}
SWEEP_FEATURE_DIMS = {"12": 16, "1": 8, "2": 8}
SWEEP_LABEL_DIMS = 16
TARGETS = {"FactorCL-SUP": 0.98, "FactorCL-SSL": 0.96}


SWEEP_SHARED_DIMS = {"quick": (16, 0), "synthetic": (16, 12, 8, 4, 0), "paper": (16, 12, 8, 4, 0)}
"""Shared label coordinates ``s`` of the sweep's points, per configuration."""


def run_setting(
    feature_dims: Mapping[str, int],
    label_dims: Mapping[str, int],
    config: RunConfig,
    methods: Sequence[str],
    *,
    progress: bool,
) -> dict:
    """Trains and probes every method on one data setting.

    Returns:
      ``{"accuracies": {method or RAW: {representation: accuracy}}, "seconds": {method: s}}``.
    """
    seed = config.train.seed
    data = make_synthetic(config.data.num_samples, feature_dims, label_dims, seed=seed)
    train, test = (split.arrays() for split in train_test_split(data, seed=seed))
    accuracies = {RAW: {"inputs": evaluation.raw_input_accuracy(train, test)}}
    seconds = {}
    for method in methods:
        trainer = build_trainer(
            config, method, steps_per_epoch=len(train["y"]) // config.train.batch_size
        )
        result = evaluation.fit_and_probe(
            trainer,
            train,
            test,
            config,
            representations=evaluation.REPRESENTATIONS,
            progress=progress,
        )
        accuracies[method] = result.accuracies
        seconds[method] = result.wall_seconds
        print(
            f"  {method:<13} encoders {result.accuracies['encoders']:.4f}  factorized "
            f"{result.accuracies['factorized']:.4f}  ({result.wall_seconds:.0f} s)",
            flush=True,
        )
    return {"accuracies": accuracies, "seconds": seconds}


def sweep_label_dims(shared: int) -> dict[str, int]:
    """Label dims with ``shared`` shared coordinates and the rest split between the unique."""
    unique, remainder = divmod(SWEEP_LABEL_DIMS - shared, 2)
    if remainder or not 0 <= shared <= SWEEP_LABEL_DIMS:
        raise ValueError(f"shared label dims must be even in [0, {SWEEP_LABEL_DIMS}], got {shared}")
    return {"12": shared, "1": unique, "2": unique}


def headline(accuracies: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``{method: accuracy}`` of the encoder representation (raw inputs for the sanity row)."""
    return {
        name: values.get("encoders", values.get("inputs")) for name, values in accuracies.items()
    }


def clocks() -> tuple[float, float]:
    """Wall clock and this process's CPU time (all threads), in seconds."""
    return time.perf_counter(), time.process_time()


def elapsed(start: tuple[float, float]) -> dict[str, float]:
    """``{"wall": s, "cpu": s}`` since ``start = clocks()``; CPU time exceeds wall time when
    XLA runs on several cores, and wall time exceeds it when other processes share them."""
    wall, cpu = clocks()
    return {"wall": wall - start[0], "cpu": cpu - start[1]}


def plot_sweep(sweep: Sequence[Mapping], methods: Sequence[str], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = [point["unique_share"] for point in sweep]
    figure, axis = plt.subplots(figsize=(6, 4))
    for name in (*methods, RAW):
        style = {"linestyle": "--", "color": "gray"} if name == RAW else {"marker": "o"}
        axis.plot(shares, [point["accuracy"][name] for point in sweep], label=name, **style)
    axis.set_xlabel("unique share of the label's coordinates, 2u / (s + 2u)")
    axis.set_ylabel("linear-probe test accuracy")
    axis.set_title("Synthetic data: accuracy as unique information grows")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: runs/...)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke preset (~1 minute on CPU)")
    size.add_argument("--paper", action="store_true", help="the paper's sizes (use a GPU)")
    parser.add_argument("--no-sweep", action="store_true", help="only the reference setting")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show training progress bars")
    args = parser.parse_args(argv)
    preset_name = "quick" if args.quick else "paper" if args.paper else "synthetic"
    config = replace(PRESETS[preset_name], train={"seed": args.seed})
    out = make_run_dir(args.out, "synthetic")
    print(f"preset {preset_name} (factorcl-jax presets {preset_name})")

    print(f"\nreference setting, feature dims = label dims = {REFERENCE_DIMS}")
    start = clocks()
    reference = run_setting(
        REFERENCE_DIMS, REFERENCE_DIMS, config, args.methods, progress=args.progress
    )
    reference_seconds = elapsed(start)
    reference_accuracy = headline(reference["accuracies"])
    rows = [
        {"method": name, **reference["accuracies"][name], "target": TARGETS.get(name)}
        for name in (*args.methods, RAW)
    ]
    print(format_table(rows, ["method", "encoders", "factorized", "inputs", "target"]))
    print(
        f"reference setting: {reference_seconds['wall']:.0f} s wall, "
        f"{reference_seconds['cpu']:.0f} s CPU (all threads)"
    )

    sweep = []
    sweep_seconds = {"wall": 0.0, "cpu": 0.0}
    if not args.no_sweep:
        start = clocks()
        for shared in SWEEP_SHARED_DIMS[preset_name]:
            label_dims = sweep_label_dims(shared)
            print(f"\nsweep: feature dims {SWEEP_FEATURE_DIMS}, label dims {label_dims}")
            setting = run_setting(
                SWEEP_FEATURE_DIMS, label_dims, config, args.methods, progress=args.progress
            )
            sweep.append(
                {
                    "label_dims": label_dims,
                    "unique_share": 1 - shared / SWEEP_LABEL_DIMS,
                    "accuracy": headline(setting["accuracies"]),
                    "accuracies": setting["accuracies"],
                    "seconds": setting["seconds"],
                }
            )
        sweep_seconds = elapsed(start)
        print("\nsweep (linear probe on the encoders; raw inputs for reference):")
        print(
            format_table(
                [{"unique_share": p["unique_share"], **p["accuracy"]} for p in sweep],
                ["unique_share", *args.methods, RAW],
            )
        )
        plot_sweep(sweep, args.methods, out / "sweep.png")
        print(f"sweep: {sweep_seconds['wall']:.0f} s wall; plot {out / 'sweep.png'}")

    path = write_json(
        out / "results.json",
        {
            "reference_setting": reference_accuracy,
            "reference_setting_accuracies": reference["accuracies"],
            "reference_setting_seconds": reference["seconds"],
            "sweep": sweep,
            "targets": TARGETS,
            "representation": "encoders",
            "preset": preset_name,
            "config": to_dict(config),
            "seed": args.seed,
            "seconds": {"reference_setting": reference_seconds, "sweep": sweep_seconds},
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
