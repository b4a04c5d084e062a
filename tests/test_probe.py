"""Tests of the JAX linear probe in ``factorcl_jax.evaluation.probe`` against scikit-learn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from factorcl_jax.evaluation import probe as linear_probe

# One shape for every fit, so the jitted L-BFGS loop compiles once for the whole module.
NUM_TRAIN, NUM_TEST, DIM, NUM_CLASSES = 1500, 500, 16, 4
L2 = 1e-3


def _gaussian_classes(separation, seed):
    """Overlapping Gaussian classes with shifted, scaled, partly constant features."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(NUM_CLASSES, DIM)) * separation
    labels = rng.integers(0, NUM_CLASSES, NUM_TRAIN + NUM_TEST).astype(np.int32)
    features = means[labels] + rng.normal(size=(labels.size, DIM))
    features = features * rng.uniform(0.1, 10.0, DIM) + rng.normal(size=DIM) * 5
    features[:, 3] = 2.5  # a constant feature must not produce NaN
    features = features.astype(np.float32)
    return (
        features[:NUM_TRAIN],
        labels[:NUM_TRAIN],
        features[NUM_TRAIN:],
        labels[NUM_TRAIN:],
    )


@pytest.fixture(scope="module")
def problem():
    return _gaussian_classes(separation=0.5, seed=0)


@pytest.fixture(scope="module")
def fitted(problem):
    train_x, train_y, _, _ = problem
    return linear_probe.fit_linear_probe(train_x, train_y, l2=L2)


def _sklearn_probe(train_x, train_y):
    """scikit-learn's solution of the same problem: C = 1 / (l2 * N), same standardisation."""
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=1.0 / (L2 * len(train_y)), tol=1e-8, max_iter=5000)
    model.fit((train_x - mean) / std, train_y)
    return model, lambda x: (x - mean) / std


@pytest.mark.slow
def test_matches_sklearn_logistic_regression(problem, fitted):
    train_x, train_y, test_x, test_y = problem
    model, standardise = _sklearn_probe(train_x, train_y)
    accuracy = linear_probe.probe_accuracy(fitted, test_x, test_y)
    reference = model.score(standardise(test_x), test_y)
    print(f"probe accuracy {accuracy:.4f}, sklearn {reference:.4f}")
    assert 0.5 < reference < 0.95  # not trivially easy: the comparison means something
    assert abs(accuracy - reference) <= 0.01
    predicted = np.asarray(linear_probe.probe_predict(fitted, test_x))
    assert (predicted == model.predict(standardise(test_x))).mean() >= 0.99
    probabilities = np.asarray(jax.nn.softmax(linear_probe.probe_logits(fitted, test_x)))
    np.testing.assert_allclose(probabilities, model.predict_proba(standardise(test_x)), atol=5e-3)
    # Same optimum: the weights agree up to the softmax's free shift per feature.
    weights = np.asarray(fitted.weights)
    np.testing.assert_allclose(
        weights - weights.mean(axis=1, keepdims=True),
        model.coef_.T - model.coef_.T.mean(axis=1, keepdims=True),
        atol=2e-2,
    )


def test_standardisation_and_constant_feature(problem, fitted):
    train_x = problem[0]
    np.testing.assert_allclose(fitted.mean, train_x.mean(axis=0), rtol=1e-4, atol=1e-4)
    expected_std = train_x.std(axis=0)
    expected_std[3] = 1.0
    np.testing.assert_allclose(fitted.std, expected_std, rtol=1e-4)
    assert np.isfinite(np.asarray(fitted.weights)).all()
    np.testing.assert_allclose(fitted.weights[3], 0.0, atol=1e-6)
    assert fitted.weights.shape == (DIM, NUM_CLASSES) and fitted.bias.shape == (NUM_CLASSES,)


def test_separable_data_reaches_accuracy_one():
    train_x, train_y, test_x, test_y = _gaussian_classes(separation=20.0, seed=1)
    accuracy = linear_probe.linear_probe_accuracy(train_x, train_y, test_x, test_y, l2=L2)
    assert accuracy == 1.0
    probe = linear_probe.fit_linear_probe(train_x, train_y, l2=L2)
    assert linear_probe.probe_accuracy(probe, train_x, train_y) == 1.0


