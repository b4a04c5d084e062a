"""Matplotlib figures of a run: training curves, bound terms, probe accuracy, MI estimates.

matplotlib is an optional dependency (``pip install "factorcl-jax[plot]"``); every function
raises :class:`PlottingUnavailable` with that instruction when it is missing.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "PlottingUnavailable",
    "StaircasePanel",
    "ema",
    "plot_error_heatmap",
    "plot_mi_history",
    "plot_pmi_profile",
    "plot_probe_accuracy",
    "plot_staircase",
    "plot_terms",
    "plot_training_curves",
    "pyplot",
]


class PlottingUnavailable(ImportError):
    """matplotlib is not installed."""


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or :class:`PlottingUnavailable`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlottingUnavailable(
            'plots need matplotlib: pip install "factorcl-jax[plot]"'
        ) from None
    return plt


def ema(values: np.ndarray | Sequence[float], span: int = 200) -> np.ndarray:
    r"""Exponential moving average along the last axis, ``alpha = 2 / (span + 1)``.

    .. math::
        s_0 = v_0, \qquad s_t = \alpha\, v_t + (1 - \alpha)\, s_{t-1}

    (``pandas.Series.ewm(span=span, adjust=False).mean()``). Shapes: ``[..., T] -> [..., T]``.

    Example:
      >>> ema([0.0, 3.0, 3.0], span=2).tolist()  # alpha = 2/3
      [0.0, 2.0, 2.666...]
    """
    values = np.asarray(values, np.float64)
    if isinstance(span, bool) or not isinstance(span, int | np.integer) or span < 1:
        raise ValueError(f"`span` must be a positive int, got {span!r}")
    if values.ndim < 1 or values.shape[-1] < 1:
        raise ValueError(f"`values` must have shape [..., T] with T >= 1, got {values.shape}")
    alpha = 2.0 / (span + 1.0)
    smoothed = np.empty_like(values)
    smoothed[..., 0] = values[..., 0]
    for t in range(1, values.shape[-1]):
        smoothed[..., t] = alpha * values[..., t] + (1.0 - alpha) * smoothed[..., t - 1]
    return smoothed


def plot_training_curves(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    path: str | pathlib.Path,
    *,
    span: int = 20,
) -> pathlib.Path:
    """Loss against step for every method (EMA-smoothed), one line each."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for method, history in histories.items():
        if history:
            steps = np.array([h["step"] for h in history])
            axis.plot(steps, ema(np.array([h["loss"] for h in history]), span), label=method)
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
    plt = pyplot()
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
                axis.plot(steps, ema(values, span), label=key.removeprefix("term/"))
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
    plt = pyplot()
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
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(history) + 1)
    axis.plot(steps, history, alpha=0.3, label=f"{bound} (per batch)")
    axis.plot(steps, ema(np.asarray(history), span), label=f"{bound} (EMA {span})")
    axis.axhline(estimate, color="k", linestyle="--", label=f"final estimate {estimate:.3f}")
    axis.set(xlabel="step", ylabel="nats", title="MI estimate during critic training")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pathlib.Path(path)


class StaircasePanel(NamedTuple):
    """One subplot of :func:`plot_staircase`.

    Attributes:
      title: e.g. ``"d = 20"``.
      true_mi: ``[levels]`` true MI per level.
      optimal_value: ``[levels]`` NCE-CLUB's optimal-critic value (NaN where unknown).
      curves: label -> ``[seeds, levels, steps]`` history.
    """

    title: str
    true_mi: np.ndarray
    optimal_value: np.ndarray
    curves: Mapping[str, np.ndarray]


