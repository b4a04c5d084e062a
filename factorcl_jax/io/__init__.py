"""Files a person reads: atomic writes and JSON (:mod:`~factorcl_jax.io.atomic`), tables
(:mod:`~factorcl_jax.io.tables`), figures (:mod:`~factorcl_jax.io.plotting`)."""
