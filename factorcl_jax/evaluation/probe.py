"""Linear probe: multinomial logistic regression on frozen representations.

The paper evaluates every representation by the accuracy of a logistic-regression classifier
trained on top of it with the encoders frozen (Liang et al. 2023, "Factorized Contrastive
Learning", Sec. 4). Here the probe is fitted in JAX with optax's L-BFGS (zoom line search) run
to convergence inside one ``jax.lax.while_loop``.

Features are standardised with the training mean and standard deviation,
``z = (x - mu) / sigma`` (a constant feature gets ``sigma = 1`` and becomes 0, never NaN), and
the probe minimises the L2-penalised mean cross-entropy

    J(W, b) = (1/N) sum_i [ logsumexp_c (z_i W + b)_c - (z_i W + b)_{y_i} ] + (l2 / 2) ||W||_F^2

over ``W [D, C]`` and ``b [C]`` (the bias is not penalised). Because the loss is a mean,
``l2`` does not need rescaling with ``N``; scikit-learn's ``LogisticRegression(C=...)``
minimises ``C * sum_i loss_i + ||W||^2 / 2``, which is the same problem with
``C = 1 / (l2 * N)`` (for ``C >= 3`` classes; scikit-learn fits one weight vector for
binary problems, i.e. ``W[:, 1] - W[:, 0]``, which halves the effective penalty).

Example:
  >>> import jax, jax.numpy as jnp
  >>> x = jax.random.normal(jax.random.key(0), (200, 5))
  >>> y = (x[:, 0] > 0).astype(jnp.int32)
  >>> probe = fit_linear_probe(x, y)  # doctest: +SLOW
  >>> probe.weights.shape, probe_accuracy(probe, x, y) > 0.95
  ((5, 2), True)
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from factorcl_jax.validation import check_float_matrix

__all__ = [
    "LinearProbe",
    "balanced_probe_accuracy",
    "fit_linear_probe",
    "linear_probe_accuracy",
    "probe_accuracy",
    "probe_logits",
    "probe_predict",
]


class LinearProbe(NamedTuple):
    """A fitted linear probe (a pytree).

    Attributes:
      weights: ``[D, C]`` weights on standardised features.
      bias: ``[C]`` bias.
      mean: ``[D]`` training feature mean ``mu``.
      std: ``[D]`` training feature standard deviation ``sigma`` (1 for constant features).
    """

    weights: Array
    bias: Array
    mean: Array
    std: Array


# --------------------------------------------------------------------------- validation


def _check_features(features: Any, name: str, num_features: int | None = None) -> Array:
    check_float_matrix(features, name, axes="[N, D]")
    if features.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one row, got shape {features.shape}")
    if num_features is not None and features.shape[1] != num_features:
        raise ValueError(
            f"`{name}` must have {num_features} features (the probe's D), got shape "
            f"{features.shape}"
        )
    features = jnp.asarray(features, jnp.float32)
    if not bool(jnp.isfinite(features).all()):
        raise ValueError(f"`{name}` must be finite; it holds NaN or inf")
    return features


def _check_labels(labels: Any, name: str, num_rows: int, features_name: str) -> Array:
    if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
        raise TypeError(f"`{name}` must be an integer array [N], got {type(labels).__name__}")
    if labels.ndim != 1 or labels.shape[0] != num_rows:
        raise ValueError(
            f"`{name}` must have shape [N] = ({num_rows},) to match `{features_name}`, "
            f"got {labels.shape}"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"`{name}` must be an integer array [N], got dtype {labels.dtype}")
    return jnp.asarray(labels, jnp.int32)


def _check_range(labels: Array, name: str, num_classes: int) -> None:
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"`{name}` must lie in [0, {num_classes - 1}] (num_classes={num_classes}), "
            f"got values in [{low}, {high}]"
        )


def _check_real(name: str, value: Any, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__}")
    if not value >= low:
        raise ValueError(f"`{name}` must be >= {low}, got {value}")
    return float(value)


# ------------------------------------------------------------------------------ probe


def probe_logits(probe: LinearProbe, features: Array) -> Array:
    """Logits ``((x - mu) / sigma) W + b``, ``[N, C]``, for features ``[N, D]``."""
    z = (features - probe.mean[None, :]) / probe.std[None, :]
    return z @ probe.weights + probe.bias[None, :]


def probe_predict(probe: LinearProbe, features: Array) -> Array:
    """Predicted classes ``argmax_c logits``, int32 ``[N]``, for features ``[N, D]``."""
    return jnp.argmax(probe_logits(probe, features), axis=-1).astype(jnp.int32)


def _objective(params: tuple[Array, Array], z: Array, labels: Array, l2: Array) -> Array:
    """``J(W, b)``: mean cross-entropy plus ``(l2 / 2) ||W||^2``."""
    weights, bias = params
    logits = z @ weights + bias[None, :]
    positive = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    cross_entropy = jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive)
    return cross_entropy + 0.5 * l2 * jnp.sum(weights**2)


@functools.partial(jax.jit, static_argnames="num_classes")
def _fit(
    features: Array,
    labels: Array,
    l2: Array,
    max_steps: Array,
    tolerance: Array,
    *,
    num_classes: int,
) -> tuple[LinearProbe, Array, Array]:
    """Standardises, runs L-BFGS to ``||grad J|| <= tolerance`` or ``max_steps``."""
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    # Exactly constant features: centre on their value and keep sigma = 1, so z = 0 exactly.
    constant = features.max(axis=0) == features.min(axis=0)
    mean = jnp.where(constant, features[0], mean)
    std = jnp.where(constant | (std == 0), 1.0, std)
    z = (features - mean[None, :]) / std[None, :]

    value_fn = functools.partial(_objective, z=z, labels=labels, l2=l2)
    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(value_fn)
    dimension = features.shape[1]
    params = (jnp.zeros((dimension, num_classes)), jnp.zeros((num_classes,)))

    def step(carry):
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = solver.update(
            grad, state, params, value=value, grad=grad, value_fn=value_fn
        )
        return optax.apply_updates(params, updates), state

    def not_converged(carry):
        _, state = carry
        count = optax.tree.get(state, "count")
        grad_norm = optax.tree.norm(optax.tree.get(state, "grad"))
        return (count == 0) | ((count < max_steps) & (grad_norm > tolerance))

    params, state = jax.lax.while_loop(not_converged, step, (params, solver.init(params)))
    probe = LinearProbe(weights=params[0], bias=params[1], mean=mean, std=std)
    return probe, optax.tree.get(state, "count"), optax.tree.get(state, "value")


def fit_linear_probe(
    features: Array,
    labels: Array,
    *,
    num_classes: int | None = None,
    l2: float = 1e-4,
    max_steps: int = 1000,
    tolerance: float = 1e-5,
) -> LinearProbe:
    """Fits a multinomial logistic-regression probe on frozen features.

    Minimises ``J(W, b) = mean_i CE(softmax(z_i W + b), y_i) + (l2 / 2) ||W||_F^2`` on
    standardised features ``z = (x - mu) / sigma`` with L-BFGS until the gradient norm is at most
    ``tolerance`` or ``max_steps`` iterations have run. Validation reads the values (finite
    features, labels in range), so call it outside ``jit``; the optimisation itself is one
    jitted ``lax.while_loop`` (compiled once per shape and ``num_classes``).

    Args:
      features: ``[N, D]`` floating training features (cast to float32).
      labels: ``[N]`` integer classes in ``[0, num_classes)``.
      num_classes: number of classes ``C >= 2``; ``None`` means ``max(labels) + 1``.
      l2: L2 penalty on ``W``, ``>= 0`` (equivalent to scikit-learn ``C = 1 / (l2 * N)``).
      max_steps: maximum number of L-BFGS iterations, ``>= 1``.
      tolerance: stop when ``||grad J||_2 <= tolerance``, ``>= 0``.

    Returns:
      A ``LinearProbe`` with ``weights [D, C]``, ``bias [C]``, ``mean [D]`` and ``std [D]``.

    Example:
      >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]])
      >>> probe = fit_linear_probe(x, jnp.array([0, 0, 1, 1]))  # doctest: +SLOW
      >>> probe_predict(probe, x).tolist()
      [0, 0, 1, 1]
    """
    features = _check_features(features, "features")
    labels = _check_labels(labels, "labels", features.shape[0], "features")
    if num_classes is None:
        if int(labels.min()) < 0:
            raise ValueError(
                f"`labels` must be class indices in [0, num_classes), got minimum "
                f"{int(labels.min())}"
            )
        num_classes = int(labels.max()) + 1
        if num_classes < 2:
            raise ValueError(
                f"`labels` must hold at least two classes when `num_classes` is None, got "
                f"classes up to {num_classes - 1}"
            )
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"`num_classes` must be an int >= 2, got {type(num_classes).__name__}")
    elif num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2, got {num_classes}")
    _check_range(labels, "labels", num_classes)
    l2 = _check_real("l2", l2, 0.0)
    tolerance = _check_real("tolerance", tolerance, 0.0)
    if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral):
        raise TypeError(f"`max_steps` must be an int >= 1, got {type(max_steps).__name__}")
    if max_steps < 1:
        raise ValueError(f"`max_steps` must be >= 1, got {max_steps}")
    probe, _, _ = _fit(
        features,
        labels,
        jnp.float32(l2),
        jnp.int32(max_steps),
        jnp.float32(tolerance),
        num_classes=int(num_classes),
    )
    return probe


def probe_accuracy(probe: LinearProbe, features: Array, labels: Array) -> float:
    """Fraction of rows whose predicted class equals the label.

    Args:
      probe: a fitted ``LinearProbe`` (``weights [D, C]``).
      features: ``[N, D]`` floating features.
      labels: ``[N]`` integer labels.

    Returns:
      Accuracy in ``[0, 1]`` as a Python float.

    Example:
      >>> x = jnp.array([[-1.0], [1.0]])
      >>> probe = fit_linear_probe(x, jnp.array([0, 1]))  # doctest: +SLOW
      >>> probe_accuracy(probe, x, jnp.array([0, 1]))
      1.0
    """
    if not isinstance(probe, LinearProbe):
        raise TypeError(f"`probe` must be a LinearProbe, got {type(probe).__name__}")
    features = _check_features(features, "features", probe.weights.shape[0])
    labels = _check_labels(labels, "labels", features.shape[0], "features")
    return float(jnp.mean(probe_predict(probe, features) == labels))


def linear_probe_accuracy(
    train_features: Array,
    train_labels: Array,
    test_features: Array,
    test_labels: Array,
    **kwargs: Any,
) -> float:
    """Fits a probe on the training split and returns its test accuracy.

    Args:
      train_features: ``[N, D]`` floating features; train_labels: ``[N]`` ints.
      test_features: ``[M, D]`` floating features; test_labels: ``[M]`` ints.
      **kwargs: passed to ``fit_linear_probe`` (``num_classes``, ``l2``, ``max_steps``,
        ``tolerance``). ``num_classes`` defaults to ``max(train, test labels) + 1``.

    Returns:
      Test accuracy in ``[0, 1]``.

    Example:
      >>> x = jax.random.normal(jax.random.key(1), (100, 3))
      >>> y = (x[:, 1] > 0).astype(jnp.int32)
      >>> linear_probe_accuracy(x[:80], y[:80], x[80:], y[80:]) > 0.9  # doctest: +SLOW
      True
    """
    if kwargs.get("num_classes") is None and hasattr(test_labels, "shape"):
        train = _check_labels(
            train_labels, "train_labels", np.shape(train_features)[0], "train_features"
        )
        test = _check_labels(
            test_labels, "test_labels", np.shape(test_features)[0], "test_features"
        )
        kwargs["num_classes"] = max(int(train.max()), int(test.max())) + 1
    probe = fit_linear_probe(train_features, train_labels, **kwargs)
    return probe_accuracy(probe, test_features, test_labels)


def balanced_probe_accuracy(
    train_features: Array,
    train_labels: Array,
    test_features: Array,
    test_labels: Array,
    *,
    num_classes: int,
    **kwargs: Any,
) -> float:
    """Balanced test accuracy of a prior-corrected probe fitted on the training split.

    The probe is fitted on ``train_features [N, D]``, ``train_labels [N]``; test row ``i`` gets
    ``argmax_c (logit_ic - log pi_c)`` with ``pi_c`` the training frequency of class ``c`` (the
    Bayes decision for balanced accuracy; a class absent from training is never predicted).
    The score is the mean, over the classes present in ``test_labels [M]``, of their recall,
    so answering the majority class scores ``1 / (classes present)`` however rare the others.

    Args:
      train_features, train_labels, test_features, test_labels: as in
        :func:`linear_probe_accuracy`.
      num_classes: ``C``, the width of the probe.
      **kwargs: passed to :func:`fit_linear_probe` (``l2``, ``max_steps``, ``tolerance``).

    Returns:
      Balanced accuracy in ``[0, 1]``.

    Example:
      >>> x = jax.random.normal(jax.random.key(2), (400, 2))  # doctest: +SLOW
      >>> y = (x[:, 0] > 1.5).astype(jnp.int32)  # about 7% positives
      >>> balanced_probe_accuracy(x[:300], y[:300], x[300:], y[300:], num_classes=2) > 0.9
      True
    """
    train_features = _check_features(train_features, "train_features")
    train = _check_labels(train_labels, "train_labels", train_features.shape[0], "train_features")
    test_features = _check_features(test_features, "test_features", train_features.shape[1])
    test = _check_labels(test_labels, "test_labels", test_features.shape[0], "test_features")
    _check_range(test, "test_labels", num_classes)
    probe = fit_linear_probe(train_features, train, num_classes=num_classes, **kwargs)
    train, test = np.asarray(train), np.asarray(test)
    frequency = np.bincount(train, minlength=num_classes) / len(train)
    logits = np.asarray(probe_logits(probe, test_features))
    with np.errstate(divide="ignore"):
        corrected = np.where(frequency > 0, logits - np.log(frequency), -np.inf)
    predicted = np.argmax(corrected, axis=1)
    return float(np.mean([np.mean(predicted[test == c] == c) for c in np.unique(test)]))