def plot_staircase(
    panels: Sequence[StaircasePanel],
    path: str | pathlib.Path,
    *,
    batch_size: int = 64,
    span: int = 200,
    title: str = "",
) -> pathlib.Path:
    """The staircase figure: one subplot per panel, written as a PNG to ``path``.

    Each curve is the seed-mean of the estimates, EMA-smoothed (:func:`ema`, ``span``); the
    true MI is a solid step line, ``log(batch_size)`` (InfoNCE's ceiling) a dashed line and
    NCE-CLUB's optimal-critic value ``I + lautum`` a dotted step line.
    """
    if not panels:
        raise ValueError("`panels` must hold at least one StaircasePanel")
    plt = pyplot()
    figure, axes = plt.subplots(
        1, len(panels), figsize=(max(6.0, 4.2 * len(panels)), 4.4), squeeze=False
    )
    for axis, panel in zip(axes[0], panels, strict=True):
        if not panel.curves:
            raise ValueError(f"panel {panel.title!r} has no curves")
        for label, history in panel.curves.items():
            axis.plot(ema(np.asarray(history).mean(axis=0).reshape(-1), span), label=label)
        steps = np.asarray(history).shape[-1]
        axis.plot(np.repeat(panel.true_mi, steps), color="black", label="true MI")
        if np.all(np.isfinite(panel.optimal_value)):
            axis.plot(
                np.repeat(panel.optimal_value, steps),
                color="black",
                linestyle=":",
                label="NCE-CLUB at optimal critic (I + lautum)",
            )
        axis.axhline(math.log(batch_size), color="gray", linestyle="--", label="log(batch)")
        axis.set(title=panel.title, xlabel="step", ylabel="MI (nats)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize="small")
    if title:
        figure.suptitle(title, fontsize="medium")
    figure.tight_layout(rect=(0.0, 0.12, 1.0, 1.0))
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pathlib.Path(path)


def plot_error_heatmap(
    rows: Sequence[Mapping[str, Any]],
    path: str | pathlib.Path,
    *,
    title: str = "Mean estimate - true MI (nats)",
) -> pathlib.Path:
    """A heat map of ``estimate - true_mi``: one row per task, one column per estimator, in
    the order the rows first name them; the cell's number is printed in it.

    Each row needs ``task``, ``estimator``, ``estimate`` and ``true_mi``.
    """
    if not rows:
        raise ValueError("`rows` must hold at least one result")
    tasks = list(dict.fromkeys(str(row["task"]) for row in rows))
    estimators = list(dict.fromkeys(str(row["estimator"]) for row in rows))
    errors = np.full((len(tasks), len(estimators)), np.nan)
    for row in rows:
        errors[tasks.index(str(row["task"])), estimators.index(str(row["estimator"]))] = float(
            row["estimate"]
        ) - float(row["true_mi"])
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(1.0 + 0.9 * len(estimators), 1.0 + 0.35 * len(tasks)))
    limit = max(float(np.nanmax(np.abs(errors))) if np.isfinite(errors).any() else 1.0, 1e-3)
    image = axis.imshow(errors, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in np.ndenumerate(errors):
        if np.isfinite(value):
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    axis.set_xticks(range(len(estimators)), estimators, rotation=45, ha="right")
    axis.set_yticks(range(len(tasks)), tasks, fontsize=7)
    axis.set_title(title)
    figure.colorbar(image, ax=axis, shrink=0.6)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pathlib.Path(path)


def plot_pmi_profile(
    true: np.ndarray,
    estimated: np.ndarray,
    path: str | pathlib.Path,
    *,
    title: str = "",
    bins: int = 60,
) -> pathlib.Path:
    """Histograms of the true pointwise MI of held-out pairs and of a critic's estimates of
    it on the same pairs (densities on shared bins), with both means."""
    true, estimated = np.asarray(true, np.float64), np.asarray(estimated, np.float64)
    if true.shape != estimated.shape or true.ndim != 1 or not true.size:
        raise ValueError(
            f"`true` and `estimated` must be equal non-empty [pairs], got {true.shape} and "
            f"{estimated.shape}"
        )
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.0, 4.0))
    edges = np.histogram_bin_edges(np.concatenate([true, estimated]), bins=bins)
    for values, label in ((true, "true PMI"), (estimated, "critic's estimate")):
        axis.hist(
            values, bins=edges, density=True, alpha=0.5, label=f"{label} (mean {values.mean():.3f})"
        )
    axis.set(xlabel="pointwise MI (nats)", ylabel="density", title=title)
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pathlib.Path(path)
