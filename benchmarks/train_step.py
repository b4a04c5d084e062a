"""One FactorCL training step at the paper's sizes: factorcl_jax against PyTorch.

Model (the paper's synthetic setting): two encoders ``100 -> 512 -> 512 -> 512 -> 128``,
projection heads, one concat critic ``MLP([x; y])`` with two hidden layers of 512 per term,
Adam. One step is the paper's two-optimizer update: the main parameters maximise the FactorCL
objective with the CLUB critics held fixed, then the CLUB critics take one InfoNCE step.
FactorCL-SSL also encodes an augmented view of each modality.

Implementations, in one run (each PyTorch one in a subprocess of its own, on the CPU):

  factorcl_jax          ``build_trainer(CONFIG, ...).jit_step`` (the ``paper`` preset):
                        two-tower critics (the first layer ``A x + B y`` runs once per row
                        and per column), SUP's ``I(Z; Y)`` critics scored per class, one
                        jitted step
  torch_faithful        ``torch_reference_step.py``: the work the authors' PyTorch code does per
                        step (its layout of heads, critics, optimizers and augmentation; see
                        that file), written from the paper and from reading that code
  torch_reference_code  with ``--reference-repo DIR``: the authors' own code from a checkout
                        of github.com/pliang279/FactorCL, run on the CPU (nothing of it ships
                        here); shows how close ``torch_faithful`` is to it

Reported per row: median (and minimum) seconds of one step after a warm-up step, compile
seconds (JAX), the matmul GFLOP the implementation executes per step (forward and backward,
counted layer by layer: :func:`jax_step_flops`, :func:`faithful_step_flops`; for JAX also
XLA's own count of the compiled step, which adds the elementwise work) and the achieved
GFLOP/s. The float32 matmul peak of this machine (jitted ``[2048, 2048] @ [2048, 2048]``) and
the load average (other processes share the CPU) are recorded in the same run.

Usage: python benchmarks/train_step.py [--out DIR] [--quick] [--reference-repo DIR]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import pathlib
import subprocess
import sys
import time

import jax
import numpy as np

from factorcl_jax import objectives
from factorcl_jax.config import PRESETS, RunConfig, to_dict
from factorcl_jax.data.synthetic import make_synthetic
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.models import augment
from factorcl_jax.runs.rundir import make_run_dir
from factorcl_jax.training.builder import build_trainer

from common import matmul_peak_gflops, torch_available, xla_cost

VARIANTS = ("FactorCL-SSL", "FactorCL-SUP")
POOL_BATCHES = 4
"""The PyTorch workers draw each step's batch from ``POOL_BATCHES * batch`` rows."""


CONFIG = PRESETS["paper"]
"""The benchmarked model: the paper's synthetic setting (``factorcl-jax presets paper``)."""
NUM_CLASSES = 2
"""Label classes of the synthetic data."""


# --------------------------------------------------------------------------- FLOP count


def dense_flops(rows: int, widths: list[int], *, weight_grad: bool, input_grad: bool) -> int:
    """Matmul FLOPs of an MLP with layer widths ``widths`` applied to ``rows`` rows.

    Forward ``2 * rows * d_in * d_out`` per layer; the backward adds the same for the weight
    gradient (when the weights train) and for the input gradient (for every layer above the
    first when anything below needs a gradient, and for the first when its input does).
    """
    total = 0
    for index, (d_in, d_out) in enumerate(itertools.pairwise(widths)):
        needs_input_grad = input_grad if index == 0 else (input_grad or weight_grad)
        total += 2 * rows * d_in * d_out * (1 + weight_grad + needs_input_grad)
    return total


def critic_flops(
    n: int, m: int, dx: int, dy: int, hidden: int, *, weight_grad: bool, input_grad: bool
) -> int:
    """One two-tower concat critic ``MLP([x; y])`` on all ``n * m`` pairs.

    The first layer runs as ``A x`` on the ``n`` rows and ``B y`` on the ``m`` columns, the
    rest of the MLP on the ``n * m`` pairs.
    """
    first = dense_flops(n, [dx, hidden], weight_grad=weight_grad, input_grad=input_grad)
    first += dense_flops(m, [dy, hidden], weight_grad=weight_grad, input_grad=input_grad)
    rest = dense_flops(
        n * m, [hidden, hidden, 1], weight_grad=weight_grad, input_grad=weight_grad or input_grad
    )
    return first + rest


def term_widths(
    method: objectives.Method, term: objectives.Term, config: RunConfig
) -> tuple[int, int]:
    """Input widths ``(dx, dy)`` of a term's critic in factorcl_jax."""
    target = NUM_CLASSES if method.supervised else config.model.embed_dim
    dx = config.model.embed_dim + (target if term.conditioned else 0)
    dy = (target if term.right == objectives.TARGET else config.model.embed_dim) + (
        target if term.conditioned else 0
    )
    return dx, dy


def encoder_widths(config: RunConfig) -> list[int]:
    return [
        config.data.input_dim,
        *[config.model.encoder_hidden] * config.model.encoder_layers,
        config.model.embed_dim,
    ]


