"""Linear layer on packed low-bit weights."""

from __future__ import annotations

from typing import Literal

import numpy as np

from qtoolkit._array import describe
from qtoolkit._typing import ArrayLike, NDArray
from qtoolkit.bitops import (
    PackedBits,
    lowbit_matmul,
    pack_bits,
    pack_ternary_bits,
    ternary_gemm,
    xnor_gemm,
)
from qtoolkit.rounding import QuantizedArray, Quantizer

from ._activations import fake_quantize, ternary_codes
from ._layer import LayerSize, _bn_factors, _check_finite, _check_input, _size
from ._weights import (
    QuantizedWeights,
    _check_activations,
    _check_bias,
    _check_float_weight,
    _check_group_size,
    _check_n_threads,
    _check_weights_mode,
    from_quantized_array,
    quantize_float,
)


def _mode_name(kind, bits):
    return bits if kind == "uniform" else kind


def _check_quantizer_kind(q, weights):
    book = None if q.codebook is None else np.asarray(q.codebook, dtype=np.float64).ravel()
    if book is None:
        got = q.bits
    elif np.array_equal(book, [-1.0, 1.0]):
        got = "binary"
    elif np.array_equal(book, [-1.0, 0.0, 1.0]):
        got = "ternary"
    else:
        got = "codebook"
    if got != weights:
        raise ValueError(f"quantizer produced {got!r} weights but weights={weights!r}")


def _bit_product(planes, acts_rows, activations, n_threads):
    """Exact integer product (M, N) of quantized activations and binary/ternary weight planes.

    Returns ``(acc, act_scale)`` where ``act_scale`` is None (binary) or (M,).
    """
    if activations == "binary":
        xb = pack_bits(acts_rows, n_threads=n_threads)
        if isinstance(planes, PackedBits):
            return xnor_gemm(xb, planes, n_threads=n_threads), None
        return ternary_gemm(planes, xb, n_threads=n_threads).T, None
    t, beta = ternary_codes(acts_rows)
    xt = pack_ternary_bits(t, n_threads=n_threads)
    return ternary_gemm(xt, planes, n_threads=n_threads), beta


