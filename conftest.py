"""Strict JAX for every test: rank promotion raises, and 8 simulated CPU devices exist.

The device count must be set before JAX initialises its backends, so it is set here,
at import time of the test session, before any test module imports JAX.

Doctests have tiers too: an example marked ``# doctest: +SLOW`` (one that trains or compiles
a model) puts its docstring's doctest in the ``slow`` tier, like ``@pytest.mark.slow`` on a
test: ``-m "not slow"`` leaves it out, the full suite runs it.
"""

import doctest
import os

import pytest

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

SLOW = doctest.register_optionflag("SLOW")


def pytest_collection_modifyitems(items):
    for item in items:
        examples = getattr(getattr(item, "dtest", None), "examples", ())
        if any(example.options.get(SLOW) for example in examples):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program when a test module ends.

    XLA's CPU backend maps memory for each executable it keeps; one process that compiles
    the whole suite's programs and keeps them all runs past the kernel's limit on memory
    maps (``vm.max_map_count``, 65530 by default) and crashes inside the compiler.
    """
    yield
    jax.clear_caches()
