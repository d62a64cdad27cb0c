"""k-bit weights x int8 activations: :func:`quantize_activations`, :func:`lowbit_matmul`,
:func:`lowbit_gemm_int`."""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from .. import _dispatch as _core_dispatch
from .._array import describe
from .._typing import ArrayLike, NDArray
from .._validation import MAX_THREADS
from . import _lowbit
from ._buffers import _ALIGN_MIN_BYTES, _aligned_empty
from ._dispatch import LOWBIT, _level_id, _resolve_threads
from ._gemm import _output_buffer
from ._lowbit_weights import LowBitWeights

__all__ = ["QuantizedActivations", "lowbit_gemm_int", "lowbit_matmul", "quantize_activations"]

# Below this many MACs one thread is faster than waking a second one.
_THREAD_MIN_MACS = 1 << 24
_THREAD_MIN_VALUES = 1 << 20

# what lowbit_matmul's fast path (_lowbit.matmul_fast) needs to decide as this module does
_lowbit.set_fast_context(
    _core_dispatch._local,
    _core_dispatch._default,
    _core_dispatch._KERNEL_LEVELS,
    LOWBIT,
    LowBitWeights,
    getattr(os, "sched_getaffinity", None),
    _THREAD_MIN_VALUES,
    _THREAD_MIN_MACS,
    _ALIGN_MIN_BYTES,
    MAX_THREADS,
)


class QuantizedActivations(NamedTuple):
    """Int8 activations, one scale and zero point per row: ``x ~ scales * (codes - zero_points)``.

    Parameters
    ----------
    codes : ndarray of int8, shape (M, K)
        The codes.
    scales : ndarray of float32, shape (M,)
        Scale of each row.
    zero_points : ndarray of int32, shape (M,)
        Zero point of each row (0 for symmetric quantization).

    See Also
    --------
    quantize_activations, lowbit_gemm_int

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import quantize_activations
    >>> quantize_activations(np.array([[2.0, -1.0]])).codes
    array([[127, -64]], dtype=int8)
    """

    codes: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray


def _as_rows(x, name="x"):
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (M, K), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real array, got {describe(x)}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_symmetric(symmetric):
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric must be True or False, got {describe(symmetric)}")
    return bool(symmetric)


def _quantize(x32, lda, gs, g, asym, n_threads):
    m, k = x32.shape
    q = _aligned_empty((m, lda), np.int8)
    sums = np.empty((m, g), dtype=np.int32)
    za = np.empty(m, dtype=np.int32)
    sa = np.empty(m, dtype=np.float32)
    threads = _resolve_threads(n_threads, m * k, _THREAD_MIN_VALUES)
    bad = _lowbit.quantize_rows(x32, int(asym), q, gs, sums, za, sa, _level_id(LOWBIT), threads)
    if bad:
        raise ValueError(f"x contains NaN or Inf ({bad} values)")
    return q, sums, za, sa


def quantize_activations(
    x: ArrayLike, *, symmetric: bool = True, n_threads: int | None = None
) -> QuantizedActivations:
    r"""Quantize each row of ``x`` to int8 with its own scale (dynamic activation quantization).

    Parameters
    ----------
    x : array_like, shape (M, K)
        Real activations (converted to float32).
    symmetric : bool, default True
        Symmetric codes in [-127, 127] with zero point 0, or asymmetric codes
        in [-128, 127] covering [min(x), max(x)] (extended to include 0).
    n_threads : int, optional
        Threads (rows are split between them); by default one for small inputs.

    Returns
    -------
    QuantizedActivations
        ``codes`` (M, K) int8, ``scales`` (M,) float32, ``zero_points`` (M,) int32.

    Raises
    ------
    TypeError
        If ``x`` is not real or ``symmetric`` not a bool.
    ValueError
        If ``x`` is not 2-D or holds NaN or Inf, or ``n_threads < 1``.

    See Also
    --------
    lowbit_matmul : quantizes the same way, fused with the product.

    Notes
    -----
    In float32, symmetric: :math:`r = 127 / \max_k |x_k|`,
    :math:`q = \mathrm{round}(x\, r)`, :math:`s = \max_k |x_k| / 127`.
    Asymmetric: :math:`lo = \min(\min_k x_k, 0)`, :math:`hi = \max(\max_k x_k, 0)`,
    :math:`r = 255 / (hi - lo)`, :math:`z = -128 - \mathrm{round}(lo\, r)`,
    :math:`q = \mathrm{clip}(\mathrm{round}(x\, r) + z, -128, 127)`,
    :math:`s = (hi - lo) / 255`. Rounding is half to even. A row of zeros gets
    :math:`s = 1`, :math:`q = 0`. This is the per-token int8 quantization of
    LLM.int8() and BitNet b1.58 (absmax).

    References
    ----------
    .. [1] T. Dettmers, M. Lewis, Y. Belkada, L. Zettlemoyer, "LLM.int8(): 8-bit
       Matrix Multiplication for Transformers at Scale", NeurIPS 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import quantize_activations
    >>> qa = quantize_activations(np.array([[0.5, -1.0, 0.25]]))
    >>> qa.codes
    array([[  64, -127,   32]], dtype=int8)
    >>> qa.scales
    array([0.00787402], dtype=float32)
    """
    asym = not _check_symmetric(symmetric)
    x32 = _as_rows(x)
    m, k = x32.shape
    if k == 0:
        return QuantizedActivations(
            np.zeros((m, 0), np.int8), np.ones(m, np.float32), np.zeros(m, np.int32)
        )
    q, _, za, sa = _quantize(x32, k, k, 1, asym, n_threads)
    return QuantizedActivations(q, sa, za)