def test_deterministic(problem, fitted):
    train_x, train_y, _, _ = problem
    again = linear_probe.fit_linear_probe(train_x, train_y, l2=L2)
    for a, b in zip(fitted, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_accepts_jax_arrays_and_infers_classes_from_both_splits(problem):
    train_x, train_y, test_x, test_y = problem
    accuracy = linear_probe.linear_probe_accuracy(
        jnp.asarray(train_x), jnp.asarray(train_y), jnp.asarray(test_x), jnp.asarray(test_y), l2=L2
    )
    assert 0.5 < accuracy <= 1.0


def test_prediction_is_jittable(fitted, problem):
    test_x = problem[2]
    np.testing.assert_array_equal(
        jax.jit(linear_probe.probe_predict)(fitted, test_x),
        linear_probe.probe_predict(fitted, test_x),
    )


X = np.zeros((6, 2), np.float32)
Y = np.array([0, 1, 0, 1, 0, 1], np.int32)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: linear_probe.fit_linear_probe(X[:, 0], Y), ValueError, r"features.*\[N, D\]"),
        (lambda: linear_probe.fit_linear_probe(X.astype(int), Y), TypeError, "floating"),
        (lambda: linear_probe.fit_linear_probe(X.tolist(), Y), TypeError, "features"),
        (lambda: linear_probe.fit_linear_probe(X, Y.astype(float)), TypeError, "integer"),
        (lambda: linear_probe.fit_linear_probe(X, Y[:5]), ValueError, r"labels.*\(6,\)"),
        (lambda: linear_probe.fit_linear_probe(X, Y[:, None]), ValueError, "labels"),
        (lambda: linear_probe.fit_linear_probe(X, Y - 1), ValueError, "minimum -1"),
        (lambda: linear_probe.fit_linear_probe(X, Y - 1, num_classes=2), ValueError, r"\[0, 1\]"),
        (lambda: linear_probe.fit_linear_probe(X, Y, num_classes=1), ValueError, "num_classes"),
        (lambda: linear_probe.fit_linear_probe(X, Y * 0), ValueError, "two classes"),
        (lambda: linear_probe.fit_linear_probe(X, Y * 2, num_classes=2), ValueError, "labels"),
        (lambda: linear_probe.fit_linear_probe(X, Y, num_classes=2.0), TypeError, "num_classes"),
        (lambda: linear_probe.fit_linear_probe(X, Y, l2=-1.0), ValueError, "l2"),
        (lambda: linear_probe.fit_linear_probe(X, Y, max_steps=0), ValueError, "max_steps"),
        (lambda: linear_probe.fit_linear_probe(X, Y, tolerance="x"), TypeError, "tolerance"),
        (lambda: linear_probe.fit_linear_probe(X + np.nan, Y), ValueError, "finite"),
        (lambda: linear_probe.fit_linear_probe(X[:0], Y[:0]), ValueError, "at least one"),
        (
            lambda: linear_probe.probe_accuracy(
                linear_probe.LinearProbe(
                    jnp.zeros((3, 2)), jnp.zeros(2), jnp.zeros(3), jnp.ones(3)
                ),
                X,
                Y,
            ),
            ValueError,
            "3 features",
        ),
        (lambda: linear_probe.probe_accuracy((1, 2), X, Y), TypeError, "LinearProbe"),
        (
            lambda: linear_probe.linear_probe_accuracy(X, Y, X, Y[:3]),
            ValueError,
            "test_labels",
        ),
    ],
)
def test_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _rare_positives(seed, num_rows, shift):
    """Two classes, about 8% positives, one feature shifted by ``shift`` for positives."""
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=num_rows) < 0.08).astype(np.int32)
    features = rng.normal(size=(num_rows, 3)).astype(np.float32)
    features[:, 0] += shift * labels
    return features, labels


def test_balanced_accuracy_corrects_for_the_class_prior_where_plain_accuracy_cannot():
    train_x, train_y = _rare_positives(0, 2000, 1.5)
    test_x, test_y = _rare_positives(1, 2000, 1.5)
    plain_predictions = linear_probe.probe_predict(
        linear_probe.fit_linear_probe(train_x, train_y, num_classes=2), test_x
    )
    plain_recalls = [np.mean(np.asarray(plain_predictions)[test_y == c] == c) for c in (0, 1)]
    balanced = linear_probe.balanced_probe_accuracy(train_x, train_y, test_x, test_y, num_classes=2)
    # Uncorrected argmax calls nearly every row negative; the prior correction recovers the
    # positives, and the score is the mean recall of both classes (Bayes rate ~0.77 here).
    assert plain_recalls[1] < 0.3
    assert balanced > np.mean(plain_recalls) + 0.1
    assert 0.7 < balanced < 0.85


def test_balanced_accuracy_does_not_depend_on_how_many_rows_each_test_class_has():
    train_x, train_y = _rare_positives(2, 2000, 2.0)
    test_x, test_y = _rare_positives(3, 600, 2.0)
    positives = test_y == 1
    repeated_x = np.concatenate([test_x] + [test_x[positives]] * 5)
    repeated_y = np.concatenate([test_y] + [test_y[positives]] * 5)
    scores = [
        linear_probe.balanced_probe_accuracy(train_x, train_y, x, y, num_classes=2)
        for x, y in ((test_x, test_y), (repeated_x, repeated_y))
    ]
    assert scores[0] == pytest.approx(scores[1], abs=1e-12)


def test_balanced_accuracy_refuses_test_labels_beyond_the_classes():
    train_x, train_y = _rare_positives(4, 200, 1.0)
    with pytest.raises(ValueError, match=r"`test_labels` must lie in \[0, 1\]"):
        linear_probe.balanced_probe_accuracy(train_x, train_y, train_x, train_y + 1, num_classes=2)


@pytest.mark.slow
def test_balanced_accuracy_of_features_that_say_nothing_is_chance_and_of_the_label_is_one():
    rng = np.random.default_rng(0)
    labels = [(rng.random(n) < 0.1).astype(np.int32) for n in (3000, 2000)]
    noise = [rng.normal(size=(n, 4)).astype(np.float32) for n in (3000, 2000)]
    chance = linear_probe.balanced_probe_accuracy(
        noise[0], labels[0], noise[1], labels[1], num_classes=2
    )
    assert abs(chance - 0.5) < 0.05
    signal = [np.concatenate([x, y[:, None]], axis=1) for x, y in zip(noise, labels, strict=True)]
    perfect = linear_probe.balanced_probe_accuracy(
        signal[0].astype(np.float32),
        labels[0],
        signal[1].astype(np.float32),
        labels[1],
        num_classes=2,
    )
    assert perfect == 1.0
    with pytest.raises(ValueError, match=r"`train_labels` must have shape \[N\]"):
        linear_probe.balanced_probe_accuracy(
            noise[0], labels[0][:10], noise[1], labels[1], num_classes=2
        )
