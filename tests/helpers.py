"""Small configurations and trainers shared by the tests (tiny networks, seconds to compile)."""

from factorcl_jax.config import PRESETS, RunConfig, replace
from factorcl_jax.training.builder import build_trainer

TINY = replace(
    PRESETS["quick"],
    model={
        "encoder_hidden": 32,
        "encoder_layers": 1,
        "embed_dim": 8,
        "head_hidden": 32,
        "critic_hidden": 32,
        "normalize_heads": False,
    },
    train={"learning_rate": 3e-3, "lr_schedule": "constant"},
    augment={"scale": 0.1, "rate": 0.2},
)
"""Tiny networks, Adam at a constant 3e-3, unnormalised heads, mild augmentations."""


def tiny_config(**sections) -> RunConfig:
    """:data:`TINY` with fields of its sections replaced (``model={"embed_dim": 4}``)."""
    return replace(TINY, **sections)


def tiny_trainer(method, *, num_classes=2, steps_per_epoch=None, **sections):
    """The trainer of ``method`` under :func:`tiny_config` of ``sections``."""
    return build_trainer(
        tiny_config(**sections),
        method,
        num_classes=num_classes,
        steps_per_epoch=steps_per_epoch,
    )


def evaluate_on_scores(method, views, score):
    """``(loss, values)`` of ``method`` with every term's bound on the score matrix
    ``score(term, left, right)``: the objective with a critic simple enough to redo by hand."""
    from factorcl_jax import bounds, objectives

    def value(term, left, right):
        labels = {}
        if bounds.BOUNDS[term.bound].labelled:
            columns = views.labels if views.column_labels is None else views.column_labels
            labels = {"row_labels": views.labels, "column_labels": columns}
        return bounds.evaluate(term.bound, score(term, left, right), **labels, **term.options)

    return objectives.evaluate_values(method, views, value)