def jax_step_flops(variant: str, n: int, config: RunConfig) -> int:
    """Matmul FLOPs of one factorcl_jax step (both updates, forward and backward).

    The main update runs every term forward and backward (CLUB critics: input gradients
    only); the CLUB update then needs the CLUB critics' weight gradients, and XLA reuses the
    main update's CLUB forward (same parameters, same inputs). SUP's ``I(Z; Y)`` terms score
    the ``C`` classes instead of the ``n`` one-hot columns
    (:func:`factorcl_jax.training.scoring.label_scores`).
    """
    method = objectives.get_method(variant)
    views = 1 if method.supervised else 2
    head = [config.model.embed_dim, config.model.head_hidden, config.model.embed_dim]
    total = views * 2 * dense_flops(n, encoder_widths(config), weight_grad=True, input_grad=False)
    total += (
        views
        * len(method.representations)
        * dense_flops(n, head, weight_grad=True, input_grad=True)
    )
    for term in method.terms:
        label_columns = method.supervised and term.right == objectives.TARGET
        columns = NUM_CLASSES if label_columns else n
        critic = functools.partial(
            critic_flops, n, columns, *term_widths(method, term, config), config.model.critic_hidden
        )
        if term.bound != "nce_club":
            total += critic(weight_grad=True, input_grad=True)
        else:  # main: input gradients; CLUB update: weight gradients, forward shared
            total += critic(weight_grad=False, input_grad=True)
            total += critic(weight_grad=True, input_grad=False)
            total -= critic(weight_grad=False, input_grad=False)
    return total


def faithful_critic_widths(supervised: bool, config: RunConfig) -> dict[str, tuple[int, int]]:
    """Input widths ``(dx, dy)`` of the reference layout's six critics.

    SUP reads the label as one float column in ``I(Z; Y)`` and conditions the rows on the
    one-hot label; SSL conditions both sides on an embedding of the same width.
    """
    e, c = config.model.embed_dim, NUM_CLASSES
    conditioned = (e + c, e) if supervised else (2 * e, 2 * e)
    target = 1 if supervised else e
    return {
        "shared": (e, e),
        "shared_club_given_target": conditioned,
        "unique1_target": (e, target),
        "unique2_target": (e, target),
        "unique_given_target": conditioned,
        "unique_club": (e, e),
    }


FAITHFUL_CLUB = ("shared_club_given_target", "unique_club")
FAITHFUL_HEAD_CALLS = {  # supervised: (head evaluations in the main update, in the CLUB update)
    False: (16, 6),
    True: (10, 4),
}


def faithful_step_flops(variant: str, n: int, config: RunConfig) -> int:
    """Matmul FLOPs of one ``torch_faithful`` (and reference-code) step.

    Every critic is a tiled ``MLP([x; y])`` run on the ``n * n`` pair tile and again on the
    ``n`` positives, forward and backward with weight and input gradients (the CLUB critics
    are not frozen in the main backward); heads ``E -> E -> E -> E`` are evaluated per use
    (:data:`FAITHFUL_HEAD_CALLS`); the CLUB update re-encodes a new batch with autograd on.
    """
    supervised = objectives.get_method(variant).supervised
    widths = faithful_critic_widths(supervised, config)
    encoder = functools.partial(
        dense_flops, n, encoder_widths(config), weight_grad=True, input_grad=False
    )
    head = functools.partial(
        dense_flops, n, [config.model.embed_dim] * 4, weight_grad=True, input_grad=True
    )

    def critic(name: str) -> int:
        layers = [sum(widths[name]), config.model.critic_hidden, config.model.critic_hidden, 1]
        return sum(
            dense_flops(rows, layers, weight_grad=True, input_grad=True) for rows in (n, n * n)
        )

    main_heads, club_heads = FAITHFUL_HEAD_CALLS[supervised]
    views = 1 if supervised else 2
    total = 2 * views * encoder() + main_heads * head() + sum(map(critic, widths))
    total += 2 * encoder() + club_heads * head() + sum(map(critic, FAITHFUL_CLUB))
    return total


# --------------------------------------------------------------------------- factorcl_jax


def example_batch(n: int, config: RunConfig) -> dict[str, np.ndarray]:
    data = make_synthetic(n, input_dim=config.data.input_dim, seed=0)
    return {"x1": data.x1, "x2": data.x2, "y": data.y}


def run_jax(variant: str, n: int, config: RunConfig, repeats: int) -> dict:
    trainer = build_trainer(config, variant, augmentations=(augment.default_augmentation,) * 2)
    batch = jax.device_put(example_batch(n, config))
    state = trainer.init(jax.random.key(0), batch)
    start = time.perf_counter()
    compiled = trainer.jit_step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    cost = xla_cost(compiled)
    times = []
    for index in range(repeats + 1):  # the first call is a warm-up
        start = time.perf_counter()
        state, measured = compiled(state, batch)
        jax.block_until_ready((state, measured))
        if index:
            times.append(time.perf_counter() - start)
    return {
        "compile_seconds": compile_seconds,
        "step_seconds": float(np.median(times)),
        "min_step_seconds": float(np.min(times)),
        "xla_gflop": cost["flops"] / 1e9,
    }


