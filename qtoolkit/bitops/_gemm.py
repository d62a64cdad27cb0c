"""Binary matrix products: :func:`xnor_gemm` on packed bits, :func:`binary_matmul` on reals."""

from __future__ import annotations

from typing import Literal

import numpy as np

from .._typing import ArrayLike, NDArray
from .._validation import describe, renamed_parameters, warn_renamed
from . import _bitops
from ._buffers import _aligned_empty
from ._dispatch import _level_id, _resolve_threads
from ._packing import PackedBits, _pack_bits

__all__ = ["MAX_BITS", "binary_matmul", "xnor_gemm"]

#: The largest K (bits per row) :func:`xnor_gemm` accepts: |C[i, j]| <= K must fit int32.
MAX_BITS = 2**31 - 1

# Below this many binary MACs one thread is faster than waking a second one.
_THREAD_MIN_MACS = 1 << 26


def xnor_gemm(
    a: PackedBits,
    b: PackedBits,
    out: NDArray[np.int32] | None = None,
    n_threads: int | None = None,
) -> NDArray[np.int32]:
    r"""Product of two +-1 matrices stored as packed bits (xnor-popcount GEMM).

    .. math::

        C_{ij} = \sum_{k<K} a_{ik} b_{jk} = K - 2\,\mathrm{popcount}(a_i \oplus b_j)

    with :math:`a_{ik}, b_{jk} \in \{-1, +1\}` (bit 1 is +1) and the true
    number of bits ``K`` (padding never counts).

    Parameters
    ----------
    a : PackedBits, shape (M, K)
        Left operand, e.g. ``pack_bits(A)`` for real ``A`` of shape (M, K).
    b : PackedBits, shape (N, K)
        Right operand with the same ``K``: rows of ``b`` are the columns of the
        product, as in ``A @ B.T`` (the weight layout of a linear layer).
    out : ndarray of int32, shape (M, N), optional
        C-contiguous, writeable array to store the result in.
    n_threads : int, optional
        Number of OpenMP threads (rows of C are split between them). The
        result does not depend on it. By default all usable CPUs for products
        of at least 2**26 binary MACs and one thread below.

    Returns
    -------
    C : ndarray of int32, shape (M, N)
        ``out`` if given.

    Raises
    ------
    TypeError
        If ``a`` or ``b`` is not a PackedBits, or ``out`` is not an int32 array.
    ValueError
        If ``a`` or ``b`` is not 2-D, their ``K`` differ, ``K > MAX_BITS``,
        ``out`` has the wrong shape or is not C-contiguous and writeable, or
        ``n_threads`` is outside ``[1, 4096]`` (larger counts are capped at
        the usable CPUs and the rows).

    See Also
    --------
    pack_bits, binary_matmul, show_runtime

    Notes
    -----
    XNOR-Net (Rastegari et al., 2016) computes binary dot products as
    xnor + popcount; the equivalent form used here, ``K - 2 popcount(xor)``,
    needs no mask for the padding bits, which are zero in both operands. The
    kernel is chosen at import from the CPU's features (see
    :func:`qtoolkit.show_runtime`): AVX-512 VPOPCNTDQ, AVX2 (nibble-table
    ``vpshufb`` popcount), scalar POPCNT, portable C or NEON. ``K`` is limited
    to ``MAX_BITS`` = 2**31 - 1 so that every result fits int32. The GIL is
    released while the kernel runs. Threads take chunks of rows from a shared
    queue; on a machine whose cores are busy with other processes a thread the
    OS does not schedule in time delays the whole product, so pass
    ``n_threads=1`` there.

    References
    ----------
    .. [1] M. Rastegari, V. Ordonez, J. Redmon, A. Farhadi, "XNOR-Net: ImageNet
       Classification Using Binary Convolutional Neural Networks", ECCV 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_bits, xnor_gemm
    >>> A = np.array([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])
    >>> B = np.array([[1.0, 1.0, 1.0]])
    >>> xnor_gemm(pack_bits(A), pack_bits(B))
    array([[ 1],
           [-1]], dtype=int32)
    """
    for name, p in (("a", a), ("b", b)):
        if not isinstance(p, PackedBits):
            raise TypeError(
                f"{name} must be a PackedBits (pack real or boolean arrays with "
                f"qtoolkit.bitops.pack_bits), got {describe(p)}"
            )
        if p.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {p.shape}")
    if a.n_bits != b.n_bits:
        raise ValueError(
            f"a and b must have the same number of bits K, got {a.n_bits} and {b.n_bits}"
        )
    k = a.n_bits
    if k > MAX_BITS:
        raise ValueError(f"K={k} exceeds MAX_BITS={MAX_BITS} (the int32 output range)")
    return _xnor_gemm(a, b, out, n_threads)


