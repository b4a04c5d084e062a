"""One FactorCL training step at the paper's sizes: factorcl_jax against a PyTorch baseline.

Model (the paper's synthetic setting): two encoders ``100 -> 512 -> 512 -> 512 -> 128``,
four heads ``128 -> 512 -> 128`` (``S1, S2, U1, U2``), one concat critic ``MLP([x; y])``
with two hidden layers of 512 per term, Adam. One step is the paper's two-optimizer update:
the main parameters maximise the FactorCL objective with the CLUB critics held fixed, then the
CLUB critics take one InfoNCE step on the (fixed) embeddings. FactorCL-SSL also encodes an
augmented view of each modality (Gaussian noise or feature masking, one per sample).

Implementations, in one run:

  factorcl_jax           ``train.default_trainer(...).jit_step``: two-tower critics (the first
                         layer ``A x + B y`` runs once per row and per column), SUP's
                         ``I(Z; Y)`` critics scored per class, one jitted step
  torch_reference_style  written here from the paper's equations in PyTorch (CPU), the kind of
                         the reference code: concat critics on a tiled ``[n, n, dx + dy]`` pair
                         tensor, the same terms (taken from ``objectives.METHODS``), two Adam
                         optimizers; run in a subprocess so both get the machine to themselves

Reported per row: median (and minimum) seconds of one step after compilation and a warm-up
step, compile seconds (JAX), the matmul GFLOP the implementation executes per step (forward
and backward, counted layer by layer in :func:`step_flops`; for JAX also XLA's own count of
the compiled step, which adds the elementwise work) and the achieved GFLOP/s. The float32
matmul peak of this machine (jitted ``[2048, 2048] @ [2048, 2048]``) and the load average
(other processes share the CPU) are recorded in the same run.

Usage: python benchmarks/train_step.py [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np

from factorcl_jax import augment, objectives, train
from factorcl_jax.data.synthetic import make_synthetic
from factorcl_jax.reporting import format_table, make_run_dir, write_json

from common import matmul_peak_gflops, torch_available

VARIANTS = ("FactorCL-SSL", "FactorCL-SUP")
IMPLS = ("factorcl_jax", "torch_reference_style")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Widths of the model; the defaults are the paper's synthetic experiment."""

    input_dim: int = 100
    encoder_hidden: int = 512
    encoder_layers: int = 3
    embed_dim: int = 128
    critic_hidden: int = 512
    num_classes: int = 2
    learning_rate: float = 1e-4


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
    n: int,
    m: int,
    dx: int,
    dy: int,
    hidden: int,
    *,
    tiled: bool,
    weight_grad: bool,
    input_grad: bool,
) -> int:
    """One concat critic ``MLP([x; y])`` on all ``n * m`` pairs of ``n`` rows, ``m`` columns.

    Tiled: every layer runs on ``n * m`` rows. Two towers: the first layer runs as ``A x`` on
    ``n`` rows and ``B y`` on ``m`` columns, the rest on ``n * m`` pairs.
    """
    rest = dense_flops(
        n * m, [hidden, hidden, 1], weight_grad=weight_grad, input_grad=weight_grad or input_grad
    )
    if tiled:
        first = dense_flops(
            n * m, [dx + dy, hidden], weight_grad=weight_grad, input_grad=input_grad
        )
    else:
        first = dense_flops(n, [dx, hidden], weight_grad=weight_grad, input_grad=input_grad)
        first += dense_flops(m, [dy, hidden], weight_grad=weight_grad, input_grad=input_grad)
    return first + rest


def term_widths(method: objectives.Method, term: objectives.Term, sizes: Sizes) -> tuple[int, int]:
    """Input widths ``(dx, dy)`` of a term's critic."""
    target = sizes.num_classes if method.supervised else sizes.embed_dim
    dx = sizes.embed_dim + (target if term.conditioned else 0)
    dy = (target if term.right == objectives.TARGET else sizes.embed_dim) + (
        target if term.conditioned else 0
    )
    return dx, dy


