"""The estimator loop against a roofline: the d = 20 Gaussian staircase, side by side.

The FactorCL paper's staircase setting (x, y in R^20, batch 64, a concat critic with one
hidden layer of 512, Adam 5e-3, 5 levels) runs as one compiled program with

* ``straightforward``: the pair head as plain JAX autodiff sees it (``relu(u_i + v_j)``
  materialised as a ``[64 * 64, 512]`` array, a GEMV, and the autodiff backward that writes
  a second such array and reads both again): the library's code before the fused head;
* ``fused``: :class:`factorcl_jax.critics.ConcatCritic`, whose one-layer ReLU head is
  ``critics.relu_pair_head`` (nothing ``[b * m, H]`` kept between the passes; the backward
  recomputes one row of masks at a time in a single elementwise pass);
* ``fused, infonce+nce_club``: both estimators from one program (they share InfoNCE
  training, so one critic serves both);
* ``fused, S seeds``: ``S`` seeds in one program (``seeds.over_seeds``: one after
  another on CPU, ``vmap``-ped on accelerators).

For one training step of each critic it reports XLA's cost analysis (FLOPs, bytes accessed),
the number of ``[b * m, H]``-sized arrays in the compiled step, and the roofline time
``max(FLOPs / matmul peak, bytes / copy bandwidth)``, with the peak and bandwidth measured
in the same run. Timings alternate between programs, ``--repeats`` times, medians reported.

Usage: python benchmarks/mi_speed.py [--out DIR] [--quick] [--repeats N] [--seeds S]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax

from factorcl_jax import critics, estimate
from factorcl_jax.data import mi_tasks
from factorcl_jax.estimate import staircase
from factorcl_jax.estimate.seeds import over_seeds
from factorcl_jax.io.atomic import write_json
from factorcl_jax.io.tables import format_table
from factorcl_jax.networks.layers import MLP
from factorcl_jax.runs.rundir import make_run_dir

from common import compiled_cost, copy_bandwidth_gbs, matmul_peak_gflops, timed, xla_cost

DIM, BATCH, HIDDEN, LEARNING_RATE = 20, 64, 512, 5e-3


class StraightforwardConcatCritic(nn.Module):
    """``MLP([x; y])`` with the pair head left to autodiff: ``MLP(relu(pair_sums(u, v)))``.

    The same variables (and values) as :class:`~factorcl_jax.critics.ConcatCritic`.
    """

    hidden: Sequence[int] = (HIDDEN,)

    def setup(self) -> None:
        self.x_projection = nn.Dense(self.hidden[0], use_bias=False)
        self.y_projection = nn.Dense(self.hidden[0])
        self.head = MLP((*self.hidden[1:], 1))

    def embed_x(self, x: jax.Array) -> jax.Array:
        return self.x_projection(x)

    def embed_y(self, y: jax.Array) -> jax.Array:
        return self.y_projection(y)

    def pair(self, u: jax.Array, v: jax.Array) -> jax.Array:
        return self.head(nn.relu(critics.pair_sums(u, v))).reshape(u.shape[0], v.shape[0])

    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        return self.pair(self.embed_x(x), self.embed_y(y))


CRITICS = {
    "straightforward": StraightforwardConcatCritic(),
    "fused": critics.ConcatCritic(hidden=(HIDDEN,)),
}


def step_cost(critic: nn.Module) -> dict[str, float]:
    """XLA's cost analysis of one InfoNCE training step on a ``[64, 20]`` batch, and the
    number of ``[b * m, H]``-sized arrays in its optimised HLO."""
    rule = estimate.get_estimator("infonce")
    optimizer = optax.adam(LEARNING_RATE)
    x = jax.random.normal(jax.random.key(0), (BATCH, DIM))
    state = estimate.init_critic_state(rule, critic, optimizer, jax.random.key(1), x, x)
    step = lambda state, x, y: estimate.critic_step(rule, critic, optimizer, state, x, y)
    compiled, _, _ = compiled_cost(step, state, x, x)
    cost = xla_cost(compiled)
    pair_shapes = (f"f32[{BATCH * BATCH},{HIDDEN}]", f"f32[{BATCH},{BATCH},{HIDDEN}]")
    entry = compiled.as_text().split("ENTRY")[-1]
    pair_sized = sum(
        1
        for line in entry.splitlines()
        if any(f"= {shape}" in line for shape in pair_shapes) and "bitcast(" not in line
    )
    return {
        "flops": float(cost.get("flops", 0.0)),
        "bytes_accessed": float(cost.get("bytes accessed", 0.0)),
        "pair_sized_arrays": pair_sized,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: runs/...)")
    parser.add_argument("--quick", action="store_true", help="300 steps per level (~1 min)")
    parser.add_argument("--steps", type=int, help="steps per level (default 4000)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per program")
    parser.add_argument("--seeds", type=int, default=4, help="seeds of the several-seed program")
    args = parser.parse_args(argv)
    steps = args.steps or (300 if args.quick else 4000)
    levels = (2.0, 4.0, 6.0, 8.0, 10.0)
    tasks = mi_tasks.staircase(DIM, levels)
    total_steps = steps * len(levels)

    peak = matmul_peak_gflops(1024 if args.quick else 2048)
    bandwidth = copy_bandwidth_gbs(64 if args.quick else 256)
    print(f"matmul peak {peak:.1f} GFLOP/s, copy bandwidth {bandwidth:.1f} GB/s\n", flush=True)

    def program(kind: str, names: str | tuple, seeds: int) -> tuple[Callable, Any, float]:
        run = staircase.staircase_program(
            tasks,
            names,
            CRITICS[kind],
            steps_per_level=steps,
            batch_size=BATCH,
            learning_rate=LEARNING_RATE,
        )
        keys = jax.random.split(jax.random.key(0), seeds)
        compiled, seconds, _ = compiled_cost(over_seeds(run), keys)
        return compiled, keys, seconds

    cases = {
        "straightforward, infonce": ("straightforward", "infonce", 1),
        "fused, infonce": ("fused", "infonce", 1),
        "fused, infonce+nce_club": ("fused", ("infonce", "nce_club"), 1),
        f"fused, infonce, {args.seeds} seeds": ("fused", "infonce", args.seeds),
    }
    programs = {name: program(*case) for name, case in cases.items()}
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    histories = {}
    for _ in range(args.repeats):
        for name, (compiled, keys, _) in programs.items():
            history, spent = timed(compiled, keys)
            seconds[name].append(spent)
            histories[name] = np.asarray(history)
    costs = {kind: step_cost(critic) for kind, critic in CRITICS.items()}

    rows = []
    baseline = statistics.median(seconds["straightforward, infonce"])
    for name, (kind, names, seeds) in cases.items():
        run_seconds = statistics.median(seconds[name])
        history = histories[name][0]  # first seed
        infonce = history[0] if not isinstance(names, str) else history
        cost = costs[kind]
        roofline_ms = 1e3 * max(
            cost["flops"] / (peak * 1e9), cost["bytes_accessed"] / (bandwidth * 1e9)
        )
        window = min(500, steps)
        rows.append(
            {
                "program": name,
                "seeds": seeds,
                "estimators": names if isinstance(names, str) else "+".join(names),
                "compile_seconds": programs[name][2],
                "run_seconds": run_seconds,
                "ms_per_step": 1e3 * run_seconds / total_steps,
                "ms_per_seed_step": 1e3 * run_seconds / total_steps / seeds,
                "speedup": baseline / run_seconds * seeds,
                "step_mflops": cost["flops"] / 1e6,
                "step_mbytes": cost["bytes_accessed"] / 1e6,
                "pair_sized_arrays": cost["pair_sized_arrays"],
                "roofline_ms": roofline_ms,
                "infonce_levels": [float(v) for v in infonce[:, -window:].mean(axis=-1)],
                "nce_club_levels": (
                    [float(v) for v in history[1][:, -window:].mean(axis=-1)]
                    if not isinstance(names, str)
                    else None
                ),
                "all_seconds": seconds[name],
            }
        )
    columns = [
        "program",
        "compile_seconds",
        "run_seconds",
        "ms_per_step",
        "ms_per_seed_step",
        "speedup",
        "step_mflops",
        "step_mbytes",
        "pair_sized_arrays",
        "roofline_ms",
    ]
    print(format_table(rows, columns))
    print(
        "\nInfoNCE per level (mean of the last 500 steps, first seed):\n"
        + "\n".join(f"  {row['program']}: {np.round(row['infonce_levels'], 3)}" for row in rows)
    )
    out = make_run_dir(args.out, "bench-mi-speed")
    payload = {
        "rows": rows,
        "matmul_peak_gflops": peak,
        "copy_bandwidth_gbs": bandwidth,
        "steps_per_level": steps,
        "levels": list(levels),
        "true_mi": list(levels),
        "setting": {"dim": DIM, "batch": BATCH, "hidden": HIDDEN, "learning_rate": LEARNING_RATE},
        "backend": jax.default_backend(),
        "jax": jax.__version__,
    }
    write_json(out / "results.json", payload)
    print(f"\nwrote {out / 'results.json'}")
    return payload


if __name__ == "__main__":
    main()
