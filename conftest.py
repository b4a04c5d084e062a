"""Strict JAX for every test: rank promotion raises, and 8 simulated CPU devices exist.

The device count must be set before JAX initialises its backends, so it is set here,
at import time of the test session, before any test module imports JAX.
"""

import os

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
