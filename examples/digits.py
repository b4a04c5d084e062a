"""FactorCL vs SimCLR/SupCon/CoMM/InfMasking on a real dataset that works offline: two-view digits.

Each digit image is cut into a top and a bottom strip (overlapping in two rows) with
independent pixel noise (``factorcl_jax.data.two_view_digits``): part of what identifies the
digit is shared by both views, part is only in one. For every method and seed the script
trains MLP encoders on the training split, freezes them and reports the test accuracy of a
linear probe (logistic regression) on the concatenated representations — the paper's protocol
(for CoMM and InfMasking, the fused representation of both views).
Probes on the raw pixels of each view and of both views are shown for reference.

What it shows (default preset, 3 seeds, 2 shared CPU cores; test accuracy %, mean ± std):
SimCLR 91.5 ± 0.8, FactorCL-SSL 94.3 ± 1.2, SupCon 97.0 ± 0.3, FactorCL-SUP 95.9 ± 0.8; raw
pixels of the top strip 84.2, of the bottom strip 86.1, of both 92.8 ± 1.6. Each view alone
misses information the other holds. SimCLR, which keeps what the views share, ends below the
raw pixels of both views; FactorCL-SSL is ahead of it on every seed (by 0.2 to 4.9 points).
With labels, SupCon is best here (it pulls same-digit samples together directly, so it keeps
what the label needs) and FactorCL-SUP is about a point behind. With 450 test images and
3 seeds, one-point differences are within noise; no method was tuned (same networks,
optimizer and epochs for all). FactorCL's six critics make it about 6 times slower to train.

FactorCL's successors, which probe one fused representation of both views (64-d, CoMM and
InfMasking of ``factorcl_jax.models.fusion``): CoMM 94.6 ± 0.6, InfMasking 93.0 ± 0.9. Without
labels CoMM is level with FactorCL-SSL (0.3 points apart, within noise) and ahead of SimCLR;
InfMasking's masked views do not help here (1.6 points below CoMM on average) and it trains
about 2.9 times slower than CoMM (measured side by side). The rows were run with
``--methods CoMM,InfMasking``; the raw-pixel rows of that run equal those above.

Usage: python examples/digits.py [--out DIR] [--quick] [--seeds N] [--epochs E] [--methods A,B]
           [--representation factorized|encoders]

Writes ``DIR/results.json`` ``{method: {"mean", "std", "seeds", "seconds"}}`` (accuracies in
``[0, 1]``, ``seconds`` per seed: training, embedding and probing), ``DIR/settings.json`` and
``DIR/digits.png``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from factorcl_jax import evaluation
from factorcl_jax.config import PRESETS, RunConfig, flatten, replace, to_dict
from factorcl_jax.data.two_view_digits import load_two_view_digits
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.runs.rundir import make_run_dir
from factorcl_jax.training.builder import build_trainer

METHODS = ("SimCLR", "FactorCL-SSL", "CoMM", "InfMasking", "SupCon", "FactorCL-SUP")
RAW = {"raw pixels x1": ("x1",), "raw pixels x2": ("x2",), "raw pixels [x1; x2]": ("x1", "x2")}


DIGITS = replace(
    PRESETS["cpu"],
    model={
        "encoder_hidden": 256,
        "head_hidden": 256,
        "critic_hidden": 256,
        "normalize_heads": False,
    },
    train={"epochs": 60, "batch_size": 128, "learning_rate": 1e-3, "lr_schedule": "constant"},
    augment={"scale": 0.1, "rate": 0.2},
)
"""The example's configuration: the ``cpu`` preset with wider networks, 60 epochs of Adam at a
constant 1e-3, unnormalised heads and milder augmentations (noise 0.1, masking 0.2)."""

QUICK = replace(
    DIGITS,
    model={"encoder_hidden": 64, "head_hidden": 64, "embed_dim": 32, "critic_hidden": 64},
    train={"epochs": 4},
)
"""``--quick``: :data:`DIGITS` with small networks for 4 epochs."""


def run(methods: tuple[str, ...], config: RunConfig, seeds: int) -> dict[str, dict]:
    """``{row: {"mean", "std", "seeds", "seconds"}}`` over ``seeds`` seeds."""
    trainers = {  # built once: every seed reuses the compiled steps
        method: build_trainer(config, method, num_classes=10) for method in methods
    }
    accuracies: dict[str, list[float]] = {name: [] for name in (*methods, *RAW)}
    seconds: dict[str, list[float]] = {name: [] for name in accuracies}
    for seed in range(seeds):
        data = load_two_view_digits(seed=seed)
        seeded = replace(config, train={"seed": seed})
        for name in accuracies:
            start = time.perf_counter()
            if name in RAW:
                accuracy = evaluation.raw_input_accuracy(
                    data.train, data.test, keys=RAW[name], num_classes=data.num_classes
                )
            else:
                result = evaluation.fit_and_probe(
                    trainers[name],
                    data.train,
                    data.test,
                    seeded,
                    num_classes=data.num_classes,
                    progress=False,
                )
                accuracy = result.accuracies[config.probe.representation]
            accuracies[name].append(accuracy)
            seconds[name].append(time.perf_counter() - start)
            print(f"seed {seed}  {name:<20} accuracy {accuracy:.4f}  ({seconds[name][-1]:.1f} s)")
    return {
        name: {
            "mean": float(np.mean(values)),
            "std": float(np.std(values)),
            "seeds": values,
            "seconds": float(np.mean(seconds[name])),
        }
        for name, values in accuracies.items()
    }


def plot(results: dict[str, dict], path) -> None:
    """Bar chart of mean test accuracy with one-standard-deviation error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    figure, axis = plt.subplots(figsize=(8, 3.5))
    axis.bar(
        names,
        [100 * results[n]["mean"] for n in names],
        yerr=[100 * results[n]["std"] for n in names],
        color=["tab:gray" if n in RAW else "tab:blue" for n in names],
        capsize=4,
    )
    low = min(100 * (r["mean"] - r["std"]) for r in results.values())
    axis.set_ylim(max(0.0, low - 5), 100)
    axis.set_ylabel("linear-probe test accuracy (%)")
    axis.set_title("Two-view digits (top/bottom strips): mean ± std over seeds")
    axis.tick_params(axis="x", labelrotation=25)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="run directory (default: runs/digits-*)")
    parser.add_argument("--quick", action="store_true", help="smoke preset (about a minute)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per method")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument(
        "--representation",
        choices=("factorized", "encoders"),
        default=None,
        help="probe the concatenated heads (the paper's, default) or the encoder outputs",
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else DIGITS
    if args.epochs is not None:
        config = replace(config, train={"epochs": args.epochs})
    if args.representation is not None:
        config = replace(config, probe={"representation": args.representation})
    seeds = args.seeds or (1 if args.quick else 3)
    methods = tuple(args.methods.split(","))
    out = make_run_dir(args.out, "digits")
    print(f"{seeds} seed(s); config: {flatten(config)}")
    results = run(methods, config, seeds)
    rows = [
        {
            "method": name,
            "accuracy (%)": f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}",
            "s / seed": r["seconds"],
        }
        for name, r in results.items()
    ]
    print(format_table(rows, ["method", "accuracy (%)", "s / seed"]))
    write_json(out / "results.json", results)
    write_json(
        out / "settings.json", {"config": to_dict(config), "seeds": seeds, "methods": list(methods)}
    )
    plot(results, out / "digits.png")
    print(f"wrote {out / 'results.json'} and {out / 'digits.png'}")
    return results


if __name__ == "__main__":
    main()