def step_flops(variant: str, n: int, sizes: Sizes, impl: str) -> int:
    """Matmul FLOPs one implementation executes for one step (both updates, fwd + bwd).

    The main update runs every term forward and backward (CLUB critics: input gradients
    only); the CLUB update then needs the CLUB critics' weight gradients. ``torch_reference_style``
    tiles the pairs and runs the CLUB critics' forward again in the CLUB update;
    ``factorcl_jax`` evaluates the first layer per row and per column, scores SUP's
    ``I(Z; Y)`` terms against the ``C`` classes instead of the ``n`` one-hot columns
    (:meth:`train.Trainer.label_scores`), and XLA reuses the main update's CLUB forward (same
    parameters, same inputs) in the CLUB update.
    """
    if impl not in IMPLS:
        raise ValueError(f"`impl` must be one of {IMPLS}, got {impl!r}")
    tiled = impl == "torch_reference_style"
    method = objectives.get_method(variant)
    views = 1 if method.supervised else 2
    encoder = [sizes.input_dim, *[sizes.encoder_hidden] * sizes.encoder_layers, sizes.embed_dim]
    head = [sizes.embed_dim, sizes.encoder_hidden, sizes.embed_dim]
    total = views * 2 * dense_flops(n, encoder, weight_grad=True, input_grad=False)
    total += (
        views
        * len(method.representations)
        * dense_flops(n, head, weight_grad=True, input_grad=True)
    )
    for term in method.terms:
        label_columns = method.supervised and term.right == objectives.TARGET and not tiled
        columns = sizes.num_classes if label_columns else n
        critic = functools.partial(
            critic_flops,
            n,
            columns,
            *term_widths(method, term, sizes),
            sizes.critic_hidden,
            tiled=tiled,
        )
        if term.bound != "nce_club":
            total += critic(weight_grad=True, input_grad=True)
            continue
        total += critic(weight_grad=False, input_grad=True)
        total += critic(weight_grad=True, input_grad=False)
        if not tiled:
            total -= critic(weight_grad=False, input_grad=False)
    return total


# --------------------------------------------------------------------------- factorcl_jax


def example_batch(n: int, sizes: Sizes) -> dict[str, np.ndarray]:
    data = make_synthetic(n, input_dim=sizes.input_dim, seed=0)
    return {"x1": data.x1, "x2": data.x2, "y": data.y}


def run_jax(variant: str, n: int, sizes: Sizes, repeats: int) -> dict:
    trainer = train.default_trainer(
        variant,
        num_classes=sizes.num_classes,
        encoder_hidden=sizes.encoder_hidden,
        encoder_layers=sizes.encoder_layers,
        embed_dim=sizes.embed_dim,
        critic_hidden=sizes.critic_hidden,
        learning_rate=sizes.learning_rate,
        augmentations=(augment.default_augmentation,) * 2,
    )
    batch = jax.device_put(example_batch(n, sizes))
    state = trainer.init(jax.random.key(0), batch)
    start = time.perf_counter()
    compiled = trainer.jit_step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
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


# --------------------------------------------------------------------------- torch baseline

TORCH_WORKER = r"""
import json, math, statistics, sys, time
import torch

spec = json.load(sys.stdin)
torch.manual_seed(0)
n, s = spec["batch"], spec["sizes"]
supervised = spec["supervised"]
E, C = s["embed_dim"], s["critic_hidden"]


def mlp(*widths):
    layers = []
    for d_in, d_out in zip(widths[:-1], widths[1:]):
        layers += [torch.nn.Linear(d_in, d_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


class TiledConcatCritic(torch.nn.Module):
    # f(x_i, y_j) = MLP([x_i; y_j]) on the [n, n, dx + dy] tile of every pair.
    def __init__(self, dx, dy):
        super().__init__()
        self.mlp = mlp(dx + dy, C, C, 1)

    def forward(self, x, y):
        rows, cols = x.shape[0], y.shape[0]
        pairs = torch.cat(
            [x[:, None, :].expand(rows, cols, -1), y[None, :, :].expand(rows, cols, -1)], -1
        )
        return self.mlp(pairs)[..., 0]


def infonce(scores):
    return math.log(scores.shape[1]) + (scores.diagonal() - scores.logsumexp(1)).mean()


def nce_club(scores):
    return scores.diagonal().mean() - scores.mean()


def augment(x):
    # One of Gaussian noise (0.1) or feature masking (rate 0.2) per sample.
    noisy = x + 0.1 * torch.randn_like(x)
    masked = x * (torch.rand_like(x) >= 0.2)
    use_noise = torch.rand(x.shape[0], 1) < 0.5
    return torch.where(use_noise, noisy, masked)


encoder = [s["input_dim"], *[s["encoder_hidden"]] * s["encoder_layers"], E]
encoders = torch.nn.ModuleList([mlp(*encoder) for _ in range(2)])
heads = torch.nn.ModuleDict(
    {name: mlp(E, s["encoder_hidden"], E) for name in spec["representations"]}
)
terms = spec["terms"]
critics = torch.nn.ModuleDict({t["key"]: TiledConcatCritic(t["dx"], t["dy"]) for t in terms})
club = [t for t in terms if t["bound"] == "nce_club"]
club_params = [p for t in club for p in critics[t["key"]].parameters()]
main_params = [
    *encoders.parameters(),
    *heads.parameters(),
    *(p for t in terms if t["bound"] != "nce_club" for p in critics[t["key"]].parameters()),
]
optimizer = torch.optim.Adam(main_params, lr=s["learning_rate"])
club_optimizer = torch.optim.Adam(club_params, lr=s["learning_rate"])


def represent(x1, x2):
    encoded = [encoders[0](x1), encoders[1](x2)]
    return {name: heads[name](encoded[m]) for name, m in spec["representations"].items()}


def step(x1, x2, y):
    reps = represent(x1, x2)
    if supervised:
        onehot = torch.nn.functional.one_hot(y, s["num_classes"]).float()
        target = {name: onehot for name in reps}
    else:
        target = represent(augment(x1), augment(x2))
    for p in club_params:
        p.requires_grad_(False)
    objective, club_inputs = 0.0, {}
    for t in terms:
        left = reps[t["left"]]
        right = target[t["left"]] if t["right"] == "target" else reps[t["right"]]
        if t["conditioned"]:
            left = torch.cat([left, target[t["left"]]], -1)
            right = torch.cat([right, target[t["right"]]], -1)
        scores = critics[t["key"]](left, right)
        bound = infonce if t["bound"] == "infonce" else nce_club
        objective = objective + t["weight"] * bound(scores)
        if t["bound"] == "nce_club":
            club_inputs[t["key"]] = (left.detach(), right.detach())
    optimizer.zero_grad()
    (-objective).backward()
    optimizer.step()
    for p in club_params:
        p.requires_grad_(True)
    club_loss = -sum(infonce(critics[k](*inputs)) for k, inputs in club_inputs.items())
    club_optimizer.zero_grad()
    club_loss.backward()
    club_optimizer.step()


x1, x2 = (torch.tensor(spec[k]) for k in ("x1", "x2"))
y = torch.tensor(spec["y"])
step(x1, x2, y)
times = []
for _ in range(spec["repeats"]):
    start = time.perf_counter()
    step(x1, x2, y)
    times.append(time.perf_counter() - start)
a = torch.randn(2048, 2048)
matmul = []
for _ in range(spec["repeats"] + 1):
    start = time.perf_counter()
    a @ a
    matmul.append(time.perf_counter() - start)
print(json.dumps({
    "step_seconds": statistics.median(times),
    "min_step_seconds": min(times),
    "matmul_gflops": 2 * 2048**3 / statistics.median(matmul[1:]) / 1e9,
    "threads": torch.get_num_threads(),
}))
"""


