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


def _memory_maps_near_the_limit() -> bool:
    """Whether this process holds more than half the kernel's memory maps (always true
    where ``/proc`` cannot tell)."""
    try:
        with open("/proc/sys/vm/max_map_count") as limit, open("/proc/self/maps") as maps:
            return sum(1 for _ in maps) > int(limit.read()) // 2
    except (OSError, ValueError):
        return True


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program when a test module ends near the memory-map limit.

    XLA's CPU backend maps memory for each executable it keeps; one process that compiles
    the whole suite's programs and keeps them all runs past the kernel's limit on memory
    maps (``vm.max_map_count``, 65530 by default) and crashes inside the compiler. Clearing
    only past half the limit keeps the programs modules share (eager ops, small kernels).
    """
    yield
    if _memory_maps_near_the_limit():
        jax.clear_caches()
