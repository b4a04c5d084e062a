"""benchmarks/common.py: the helpers that other benchmark figures rest on."""

import pathlib
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))

from common import dot_breakdown


def test_dot_breakdown_finds_every_product_with_its_shapes_and_flops():
    def two_layers(x, a, b):
        return jnp.tanh(x @ a) @ b

    x, a, b = jnp.ones((64, 32)), jnp.ones((32, 48)), jnp.ones((48, 40))
    compiled = jax.jit(two_layers).lower(x, a, b).compile()
    found = dot_breakdown(compiled, repeats=1)
    assert found["dots"] == 2
    assert abs(found["gflop"] - 2 * 64 * (32 * 48 + 48 * 40) / 1e9) < 1e-12
    shapes = {(tuple(row["lhs"]), tuple(row["rhs"])) for row in found["shapes"]}
    assert {s[0][-1] for s in shapes} == {32, 48}  # the two contracted widths
    assert found["seconds"] > 0 and all(row["gflops"] > 0 for row in found["shapes"])