def _xnor_gemm(a, b, out, n_threads):
    """:func:`xnor_gemm` on validated operands (2-D ``PackedBits`` of the same ``K``)."""
    k = a.n_bits
    m, n = a.shape[0], b.shape[0]
    out = _output_buffer(out, (m, n), np.int32)
    threads = _resolve_threads(n_threads, m * n * k, _THREAD_MIN_MACS, items=m)
    _bitops.xnor_gemm(a.words, b.words, a.n_words, k, out, _level_id(), threads)
    return out


@renamed_parameters({"A": "a", "B": "b"})
def binary_matmul(
    a: ArrayLike,
    b: ArrayLike,
    scale: Literal["mean"] | None = None,
    n_threads: int | None = None,
) -> NDArray[np.int32] | NDArray[np.float32]:
    r"""Binarize two real matrices by sign and multiply them: ``sign(a) @ sign(b).T``.

    Parameters
    ----------
    a : array_like, shape (M, K)
        Real matrix (e.g. activations); rows are binarized by sign, sign(0) = +1.
    b : array_like, shape (N, K)
        Real matrix in the weight layout of a linear layer (one row per
        output); the product is taken against its rows, as in ``a @ b.T``.
    scale : {None, "mean"}, default None
        ``None`` returns the integer product of the signs. ``"mean"`` applies
        XNOR-Net scaling (the mean absolute value of each row, as
        ``rounding.binarize(scale="mean")``): row ``i`` is multiplied by
        :math:`\alpha_i = \lVert a_i \rVert_1 / K` and column ``j`` by
        :math:`\beta_j = \lVert b_j \rVert_1 / K`, in float32. ``"xnor"`` is a
        deprecated alias of ``"mean"``.
    n_threads : int, optional
        Threads for the packing and the product (see :func:`pack_bits` and
        :func:`xnor_gemm`).

    Returns
    -------
    C : ndarray, shape (M, N)
        int32 when ``scale`` is None, float32 for ``"mean"``.

    Raises
    ------
    ValueError
        If ``a`` or ``b`` is not 2-D, holds NaN, their ``K`` differ, or
        ``scale`` is unknown.
    TypeError
        If ``a`` or ``b`` is not real.

    See Also
    --------
    pack_bits, xnor_gemm

    Notes
    -----
    With scaling, :math:`C_{ij} = \alpha_i \beta_j\, \mathrm{sign}(a_i) \cdot
    \mathrm{sign}(b_j)`, the XNOR-Net approximation of :math:`a_i \cdot b_j`.

    References
    ----------
    .. [1] M. Rastegari, V. Ordonez, J. Redmon, A. Farhadi, "XNOR-Net: ImageNet
       Classification Using Binary Convolutional Neural Networks", ECCV 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import binary_matmul
    >>> a = np.array([[0.5, -1.5]])
    >>> b = np.array([[2.0, -2.0], [1.0, 1.0]])
    >>> binary_matmul(a, b)
    array([[2, 0]], dtype=int32)
    >>> binary_matmul(a, b, scale="mean")
    array([[4., 0.]], dtype=float32)
    """
    if scale == "xnor":
        warn_renamed("binary_matmul(scale='xnor')", "scale='mean'")
        scale = "mean"
    if scale not in (None, "mean"):
        raise ValueError(f"scale must be None or 'mean', got {scale!r}")
    A = np.asarray(a)
    B = np.asarray(b)
    for name, x in (("a", A), ("b", B)):
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real array, got {describe(x)}")
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"a and b must have the same number of columns K, got {A.shape[1]} and {B.shape[1]}"
        )
    if A.shape[1] > MAX_BITS:
        raise ValueError(f"K={A.shape[1]} exceeds MAX_BITS={MAX_BITS} (the int32 output range)")
    # validated once, above: the private cores of pack_bits and xnor_gemm
    c = _xnor_gemm(_pack_bits(A, -1, n_threads), _pack_bits(B, -1, n_threads), None, n_threads)
    if scale is None:
        return c
    k = A.shape[1]
    if k == 0:
        return c.astype(np.float32)
    alpha = np.abs(A).sum(axis=1, dtype=np.float64) / k
    beta = np.abs(B).sum(axis=1, dtype=np.float64) / k
    out = c.astype(np.float32)
    out *= alpha.astype(np.float32)[:, None]
    out *= beta.astype(np.float32)[None, :]
    return out


def _output_buffer(out, shape, dtype):
    """``out`` checked as a C-contiguous, writeable ``dtype`` array of ``shape``, or a new one
    (64-byte aligned)."""
    dtype = np.dtype(dtype)
    if out is None:
        return _aligned_empty(shape, dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype:
        raise TypeError(f"out must be a numpy array of {dtype.name}, got {describe(out)}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be C-contiguous and writeable")
    return out
