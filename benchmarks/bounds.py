"""Forward+backward cost of InfoNCE / NCE-CLUB on concat-critic scores, four ways.

For x, y of 128 features and batch n, the critic MLP([x; y]) (two hidden layers of width H)
scores all n*n pairs, a bound is taken, and gradients flow to the critic and to x and y (as
they would to the encoders). Implementations, all in one run:

  dense      factorcl_jax two-tower critic (u = A x, v = B y once; head on relu(u_i + v_j))
  blocked    the same, pairwise head in row blocks under lax.map + jax.checkpoint
  naive_jax  the reference's kind: tile [n, n, dx + dy] inputs, run the MLP on every pair
  naive_torch  the same tiled critic in PyTorch on CPU (when torch is installed)

Reported per row: median seconds of one compiled forward+backward, compile seconds, achieved
GFLOP/s (the FLOPs each implementation executes, forward + backward, divided by time; the
tiled critic executes more for the same result), and peak bytes (XLA's buffer plan for
JAX; resident-set growth of a fresh process for torch). The matmul peak is measured in the same run.

Usage: python benchmarks/bounds.py [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from factorcl_jax import bounds, critics
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.runs.rundir import make_run_dir

from common import compiled_cost, matmul_peak_gflops, median_seconds, torch_available

FEATURES = 128
BOUNDS = {"infonce": bounds.infonce, "nce_club": bounds.nce_club}


def naive_tiled_scores(params, x, y):
    """The reference's concat critic: materialise every pair [x_i; y_j], then the MLP.

    Each layer is applied to the rank-3 ``[n, m, features]`` tile, as ``flax.linen.Dense``
    (and the reference's ``torch.nn.Linear``) would be. Flattening the tile to
    ``[n * m, features]`` by hand makes this baseline faster on CPU; the two-tower critic
    flattens its pairs the same way (:meth:`critics.ConcatCritic.pair`).
    """
    p = params["params"]
    n, m = x.shape[0], y.shape[0]
    tiles = jnp.concatenate(
        [
            jnp.broadcast_to(x[:, None, :], (n, m, x.shape[1])),
            jnp.broadcast_to(y[None, :, :], (n, m, y.shape[1])),
        ],
        axis=-1,
    )
    kernel = jnp.concatenate([p["x_projection"]["kernel"], p["y_projection"]["kernel"]])
    hidden = jax.nn.relu(tiles @ kernel + p["y_projection"]["bias"])
    layers = p["head"]
    for k in range(len(layers)):
        hidden = hidden @ layers[f"dense_{k}"]["kernel"] + layers[f"dense_{k}"]["bias"]
        if k < len(layers) - 1:
            hidden = jax.nn.relu(hidden)
    return hidden[..., 0]


def jax_case(bound, n, hidden, impl, block_size):
    critic = critics.ConcatCritic(hidden=(hidden, hidden))
    kx, ky, kp = jax.random.split(jax.random.key(n * hidden), 3)
    x = jax.random.normal(kx, (n, FEATURES))
    y = jax.random.normal(ky, (n, FEATURES))
    params = critic.init(kp, x[:2], y[:2])
    bound_fn = BOUNDS[bound]
    if impl == "naive_jax":
        scores = lambda params, x, y: naive_tiled_scores(params, x, y)
    else:
        block = block_size if impl == "blocked" else None
        scores = lambda params, x, y: critics.pairwise_scores(
            critic, params, x, y, block_size=block
        )
    step = jax.value_and_grad(lambda p, x, y: bound_fn(scores(p, x, y)), argnums=(0, 1, 2))
    return step, (params, x, y)


def executed_flops(impl, n, hidden):
    """Multiply-add FLOPs each implementation executes for forward + backward (~3x forward).

    The tiled critic runs the first layer on all n*n pairs; the two-tower critic runs it on
    n rows and n columns only; the blocked path also recomputes the pairwise head's forward
    during the backward pass.
    """
    pairwise_head = n * n * (2 * hidden * hidden + 2 * hidden)
    if impl.startswith("naive"):
        return 3 * (n * n * 2 * 2 * FEATURES * hidden + pairwise_head)
    towers = 2 * 2 * n * FEATURES * hidden
    return 3 * (towers + pairwise_head) + (pairwise_head if impl == "blocked" else 0)


def run_jax(bound, n, hidden, impl, block_size, repeats):
    step, args = jax_case(bound, n, hidden, impl, block_size)
    compiled, compile_seconds, peak = compiled_cost(step, *args)
    seconds = median_seconds(lambda: jax.block_until_ready(compiled(*args)), repeats)
    return {
        "bound": bound,
        "n": n,
        "hidden": hidden,
        "impl": impl,
        "seconds": seconds,
        "compile_seconds": compile_seconds,
        "gflops_per_s": executed_flops(impl, n, hidden) / seconds / 1e9,
        "peak_bytes": peak,
    }


TORCH_WORKER = r"""
import json, sys, time, statistics, resource, torch
spec = json.loads(sys.argv[1])
torch.manual_seed(0)
n, h, d = spec["n"], spec["hidden"], spec["features"]
mlp = torch.nn.Sequential(torch.nn.Linear(2 * d, h), torch.nn.ReLU(), torch.nn.Linear(h, h),
                          torch.nn.ReLU(), torch.nn.Linear(h, 1))
x = torch.randn(n, d, requires_grad=True)
y = torch.randn(n, d, requires_grad=True)
def statm():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
def step():
    tiles = torch.cat([x.unsqueeze(1).expand(n, n, d), y.unsqueeze(0).expand(n, n, d)], -1)
    scores = mlp(tiles).squeeze(-1)
    positives = scores.diagonal()
    if spec["bound"] == "infonce":
        value = torch.log(torch.tensor(float(n))) + (positives - scores.logsumexp(1)).mean()
    else:
        value = positives.mean() - scores.mean()
    mlp.zero_grad(); x.grad = None; y.grad = None
    value.backward()
baseline = statm()
step(); step()
times = []
for _ in range(spec["repeats"]):
    start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": statistics.median(times), "peak_bytes": peak - baseline}))
"""


def run_torch(bound, n, hidden, repeats):
    spec = {"bound": bound, "n": n, "hidden": hidden, "features": FEATURES, "repeats": repeats}
    result = subprocess.run(
        [sys.executable, "-c", TORCH_WORKER, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "bound": bound,
        "n": n,
        "hidden": hidden,
        "impl": "naive_torch",
        "seconds": measured["seconds"],
        "compile_seconds": 0.0,
        "gflops_per_s": executed_flops("naive", n, hidden) / measured["seconds"] / 1e9,
        "peak_bytes": measured["peak_bytes"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: runs/...)")
    parser.add_argument("--quick", action="store_true", help="small smoke preset (~1 min)")
    parser.add_argument("--block-size", type=int, default=64, help="rows per block (blocked)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case")
    args = parser.parse_args(argv)
    out = make_run_dir(args.out, "bench-bounds")
    repeats = args.repeats or (2 if args.quick else 5)
    grid = (
        [(64, 128), (256, 128)]
        if args.quick
        else [(64, 128), (256, 128), (1024, 128), (64, 512), (256, 512)]
    )
    large_n = 512 if args.quick else 4096
    use_torch = torch_available()

    peak_gflops = matmul_peak_gflops(1024 if args.quick else 2048)
    print(f"matmul peak: {peak_gflops:.1f} GFLOP/s (float32, jitted, this machine)")
    rows = []
    for bound in BOUNDS:
        for n, hidden in grid:
            for impl in ("dense", "blocked", "naive_jax"):
                rows.append(run_jax(bound, n, hidden, impl, args.block_size, repeats))
            if use_torch:
                rows.append(run_torch(bound, n, hidden, repeats))
            print(
                format_table(
                    rows[-(3 + use_torch) :],
                    ["bound", "n", "hidden", "impl", "seconds", "gflops_per_s"],
                )
            )
        rows.append(
            run_jax(bound, large_n, 128, "blocked", args.block_size, 1 if args.quick else 2)
        )

    dense_step, dense_args = jax_case("infonce", large_n, 128, "dense", None)
    _, _, dense_planned_peak = compiled_cost(dense_step, *dense_args)
    for row in rows:
        row["peak_gib"] = row["peak_bytes"] / 2**30
    columns = [
        "bound",
        "n",
        "hidden",
        "impl",
        "seconds",
        "compile_seconds",
        "gflops_per_s",
        "peak_gib",
    ]
    print()
    print(format_table(rows, columns))
    speedups = {}
    for bound in BOUNDS:
        for n, hidden in grid:
            by_impl = {
                r["impl"]: r["seconds"]
                for r in rows
                if (r["bound"], r["n"], r["hidden"]) == (bound, n, hidden)
            }
            speedups[f"{bound}/n={n}/H={hidden}"] = {
                f"dense_vs_{impl}": by_impl[impl] / by_impl["dense"]
                for impl in ("naive_jax", "naive_torch")
                if impl in by_impl
            }
    print("\nspeed-up of the dense two-tower path (naive seconds / dense seconds):")
    for key, value in speedups.items():
        print(f"  {key}: " + ", ".join(f"{k} {v:.2f}x" for k, v in value.items()))
    print(
        f"\ndense path at n={large_n}, H=128 would plan {dense_planned_peak / 2**30:.2f} GiB "
        f"(hidden activations alone: {2 * large_n**2 * 128 * 4 / 2**30:.1f} GiB for two "
        f"layers); blocked used the peak above."
    )
    for row in rows:
        row.pop("peak_gib")
    path = write_json(
        out / "results.json",
        {
            "rows": rows,
            "matmul_peak_gflops": peak_gflops,
            "speedups": speedups,
            "dense_planned_peak_bytes_at_large_n": dense_planned_peak,
            "large_n": large_n,
            "block_size": args.block_size,
            "features": FEATURES,
            "repeats": repeats,
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "torch": use_torch,
            "numpy": np.__version__,
            "jax": jax.__version__,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
