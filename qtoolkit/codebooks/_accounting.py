"""Compression accounting: bits per weight with codebook overhead, entropy-coded size."""

from __future__ import annotations

import heapq
import math

import numpy as np

from .._typing import ArrayLike, NDArray
from .._validation import check_int, describe, renamed_parameters

__all__ = [
    "bits_per_weight",
    "deep_compression_ratio",
    "entropy_bits",
    "entropy_coded_bits",
    "huffman_code_lengths",
    "pq_compression_ratio",
    "rq_compression_ratio",
]

MAX_SYMBOLS = 1 << 24  # largest alphabet the entropy helpers tabulate


def _index_bits(k):
    return math.ceil(math.log2(k)) if k > 1 else 0


def _check_shape(shape):
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 2
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape)
    ):
        raise ValueError(f"shape must be a pair of positive integers (m, n), got {shape!r}")
    return int(shape[0]), int(shape[1])


@renamed_parameters({"bits": "codeword_bits"})
def bits_per_weight(n_weights: int, n_clusters: int, codeword_bits: int = 32) -> float:
    r"""Storage per weight of scalar weight sharing, codebook included.

    Parameters
    ----------
    n_weights : int
        Number of weights ``n`` sharing the codebook.
    n_clusters : int
        Codebook size ``k``.
    codeword_bits : int, default=32
        Bits of one stored codeword ``b``.

    Returns
    -------
    bpw : float
        :math:`\lceil \log_2 k \rceil + k b / n`.

    Raises
    ------
    ValueError
        If an argument is not a positive integer.

    See Also
    --------
    deep_compression_ratio : the same count as a ratio to ``b`` bits per weight.

    Notes
    -----
    Indices take :math:`\lceil \log_2 k\rceil` bits (:math:`\log_2 k` for a
    power of two, as in Deep Compression); the codebook adds :math:`k b`
    bits shared by the :math:`n` weights.

    References
    ----------
    .. [1] S. Han, H. Mao and W. J. Dally, "Deep Compression", ICLR 2016.

    Examples
    --------
    >>> from qtoolkit.codebooks import bits_per_weight
    >>> bits_per_weight(1024, 16)
    4.5
    """
    n = check_int(n_weights, "n_weights", low=1)
    k = check_int(n_clusters, "n_clusters", low=1)
    b = check_int(codeword_bits, "codeword_bits", low=1)
    return _index_bits(k) + k * b / n


@renamed_parameters({"bits": "codeword_bits"})
def deep_compression_ratio(n_weights: int, n_clusters: int, codeword_bits: int = 32) -> float:
    r"""Compression ratio of weight sharing (Han et al.): :math:`nb / (n \log_2 k + kb)`.

    Parameters
    ----------
    n_weights : int
        Number of weights ``n``.
    n_clusters : int
        Codebook size ``k``.
    codeword_bits : int, default=32
        Bits of an uncompressed weight and of a codeword ``b``.

    Returns
    -------
    ratio : float
        :math:`r = \frac{n b}{n \lceil\log_2 k\rceil + k b}`.

    Raises
    ------
    ValueError
        If an argument is not a positive integer.

    See Also
    --------
    bits_per_weight, entropy_coded_bits

    Notes
    -----
    Deep Compression's example: a 4 x 4 matrix shared by 4 codewords of 32
    bits stores :math:`16 \cdot 2 + 4 \cdot 32` bits instead of
    :math:`16 \cdot 32`, a ratio of 3.2.

    References
    ----------
    .. [1] S. Han, H. Mao and W. J. Dally, "Deep Compression", ICLR 2016.

    Examples
    --------
    >>> from qtoolkit.codebooks import deep_compression_ratio
    >>> deep_compression_ratio(16, 4)
    3.2
    """
    n = check_int(n_weights, "n_weights", low=1)
    k = check_int(n_clusters, "n_clusters", low=1)
    b = check_int(codeword_bits, "codeword_bits", low=1)
    return n * b / (n * _index_bits(k) + k * b)


