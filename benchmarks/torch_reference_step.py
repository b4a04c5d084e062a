"""Worker of ``train_step.py``: one FactorCL step in PyTorch, timed in its own process.

Reads a JSON spec on stdin and prints one JSON line of timings. Two implementations:

``faithful`` (default)
    Written here from the paper and from reading the structure of the authors' PyTorch code
    (pliang279/FactorCL, ``synthetic_model.py`` / ``critic_objectives.py``), so that it does the
    work that code does per step, on the CPU:

    * encoders ``d -> 512 -> 512 -> 512 -> 128`` (one per modality);
    * one projection head per term and side (ten for FactorCL), each ``128 -> 128 -> 128 ->
      128`` with ReLU; a head applied twice in a term is evaluated twice;
    * concat critics ``MLP([x; y])`` with two hidden layers of 512 on the ``[n, n, dx + dy]``
      tile built with ``repeat``, plus one more evaluation on the ``n`` positive pairs;
      InfoNCE ``mean(f(x_i, y_i)) - mean_i logsumexp_j f(x_j, y_i) + log n`` and the CLUB value
      ``mean(f(x_i, y_i)) - mean_ij f(x_j, y_i)``;
    * SUP: ``I(Z; Y)`` critics read the label as one float column; conditioning concatenates the
      one-hot label to the rows only;
    * SSL: one augmentation per sample (half swap, small noise, drop 10% of features or
      identity), chosen and applied in a Python loop over the batch, as the reference does;
    * one Adam per parameter group (11 for the main step, 2 for the CLUB critics); the main
      backward also reaches the CLUB critics (they are not frozen, their gradients are zeroed
      before their own update); the CLUB update draws a *new* batch and re-runs encoders and
      heads with autograd on.

``reference_code``
    Imports the authors' own modules from a checkout (``spec["reference_repo"]``) and runs their
    ``FactorCLSSL`` / ``FactorCLSUP`` step as their ``train_sup_model`` does, with CUDA calls
    turned into no-ops so it runs on the CPU. Their code is read from the user's checkout at run
    time; none of it is part of this repository.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import sys
import time

import numpy as np
import torch

HEADS_PER_TERM = 2


def mlp(*widths: int) -> torch.nn.Sequential:
    """Linear layers of ``widths`` with ReLU between them (none after the last)."""
    layers: list[torch.nn.Module] = []
    for d_in, d_out in itertools.pairwise(widths):
        layers += [torch.nn.Linear(d_in, d_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


class TiledCritic(torch.nn.Module):
    """``f(x, y) = MLP([x; y])`` scored on the positives and on the repeated pair tile."""

    def __init__(self, dx: int, dy: int, hidden: int) -> None:
        super().__init__()
        self.mlp = mlp(dx + dy, hidden, hidden, 1)

    def scores(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positives [n, 1], tile [n, n, 1])`` with ``tile[i, j] = f(x_j, y_i)``."""
        n = y.shape[0]
        positives = self.mlp(torch.cat([x, y], dim=-1))
        x_tile = x.unsqueeze(0).repeat(n, 1, 1)
        y_tile = y.unsqueeze(1).repeat(1, n, 1)
        return positives, self.mlp(torch.cat([x_tile, y_tile], dim=-1))

    def infonce(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        positives, tile = self.scores(x, y)
        return positives.mean() - (tile.logsumexp(dim=1).mean() - math.log(y.shape[0]))

    def club(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        positives, tile = self.scores(x, y)
        return positives.mean() - tile.mean()


def augment_per_sample(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One augmentation per row, drawn and applied row by row (the reference's loop)."""

    def swap(row):
        middle = row.shape[0] // 2
        return torch.cat([row[middle:], row[:middle]])

    def noise(row):
        return row + 0.01 * torch.randn(row.shape)

    def drop(row):
        dropped = row.clone()
        dropped[rng.choice(row.shape[0], row.shape[0] // 10, replace=False)] = 0.0
        return dropped

    transforms = (swap, noise, drop, lambda row: row)
    augmented = x.clone()
    for i in range(x.shape[0]):
        augmented[i] = transforms[rng.integers(len(transforms))](augmented[i])
    return augmented


class Faithful(torch.nn.Module):
    """FactorCL-SSL / -SUP laid out as the reference lays it out (see the module docstring)."""

    def __init__(self, spec: dict, rng: np.random.Generator) -> None:
        super().__init__()
        s = spec["sizes"]
        self.rng = rng
        self.supervised = spec["supervised"]
        self.num_classes = s["num_classes"]
        embed, hidden = s["embed_dim"], s["critic_hidden"]
        encoder = (s["input_dim"], *[s["encoder_hidden"]] * s["encoder_layers"], embed)
        self.encoders = torch.nn.ModuleList([mlp(*encoder) for _ in range(2)])
        head = lambda: mlp(embed, embed, embed, embed)
        pair = lambda: torch.nn.ModuleList([head() for _ in range(HEADS_PER_TERM)])
        self.heads = torch.nn.ModuleDict(
            {
                "shared": pair(),
                "shared_club_given_target": pair(),
                "unique1_target": head(),
                "unique2_target": head(),
                "unique_given_target": pair(),
                "unique_club": pair(),
            }
        )
        classes = self.num_classes
        target = 1 if self.supervised else embed  # SUP: the label as one float column
        conditioned = (embed + classes, embed) if self.supervised else (2 * embed, 2 * embed)
        self.critics = torch.nn.ModuleDict(
            {
                "shared": TiledCritic(embed, embed, hidden),
                "shared_club_given_target": TiledCritic(*conditioned, hidden),
                "unique1_target": TiledCritic(embed, target, hidden),
                "unique2_target": TiledCritic(embed, target, hidden),
                "unique_given_target": TiledCritic(*conditioned, hidden),
                "unique_club": TiledCritic(embed, embed, hidden),
            }
        )
        club = ("shared_club_given_target", "unique_club")
        groups = [self.encoders.parameters()]
        groups += [self.critics[k].parameters() for k in self.critics if k not in club]
        groups += [self.heads[k].parameters() for k in self.heads]
        self.optimizers = [torch.optim.Adam(p, lr=s["learning_rate"]) for p in groups]
        self.club_optimizers = [
            torch.optim.Adam(self.critics[k].parameters(), lr=s["learning_rate"]) for k in club
        ]

    def onehot(self, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(y, self.num_classes).float()

    def objective(self, x1, x2, y) -> torch.Tensor:
        """The sum the reference minimises: ``-InfoNCE`` terms plus CLUB terms."""
        h, c = self.heads, self.critics
        e1, e2 = self.encoders[0](x1), self.encoders[1](x2)
        loss = -c["shared"].infonce(h["shared"][0](e1), h["shared"][1](e2))
        loss = loss + c["unique_club"].club(h["unique_club"][0](e1), h["unique_club"][1](e2))
        if self.supervised:
            label, onehot = y[:, None].float(), self.onehot(y)
            loss = loss - c["unique1_target"].infonce(h["unique1_target"](e1), label)
            loss = loss - c["unique2_target"].infonce(h["unique2_target"](e2), label)
            given = h["unique_given_target"]
            loss = loss - c["unique_given_target"].infonce(
                torch.cat([given[0](e1), onehot], 1), given[1](e2)
            )
            club = h["shared_club_given_target"]
            return loss + c["shared_club_given_target"].club(
                torch.cat([club[0](e1), onehot], 1), club[1](e2)
            )
        a1 = self.encoders[0](augment_per_sample(x1, self.rng))
        a2 = self.encoders[1](augment_per_sample(x2, self.rng))
        self_1, self_2 = h["unique1_target"], h["unique2_target"]
        loss = loss - c["unique1_target"].infonce(self_1(e1), self_1(a1))
        loss = loss - c["unique2_target"].infonce(self_2(e2), self_2(a2))
        given = h["unique_given_target"]
        loss = loss - c["unique_given_target"].infonce(
            torch.cat([given[0](e1), given[0](a1)], 1), torch.cat([given[1](e2), given[1](a2)], 1)
        )
        club = h["shared_club_given_target"]
        return loss + c["shared_club_given_target"].club(
            torch.cat([club[0](e1), club[0](e1)], 1), torch.cat([club[1](e2), club[1](e2)], 1)
        )

    def club_objective(self, x1, x2, y) -> torch.Tensor:
        """Minus the CLUB critics' InfoNCE on a batch, re-encoded with autograd on."""
        h, c = self.heads, self.critics
        e1, e2 = self.encoders[0](x1), self.encoders[1](x2)
        value = c["unique_club"].infonce(h["unique_club"][0](e1), h["unique_club"][1](e2))
        club = h["shared_club_given_target"]
        if self.supervised:
            onehot = self.onehot(y)
            left, right = torch.cat([club[0](e1), onehot], 1), club[1](e2)
        else:
            left = torch.cat([club[0](e1), club[0](e1)], 1)
            right = torch.cat([club[1](e2), club[1](e2)], 1)
        return -(value + c["shared_club_given_target"].infonce(left, right))

    def step(self, batch, club_batch) -> None:
        loss = self.objective(*batch)
        for optimizer in self.optimizers:
            optimizer.zero_grad()
        loss.backward()
        for optimizer in self.optimizers:
            optimizer.step()
        club_loss = self.club_objective(*club_batch)
        for optimizer in self.club_optimizers:
            optimizer.zero_grad()
        club_loss.backward()
        for optimizer in self.club_optimizers:
            optimizer.step()


def reference_code_step(spec: dict):
    """The authors' own step (their modules, from ``spec["reference_repo"]``) on the CPU."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    sys.path.insert(0, spec["reference_repo"])
    import synthetic_model  # the user's checkout of pliang279/FactorCL

    s = spec["sizes"]
    if spec["supervised"]:
        model = synthetic_model.FactorCLSUP(
            s["input_dim"], s["input_dim"], s["num_classes"], s["encoder_hidden"], s["embed_dim"]
        )
    else:
        model = synthetic_model.FactorCLSSL(
            s["input_dim"], s["input_dim"], s["encoder_hidden"], s["embed_dim"]
        )
    main_optimizers, club_optimizers = model.get_optims()

    def step(batch, club_batch):
        x1, x2, y = batch
        loss = model(x1, x2, y[:, None].float())
        for optimizer in main_optimizers:
            optimizer.zero_grad()
        loss.backward()
        for optimizer in main_optimizers:
            optimizer.step()
        x1, x2, y = club_batch
        club_loss = model.learning_loss(x1, x2, y[:, None].float())
        for optimizer in club_optimizers:
            optimizer.zero_grad()
        club_loss.backward()
        for optimizer in club_optimizers:
            optimizer.step()

    return step


def main() -> None:
    spec = json.load(sys.stdin)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x1, x2 = (torch.tensor(spec[k], dtype=torch.float32) for k in ("x1", "x2"))
    y = torch.tensor(spec["y"], dtype=torch.int64)
    n = spec["batch"]
    if spec["impl"] == "reference_code":
        step = reference_code_step(spec)
    else:
        step = Faithful(spec, rng).step

    def draw():
        rows = torch.from_numpy(rng.choice(len(y), n, replace=False))
        return x1[rows], x2[rows], y[rows]

    step(draw(), draw())  # warm-up
    times = []
    for _ in range(spec["repeats"]):
        batch, club_batch = draw(), draw()
        start = time.perf_counter()
        step(batch, club_batch)
        times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "step_seconds": statistics.median(times),
                "min_step_seconds": min(times),
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
