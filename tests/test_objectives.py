"""Objectives: term lists, their wiring (targets, conditioning) and a hand computation."""

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import evaluate_on_scores

from factorcl_jax import objectives
from factorcl_jax.objectives import METHODS, TARGET, Views

N, E, C = 4, 3, 2


def fixed_views(supervised):
    rng = np.random.default_rng(0)
    names = ["S1", "S2", "U1", "U2", "Z1", "Z2"]
    reps = {k: rng.normal(size=(N, E)).astype(np.float32) for k in names}
    augmented = {k: rng.normal(size=(N, E)).astype(np.float32) for k in names}
    labels = np.array([0, 1, 1, 0])
    onehot = np.eye(C, dtype=np.float32)[labels]
    if supervised:
        return (
            Views(
                {k: jnp.asarray(v) for k, v in reps.items()},
                None,
                jnp.asarray(onehot),
                jnp.asarray(labels),
            ),
            reps,
            augmented,
            onehot,
        )
    return (
        Views(
            {k: jnp.asarray(v) for k, v in reps.items()},
            {k: jnp.asarray(v) for k, v in augmented.items()},
        ),
        reps,
        augmented,
        onehot,
    )


def weighted_sum(x):
    return x @ np.arange(1.0, x.shape[1] + 1, dtype=np.float32)


def outer_score(term, left, right):
    """A critic simple enough to redo by hand: s_ij = 0.3 * (left_i . k) * (right_j . k)."""
    return 0.3 * weighted_sum(left)[:, None] * weighted_sum(right)[None, :]


def hand_infonce(s):
    return np.mean(np.diag(s) - np.log(np.mean(np.exp(s), axis=1)))


def hand_nce_club(s):
    return np.mean(np.diag(s)) - np.mean(s)


def hand_scores(a, b):
    return 0.3 * weighted_sum(a)[:, None] * weighted_sum(b)[None, :]


@pytest.mark.parametrize("variant", ["SUP", "SSL"])
def test_factorcl_terms_match_hand_computation(variant):
    supervised = variant == "SUP"
    views, reps, aug, onehot = fixed_views(supervised)
    loss, values = evaluate_on_scores(METHODS[f"FactorCL-{variant}"], views, outer_score)
    target = (lambda name: onehot) if supervised else (lambda name: aug[name])
    cat = lambda name: np.concatenate([reps[name], target(name)], axis=1)
    expected = {
        "shared/infonce": hand_infonce(hand_scores(reps["S1"], reps["S2"])),
        "shared/club_given_target": hand_nce_club(hand_scores(cat("S1"), cat("S2"))),
        "unique1/infonce_target": hand_infonce(hand_scores(reps["U1"], target("U1"))),
        "unique2/infonce_target": hand_infonce(hand_scores(reps["U2"], target("U2"))),
        "unique/club": hand_nce_club(hand_scores(reps["U1"], reps["U2"])),
        "unique/infonce_given_target": hand_infonce(hand_scores(cat("U1"), cat("U2"))),
    }
    assert set(values) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(values[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
        assert abs(value) > 1e-3, name  # the hand value is not degenerate
    # L_S + L_U1 + L_U2 of the paper, written out.
    paper = (
        expected["shared/infonce"]
        - expected["shared/club_given_target"]
        + expected["unique1/infonce_target"]
        + expected["unique2/infonce_target"]
        - 2 * expected["unique/club"]
        + 2 * expected["unique/infonce_given_target"]
    )
    np.testing.assert_allclose(-loss, paper, rtol=1e-5)


def test_ssl_conditioning_uses_each_sides_own_augmented_view():
    views, reps, aug, _ = fixed_views(supervised=False)
    method = METHODS["FactorCL-SSL"]
    term = next(t for t in method.terms if t.name == "shared/club_given_target")
    left, right = objectives.term_inputs(method, term, views)
    np.testing.assert_array_equal(left, np.concatenate([reps["S1"], aug["S1"]], axis=1))
    np.testing.assert_array_equal(right, np.concatenate([reps["S2"], aug["S2"]], axis=1))


def test_sup_and_ssl_are_the_same_term_list():
    for family in ("FactorCL", "OurCL"):
        sup, ssl = METHODS[f"{family}-SUP"], METHODS[f"{family}-SSL"]
        assert sup.terms == ssl.terms and sup.supervised and not ssl.supervised


def test_every_table_row_is_defined_with_the_right_structure():
    assert list(METHODS) == [
        "SimCLR",
        "Cross+Self",
        "Cross+Self+Fact",
        "OurCL-SSL",
        "FactorCL-SSL",
        "SupCon",
        "OurCL-SUP",
        "FactorCL-SUP",
        "CoMM",
        "InfMasking",
    ]
    assert set(METHODS["FactorCL-SUP"].representations) == {"S1", "S2", "U1", "U2"}
    assert set(METHODS["OurCL-SUP"].representations) == {"Z1", "Z2"}
    assert METHODS["SimCLR"].club_terms == ()
    assert {t.bound for t in METHODS["Cross+Self+Fact"].terms} == {"infonce"}
    assert [t.right for t in METHODS["Cross+Self"].terms].count(TARGET) == 2
    assert len(METHODS["FactorCL-SSL"].club_terms) == 2
    assert not METHODS["SupCon"].uses_augmentation
    assert METHODS["FactorCL-SSL"].uses_augmentation
    for fused in ("CoMM", "InfMasking"):
        assert METHODS[fused].uses_augmentation and not METHODS[fused].supervised
        assert METHODS[fused].representations == {} and METHODS[fused].club_terms == ()
    assert len(METHODS["CoMM"].terms) == 6 and len(METHODS["InfMasking"].terms) == 8


def test_supcon_term_uses_label_positives():
    views, reps, _, _ = fixed_views(supervised=True)
    _, values = evaluate_on_scores(METHODS["SupCon"], views, outer_score)
    s = hand_scores(reps["Z1"], reps["Z2"])
    labels = np.array([0, 1, 1, 0])
    log_softmax = s - np.log(np.exp(s).sum(1, keepdims=True))
    positives = labels[:, None] == labels[None, :]
    expected = np.log(N) + np.mean((log_softmax * positives).sum(1) / positives.sum(1))
    np.testing.assert_allclose(values["cross/supcon"], expected, rtol=1e-5)


def test_missing_inputs_and_unknown_method_are_clear_errors():
    views, *_ = fixed_views(supervised=False)
    with pytest.raises(ValueError, match="supervised: labels are required"):
        evaluate_on_scores(METHODS["FactorCL-SUP"], views, outer_score)
    no_aug = Views(views.representations)
    with pytest.raises(ValueError, match="needs augmented views"):
        evaluate_on_scores(METHODS["FactorCL-SSL"], no_aug, outer_score)
    with pytest.raises(ValueError, match="unknown method 'CLIP'"):
        objectives.get_method("CLIP")
