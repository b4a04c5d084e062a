"""Linear-probe evaluation of trained models, and the one train-then-probe driver.

* :mod:`~factorcl_jax.evaluation.probe`: the JAX logistic-regression probe;
* :mod:`~factorcl_jax.evaluation.protocol`: :func:`fit_and_probe`, :func:`probe_accuracies`,
  :func:`raw_input_accuracy`.
"""

from factorcl_jax.evaluation.protocol import (
    REPRESENTATIONS,
    FitAndProbeResult,
    Start,
    fit_and_probe,
    num_classes_of,
    probe_accuracies,
    raw_input_accuracy,
)

__all__ = [
    "REPRESENTATIONS",
    "FitAndProbeResult",
    "Start",
    "fit_and_probe",
    "num_classes_of",
    "probe_accuracies",
    "raw_input_accuracy",
]
