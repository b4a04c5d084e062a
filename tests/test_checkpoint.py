"""Orbax checkpoints: exact round trip, retention, corrupt checkpoints, other device counts."""

import logging
import pathlib
import shutil

import chex
import jax
import numpy as np
import pytest
from helpers import tiny_trainer

from factorcl_jax.runs import checkpoint
from factorcl_jax.runs.checkpoint import Checkpointer
from factorcl_jax.runs.rundir import RunWarning


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    data = {
        "x1": rng.normal(size=(32, 6)).astype(np.float32),
        "x2": rng.normal(size=(32, 6)).astype(np.float32),
        "y": rng.integers(0, 2, 32).astype(np.int32),
    }
    trainer = tiny_trainer("FactorCL-SSL", model={"encoder_hidden": 16, "critic_hidden": 16})
    state = trainer.init(jax.random.key(0), data)
    # Four distinct states of steps 1-4 without compiling the step (tests that train take
    # their own step from these).
    states = [
        jax.device_get(
            state.replace(
                step=state.step + k,
                params=jax.tree.map(lambda p, k=k: p + k, state.params),
                club_params=jax.tree.map(lambda p, k=k: p - k, state.club_params),
            )
        )
        for k in range(1, 5)
    ]
    abstract = jax.eval_shape(trainer.init, jax.random.key(0), data)
    return trainer, data, states, abstract


def save_all(directory, states, **kwargs):
    checkpoints = Checkpointer(directory, **kwargs)
    for index, state in enumerate(states):
        checkpoints.save(
            int(state.step),
            state,
            {"epoch": 0, "next_batch": index + 1, "metric": [0.5, 0.9, 0.1, 0.2][index]},
        )
    return checkpoints


def assert_same_state(a, b):
    chex.assert_trees_all_equal(a.params, b.params)
    chex.assert_trees_all_equal(a.club_params, b.club_params)
    chex.assert_trees_all_equal(a.opt_state, b.opt_state)
    np.testing.assert_array_equal(jax.random.key_data(a.rng), jax.random.key_data(b.rng))
    assert int(a.step) == int(b.step)


@pytest.mark.slow
def test_round_trip_is_bit_identical_and_training_continues_identically(tmp_path, trained):
    trainer, data, states, abstract = trained
    checkpoints = save_all(tmp_path, states[:2])
    restored, meta = checkpoints.restore_latest(abstract)
    assert meta["step"] == 2 and meta["next_batch"] == 2
    assert_same_state(restored, states[1])
    continued, _ = trainer.jit_step(restored, data)
    expected, _ = trainer.jit_step(jax.tree.map(lambda a: a.copy(), states[1]), data)  # donated
    assert_same_state(continued, expected)


def test_retention_keeps_the_last_k_and_the_best(tmp_path, trained):
    _, _, states, _ = trained
    checkpoints = save_all(tmp_path, states, keep_last=2)
    assert checkpoints.steps() == [2, 3, 4]  # last two, plus step 2 with metric 0.9
    without_best = save_all(tmp_path / "b", states, keep_last=1, keep_best=False)
    assert without_best.steps() == [4]


def corrupt(step_dir: pathlib.Path) -> None:
    for path in sorted(step_dir.rglob("*")):
        if path.is_file() and path.stat().st_size > 0 and "state" in str(path):
            path.write_bytes(b"\0garbage" * 4)


def test_corrupt_latest_checkpoint_is_skipped_with_a_warning(tmp_path, trained):
    _, _, states, abstract = trained
    checkpoints = save_all(tmp_path, states[:3], keep_last=3)
    corrupt(tmp_path / "3")
    with pytest.warns(RunWarning, match=r"checkpoint\(s\) 3 in .* failed to load and were skipped"):
        restored, meta = checkpoints.restore_latest(abstract)
    assert meta["step"] == 2
    assert_same_state(restored, states[1])
    assert checkpoints.steps() == [1, 2, 3]  # nothing was deleted
    assert [step for step, _ in checkpoints.skipped] == [3]


