"""2-D convolution on packed low-bit weights: im2col on codes or on packed bits."""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np

from qtoolkit._array import describe
from qtoolkit._typing import ArrayLike, NDArray
from qtoolkit.bitops import (
    PackedBits,
    QuantizedActivations,
    _bitops,
    lowbit_gemm_int,
    pack_ternary_bits,
    ternary_gemm,
)
from qtoolkit.bitops._buffers import _aligned_empty
from qtoolkit.bitops._dispatch import PACK, _level_id, _resolve_threads
from qtoolkit.bitops._gemm import _THREAD_MIN_MACS as _GEMM_MIN_MACS
from qtoolkit.bitops._packing import _THREAD_MIN_VALUES
from qtoolkit.rounding import QuantizedArray, Quantizer

from ._activations import fake_quantize, int8_codes, ternary_codes
from ._layer import LayerSize, _bn_factors, _check_finite, _check_input, _size
from ._linear import _check_quantizer_kind, _mode_name
from ._weights import (
    QuantizedWeights,
    _check_activations,
    _check_bias,
    _check_float_weight,
    _check_n_threads,
    _check_weights_mode,
    from_quantized_array,
    quantize_float,
)


def _pair(value, name, low):
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        if int(v) < low:
            raise ValueError(f"{name} must be >= {low}, got {value!r}")
        out.append(int(v))
    return tuple(out)


def _im2col(a, kh, kw, stride, dilation, out_hw):
    """Patches of ``a`` (N, Hp, Wp, C), already padded: (N, OH, OW, kh, kw, C)."""
    n, _, _, c = a.shape
    oh, ow = out_hw
    sh, sw = stride
    dh, dw = dilation
    out = np.empty((n, oh, ow, kh, kw, c), dtype=a.dtype)
    for i in range(kh):
        for j in range(kw):
            r, s = i * dh, j * dw
            out[:, :, :, i, j, :] = a[
                :, r : r + sh * (oh - 1) + 1 : sh, s : s + sw * (ow - 1) + 1 : sw
            ]
    return out


def _pad(a, padding, value=0):
    ph, pw = padding
    if not (ph or pw):
        return a
    n, h, w, c = a.shape
    out = np.full((n, h + 2 * ph, w + 2 * pw, c), value, dtype=a.dtype)
    out[:, ph : ph + h, pw : pw + w] = a
    return out


