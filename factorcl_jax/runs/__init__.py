"""Runs of the ``factorcl-jax`` command: run directories (:mod:`~factorcl_jax.runs.rundir`),
preemption (:mod:`~factorcl_jax.runs.preemption`), checkpoints
(:mod:`~factorcl_jax.runs.checkpoint`), the metrics log (:mod:`~factorcl_jax.runs.metrics`),
the memory check (:mod:`~factorcl_jax.runs.memory`), the training job
(:mod:`~factorcl_jax.runs.job`) and the command itself (:mod:`~factorcl_jax.runs.cli`)."""