def torch_spec(variant: str, n: int, sizes: Sizes, repeats: int) -> dict:
    """What the worker needs: sizes, the method's terms with critic widths, and the batch."""
    method = objectives.get_method(variant)
    terms = []
    for term in method.terms:
        dx, dy = term_widths(method, term, sizes)
        terms.append({**term._asdict(), "key": term.name.replace("/", "_"), "dx": dx, "dy": dy})
    batch = example_batch(n, sizes)
    return {
        "batch": n,
        "sizes": dataclasses.asdict(sizes),
        "supervised": method.supervised,
        "representations": dict(method.representations),
        "terms": terms,
        "repeats": repeats,
        **{k: v.tolist() for k, v in batch.items()},
    }


def run_torch(variant: str, n: int, sizes: Sizes, repeats: int) -> dict:
    spec = torch_spec(variant, n, sizes, repeats)
    result = subprocess.run(
        [sys.executable, "-c", TORCH_WORKER],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"torch worker failed for {variant}, batch {n}:\n{result.stderr}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return {"compile_seconds": None, **measured}


# --------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: runs/...)")
    parser.add_argument("--quick", action="store_true", help="small smoke preset (~1 min)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per case")
    args = parser.parse_args(argv)
    out = make_run_dir(args.out, "bench-train-step")
    repeats = args.repeats or (2 if args.quick else 5)
    batches = (32,) if args.quick else (64, 128)
    sizes = Sizes()
    use_torch = torch_available()
    if not use_torch:
        print("torch is not installed: only factorcl_jax is timed")

    peak = matmul_peak_gflops(1024 if args.quick else 2048)
    print(f"matmul peak: {peak:.1f} GFLOP/s (float32, jitted, this machine)")
    rows = []
    for variant in VARIANTS:
        for n in batches:
            runs = {"factorcl_jax": run_jax(variant, n, sizes, repeats)}
            if use_torch:
                runs["torch_reference_style"] = run_torch(variant, n, sizes, repeats)
            for impl, measured in runs.items():
                flops = step_flops(variant, n, sizes, impl)
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
    for variant in VARIANTS:
        for n in batches:
            seconds = {
                r["impl"]: r["step_seconds"]
                for r in rows
                if r["variant"] == variant and r["batch"] == n
            }
            if len(seconds) == len(IMPLS):
                speedups[f"{variant}/batch={n}"] = (
                    seconds["torch_reference_style"] / seconds["factorcl_jax"]
                )
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
            "sizes": dataclasses.asdict(sizes),
            "repeats": repeats,
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "jax": jax.__version__,
            "torch": use_torch,
            "load_average": os.getloadavg(),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
