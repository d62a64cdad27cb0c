"""From packed records to the inference layers of :mod:`qtoolkit.nn` (Linear, Conv2d)."""

import math

import numpy as np

from .. import rounding
from .._array import describe
from ..nn import Conv2d, Linear
from ._methods import get_codes

#: Code widths the integer kernels run; narrower codes of other widths are widened to the next.
KERNEL_BITS = (2, 3, 4, 8)
CONV_OPTIONS = ("stride", "padding", "dilation", "groups", "data_format")
_GGUF_TERNARY = ("tq1_0", "tq2_0")
# the arrays a record of each kind may hold for a layer to be built from it
_KNOWN_ARRAYS = {
    "raw": {"values"},
    "registry": {"codes", "scale", "zero_point", "codebook", "scale_neg"},
    "grid": {"codes", "scale", "zero_point", "groups"},
    "codebook": {"codes", "codebook"},
    "gguf": {"codes", "d", "m"},
}

_EXTRA = {
    "signs": "an input rotation (rotate=True)",
    "block": "an input rotation (rotate=True)",
    "input_scale": "AWQ's input scales",
    "codebook": "per-row codebooks (grid='optimal')",
}


def _fail(rec, why):
    raise ValueError(f"tensor {rec.name!r} ({rec.method}, shape {tuple(rec.shape)}): {why}")


def kernel_bits(bits):
    """The narrowest width of the integer kernels that holds ``bits``-bit codes."""
    for b in KERNEL_BITS:
        if bits <= b:
            return b
    return None


def _widen(rec, bits):
    b = kernel_bits(bits)
    if b is None:
        _fail(rec, f"{bits}-bit codes are wider than the 8 bits the integer kernels run")
    return b