@pytest.mark.slow
def test_moving_corrupt_checkpoints_aside_frees_their_steps(tmp_path, trained):
    trainer, data, states, abstract = trained
    checkpoints = save_all(tmp_path, states[:3], keep_last=3)
    corrupt(tmp_path / "3")
    corrupt(tmp_path / "2")
    files = sorted(p.relative_to(tmp_path / "3") for p in (tmp_path / "3").rglob("*"))
    with pytest.warns(RunWarning, match=r"checkpoint\(s\) 3, 2 .* moved to .*corrupt") as record:
        restored, meta = checkpoints.restore_latest(abstract, move_aside=True)
    assert len(record) == 1  # one line for all of them
    assert meta["step"] == 1
    assert_same_state(restored, states[0])
    assert checkpoints.steps() == [1]
    moved = tmp_path / "corrupt" / "3"
    assert sorted(p.relative_to(moved) for p in moved.rglob("*")) == files  # kept whole
    continued, _ = trainer.jit_step(restored, data)
    checkpoints.save(2, continued, {"epoch": 0, "next_batch": 2, "metric": None})
    assert checkpoints.steps() == [1, 2]
    reopened = Checkpointer(tmp_path, keep_last=3)
    assert reopened.steps() == [1, 2]  # corrupt/ is not taken for a step
    reopened.close()


def test_checkpoints_of_another_model_are_a_config_mismatch_and_nothing_moves(tmp_path, trained):
    """Arrays of other shapes are named before any array is read, and reported as the
    configuration's doing, not as damage."""
    _, data, states, _ = trained
    checkpoints = save_all(tmp_path, states[:2], keep_last=3)
    other = tiny_trainer("FactorCL-SSL", model={"encoder_hidden": 8, "critic_hidden": 16})
    abstract = jax.eval_shape(other.init, jax.random.key(0), data)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(checkpoint.CheckpointsUnloadable) as raised:
        checkpoints.restore_latest(abstract, move_aside=True)
    assert raised.value.config_mismatch
    assert [step for step, _ in raised.value.skipped] == [2, 1]
    assert "its arrays are another model's" in raised.value.skipped[0][1]
    assert "this config needs float32[" in raised.value.skipped[0][1]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_read_only_checkpointer_changes_nothing(tmp_path, trained):
    _, _, states, abstract = trained
    save_all(tmp_path / "run", states[:2], keep_last=3).close()
    corrupt(tmp_path / "run" / "2")
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    with Checkpointer(tmp_path / "run", read_only=True) as checkpoints:
        with pytest.warns(RunWarning, match="skipped"):
            _, meta = checkpoints.restore_latest(abstract)
        with pytest.raises(ValueError, match="read_only"):
            checkpoints.restore_latest(abstract, move_aside=True)
    assert meta["step"] == 1
    with Checkpointer(tmp_path / "missing", read_only=True) as checkpoints:
        assert checkpoints.restore_latest(abstract) is None
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_partial_checkpoint_directory_is_ignored(tmp_path, trained):
    _, _, states, abstract = trained
    save_all(tmp_path, states[:2], keep_last=3)
    shutil.copytree(tmp_path / "2", tmp_path / "3.orbax-checkpoint-tmp")
    reopened = Checkpointer(tmp_path, keep_last=3)
    assert reopened.steps() == [1, 2]
    _, meta = reopened.restore_latest(abstract)
    assert meta["step"] == 2


def test_no_checkpoint_restores_none(tmp_path, trained):
    assert Checkpointer(tmp_path).restore_latest(trained[3]) is None


def test_restore_onto_a_mesh_of_another_device_count(tmp_path, trained):
    _, _, states, abstract = trained
    checkpoints = save_all(tmp_path, states[:1])
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:4]), ("data",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    restored, _ = checkpoints.restore_latest(abstract, sharding=replicated)
    leaf = jax.tree.leaves(restored.params)[0]
    assert leaf.sharding.is_equivalent_to(replicated, leaf.ndim)
    assert len(leaf.sharding.device_set) == 4
    assert_same_state(jax.device_get(restored), states[0])


def test_a_file_where_the_directory_should_be_is_refused(tmp_path):
    (tmp_path / "ckpt").write_text("not a directory")
    with pytest.raises(ValueError, match="is not a directory"):
        Checkpointer(tmp_path / "ckpt")


def test_leftover_reads_of_a_failed_restore_are_not_logged(tmp_path, monkeypatch, caplog):
    """asyncio's "never retrieved" reports of a failed checkpoint's reads are dropped."""
    failed = tmp_path / "checkpoints" / "6"
    monkeypatch.setattr(checkpoint, "_FAILED_READS", {str(failed)})
    checkpoint._ignore_reads_finishing_after_a_failed_restore()
    logger = logging.getLogger("asyncio")
    leftover = ValueError(f'DATA_LOSS: Error reading "a/.zarray" at local file "{failed}/state/"')
    other = ValueError("something else")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for error in (leftover, other):
            logger.error("Task exception was never retrieved", exc_info=(ValueError, error, None))
    assert [record.exc_info[1] for record in caplog.records] == [other]