@renamed_parameters({"bits": "codeword_bits"})
def pq_compression_ratio(
    shape: tuple[int, int], n_subspaces: int, n_clusters: int, codeword_bits: int = 32
) -> float:
    r"""Compression ratio of product quantization of an ``m x n`` matrix (Gong et al.).

    Parameters
    ----------
    shape : tuple of int (m, n)
        The weight matrix; the ``n`` columns are split into ``s`` segments
        and the ``m`` rows of each segment are clustered.
    n_subspaces : int
        Number of segments ``s`` (must divide ``n``).
    n_clusters : int
        Codewords ``k`` per segment.
    codeword_bits : int, default=32
        Bits of an uncompressed weight and of a codeword entry.

    Returns
    -------
    ratio : float
        :math:`\frac{b m n}{b k n + \lceil\log_2 k\rceil m s}`.

    Raises
    ------
    ValueError
        If ``shape`` is not a pair of positive integers or ``s`` does not divide ``n``.

    See Also
    --------
    rq_compression_ratio, ProductQuantizer

    Notes
    -----
    Each of the ``s`` codebooks holds ``k`` codewords of ``n / s`` entries
    (``b k n`` bits in all) and each row stores ``s`` indices.

    References
    ----------
    .. [1] Y. Gong, L. Liu, M. Yang and L. Bourdev, "Compressing deep
       convolutional networks using vector quantization", arXiv:1412.6115, 2014.

    Examples
    --------
    >>> from qtoolkit.codebooks import pq_compression_ratio
    >>> round(pq_compression_ratio((4096, 9216), 2304, 16), 2)
    28.44
    """
    m, n = _check_shape(shape)
    s = check_int(n_subspaces, "n_subspaces", low=1)
    k = check_int(n_clusters, "n_clusters", low=1)
    b = check_int(codeword_bits, "codeword_bits", low=1)
    if n % s:
        raise ValueError(f"n_subspaces={s} must divide the number of columns n={n}")
    return b * m * n / (b * k * n + _index_bits(k) * m * s)


@renamed_parameters({"bits": "codeword_bits"})
def rq_compression_ratio(
    shape: tuple[int, int], n_stages: int, n_clusters: int, codeword_bits: int = 32
) -> float:
    r"""Compression ratio of residual quantization of the rows of an ``m x n`` matrix.

    Parameters
    ----------
    shape : tuple of int (m, n)
        The weight matrix; its ``m`` rows (vectors of length ``n``) are coded.
    n_stages : int
        Number of stages ``t``.
    n_clusters : int
        Codewords ``k`` per stage.
    codeword_bits : int, default=32
        Bits of an uncompressed weight and of a codeword entry.

    Returns
    -------
    ratio : float
        :math:`\frac{b m n}{b t k n + t \lceil\log_2 k\rceil m}`.

    Raises
    ------
    ValueError
        If ``shape`` is not a pair of positive integers.

    See Also
    --------
    pq_compression_ratio, ResidualQuantizer

    Notes
    -----
    ``t`` codebooks of ``k`` codewords of length ``n``; each row stores ``t`` indices.

    References
    ----------
    .. [1] Y. Gong, L. Liu, M. Yang and L. Bourdev, "Compressing deep
       convolutional networks using vector quantization", arXiv:1412.6115, 2014.

    Examples
    --------
    >>> from qtoolkit.codebooks import rq_compression_ratio
    >>> round(rq_compression_ratio((1000, 8), 2, 16), 3)
    15.81
    """
    m, n = _check_shape(shape)
    t = check_int(n_stages, "n_stages", low=1)
    k = check_int(n_clusters, "n_clusters", low=1)
    b = check_int(codeword_bits, "codeword_bits", low=1)
    return b * m * n / (b * t * k * n + t * _index_bits(k) * m)


