"""Matplotlib figures of a run: training curves, bound terms, probe accuracy, MI estimates.

matplotlib is an optional dependency (``pip install "factorcl-jax[plot]"``); every function
raises :class:`PlottingUnavailable` with that instruction when it is missing.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "PlottingUnavailable",
    "plot_mi_history",
    "plot_probe_accuracy",
    "plot_terms",
    "plot_training_curves",
]


class PlottingUnavailable(ImportError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlottingUnavailable(
            'plots need matplotlib: pip install "factorcl-jax[plot]"'
        ) from None
    return plt


def _smooth(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with ``alpha = 2 / (span + 1)``."""
    alpha = 2.0 / (span + 1.0)
    out = np.empty_like(values, dtype=np.float64)
    running = values[0]
    for index, value in enumerate(values):
        running = alpha * value + (1 - alpha) * running
        out[index] = running
    return out


def plot_training_curves(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    path: str | pathlib.Path,
    *,
    span: int = 20,
) -> pathlib.Path:
    """Loss against step for every method (EMA-smoothed), one line each."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for method, history in histories.items():
        if history:
            steps = np.array([h["step"] for h in history])
            axis.plot(steps, _smooth(np.array([h["loss"] for h in history]), span), label=method)
    axis.set(xlabel="step", ylabel="loss (negative objective, nats)", title="Training loss")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pathlib.Path(path)


def plot_terms(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    path: str | pathlib.Path,
    *,
    span: int = 20,
) -> pathlib.Path:
    """Every bound term of every method against step, one panel per method."""
    plt = _pyplot()
    methods = [m for m, h in histories.items() if h]
    figure, axes = plt.subplots(
        1, max(len(methods), 1), figsize=(5 * max(len(methods), 1), 4), squeeze=False
    )
    for axis, method in zip(axes[0], methods, strict=False):
        history = histories[method]
        steps = np.array([h["step"] for h in history])
        for key in history[0]:
            if key.startswith("term/"):
                values = np.array([h[key] for h in history])
                axis.plot(steps, _smooth(values, span), label=key.removeprefix("term/"))
        axis.set(xlabel="step", ylabel="nats", title=method)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pathlib.Path(path)


def plot_probe_accuracy(
    accuracies: Mapping[str, float],
    path: str | pathlib.Path,
    *,
    title: str = "Linear-probe test accuracy",
) -> pathlib.Path:
    """Bar chart of ``{method: accuracy}``."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1.6 * len(accuracies) + 2, 4))
    names = list(accuracies)
    values = [accuracies[name] for name in names]
    bars = axis.bar(names, values, color="tab:blue")
    axis.bar_label(bars, labels=[f"{v:.3f}" for v in values])
    low = min(values)
    axis.set(ylim=(max(0.0, low - 0.1), 1.0), ylabel="accuracy", title=title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pathlib.Path(path)


def plot_mi_history(
    history: np.ndarray, path: str | pathlib.Path, *, bound: str, estimate: float, span: int = 50
) -> pathlib.Path:
    """An MI estimator's per-step estimate (raw and EMA-smoothed) and its final value."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(history) + 1)
    axis.plot(steps, history, alpha=0.3, label=f"{bound} (per batch)")
    axis.plot(steps, _smooth(np.asarray(history), span), label=f"{bound} (EMA {span})")
    axis.axhline(estimate, color="k", linestyle="--", label=f"final estimate {estimate:.3f}")
    axis.set(xlabel="step", ylabel="nats", title="MI estimate during critic training")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pathlib.Path(path)