def _contiguous_groups(rec, groups, n_groups, n_in):
    """The group size when column ``j`` is in group ``j // g`` (None for one group per row)."""
    if n_groups == 1:
        return None
    if len(rec.shape) != 2:
        _fail(rec, "Conv2d keeps one scale per output channel; this tensor has scale groups")
    g = int(np.count_nonzero(groups == 0))
    if g == 0 or not np.array_equal(groups, np.arange(n_in) // g):
        _fail(
            rec,
            "its scale groups are not contiguous blocks of the inputs (GPTQ with act_order "
            "and without static_groups permutes them); the layers need column j in group "
            "j // group_size",
        )
    if n_in % g:
        _fail(rec, f"its group size {g} does not divide its {n_in} inputs (a shorter last group)")
    return g


def _grid_array(rec):
    a = rec.arrays
    codes = get_codes(rec)  # (rows, inputs), unsigned in [0, 2**bits)
    scale, zero = a["scale"], a["zero_point"]
    if zero.dtype.kind == "f" and not np.array_equal(zero, np.round(zero)):
        _fail(
            rec,
            "its zero points are real numbers (HQQ); the integer kernels need integer zero "
            "points (use method 'rtn' or 'gptq', or dequantize())",
        )
    n, k = codes.shape
    gs = _contiguous_groups(rec, a["groups"], scale.shape[1], k)
    if gs is None:
        s, z = scale[:, :1], zero[:, :1]
    else:
        s, z = scale[:, :, None], zero[:, :, None]
    if len(rec.shape) != 2:
        codes = codes.reshape(rec.shape)
        s = s.reshape((n,) + (1,) * (len(rec.shape) - 1))
        z = z.reshape(s.shape)
    return rounding.QuantizedArray(
        codes=codes,
        scale=s.astype(np.float32),
        zero_point=z.astype(np.int64),
        bits=_widen(rec, rec.meta["bits"]),
        axis=(0,),
        group_size=gs,
        dtype="float32",
        scheme="uniform",
    )


def _registry_array(rec):
    a, meta = rec.arrays, rec.meta
    book = a.get("codebook")
    bits = meta["bits"]
    if book is None:  # uniform codes: widening only moves the unsigned offset of the kernel
        bits = _widen(rec, bits)
    return rounding.QuantizedArray(
        codes=get_codes(rec),
        scale=a.get("scale"),
        zero_point=a.get("zero_point"),
        codebook=book,
        scale_neg=a.get("scale_neg"),
        bits=bits,
        axis=None if meta["axis"] is None else tuple(meta["axis"]),
        group_size=meta["group_size"],
        dtype=rec.dtype,
        scheme=meta["scheme"],
        shape=tuple(rec.shape),
    )


def _gguf_array(rec):
    if rec.method == "q4_1":
        _fail(
            rec,
            "Q4_1 adds a real offset per block, d q + m; the integer kernels need integer zero "
            "points (Q4_0, Q8_0, TQ1_0 and TQ2_0 convert)",
        )
    if len(rec.shape) != 2:
        _fail(rec, "GGUF block scales run in a Linear layer only (a 2-D weight)")
    codes = get_codes(rec)  # (blocks, block length)
    n, k = rec.shape
    block = codes.shape[1]
    d = rec.arrays["d"].astype(np.float32).reshape(n, k // block, 1)
    codes = codes.reshape(n, k)
    common = {"scale": d, "axis": (0,), "group_size": block, "dtype": "float32"}
    if rec.method == "q8_0":
        return rounding.QuantizedArray(codes=codes, bits=8, scheme="q8_0", **common)
    if rec.method == "q4_0":  # d (q - 8)
        zero = np.full(d.shape, 8, np.int64)
        return rounding.QuantizedArray(
            codes=codes, zero_point=zero, bits=4, scheme="q4_0", **common
        )
    # ternary: codes 0, 1, 2 index the codebook -1, 0, +1
    book = np.array([-1.0, 0.0, 1.0])
    return rounding.QuantizedArray(codes=codes, codebook=book, bits=2, scheme=rec.method, **common)


def layer_weight(rec):
    """What a layer is built from: a float32 array (kept tensors) or a QuantizedArray."""
    if rec.kind not in _KNOWN_ARRAYS:
        _fail(
            rec,
            f"no qtoolkit.nn layer runs records of kind {rec.kind!r}"
            + (
                " (product-quantization codes index sub-vector codebooks)"
                if rec.kind == "pq"
                else ""
            )
            + "; use dequantize() for a float weight",
        )
    extra = sorted(set(rec.arrays) - _KNOWN_ARRAYS[rec.kind])
    if extra:
        what = [_EXTRA.get(k, repr(k)) for k in extra]
        _fail(
            rec,
            f"it stores {', '.join(dict.fromkeys(what))}, which the qtoolkit.nn layers cannot "
            "apply (use dequantize() for the effective float weight)",
        )
    if rec.kind == "raw":
        values = rec.arrays["values"]
        if values.dtype.kind != "f":
            _fail(rec, f"a layer weight must be floating point, got dtype {values.dtype}")
        return np.asarray(values, dtype=np.float32)
    if rec.kind == "registry":
        return _registry_array(rec)
    if rec.kind == "grid":
        return _grid_array(rec)
    if rec.kind == "codebook":
        book = rec.arrays["codebook"]
        return rounding.QuantizedArray(
            codes=get_codes(rec),
            scale=None,
            codebook=book,
            bits=max(1, math.ceil(math.log2(book.size))),
            dtype=rec.dtype,
            scheme=rec.method,
        )
    return _gguf_array(rec)


def check_conv_options(name, options):
    if not isinstance(options, dict):
        raise TypeError(f"conv[{name!r}] must be a dict of Conv2d options, got {describe(options)}")
    unknown = sorted(set(options) - set(CONV_OPTIONS))
    if unknown:
        raise TypeError(
            f"conv[{name!r}] has unknown options {unknown}; expected some of {list(CONV_OPTIONS)}"
        )
    return dict(options)


def build_layer(rec, bias, activations, conv, n_threads):
    """A Linear (2-D weight) or Conv2d (4-D weight) running the record's codes."""
    ndim = len(rec.shape)
    if ndim not in (2, 4):
        _fail(
            rec,
            "a Linear weight is 2-D (out, in) and a Conv2d weight 4-D (out, in / groups, kh, kw)",
        )
    if ndim == 2 and conv:
        _fail(rec, f"Conv2d options {sorted(conv)} were given for a 2-D (Linear) weight")
    weight = layer_weight(rec)  # its errors name the tensor already
    try:
        if ndim == 2:
            return Linear(weight, bias, activations=activations, n_threads=n_threads)
        return Conv2d(weight, bias, activations=activations, n_threads=n_threads, **conv)
    except (TypeError, ValueError) as err:
        raise type(err)(
            f"tensor {rec.name!r} ({rec.method}, shape {tuple(rec.shape)}): {err}"
        ) from None
