"""Datasets for FactorCL experiments, one module per source.

Submodules are imported on demand so that importing ``factorcl_jax.data`` stays cheap:

- ``factorcl_jax.data.synthetic``: the paper's synthetic multimodal data with controllable
  shared and unique information (``make_synthetic``, ``train_test_split``).
- ``factorcl_jax.data.mi_tasks``: sampling tasks with known mutual information, to benchmark
  MI estimators.
- ``factorcl_jax.data.fine``: Gaussian mixtures and their pushforwards (fine distributions),
  exact pointwise MI, MI by Monte Carlo.
- ``factorcl_jax.data.bmi_suite``: the 26 tasks of bmi's v2 benchmark, with bmi's ids and
  rescaling.
"""