class Linear:
    r"""A fully connected layer ``y = x W^T + b`` with low-bit weights and activations.

    Build one with :meth:`from_float` (quantize a float weight) or directly
    from codes: ``Linear(q, bias)`` with ``q`` a
    :class:`qtoolkit.rounding.QuantizedArray` (the output of
    :func:`qtoolkit.rounding.encode`, or of ``rounding.get(...).encode``). A
    real array as ``weight`` makes a float32 layer (what :meth:`dequantized`
    returns).

    Parameters
    ----------
    weight : QuantizedArray or array_like, shape (out_features, in_features)
        Binary codes (codebook [-1, 1]), ternary codes (codebook [-1, 0, 1]),
        uniform k-bit codes (k in 2, 3, 4, 8, with zero points and groups of
        the last axis), or indices into any codebook of at most 16 entries
        (k-means weight sharing; the kernel computes with the codebook rounded
        to int8 steps, see :func:`qtoolkit.bitops.pack_codebook`), each with
        one scale per output row or per (row, group); or a real array for a
        float layer.
    bias : array_like, shape (out_features,), optional
        Added to the output.
    activations : {None, "binary", "ternary", 8}, default None
        How the input is quantized at run time: None keeps it float; "binary"
        takes sign(x) (XNOR-Net, BNN); "ternary" takes
        :math:`\mathrm{sign}(x)\,[|x| > 0.7\,\overline{|x|}]` per row with the
        mean of the kept :math:`|x|` as the row's scale (TWN's rule); 8 rounds
        each row to int8 with :math:`s = \max|x| / 127` (dynamic, per token).
    n_threads : int, optional
        Threads of the kernels; None chooses from the work size.

    Attributes
    ----------
    in_features, out_features : int
        The weight's shape.
    weights : {"binary", "ternary", 2, 3, 4, 8, "codebook", "float"}
        The weight mode.
    activations : {None, "binary", "ternary", 8}
        The activation mode.
    group_size : int or None
        Block length of the per-group weight scales (None: one per row).
    bias : ndarray of float32 or None
        The bias.

    Raises
    ------
    TypeError
        If ``weight`` is neither a QuantizedArray nor a real array.
    ValueError
        If the codes are not 2-D, their scales are not per row or per group,
        a codebook has more than 16 entries, the weight mode cannot run with
        the activation mode (k-bit weights need ``activations`` None or 8), or
        ``bias`` has the wrong shape.

    See Also
    --------
    Conv2d : The convolution.
    qtoolkit.bitops.xnor_gemm : The binary x binary kernel.
    qtoolkit.bitops.lowbit_matmul : The k-bit x int8 kernel.

    Notes
    -----
    With integer weight codes :math:`q` (binary :math:`\pm 1`, ternary
    :math:`\{-1, 0, 1\}`, k-bit :math:`q - z`) and scales :math:`\alpha`, the
    layer computes

    .. math::

        y_{in} = s_i \sum_g \alpha_{ng} \sum_{k \in g} a_{ik}\, q_{nk} + b_n,

    with the activation codes :math:`a` and row scales :math:`s` of the
    activation mode (:math:`a = x`, :math:`s = 1` for float activations). The
    inner sums are exact integers: xnor-popcount for binary x binary, sign and
    non-zero bit planes for ternary, int8 dot products for 8-bit activations.
    Regimes: XNOR-Net [1]_ (binary weights and activations, per-filter
    :math:`\alpha = \overline{|w|}`), BinaryConnect [2]_ and TWN [3]_ (binary
    or ternary weights, real or int8 activations), BitNet b1.58 [4]_ (absmean
    ternary weights, per-token int8 activations), and k-bit weights with int8
    activations (GPTQ / AWQ style groups). For float activations the weight is
    dequantized on each call and multiplied with BLAS (no integer kernel
    applies).

    References
    ----------
    .. [1] M. Rastegari, V. Ordonez, J. Redmon, A. Farhadi, "XNOR-Net:
       ImageNet Classification Using Binary Convolutional Neural Networks",
       ECCV 2016.
    .. [2] M. Courbariaux, Y. Bengio, J.-P. David, "BinaryConnect: Training
       Deep Neural Networks with binary weights during propagations", NIPS 2015.
    .. [3] F. Li, B. Zhang, B. Liu, "Ternary Weight Networks", arXiv:1605.04711.
    .. [4] S. Ma et al., "The Era of 1-bit LLMs: All Large Language Models are
       in 1.58 Bits", arXiv:2402.17764, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.nn import Linear
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((3, 256)).astype(np.float32)
    >>> x = rng.standard_normal((2, 256)).astype(np.float32)
    >>> layer = Linear.from_float(w, weights="binary", activations="binary")
    >>> layer.forward(x).shape
    (2, 3)
    >>> bool(np.allclose(layer.forward(x), layer.dequantized().forward(x), atol=1e-4))
    True
    """

    def __init__(
        self,
        weight: QuantizedArray | ArrayLike,
        bias: ArrayLike | None = None,
        *,
        activations: Literal["binary", "ternary", 8] | None = None,
        n_threads: int | None = None,
    ) -> None:
        self.activations = _check_activations(activations)
        self.n_threads = _check_n_threads(n_threads)
        if isinstance(weight, QuantizedArray):
            kind, bits, codes, scales, zp = from_quantized_array(weight, 2, "weight")
            group_size = weight.group_size
            self._init_quantized(kind, bits, codes, scales, zp, group_size)
        else:
            self._w = None
            self._float = _check_float_weight(
                weight, 2, expected="a QuantizedArray or a real array"
            )
            self.weights = "float"
            self.group_size = None
            self.out_features, self.in_features = self._float.shape
        self.bias = _check_bias(bias, self.out_features)

    def _init_quantized(self, kind, bits, codes, scales, zp, group_size):
        self._float = None
        self._w = QuantizedWeights(
            kind, bits, codes, scales, zp, group_size, self.activations, n_threads=self.n_threads
        )
        self.weights = _mode_name(kind, bits)
        self.group_size = group_size
        self.out_features, self.in_features = codes.shape

    @classmethod
    def from_float(
        cls,
        weight: ArrayLike,
        bias: ArrayLike | None = None,
        *,
        weights: Literal["binary", "ternary", 2, 3, 4, 8],
        activations: Literal["binary", "ternary", 8] | None = None,
        group_size: int | None = None,
        quantizer: Quantizer | None = None,
        n_threads: int | None = None,
    ) -> Linear:
        r"""Quantize a float weight and build the layer.

        Parameters
        ----------
        weight : array_like, shape (out_features, in_features)
            Real weight, as in PyTorch's ``nn.Linear``.
        bias : array_like, shape (out_features,), optional
            Bias.
        weights : {"binary", "ternary", 2, 3, 4, 8}
            Weight mode. "binary": :math:`\alpha\,\mathrm{sign}(w)` with
            :math:`\alpha = \overline{|w|}` per row (XNOR-Net). "ternary":
            absmean (BitNet b1.58), :math:`\gamma = \overline{|w|}`,
            :math:`t = \mathrm{clip}(\mathrm{round}(w / \gamma), -1, 1)`.
            k bits: symmetric uniform codes, :math:`s = \max|w| /
            (2^{k-1} - 1)` (:func:`qtoolkit.rounding.encode`).
        activations : {None, "binary", "ternary", 8}, default None
            Activation mode (see :class:`Linear`).
        group_size : int, optional
            One weight scale per row and block of this many inputs (a
            multiple of 32 that divides ``in_features``); not with binary or
            ternary activations.
        quantizer : qtoolkit.rounding.Quantizer, optional
            Quantize with this instead of the default rule, e.g.
            ``rounding.get("ternary", method="optimal", axis=0)``; its
            ``encode`` must give codes of the ``weights`` mode, with one
            scale per row (or per group).
        n_threads : int, optional
            Threads of the kernels.

        Returns
        -------
        layer : Linear
            The quantized layer.

        Raises
        ------
        TypeError
            If ``weight`` is not a real array or ``quantizer`` is not a
            Quantizer.
        ValueError
            If ``weights``, ``activations`` or ``group_size`` is not allowed,
            ``weight`` is not 2-D or holds NaN/Inf, or ``quantizer`` gives
            codes of another mode.
        """
        weights = _check_weights_mode(weights)
        activations = _check_activations(activations)
        w = _check_float_weight(weight, 2)
        group_size = _check_group_size(group_size, w.shape[1], weights)
        if quantizer is not None:
            if not isinstance(quantizer, Quantizer):
                raise TypeError(
                    f"quantizer must be a qtoolkit.rounding.Quantizer, got {describe(quantizer)}"
                )
            q = quantizer.encode(w)
            _check_quantizer_kind(q, weights)
            return cls(q, bias, activations=activations, n_threads=n_threads)
        self = cls.__new__(cls)
        self.activations = activations
        self.n_threads = _check_n_threads(n_threads)
        kind, bits, codes, scales, zp = quantize_float(w, weights, group_size)
        self._init_quantized(kind, bits, codes, scales, zp, group_size)
        self.bias = _check_bias(bias, self.out_features)
        return self

    def forward(self, x: ArrayLike) -> NDArray[np.float32]:
        """Apply the layer.

        Parameters
        ----------
        x : array_like, shape (batch, in_features)
            Real input (converted to float32).

        Returns
        -------
        y : ndarray of float32, shape (batch, out_features)
            The output.

        Raises
        ------
        TypeError
            If ``x`` is not a real array.
        ValueError
            If ``x`` is not 2-D, has the wrong number of features or holds
            NaN/Inf.
        """
        x = _check_input(x, 2, "(batch, in_features)")
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"x has {x.shape[1]} features but the layer has in_features={self.in_features}"
            )
        if self.activations != "binary":  # pack_bits itself rejects NaN; +-Inf have a sign
            _check_finite(x)
        w = self._w
        if w is None:
            y = fake_quantize(x, self.activations) @ self._float.T
        elif self.activations is None:
            y = x @ w.dequantize().T
        elif self.activations == 8:
            y = np.asarray(lowbit_matmul(x, w.lowbit, n_threads=self.n_threads))
        else:
            acc, beta = _bit_product(w.planes, x, self.activations, self.n_threads)
            # |acc| < 2**24, so float32(acc) * alpha is the exactly rounded product
            y = np.multiply(acc, w.scales[:, 0], dtype=np.float32, casting="unsafe")
            if beta is not None:
                y *= beta[:, None]
        y = np.asarray(y, dtype=np.float32)
        if self.bias is not None:
            y += self.bias
        return y

    __call__ = forward

    def dequantized(self) -> Linear:
        """The float32 layer this layer computes: same activation mode, weight dequantized.

        Returns
        -------
        layer : Linear
            A float layer (``weights == "float"``) with the weight the codes
            and scales stand for, the same bias and activation mode; its
            ``forward`` is the float reference of this layer's ``forward``.
        """
        weight = self._float if self._w is None else self._w.dequantize()
        return Linear(weight, self.bias, activations=self.activations, n_threads=self.n_threads)

    @property
    def weight(self) -> NDArray[np.float32]:
        """The float32 weight (out_features, in_features) the layer computes with."""
        return self._float.copy() if self._w is None else self._w.dequantize()

    @property
    def nbytes(self) -> int:
        """Bytes held by the weight (packed codes, scales, zero points) and the bias."""
        return self.size_report().nbytes

    def size_report(self) -> LayerSize:
        """Storage of the layer.

        Returns
        -------
        size : LayerSize
            Bytes of the weight and the bias, and bits per weight.
        """
        held = self._float.nbytes if self._w is None else self._w.nbytes
        return _size(held, self.bias, self.in_features * self.out_features)

    def fold_batch_norm(
        self,
        mean: ArrayLike,
        var: ArrayLike,
        gamma: ArrayLike | None = None,
        beta: ArrayLike | None = None,
        eps: float = 1e-5,
    ) -> Linear:
        r"""Fold a following batch normalisation into the scales and the bias.

        Parameters
        ----------
        mean, var : array_like, shape (out_features,)
            Running statistics of the batch normalisation.
        gamma, beta : array_like, shape (out_features,), optional
            Its affine parameters (default 1 and 0).
        eps : float, default 1e-5
            Added to ``var``.

        Returns
        -------
        layer : Linear
            The layer computing ``BN(self.forward(x))``, with the same codes.

        Raises
        ------
        TypeError
            If a statistic is not a real array or ``mean``/``var`` is missing.
        ValueError
            If a statistic has the wrong shape or holds NaN/Inf, or
            ``var + eps <= 0``.

        Notes
        -----
        With :math:`f = \gamma / \sqrt{\sigma^2 + \epsilon}`,
        :math:`\mathrm{BN}(\alpha_n\, a \cdot q_n + b_n) = (f_n \alpha_n)\,
        a \cdot q_n + f_n (b_n - \mu_n) + \beta_n`: each output row's scales
        are multiplied by :math:`f_n` (which may be negative) and the integer
        codes stay as they are, so a binary layer stays binary.
        """
        factor, shift = _bn_factors(self.out_features, mean, var, gamma, beta, eps)
        bias = shift if self.bias is None else self.bias * factor + shift
        new = Linear.__new__(Linear)
        new.activations, new.n_threads = self.activations, self.n_threads
        new.out_features, new.in_features = self.out_features, self.in_features
        new.weights, new.group_size = self.weights, self.group_size
        if self._w is None:
            new._w, new._float = None, (self._float * factor[:, None]).astype(np.float32)
        else:
            new._w, new._float = self._w.scaled_rows(factor, self.n_threads), None
        new.bias = bias.astype(np.float32)
        return new

    def __repr__(self) -> str:
        return (
            f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
            f"weights={self.weights!r}, activations={self.activations!r}"
            + (f", group_size={self.group_size}" if self.group_size else "")
            + ")"
        )