class Conv2d:
    r"""A 2-D convolution with low-bit weights and activations (NCHW or NHWC).

    Build one with :meth:`from_float`, or from codes: ``Conv2d(q, bias, ...)``
    with ``q`` a :class:`qtoolkit.rounding.QuantizedArray` of shape
    (out_channels, in_channels / groups, kh, kw) and one scale per output
    channel (``axis=0``) or per tensor. A real array as ``weight`` makes a
    float32 layer (what :meth:`dequantized` returns).

    Parameters
    ----------
    weight : QuantizedArray or array_like, shape (out, in / groups, kh, kw)
        Binary, ternary or uniform k-bit codes (k in 2, 3, 4, 8), or indices
        into a codebook of at most 16 entries, with their scales; or a real
        array for a float layer.
    bias : array_like, shape (out,), optional
        Added to every output position.
    stride, padding, dilation : int or pair of int, default 1, 0, 1
        As in PyTorch's ``Conv2d`` (symmetric zero padding of each side).
    groups : int, default 1
        Channel groups; ``in`` and ``out`` must be multiples of it.
    activations : {None, "binary", "ternary", 8}, default None
        Run-time quantization of the input: None keeps it float; "binary"
        takes sign(x); "ternary" and 8 take one scale per sample (TWN's rule
        :math:`\Delta = 0.7\,\overline{|x|}`, or :math:`s = \max|x|/127`).
    data_format : {"NCHW", "NHWC"}, default "NCHW"
        Layout of the input and the output.
    n_threads : int, optional
        Threads of the kernels; None chooses from the work size.

    Attributes
    ----------
    in_channels, out_channels : int
        Channel counts.
    kernel_size, stride, padding, dilation : tuple of int
        The geometry.
    groups : int
        Channel groups.
    weights : {"binary", "ternary", 2, 3, 4, 8, "codebook", "float"}
        The weight mode.
    activations : {None, "binary", "ternary", 8}
        The activation mode.
    data_format : {"NCHW", "NHWC"}
        The layout.
    bias : ndarray of float32 or None
        The bias.

    Raises
    ------
    TypeError
        If ``weight`` is neither a QuantizedArray nor a real array, or a
        geometry argument is not an int or a pair of ints.
    ValueError
        If the weight is not 4-D, its scales are not per output channel, the
        modes cannot run together, a geometry argument is out of range, or
        ``groups`` does not divide the output channels.

    See Also
    --------
    Linear : The fully connected layer.
    qtoolkit.bitops.xnor_gemm : The binary x binary kernel.

    Notes
    -----
    The convolution is a matrix product over patches (im2col): each output
    position's kh * kw * (in / groups) inputs, ordered tap-major and
    channel-minor, against the weight rows reordered the same way. The
    patches are gathered from codes, never from floats: int8 codes for 8-bit
    activations, trits for ternary ones, and for binary activations 64-bit
    words of packed sign bits (each pixel's channels packed once, in C,
    straight from NCHW or NHWC input, then whole words copied), so the
    binary im2col moves 1/32 of the float bytes. The border term, the
    per-filter scale and the bias are applied to the integer product in one
    pass that writes the output in ``data_format``.

    Padding. Zero is not a binary value. A binary layer computes what the
    float network computes on the binarized input, whose border is zero: it
    pads the packed input with -1 (zero words) and adds back, exactly, at
    each output position the sum of the weight codes over its padded taps,
    :math:`\sum_{t \in \mathrm{pad}(p)} \sum_c q_{n,c,t}` (an integer table
    per position and filter, computed once per input size). Channel counts
    that are not multiples of 64 leave pad bits inside each pixel's words;
    they are 0 in both operands, never differ, and the product counts only
    the true ``kh * kw * in / groups`` bits. Ternary and int8 codes
    represent zero, so their border needs nothing.

    References
    ----------
    .. [1] M. Rastegari, V. Ordonez, J. Redmon, A. Farhadi, "XNOR-Net:
       ImageNet Classification Using Binary Convolutional Neural Networks",
       ECCV 2016.
    .. [2] K. Chellapilla, S. Puri, P. Simard, "High Performance Convolutional
       Neural Networks for Document Processing", IWFHR 2006 (im2col).

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.nn import Conv2d
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((8, 64, 3, 3)).astype(np.float32)
    >>> x = rng.standard_normal((2, 64, 6, 6)).astype(np.float32)
    >>> conv = Conv2d.from_float(w, padding=1, weights="binary", activations="binary")
    >>> conv.forward(x).shape
    (2, 8, 6, 6)
    >>> bool(np.allclose(conv.forward(x), conv.dequantized().forward(x), atol=1e-4))
    True
    """

    def __init__(
        self,
        weight: QuantizedArray | ArrayLike,
        bias: ArrayLike | None = None,
        *,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        activations: Literal["binary", "ternary", 8] | None = None,
        data_format: Literal["NCHW", "NHWC"] = "NCHW",
        n_threads: int | None = None,
    ) -> None:
        self._setup(stride, padding, dilation, groups, activations, data_format, n_threads)
        if isinstance(weight, QuantizedArray):
            if weight.group_size is not None:
                raise ValueError("weight: per-group scales are supported for Linear only")
            shape = tuple(np.asarray(weight.codes).shape)
            kind, bits, codes, scales, zp = from_quantized_array(weight, 4, "weight")
            self._init_quantized(kind, bits, codes.reshape(shape), scales, zp)
        else:
            self._init_float(
                _check_float_weight(weight, 4, expected="a QuantizedArray or a real array")
            )
        self.bias = _check_bias(bias, self.out_channels)

    def _setup(self, stride, padding, dilation, groups, activations, data_format, n_threads):
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        self.dilation = _pair(dilation, "dilation", 1)
        if isinstance(groups, bool) or not isinstance(groups, (numbers.Integral, np.integer)):
            raise TypeError(f"groups must be an int, got {describe(groups)}")
        if int(groups) < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.groups = int(groups)
        if data_format not in ("NCHW", "NHWC"):
            raise ValueError(f"data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
        self.data_format = data_format
        self.activations = _check_activations(activations)
        self.n_threads = _check_n_threads(n_threads)

    def _geometry(self, shape):
        out, cg, kh, kw = shape
        if out % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide the {out} output channels of the weight"
            )
        self.out_channels, self.in_channels = out, cg * self.groups
        self.kernel_size = (kh, kw)

    def _init_float(self, w):
        self._geometry(w.shape)
        self._w = None
        self._float = w
        self.weights = "float"

    def _init_quantized(self, kind, bits, codes, scales, zp):
        """codes (O, Cg, kh, kw) signed values or unsigned codes; scales/zp (O, 1)."""
        self._geometry(codes.shape)
        self._float = None
        o, cg, kh, kw = codes.shape
        og = o // self.groups
        rows = np.ascontiguousarray(codes.transpose(0, 2, 3, 1)).reshape(o, kh * kw * cg)
        self._w = [
            QuantizedWeights(
                kind,
                bits,
                rows[g * og : (g + 1) * og],
                scales[g * og : (g + 1) * og],
                # a codebook (kind "codebook") is shared by every group; zero points are per row
                zp if zp is None or kind == "codebook" else zp[g * og : (g + 1) * og],
                None,
                self.activations,
                taps=kh * kw,
                padded=self.activations == "binary",
                n_threads=self.n_threads,
            )
            for g in range(self.groups)
        ]
        self.weights = _mode_name(kind, bits)

    @classmethod
    def from_float(
        cls,
        weight: ArrayLike,
        bias: ArrayLike | None = None,
        *,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        weights: Literal["binary", "ternary", 2, 3, 4, 8],
        activations: Literal["binary", "ternary", 8] | None = None,
        data_format: Literal["NCHW", "NHWC"] = "NCHW",
        quantizer: Quantizer | None = None,
        n_threads: int | None = None,
    ) -> Conv2d:
        """Quantize a float weight (one scale per output channel) and build the layer.

        Parameters
        ----------
        weight : array_like, shape (out, in / groups, kh, kw)
            Real weight, as in PyTorch's ``nn.Conv2d``.
        bias : array_like, shape (out,), optional
            Bias.
        stride, padding, dilation : int or pair of int, default 1, 0, 1
            Geometry (see :class:`Conv2d`).
        groups : int, default 1
            Channel groups.
        weights : {"binary", "ternary", 2, 3, 4, 8}
            Weight mode, with the rules of :meth:`Linear.from_float` applied
            to each output channel's filter.
        activations : {None, "binary", "ternary", 8}, default None
            Activation mode.
        data_format : {"NCHW", "NHWC"}, default "NCHW"
            Layout of the input and the output.
        quantizer : qtoolkit.rounding.Quantizer, optional
            Quantize with this instead (one scale per output channel, e.g.
            ``rounding.get("binary", scale="mean", axis=0)``).
        n_threads : int, optional
            Threads of the kernels.

        Returns
        -------
        layer : Conv2d
            The quantized layer.

        Raises
        ------
        TypeError
            If ``weight`` is not a real array or ``quantizer`` is not a
            Quantizer.
        ValueError
            If a mode or geometry argument is not allowed or ``weight`` is
            not 4-D or holds NaN/Inf.
        """
        weights = _check_weights_mode(weights)
        w = _check_float_weight(weight, 4)
        kwargs = {
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
            "activations": activations,
            "data_format": data_format,
            "n_threads": n_threads,
        }
        if quantizer is not None:
            if not isinstance(quantizer, Quantizer):
                raise TypeError(
                    f"quantizer must be a qtoolkit.rounding.Quantizer, got {describe(quantizer)}"
                )
            q = quantizer.encode(w)
            _check_quantizer_kind(q, weights)
            return cls(q, bias, **kwargs)
        self = cls.__new__(cls)
        self._setup(stride, padding, dilation, groups, activations, data_format, n_threads)
        kind, bits, codes, scales, zp = quantize_float(w.reshape(w.shape[0], -1), weights, None)
        self._init_quantized(kind, bits, codes.reshape(w.shape), scales, zp)
        self.bias = _check_bias(bias, self.out_channels)
        return self

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the output for an input of ``input_shape`` (in ``data_format``).

        Parameters
        ----------
        input_shape : tuple of int
            ``(N, C, H, W)`` for NCHW, ``(N, H, W, C)`` for NHWC.

        Returns
        -------
        shape : tuple of int
            The output shape in the same layout.

        Raises
        ------
        ValueError
            If the shape is not 4-D, has the wrong channel count, or gives an
            empty output (kernel larger than the padded input).
        """
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 4:
            raise ValueError(f"x must be 4-D ({self.data_format}), got shape {shape}")
        if self.data_format == "NCHW":
            n, c, h, w = shape
        else:
            n, h, w, c = shape
        if c != self.in_channels:
            raise ValueError(
                f"x has {c} channels but the layer has in_channels={self.in_channels} "
                f"(data_format={self.data_format!r})"
            )
        oh, ow = (
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, p, d, k, s in zip(
                (h, w), self.padding, self.dilation, self.kernel_size, self.stride
            )
        )
        if oh < 1 or ow < 1:
            raise ValueError(
                f"the input's spatial size {(h, w)} with padding {self.padding} is smaller than "
                f"the dilated kernel {self.kernel_size} (dilation {self.dilation})"
            )
        if self.data_format == "NCHW":
            return (n, self.out_channels, oh, ow)
        return (n, oh, ow, self.out_channels)

    def forward(self, x: ArrayLike) -> NDArray[np.float32]:
        """Apply the convolution.

        Parameters
        ----------
        x : array_like, shape (N, C, H, W) or (N, H, W, C)
            Real input in ``data_format`` (converted to float32).

        Returns
        -------
        y : ndarray of float32, shape (N, out, OH, OW) or (N, OH, OW, out)
            The output, in ``data_format``.

        Raises
        ------
        TypeError
            If ``x`` is not a real array.
        ValueError
            If ``x`` is not 4-D, has the wrong channel count, holds NaN/Inf, or
            is too small for the kernel.
        """
        x = _check_input(x, 4, f"({'N, C, H, W' if self.data_format == 'NCHW' else 'N, H, W, C'})")
        out_shape = self.output_shape(x.shape)
        if self.activations != "binary":
            _check_finite(x)
        n = x.shape[0]
        if n == 0:
            return np.zeros(out_shape, np.float32)
        oh, ow = out_shape[2:] if self.data_format == "NCHW" else out_shape[1:3]
        if self.activations == "binary" and self._w is not None:
            return self._forward_binary(x, (oh, ow)).reshape(out_shape)  # in data_format
        y = self._forward_codes(x, (oh, ow)).reshape(n, oh, ow, self.out_channels)
        if self.bias is not None:
            y += self.bias
        if self.data_format == "NCHW":
            y = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        return y

    __call__ = forward

    def _nhwc(self, x):
        return x if self.data_format == "NHWC" else x.transpose(0, 2, 3, 1)

    def _forward_codes(self, x, out_hw):
        """Float, ternary and int8 paths: im2col on (quantized) values, one product per group."""
        n = x.shape[0]
        kh, kw = self.kernel_size
        cg = self.in_channels // self.groups
        og = self.out_channels // self.groups
        m = n * out_hw[0] * out_hw[1]
        flat = np.ascontiguousarray(self._nhwc(x)).reshape(n, -1)
        act = self.activations
        scale = None
        if self._w is None:
            a = fake_quantize(flat, act)
        elif act is None:
            a = flat
        elif act == 8:
            a, scale = int8_codes(flat)
        else:
            a, scale = ternary_codes(flat)
        a = _pad(a.reshape(x.shape[0], *self._nhwc(x).shape[1:]), self.padding)
        y = np.empty((m, self.out_channels), dtype=np.float32)
        row_scale = None if scale is None else np.repeat(scale, m // n) if n else scale
        for g in range(self.groups):
            cols = _im2col(
                a[..., g * cg : (g + 1) * cg], kh, kw, self.stride, self.dilation, out_hw
            ).reshape(m, kh * kw * cg)
            out = y[:, g * og : (g + 1) * og]
            if self._w is None:
                out[...] = cols @ self._float_rows(g).T
                continue
            w = self._w[g]
            if act is None:
                out[...] = cols @ w.dequantize().T
            elif act == 8:
                qa = QuantizedActivations(cols, row_scale, np.zeros(m, np.int32))
                acc = np.asarray(lowbit_gemm_int(qa, w.lowbit, n_threads=self.n_threads))
                out[...] = acc[:, :, 0] * w.int_scales[:, 0]
                out *= row_scale[:, None]
            else:
                xt = pack_ternary_bits(cols, n_threads=self.n_threads)
                acc = ternary_gemm(xt, w.planes, n_threads=self.n_threads)
                out[...] = acc * w.scales[:, 0]
                out *= row_scale[:, None]
        return y

    def _float_rows(self, g):
        og = self.out_channels // self.groups
        w = self._float[g * og : (g + 1) * og]
        return np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(og, -1)

    def _forward_binary(self, x, out_hw):
        """sign(x) packed per pixel, im2col on 64-bit words, popcount GEMM, fused epilogue.

        Returns the output (bias included) as a flat float32 array in ``data_format``.
        """
        n = x.shape[0]
        kh, kw = self.kernel_size
        taps = kh * kw
        groups = self.groups
        cg = self.in_channels // groups
        cw = -(-cg // 64)
        og = self.out_channels // groups
        oh, ow = out_hw
        nchw = self.data_format == "NCHW"
        h, wd = (x.shape[2], x.shape[3]) if nchw else (x.shape[1], x.shape[2])
        m = n * oh * ow
        threads = _resolve_threads(self.n_threads, x.size, _THREAD_MIN_VALUES)
        # (N, H, W, groups, cw) words: each pixel's channels packed once, in C, from either layout
        words = np.empty(n * h * wd * groups * cw, dtype=np.uint64)
        flat = np.ascontiguousarray(x).reshape(-1)
        if _bitops.conv_pack(
            flat, int(nchw), n, h * wd, groups, cg, cw, words, _level_id(PACK), threads
        ):
            raise ValueError("x contains NaN, which has no sign to pack")
        # NCHW: the product is taken as W @ X^T, (out, positions), so that the epilogue
        # writes each sample's channel planes as contiguous runs; NHWC: as X @ W^T
        binary_w = isinstance(self._w[0].planes, PackedBits)
        by_output = nchw or not binary_w
        fixes = self._border_fix((h, wd), out_hw, by_output)
        y = _aligned_empty((n * self.out_channels * oh * ow,), np.float32)
        cols = np.empty((m, taps * cw), dtype=np.uint64)
        for g in range(groups):
            _bitops.conv_im2col_words(
                words, n, h, wd, groups * cw, g * cw, cw, self.kernel_size, self.stride,
                self.padding, self.dilation, out_hw, cols, threads,
            )  # fmt: skip
            w = self._w[g]
            if binary_w:
                # the true K: pad bits are 0 in both operands and never differ
                kbits = taps * cg
                a, b = (w.planes.words, cols) if nchw else (cols, w.planes.words)
                acc = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
                gemm_threads = _resolve_threads(
                    self.n_threads, m * og * kbits, _GEMM_MIN_MACS, items=a.shape[0]
                )
                _bitops.xnor_gemm(a, b, taps * cw, kbits, acc, _level_id(), gemm_threads)
            else:
                acc = ternary_gemm(
                    w.planes, PackedBits(cols, n_bits=taps * cw * 64), n_threads=self.n_threads
                )  # (og, positions)
            bias = None if self.bias is None else self.bias[g * og : (g + 1) * og]
            # |acc| < 2**24, so float32(acc) * alpha is the exactly rounded product
            _bitops.conv_epilogue(
                acc, int(by_output), None if fixes is None else fixes[g], int(by_output),
                w.scales[:, 0], bias, n, oh * ow, y, self.out_channels, g * og, int(nchw),
                threads,
            )  # fmt: skip
        return y

    def _border_fix(self, hw, out_hw, by_output):
        """Per group, the integer term of the -1 padding at each output position, or None.

        A tap in the padding holds -1 in every channel, so the popcount product lacks
        ``sum_c q`` over that tap: the term is (positions, taps) mask @ tap_sums.T, laid
        out (out, positions) when ``by_output`` else (positions, out), int32. Cached for
        the last input size.
        """
        if not any(self.padding):
            return None
        key = (hw, out_hw, by_output)
        cache = getattr(self, "_border_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        inside = np.zeros((1, *hw, 1), dtype=np.int64)
        mask = 1 - _pad(inside + 1, self.padding, 0)  # 1 on the border
        kh, kw = self.kernel_size
        cols = _im2col(mask, kh, kw, self.stride, self.dilation, out_hw)
        cols = cols.reshape(out_hw[0] * out_hw[1], kh * kw)
        fixes = None
        if cols.any():
            fixes = []
            for w in self._w:
                fix = cols @ w.tap_sums.T  # (positions, out)
                fixes.append(np.ascontiguousarray(fix.T if by_output else fix, dtype=np.int32))
        self._border_cache = (key, fixes)
        return fixes

    def dequantized(self) -> Conv2d:
        """The float32 layer this layer computes: same geometry and activation mode.

        Returns
        -------
        layer : Conv2d
            A float layer (``weights == "float"``) with the dequantized weight;
            its ``forward`` is the float reference of this layer's ``forward``.
        """
        return Conv2d(
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            activations=self.activations,
            data_format=self.data_format,
            n_threads=self.n_threads,
        )

    @property
    def weight(self) -> NDArray[np.float32]:
        """The float32 weight (out, in / groups, kh, kw) the layer computes with."""
        if self._w is None:
            return self._float.copy()
        kh, kw = self.kernel_size
        cg = self.in_channels // self.groups
        rows = np.concatenate([w.dequantize() for w in self._w], axis=0)
        return np.ascontiguousarray(
            rows.reshape(self.out_channels, kh, kw, cg).transpose(0, 3, 1, 2)
        )

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
        held = self._float.nbytes if self._w is None else sum(w.nbytes for w in self._w)
        kh, kw = self.kernel_size
        n_weights = self.out_channels * (self.in_channels // self.groups) * kh * kw
        return _size(held, self.bias, n_weights)

    def fold_batch_norm(
        self,
        mean: ArrayLike,
        var: ArrayLike,
        gamma: ArrayLike | None = None,
        beta: ArrayLike | None = None,
        eps: float = 1e-5,
    ) -> Conv2d:
        r"""Fold a following batch normalisation into the scales and the bias.

        Parameters
        ----------
        mean, var : array_like, shape (out,)
            Running statistics of the batch normalisation.
        gamma, beta : array_like, shape (out,), optional
            Its affine parameters (default 1 and 0).
        eps : float, default 1e-5
            Added to ``var``.

        Returns
        -------
        layer : Conv2d
            The layer computing ``BN(self.forward(x))`` (per output channel),
            with the same codes.

        Raises
        ------
        TypeError
            If a statistic is not a real array or ``mean``/``var`` is missing.
        ValueError
            If a statistic has the wrong shape or holds NaN/Inf, or
            ``var + eps <= 0``.

        Notes
        -----
        Each output channel's scale is multiplied by :math:`f_n = \gamma_n /
        \sqrt{\sigma_n^2 + \epsilon}` and the bias becomes :math:`f_n (b_n -
        \mu_n) + \beta_n` (see :meth:`Linear.fold_batch_norm`).
        """
        factor, shift = _bn_factors(self.out_channels, mean, var, gamma, beta, eps)
        bias = shift if self.bias is None else self.bias * factor + shift
        new = Conv2d.__new__(Conv2d)
        new.__dict__.update({k: v for k, v in self.__dict__.items() if k != "_border_cache"})
        og = self.out_channels // self.groups
        if self._w is None:
            new._float = (self._float * factor[:, None, None, None]).astype(np.float32)
        else:
            new._w = [
                w.scaled_rows(factor[g * og : (g + 1) * og], self.n_threads)
                for g, w in enumerate(self._w)
            ]
        new.bias = bias.astype(np.float32)
        return new

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, weights={self.weights!r}, activations={self.activations!r}, "
            f"data_format={self.data_format!r})"
        )