def _counts(codes, n_clusters, sample_weight):
    c = np.asarray(codes)
    if not np.issubdtype(c.dtype, np.integer):
        raise TypeError(f"codes must be an array of integer codes, got {describe(codes)}")
    if c.size == 0:
        raise ValueError("codes is empty; at least one code is required")
    if c.min() < 0:
        raise ValueError(f"codes must be non-negative, got a minimum of {c.min()}")
    k = int(c.max()) + 1 if n_clusters is None else check_int(n_clusters, "n_clusters", low=1)
    if k > MAX_SYMBOLS:
        raise ValueError(
            f"codes need a table of {k} counts, more than {MAX_SYMBOLS} (2**24) symbols; "
            "codes index a codebook and must be below 2**24"
        )
    if c.max() >= k:
        raise ValueError(f"codes must lie in [0, {k - 1}], got a maximum of {c.max()}")
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != c.shape:
            raise ValueError(f"sample_weight must have the shape of codes {c.shape}, got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("sample_weight must be finite and non-negative")
        w = w.ravel()
    return np.bincount(c.ravel(), weights=w, minlength=k).astype(np.float64)


def entropy_bits(
    codes: ArrayLike, n_clusters: int | None = None, sample_weight: ArrayLike | None = None
) -> float:
    r"""Empirical entropy of the codes in bits per symbol.

    Parameters
    ----------
    codes : array_like of int
        Codes in ``[0, n_clusters)``, any shape.
    n_clusters : int, optional
        Alphabet size (default: ``codes.max() + 1``).
    sample_weight : array_like, optional
        Weight of every code (the shape of ``codes``).

    Returns
    -------
    h : float
        :math:`H = -\sum_j p_j \log_2 p_j` with :math:`p_j` the (weighted) frequencies.

    Raises
    ------
    ValueError
        If ``codes`` is empty or out of range.
    TypeError
        If ``codes`` is not an integer array.

    See Also
    --------
    huffman_code_lengths, entropy_coded_bits

    Notes
    -----
    The entropy is the shortest average length of any lossless code of the
    symbols (Shannon); Huffman coding is within one bit of it.

    References
    ----------
    .. [1] C. E. Shannon, "A mathematical theory of communication", 1948.

    Examples
    --------
    >>> from qtoolkit.codebooks import entropy_bits
    >>> entropy_bits([0, 0, 1, 2])
    1.5
    """
    counts = _counts(codes, n_clusters, sample_weight)
    p = counts[counts > 0] / counts.sum()
    return float(max(0.0, -np.sum(p * np.log2(p))))


def huffman_code_lengths(counts: ArrayLike) -> NDArray[np.int64]:
    r"""Code lengths of a Huffman code for symbols with the given counts.

    Parameters
    ----------
    counts : array_like of shape (k,)
        Non-negative symbol counts (or probabilities).

    Returns
    -------
    lengths : ndarray of int64, shape (k,)
        Length in bits of each symbol's codeword; 0 for symbols of zero
        count. A single used symbol gets 1 bit.

    Raises
    ------
    ValueError
        If ``counts`` is not a non-empty 1-D array of finite, non-negative
        values with a positive sum.

    See Also
    --------
    entropy_bits, entropy_coded_bits

    Notes
    -----
    Repeatedly merge the two least frequent nodes; a symbol's length is its
    depth. The average length :math:`L = \sum_j p_j l_j` satisfies
    :math:`H \le L < H + 1`, and the lengths satisfy Kraft's equality
    :math:`\sum_j 2^{-l_j} = 1`. Ties are broken by the lower symbol index.

    References
    ----------
    .. [1] D. A. Huffman, "A method for the construction of
       minimum-redundancy codes", Proc. IRE 40(9), 1952.

    Examples
    --------
    >>> from qtoolkit.codebooks import huffman_code_lengths
    >>> huffman_code_lengths([4, 2, 1, 1])
    array([1, 2, 3, 3])
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or not np.all(np.isfinite(c)) or np.any(c < 0) or not c.sum() > 0:
        raise ValueError(
            "counts must be a non-empty 1-D array of finite, non-negative values "
            f"with a positive sum, got {describe(counts)}"
        )
    lengths = np.zeros(c.size, dtype=np.int64)
    used = np.flatnonzero(c > 0)
    if used.size == 1:
        lengths[used] = 1
        return lengths
    heap = [(float(c[j]), int(j), [int(j)]) for j in used]
    heapq.heapify(heap)
    while len(heap) > 1:
        c1, t1, s1 = heapq.heappop(heap)
        c2, t2, s2 = heapq.heappop(heap)
        lengths[s1] += 1
        lengths[s2] += 1
        heapq.heappush(heap, (c1 + c2, min(t1, t2), s1 + s2))
    return lengths


@renamed_parameters({"bits": "codeword_bits"})
def entropy_coded_bits(
    codes: ArrayLike, n_clusters: int | None = None, codeword_bits: int = 32
) -> float:
    r"""Size in bits of Huffman-coded codes plus the codebook.

    Parameters
    ----------
    codes : array_like of int
        Codes in ``[0, n_clusters)``, any shape.
    n_clusters : int, optional
        Codebook size (default: ``codes.max() + 1``).
    codeword_bits : int, default=32
        Bits per stored codeword.

    Returns
    -------
    total_bits : float
        :math:`\sum_i l_{c_i} + k b`.

    Raises
    ------
    ValueError
        If ``codes`` is empty or out of range.

    See Also
    --------
    huffman_code_lengths, deep_compression_ratio

    Notes
    -----
    Deep Compression's last stage: Huffman coding of the shared-weight
    indices. The code table itself (the lengths) is not counted.

    References
    ----------
    .. [1] S. Han, H. Mao and W. J. Dally, "Deep Compression", ICLR 2016.

    Examples
    --------
    >>> from qtoolkit.codebooks import entropy_coded_bits
    >>> entropy_coded_bits([0, 0, 0, 0, 1, 1, 2, 3], codeword_bits=8)
    46.0
    """
    b = check_int(codeword_bits, "codeword_bits", low=1)
    counts = _counts(codes, n_clusters, None)
    lengths = huffman_code_lengths(counts)
    return float(np.dot(counts, lengths) + counts.size * b)