# --------------------------------------------------------------------------- torch baselines

WORKER = pathlib.Path(__file__).with_name("torch_reference_step.py")


def torch_spec(variant: str, n: int, config: RunConfig, repeats: int, impl: str, repo: str | None):
    """What the worker needs: sizes, the variant, and a pool of rows to draw batches from."""
    method = objectives.get_method(variant)
    pool = example_batch(POOL_BATCHES * n, config)
    return {
        "impl": "reference_code" if impl == "torch_reference_code" else "faithful",
        "reference_repo": repo,
        "batch": n,
        "sizes": {
            "input_dim": config.data.input_dim,
            **{
                name: getattr(config.model, name)
                for name in ("encoder_hidden", "encoder_layers", "embed_dim", "critic_hidden")
            },
            "num_classes": NUM_CLASSES,
            "learning_rate": config.train.learning_rate,
        },
        "supervised": method.supervised,
        "repeats": repeats,
        **{k: v.tolist() for k, v in pool.items()},
    }


def run_torch(
    variant: str, n: int, config: RunConfig, repeats: int, impl: str, repo: str | None = None
) -> dict:
    spec = torch_spec(variant, n, config, repeats, impl, repo)
    result = subprocess.run(
        [sys.executable, str(WORKER)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{impl} failed for {variant}, batch {n}:\n{result.stderr}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return {"compile_seconds": None, **measured}


# --------------------------------------------------------------------------- main


FLOPS = {
    "factorcl_jax": jax_step_flops,
    "torch_faithful": faithful_step_flops,
    "torch_reference_code": faithful_step_flops,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: runs/...)")
    parser.add_argument("--quick", action="store_true", help="small smoke preset (~1 min)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per case")
    parser.add_argument(
        "--reference-repo",
        default=None,
        help="a checkout of github.com/pliang279/FactorCL: also time the authors' own code",
    )
    args = parser.parse_args(argv)
    if (
        args.reference_repo
        and not (pathlib.Path(args.reference_repo) / "synthetic_model.py").is_file()
    ):
        parser.error(f"--reference-repo {args.reference_repo} has no synthetic_model.py")
    out = make_run_dir(args.out, "bench-train-step")
    repeats = args.repeats or (2 if args.quick else 5)
    batches = (32,) if args.quick else (64, 128)
    config = CONFIG
    torch_impls = []
    if torch_available():
        torch_impls = ["torch_faithful"] + (["torch_reference_code"] if args.reference_repo else [])
    else:
        print("torch is not installed: only factorcl_jax is timed")

    peak = matmul_peak_gflops(1024 if args.quick else 2048)
    print(f"matmul peak: {peak:.1f} GFLOP/s (float32, jitted, this machine)")
    rows = []
    for variant in VARIANTS:
        for n in batches:
            runs = {"factorcl_jax": run_jax(variant, n, config, repeats)}
            for impl in torch_impls:
                runs[impl] = run_torch(variant, n, config, repeats, impl, args.reference_repo)
            for impl, measured in runs.items():
                flops = FLOPS[impl](variant, n, config)
                rows.append(
                    {
                        "variant": variant,
                        "batch": n,
                        "impl": impl,
                        **measured,
                        "gflop": flops / 1e9,
                        "gflops_per_s": flops / measured["step_seconds"] / 1e9,
                        "fraction_of_peak": flops / measured["step_seconds"] / 1e9 / peak,
                    }
                )
            print(format_table(rows[-len(runs) :], ["variant", "batch", "impl", "step_seconds"]))

    speedups = {}
    for row in rows:
        if row["impl"] == "factorcl_jax":
            continue
        (jax_row,) = (
            r
            for r in rows
            if r["impl"] == "factorcl_jax"
            and (r["variant"], r["batch"]) == (row["variant"], row["batch"])
        )
        key = f"{row['variant']}/batch={row['batch']}/vs_{row['impl']}"
        speedups[key] = row["step_seconds"] / jax_row["step_seconds"]
    columns = [
        "variant",
        "batch",
        "impl",
        "step_seconds",
        "min_step_seconds",
        "compile_seconds",
        "gflop",
        "xla_gflop",
        "gflops_per_s",
        "fraction_of_peak",
    ]
    print()
    print(format_table(rows, columns))
    print("\nspeed-up of factorcl_jax (torch seconds / jax seconds):")
    for key, value in speedups.items():
        print(f"  {key}: {value:.2f}x")
    path = write_json(
        out / "results.json",
        {
            "rows": rows,
            "speedups": speedups,
            "matmul_peak_gflops": peak,
            "config": to_dict(config),
            "repeats": repeats,
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "jax": jax.__version__,
            "torch_impls": torch_impls,
            "load_average": os.getloadavg(),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
