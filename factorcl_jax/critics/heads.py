"""Pairwise heads written for speed: the pair sums ``u_i + v_j`` and the one-layer ReLU head.

Both are ``jax.custom_vjp`` functions whose backward passes avoid what autodiff would keep or
reduce slowly on CPU (see each docstring); values and gradients equal the straightforward
expressions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["PAIR_HEAD_CHUNK", "pair_sums", "relu_pair_head"]


@jax.custom_vjp
def pair_sums(u: Array, v: Array) -> Array:
    """``[b, H], [m, H] -> [b * m, H]``: row ``i * m + j`` is ``u_i + v_j``.

    The same values as ``(u[:, None] + v[None]).reshape(b * m, H)``, with a backward pass
    written for speed: the cotangent ``g`` is summed over columns as a reduction along the
    contiguous axis (``du_i = sum_j g_ij``) and over rows as a matrix-vector product
    (``dv = 1^T g``), where XLA's CPU reduction over the leading axis of a ``[b, m, H]``
    array is much slower. Differentiable in reverse mode (``grad``, ``vjp``; also twice).

    Example:
      >>> pair_sums(jnp.array([[0.0], [10.0]]), jnp.array([[1.0], [2.0], [3.0]]))[:, 0]
      Array([ 1.,  2.,  3., 11., 12., 13.], dtype=float32)
    """
    return (u[:, None, :] + v[None, :, :]).reshape(u.shape[0] * v.shape[0], u.shape[1])


def _pair_sums_forward(u: Array, v: Array) -> tuple[Array, tuple[int, int]]:
    return pair_sums(u, v), (u.shape[0], v.shape[0])


def _pair_sums_backward(shapes: tuple[int, int], g: Array) -> tuple[Array, Array]:
    b, m = shapes
    du = g.reshape(b, m, -1).sum(axis=1)
    dv = (jnp.ones((b,), g.dtype) @ g.reshape(b, -1)).reshape(m, -1)
    return du, dv


pair_sums.defvjp(_pair_sums_forward, _pair_sums_backward)


PAIR_HEAD_CHUNK = 1 << 22
"""Pair activations (``rows * m * H`` elements, 16 MiB in float32) one forward chunk holds."""


@jax.custom_vjp
def relu_pair_head(u: Array, v: Array, w: Array, bias: Array) -> Array:
    r"""``[b, H], [m, H], [H], [] -> [b, m]``: the one-hidden-layer ReLU pair head.

    .. math::
        s_{ij} = \sum_k w_k \, \mathrm{relu}(u_{ik} + v_{jk}) + \text{bias}

    Equal to ``relu(pair_sums(u, v)) @ w + bias`` in value and gradient. The forward pass
    scores chunks of rows with at most :data:`PAIR_HEAD_CHUNK` pair activations each (one
    elementwise pass and one matrix-vector product per chunk, both multi-threaded by XLA),
    and keeps only ``u, v, w`` for the backward pass. With ``M_ijk = 1[u_ik + v_jk > 0]``
    the backward pass recomputes one ``[m, H]`` row of masks at a time, accumulates

    .. math::
        D^u_{ik} = \sum_j g_{ij} M_{ijk}, \qquad D^v_{jk} = \sum_i g_{ij} M_{ijk}

    and returns ``du = w * D^u``, ``dv = w * D^v`` and, since
    ``relu(u_ik + v_jk) = (u_ik + v_jk) M_ijk``,

    .. math::
        \partial w_k = \sum_{ij} g_{ij}\, \mathrm{relu}(u_{ik} + v_{jk})
                     = \sum_i u_{ik} D^u_{ik} + \sum_j v_{jk} D^v_{jk},

    so no ``[b * m, H]`` array is kept between the passes and the backward makes one
    elementwise pass over the pairs instead of two. Sums run in float32 whatever the input
    dtype.

    Example:
      >>> u, v = jnp.array([[1.0, -2.0]]), jnp.array([[0.5, 3.0], [-2.0, 1.0]])
      >>> relu_pair_head(u, v, jnp.array([1.0, 2.0]), jnp.array(0.5))
      Array([[4.  , 0.5]], dtype=float32)
    """
    b, width = u.shape
    m = v.shape[0]

    def score(rows: Array) -> Array:  # [r, H] -> [r, m]
        pairs = jax.nn.relu(rows[:, None, :] + v[None, :, :]).reshape(-1, width)
        return (pairs @ w).reshape(rows.shape[0], m)

    rows = max(1, min(b, PAIR_HEAD_CHUNK // max(1, m * width)))
    if rows == b:
        return score(u) + bias
    chunks = -(-b // rows)
    padded = jnp.pad(u, ((0, chunks * rows - b), (0, 0))).reshape(chunks, rows, width)
    return jax.lax.map(score, padded).reshape(chunks * rows, m)[:b] + bias


def _relu_pair_head_forward(
    u: Array, v: Array, w: Array, bias: Array
) -> tuple[Array, tuple[Array, Array, Array]]:
    return relu_pair_head(u, v, w, bias), (u, v, w)


def _relu_pair_head_backward(
    residuals: tuple[Array, Array, Array], g: Array
) -> tuple[Array, Array, Array, Array]:
    u, v, w = residuals
    g32 = g.astype(jnp.float32)

    def row(dv_sum: Array, inputs: tuple[Array, Array]) -> tuple[Array, Array]:
        u_i, g_i = inputs  # [H], [m]
        masked = jnp.where(u_i[None, :] + v > 0, g_i[:, None], 0.0)  # g_ij M_ijk, [m, H]
        return dv_sum + masked, jnp.sum(masked, axis=0)

    dv_sum, du_sum = jax.lax.scan(row, jnp.zeros(v.shape, jnp.float32), (u, g32))
    dw = jnp.sum(u * du_sum, axis=0) + jnp.sum(v * dv_sum, axis=0)
    return (
        (du_sum * w[None, :]).astype(u.dtype),
        (dv_sum * w[None, :]).astype(v.dtype),
        dw.astype(w.dtype),
        jnp.sum(g32).astype(g.dtype),
    )


relu_pair_head.defvjp(_relu_pair_head_forward, _relu_pair_head_backward)