def _check_weights(w, k, name="w"):
    if not isinstance(w, LowBitWeights):
        raise TypeError(
            f"{name} must be a LowBitWeights (build one with pack_weights, pack_ternary, "
            f"pack_binary, pack_codebook or pack_quantized), got {describe(w)}"
        )
    if w.shape[1] != k:
        raise ValueError(f"x has K={k} columns but w has K={w.shape[1]} (w.shape = {w.shape})")


def _geometry(w):
    n, k = w.shape
    nsb = -(-k // 32)
    gs = w.group_size if w.group_size is not None else max(nsb * 32, 1)
    return n, k, nsb * 32, gs, w.n_groups


def _weight_args(w, n, k, gs):
    """The packed weights as the leading arguments of ``_lowbit.gemm`` / ``_lowbit.Packed``."""
    return (w._panels, w._pscale, w._pzz, w._pwsum, w._lut, n, k, w.bits, w._mul, gs // 32,
            int(w._zz_uniform))  # fmt: skip


def _c_view(w):
    """The C view of ``w`` (``_lowbit.Packed``), built once per weights object (they are
    immutable) and kept on it; ``lowbit_matmul``'s fast path reads it from there."""
    c = getattr(w, "_c_view", None)
    if c is None:
        n, k, lda, gs, _ = _geometry(w)
        c = w._c_view = _lowbit.Packed(*_weight_args(w, n, k, gs), lda, gs)
    return c


def _run(w, q, sums, za, sa, asym, out, gout, n_threads):
    n, k, _, gs, _ = _geometry(w)
    m = q.shape[0]
    threads = _resolve_threads(n_threads, m * n * k, _THREAD_MIN_MACS)
    _lowbit.gemm(
        *_weight_args(w, n, k, gs),
        q,
        sums,
        za,
        sa,
        int(asym),
        out,
        gout,
        _level_id(LOWBIT),
        threads,
    )


def lowbit_matmul(
    x: ArrayLike,
    w: LowBitWeights,
    *,
    symmetric: bool = True,
    out: NDArray[np.float32] | None = None,
    n_threads: int | None = None,
) -> NDArray[np.float32]:
    r"""Product of real activations and low-bit weights, ``x @ W.T``, on int8 arithmetic.

    Each row of ``x`` is quantized to int8 (as :func:`quantize_activations`,
    in the same pass that lays the rows out for the kernel), multiplied
    exactly in int32 with the k-bit weight codes per group, and scaled back to
    float32.

    Parameters
    ----------
    x : array_like, shape (M, K)
        Real activations (converted to float32).
    w : LowBitWeights, shape (N, K)
        Packed weights (:func:`pack_weights`, :func:`pack_ternary`,
        :func:`pack_binary`, :func:`pack_codebook`, :func:`pack_quantized`).
    symmetric : bool, default True
        Symmetric or asymmetric activation codes.
    out : ndarray of float32, shape (M, N), optional
        C-contiguous, writeable array for the result.
    n_threads : int, optional
        Threads; by default all usable CPUs for products of at least 2**24
        MACs and one below. The result does not depend on it.

    Returns
    -------
    y : ndarray of float32, shape (M, N)
        ``out`` if given.

    Raises
    ------
    TypeError
        If ``w`` is not a LowBitWeights, ``x`` not real, or ``out`` not float32.
    ValueError
        If ``x`` is not 2-D, its K differs from the weights', it holds NaN or
        Inf, ``out`` has the wrong shape or layout, or ``n_threads < 1``.

    See Also
    --------
    lowbit_gemm_int : the exact integer form.
    quantize_activations

    Notes
    -----
    .. math::

        y_{in} = s^x_i \sum_g s^w_{ng} \sum_{k \in g} (q_{ik} - z^x_i)\, v_{nk}

    with :math:`v = u - z^w` (uniform, ternary), :math:`2u - 1` (binary) or
    the int8 codebook value; the inner sums are exact int32. With one row
    (GEMV) every weight byte is read once. The kernel is chosen at import
    (:func:`qtoolkit.show_runtime`): AVX-512 VNNI ``vpdpbusd``, AVX2
    ``vpmaddubsw`` + ``vpmaddwd``, NEON ``sdot`` (``neon-dotprod``, where the
    CPU has the Armv8.2 dot product) or NEON ``vmul`` + ``vpadal``, or portable
    C. Where the CPU and the
    OS give AMX-INT8 tiles (``avx512-vnni+amx``), products of 16 rows or more
    run on them (``tdpbsud`` on 32 x 32 blocks, each weight panel unpacked to
    bytes once per block of rows), with the same exact sums and the same float
    epilogue as the VNNI kernel, so the result is bit for bit the same.

    References
    ----------
    .. [1] B. Jacob et al., "Quantization and Training of Neural Networks for
       Efficient Integer-Arithmetic-Only Inference", CVPR 2018.
    .. [2] S. Ma et al., "The Era of 1-bit LLMs", arXiv:2402.17764, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import lowbit_matmul, pack_ternary
    >>> w = pack_ternary(np.array([[1, 0, -1], [1, 1, 1]]))
    >>> lowbit_matmul(np.array([[127.0, 2.0, 3.0]]), w)
    array([[124., 132.]], dtype=float32)
    """
    # the common case in C, with no Python in between (None: take the path below)
    y = _lowbit.matmul_fast(x, w, symmetric, out, n_threads)
    if y is not None:
        return y
    asym = not _check_symmetric(symmetric)
    x32 = _as_rows(x)
    m, k = x32.shape
    _check_weights(w, k)
    n = w.shape[0]
    out = _output_buffer(out, (m, n), np.float32)
    if m == 0 or n == 0:
        return out
    if k == 0:
        out[...] = 0.0
        return out
    # quantization and product in one call: the codes live in a C work buffer
    bad = _lowbit.matmul_packed(
        _c_view(w),
        x32,
        int(asym),
        out,
        _level_id(LOWBIT),
        _resolve_threads(n_threads, m * k, _THREAD_MIN_VALUES),
        _resolve_threads(n_threads, m * n * k, _THREAD_MIN_MACS),
    )
    if bad:
        raise ValueError(f"x contains NaN or Inf ({bad} values)")
    return out


def lowbit_gemm_int(
    a: QuantizedActivations | ArrayLike, w: LowBitWeights, *, n_threads: int | None = None
) -> NDArray[np.int32]:
    r"""Exact integer low-bit product per group: the integer core of :func:`lowbit_matmul`.

    Parameters
    ----------
    a : QuantizedActivations or array_like of int8, shape (M, K)
        Activation codes (and per-row zero points; plain codes mean zero points 0).
    w : LowBitWeights, shape (N, K)
        Packed weights.
    n_threads : int, optional
        Threads; the result does not depend on it.

    Returns
    -------
    G : ndarray of int32, shape (M, N, n_groups)
        :math:`G_{ing} = \sum_{k \in g} (q_{ik} - z^x_i)\, v_{nk}`, with
        :math:`v` as in :func:`lowbit_matmul`.

    Raises
    ------
    TypeError
        If ``w`` is not a LowBitWeights or the codes are not int8.
    ValueError
        If the shapes do not match or a zero point is outside [-128, 127].

    See Also
    --------
    lowbit_matmul

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import lowbit_gemm_int, pack_weights
    >>> w = pack_weights(np.array([[1, -2, 3]]), bits=3)
    >>> lowbit_gemm_int(np.array([[1, 1, -1]], dtype=np.int8), w)
    array([[[-4]]], dtype=int32)
    """
    if isinstance(a, QuantizedActivations):
        codes, zps = np.asarray(a.codes), np.asarray(a.zero_points)
    else:
        codes, zps = np.asarray(a), None
    if codes.dtype != np.int8:
        raise TypeError(f"activation codes must be int8, got {describe(codes)}")
    if codes.ndim != 2:
        raise ValueError(f"activation codes must be 2-D (M, K), got shape {codes.shape}")
    m, k = codes.shape
    _check_weights(w, k)
    if zps is None:
        zps = np.zeros(m, dtype=np.int32)
    if zps.shape != (m,) or zps.dtype.kind not in "iu":
        raise ValueError(f"zero_points must be integers of shape ({m},), got {describe(zps)}")
    if zps.size and (zps.min() < -128 or zps.max() > 127):
        raise ValueError("activation zero points must lie in [-128, 127]")
    n, _, lda, gs, g = _geometry(w)
    gout = np.zeros((m, n, g), dtype=np.int32)
    if m == 0 or n == 0 or k == 0:
        return gout
    q = _aligned_empty((m, lda), np.int8, zero=True)
    q[:, :k] = codes
    sums = np.empty((m, g), dtype=np.int32)
    _lowbit.row_sums(q, k, gs, sums)
    za = np.ascontiguousarray(zps, dtype=np.int32)
    _run(w, q, sums, za, None, bool(np.any(za)), None, gout, n_threads)
    return gout
