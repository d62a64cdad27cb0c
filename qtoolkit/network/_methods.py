"""One tensor in, one packed record out: the quantization methods a recipe can name."""

import contextlib
import functools
import inspect
import json
import math
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from .. import rounding
from ..codebooks import ProductQuantizer, kmeans_1d
from ..optimize import IncoherenceTransform, adaround, awq, gptq, hqq, rtn
from ._packing import pack, packed_nbytes, storage_bits, unpack

LAYER_METHODS = ("gptq", "adaround", "rtn", "hqq", "awq")
_LAYER_FN = {"gptq": gptq, "adaround": adaround, "rtn": rtn, "hqq": hqq, "awq": awq}
CODEBOOK_METHODS = ("kmeans", "hessian_kmeans", "pq")
GGUF_METHODS = ("q8_0", "q4_0", "q4_1", "tq1_0", "tq2_0")
NEEDS_CALIBRATION = ("gptq", "adaround", "hessian_kmeans", "awq")
CHUNK_ELEMENTS = 1 << 18
GGUF_BLOCK = {"q8_0": 32, "q4_0": 32, "q4_1": 32, "tq1_0": 256, "tq2_0": 256}
_KMEANS_PARAMS = ("n_clusters", "bits", "algorithm", "init", "max_iter", "tol", "rng")
_PQ_PARAMS = ("n_subspaces", "n_clusters", "init", "max_iter", "tol", "random_state")


def available_methods() -> list[str]:
    """Every method name a recipe rule accepts, sorted."""
    return sorted(
        set(rounding.available_quantizers())
        | set(LAYER_METHODS)
        | set(CODEBOOK_METHODS)
        | set(GGUF_METHODS)
        | {"skip"}
    )


def _allowed(fn, drop):
    return sorted(set(inspect.signature(fn).parameters) - set(drop))


def check_params(method, params):
    """Validate a method's parameters (without a tensor); return them as keyword arguments."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, got {params!r}")
    if method not in available_methods():
        raise ValueError(f"unknown method {method!r}; expected one of {available_methods()}")
    if method in rounding.available_quantizers():
        rounding.get(method, **params)
        return dict(params)
    if method in LAYER_METHODS:
        allowed = _allowed(_LAYER_FN[method], ("W", "X", "mean_abs_x"))
    elif method in ("kmeans", "hessian_kmeans"):
        allowed = list(_KMEANS_PARAMS)
        if ("n_clusters" in params) == ("bits" in params):
            raise ValueError(f"method {method!r} needs exactly one of 'n_clusters' and 'bits'")
    elif method == "pq":
        allowed = list(_PQ_PARAMS)
    else:
        allowed = []
    for key in params:
        if key not in allowed:
            raise TypeError(
                f"{key!r} is not a parameter of method {method!r}; expected some of {allowed}"
            )
    out = dict(params)
    if "rng" in out and not (out["rng"] is None or _is_int(out["rng"])):
        raise TypeError(f"rng of method {method!r} must be an int seed or null, got {out['rng']!r}")
    if method == "awq" and isinstance(out.get("method_params"), dict):
        inner = out["method_params"]
        if "rng" in inner and not (inner["rng"] is None or _is_int(inner["rng"])):
            raise TypeError(f"rng in method_params must be an int seed, got {inner['rng']!r}")
    if method == "adaround" and isinstance(out.get("beta"), list):
        out["beta"] = tuple(out["beta"])
    return out


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class Record:
    """A quantized (or kept) tensor: stored arrays plus the JSON that says how to decode them."""

    name: str
    shape: tuple
    dtype: str
    method: str
    params: dict
    kind: str
    arrays: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def nbytes(self):
        return int(sum(a.nbytes for a in self.arrays.values()))

    @property
    def size(self):
        return int(math.prod(self.shape))

    def header(self):
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "method": self.method,
            "params": self.params,
            "kind": self.kind,
            "meta": self.meta,
            "arrays": sorted(self.arrays),
        }


def _put_codes(arrays, meta, codes):
    codes = np.asarray(codes)
    lo = int(codes.min()) if codes.size else 0
    hi = int(codes.max()) if codes.size else 0
    bits = storage_bits(hi - lo)
    flat = codes.reshape(-1)
    step = 1 << 16  # a multiple of 8 codes: chunks pack to whole bytes, as the whole would
    parts = [
        pack(flat[i : i + step].astype(np.int64) - lo, bits) for i in range(0, flat.size, step)
    ]
    arrays["codes"] = np.concatenate(parts) if parts else pack(flat.astype(np.int64), bits)
    meta.update(code_bits=bits, code_offset=lo, code_shape=list(codes.shape))


def get_codes(rec):
    """The integer codes of a record, as int64 of shape ``meta['code_shape']``."""
    shape = tuple(rec.meta["code_shape"])
    flat = unpack(rec.arrays["codes"], rec.meta["code_bits"], math.prod(shape))
    return (flat.astype(np.int64) + rec.meta["code_offset"]).reshape(shape)


def tensor_rng(params, name):
    """A per-tensor seed: the recipe's seed mixed with the tensor name (order independent)."""
    return (
        None if params is None else np.random.SeedSequence([int(params), zlib.crc32(name.encode())])
    )


@functools.cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def factor(H, n_in):
    """``R`` with ``R.T @ R / R.shape[0] == H`` up to rounding; zero columns where ``H_jj == 0``.

    LAPACK runs on one thread for layer-sized matrices: its threaded factorizations gain
    little at that size and lose badly on a busy machine."""
    limit = _blas().limit(limits=1, user_api="blas") if n_in <= 4096 else contextlib.nullcontext()
    with limit:
        try:  # H = L L^T: R = sqrt(n) L^T (a Cholesky costs a thirtieth of an eigendecomposition)
            R = np.linalg.cholesky(H).T * math.sqrt(n_in)
        except np.linalg.LinAlgError:  # singular (dead inputs, fewer samples than inputs)
            lam, V = np.linalg.eigh(H)
            R = (V * np.sqrt(np.clip(lam, 0.0, None))).T * math.sqrt(n_in)
    R[:, np.diag(H) == 0] = 0.0
    return R


def _as_2d(w):
    return w.reshape(w.shape[0], -1) if w.ndim != 2 else w


def _row_chunks(shape):
    """Row ranges of about ``size / 16`` entries, between 2**14 and 2**18 entries: the
    temporaries of one chunk stay a small fraction of the tensor, and large tensors are done
    in few enough chunks that the per-chunk overhead does not show."""
    rows = shape[0] if shape else 1
    size = math.prod(shape) if shape else 1
    target = min(CHUNK_ELEMENTS, max(1 << 14, size // 16))
    per = max(1, target // max(1, math.prod(shape[1:])))
    return [(i, min(i + per, rows)) for i in range(0, rows, per)]


def _rowwise(method, params, ndim):
    """True when the scheme's scales are per row (axis 0 kept), so rows can be done apart."""
    if ndim < 2 or method not in ("uniform", "binary", "ternary", "power_of_two"):
        return False
    axis = params.get("axis")
    if axis is None or params.get("scales") is not None or params.get("method") == "ttq":
        return False
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return 0 in [a % ndim for a in axes]


_FUSED_DEFAULTS = {
    "mode": "symmetric",
    "axis": None,
    "group_size": None,
    "range": "minmax",
    "narrow_range": False,
    "rounding": "half_even",
}
_FUSED_MODES = {"symmetric": 0, "asymmetric": 1, "unsigned": 2}


def _fused_plan(w, method, params, acc):
    """``(rows, k, g, qmin, qmax, mode)`` when the fused kernel computes ``uniform`` exactly."""
    if method != "uniform" or acc.H is not None or w.dtype not in (np.float32, np.float64):
        return None
    p = {**_FUSED_DEFAULTS, **params}
    if set(p) - {"bits", *_FUSED_DEFAULTS} or p["range"] != "minmax":
        return None
    if p["rounding"] != "half_even" or p["mode"] not in _FUSED_MODES or w.ndim < 2:
        return None
    bits, axis, g, narrow = p.get("bits", 8), p["axis"], p["group_size"], p["narrow_range"]
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    if len(axes) != 1 or isinstance(axes[0], bool) or axes[0] not in (0, -w.ndim):
        return None
    if not isinstance(bits, int) or isinstance(bits, bool) or not isinstance(narrow, bool):
        return None
    mode = p["mode"]
    if not (1 if mode != "symmetric" else 2) <= bits <= 8 or (
        narrow and (mode == "unsigned" or bits == 1)
    ):
        return None
    rows, k = w.shape[0], math.prod(w.shape[1:])
    if g is None:
        g = k
    elif isinstance(g, bool) or not isinstance(g, int) or w.ndim != 2 or g < 1 or k % g:
        return None  # the generic path raises the registry's error
    if rows == 0 or k == 0:
        return None
    if mode == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        qmin = -qmax if narrow else -qmax - 1
    else:
        qmin, qmax = (1 if narrow else 0), 2**bits - 1
    return rows, k, g, qmin, qmax, _FUSED_MODES[mode], bits


def _quantize_fused(w, plan, params, rec, acc):
    """Registry ``uniform`` per row (or row and group) in two passes of a compiled kernel.

    Same scales, zero points and codes as ``rounding.get("uniform", ...).encode`` bit for bit;
    the codes are packed as they are computed, so no temporary of the tensor's size is made.
    Returns False (nothing stored) when a reconstruction overflows: the generic path then
    raises its error. The kernel checks the input is finite (no separate pass).
    """
    from ._fused import uniform_codes, uniform_stats

    rows, k, g, qmin, qmax, mode, bits = plan
    w2 = np.ascontiguousarray(w).reshape(rows, k)
    scale = np.empty((rows, k // g), dtype=w.dtype)
    zero = np.empty_like(scale) if mode == 1 else scale
    finite, lo, hi = uniform_stats(w2, g, qmin, qmax, mode, scale, zero)
    if not finite:
        raise ValueError("the tensor holds NaN or Inf values")
    width = storage_bits(hi - lo)
    packed = np.empty(packed_nbytes(rows * k, width), dtype=np.uint8)
    ok, sq, ref = uniform_codes(w2, g, qmin, qmax, mode, scale, zero, lo, width, packed)
    if not ok:
        return False
    if params.get("group_size") is None:
        stat = (rows,) + (1,) * (w.ndim - 1)
    else:
        stat = (rows, k // g, 1)
    rec.arrays["codes"] = packed
    rec.arrays["scale"] = scale.reshape(stat)
    if mode == 1:
        rec.arrays["zero_point"] = zero.reshape(stat)
    rec.meta.update(code_bits=width, code_offset=int(lo), code_shape=list(w.shape))
    rec.meta.update(bits=bits, axis=[0], group_size=params.get("group_size"), scheme="uniform")
    acc.sq += sq
    acc.ref += ref
    return True


def _quantize_registry(w, method, params, rec, acc):
    plan = _fused_plan(w, method, params, acc)
    if plan is not None and _quantize_fused(w, plan, params, rec, acc):
        return
    q = rounding.get(method, **params)
    arrays, meta = rec.arrays, rec.meta
    chunks = _row_chunks(w.shape) if _rowwise(method, params, w.ndim) else [(0, None)]
    parts = {}
    codes = None
    qa = None
    for r0, r1 in chunks:
        wc = w[r0:r1]
        qa = q.encode(wc)
        c = np.asarray(qa.codes)
        if codes is None:
            codes = c if r1 is None else np.empty(w.shape, dtype=c.dtype)
        if r1 is not None:
            codes[r0:r1] = c
        for key in ("scale", "zero_point", "scale_neg"):
            value = getattr(qa, key)
            if value is not None:
                parts.setdefault(key, []).append(np.asarray(value))
        if qa.codebook is not None:
            book = np.asarray(qa.codebook)
            if "codebook" in arrays and not np.array_equal(arrays["codebook"], book):
                raise RuntimeError("row chunks gave different codebooks")  # pragma: no cover
            arrays["codebook"] = np.ascontiguousarray(book)
        acc.add(wc, np.asarray(rounding.decode(qa)))
    _put_codes(arrays, meta, codes)
    for key, vals in parts.items():
        arrays[key] = np.ascontiguousarray(vals[0] if len(vals) == 1 else np.concatenate(vals))
    meta.update(
        bits=int(qa.bits),
        axis=None if qa.axis is None else list(qa.axis),
        group_size=qa.group_size,
        scheme=qa.scheme,
    )


def _layer_params(method, params, stats, name):
    """Keyword arguments of the layer method: per-tensor seeds, AWQ's activation magnitudes."""
    p = dict(params)
    if "rng" in p:
        p["rng"] = tensor_rng(p["rng"], name)
    if method == "awq":
        p["mean_abs_x"] = stats.abs_mean
        inner = p.get("method_params")
        if isinstance(inner, dict) and "rng" in inner:
            p["method_params"] = {**inner, "rng": tensor_rng(inner["rng"], name)}
    return p


def _uses_inputs(method, params):
    """Whether the layer method looks at X (RTN only for its clipping search, HQQ never)."""
    if method == "hqq":
        return False
    return method != "rtn" or params.get("clip") is not None


def _quantize_layer(w, method, params, stats, rec, name):
    W = _as_2d(w)
    use = stats is not None and _uses_inputs(method, params)
    X = factor(stats.hessian, W.shape[1]) if use else None
    res = _LAYER_FN[method](W, X, **_layer_params(method, params, stats, name))
    store_layer(rec, res, w.dtype)


def param_dtype(dtype):
    """The dtype of a layer's real parameters (as the layer methods round them)."""
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def store_layer(rec, res, dtype):
    """Put a :class:`qtoolkit.optimize.QuantizedLayer` into ``rec`` (kind ``"grid"``): codes,
    groups, then the grid (``scale`` and ``zero_point``) or the per-row ``codebook``
    ``(n_out, n_groups, 2**bits)``, the rotation's signs (one bit each) and its random
    block if any, and AWQ's ``input_scale``. Real parameters are stored in
    :func:`param_dtype`, in which the layer methods computed them, so the record decodes
    to the layer's ``weight`` exactly."""
    pdt = param_dtype(dtype)
    a = rec.arrays
    if res.codebook is not None:
        a["codebook"] = np.ascontiguousarray(res.codebook, dtype=pdt)
    else:
        zero = res.zero_point
        a["scale"] = np.ascontiguousarray(res.scale, dtype=pdt)
        integral = np.array_equal(zero, np.round(zero)) and np.all(np.abs(zero) < 2**31)
        a["zero_point"] = np.ascontiguousarray(zero, dtype=np.int32 if integral else pdt)
    a["groups"] = np.ascontiguousarray(res.groups, dtype=np.int32)
    t = res.transform
    if t is not None:
        a["signs"] = pack((np.asarray(t.signs) < 0).astype(np.int64), 1)
        if t.random_block:
            a["block"] = np.ascontiguousarray(t.block, dtype=np.float64)
    if res.input_scale is not None:
        a["input_scale"] = np.ascontiguousarray(res.input_scale, dtype=pdt)
    _put_codes(a, rec.meta, res.codes)
    rec.meta["bits"] = int(res.bits)
    rec.meta["scheme"] = str(res.scheme)


def grid_transform(rec):
    """The :class:`qtoolkit.optimize.IncoherenceTransform` of a ``"grid"`` record, or None."""
    a = rec.arrays
    if "signs" not in a:
        return None
    n_in = int(math.prod(rec.shape[1:]))
    signs = 1 - 2 * unpack(a["signs"], 1, n_in).astype(np.int8)
    return IncoherenceTransform.from_signs(signs, a.get("block"))


def grid_stored_weight(rec):
    """The stored weight ``S`` (n_out, n_in) of a ``"grid"`` record, float64, before the
    inverse rotation and the input scales (the layer computes ``y = S T(a * x)``)."""
    a = rec.arrays
    codes = get_codes(rec)
    g = a["groups"]
    if "codebook" in a:
        rows = np.arange(codes.shape[0])[:, None]
        return a["codebook"].astype(np.float64)[rows, g[None, :], codes]
    zero = a["zero_point"].astype(np.float64)[:, g]
    return (codes - zero) * a["scale"].astype(np.float64)[:, g]


def _assign(values, book):
    return np.searchsorted(0.5 * (book[1:] + book[:-1]), values, side="left")


def _quantize_kmeans(w, method, params, stats, rec, name):
    p = dict(params)
    k = p.pop("n_clusters", None)
    if k is None:
        k = 2 ** int(p.pop("bits"))
    seed = p.pop("rng", None)
    weight = None
    if method == "hessian_kmeans":
        W = _as_2d(w)
        weight = np.broadcast_to(np.diag(stats.hessian), W.shape).reshape(w.shape)
    book, _, _ = kmeans_1d(
        w.astype(np.float64), k, sample_weight=weight, rng=tensor_rng(seed, name), **p
    )
    rec.arrays["codebook"] = np.ascontiguousarray(book)
    _put_codes(rec.arrays, rec.meta, _assign(w.astype(np.float64), book))
    rec.meta["bits"] = max(1, math.ceil(math.log2(k)))


def _quantize_pq(w, params, rec):
    W = _as_2d(w)
    pq = ProductQuantizer(**params).fit(W)
    rec.arrays["codebook"] = np.ascontiguousarray(pq.codebook_)
    _put_codes(rec.arrays, rec.meta, pq.transform(W))
    rec.meta["bits"] = max(1, math.ceil(math.log2(pq.codebook_.shape[1])))


def _roundf(x):
    """Round half away from zero (C ``roundf``)."""
    a = np.abs(x)
    f = np.floor(a)
    return np.sign(x) * (f + np.floor(2 * (a - f)))


def quantize_gguf_blocks(w, method):
    """llama.cpp's reference block quantization: ``(codes, d, m)`` per block (m only for Q4_1)."""
    B = GGUF_BLOCK[method]
    x = np.asarray(w, dtype=np.float32).reshape(-1, B)
    m = None
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "q8_0":
            d = np.abs(x).max(axis=1, keepdims=True) / np.float32(127)
            inv = np.where(d == 0, 0, 1 / d)
            q = _roundf(x * inv).astype(np.int8)
        elif method == "q4_0":
            big = np.take_along_axis(x, np.abs(x).argmax(axis=1)[:, None], axis=1)
            d = big / np.float32(-8)
            inv = np.where(d == 0, 0, 1 / d)
            q = np.trunc(x * inv + np.float32(8.5)).astype(np.uint8).clip(0, 15)
        elif method == "q4_1":
            hi, lo = x.max(axis=1, keepdims=True), x.min(axis=1, keepdims=True)
            d = (hi - lo) / np.float32(15)
            inv = np.where(d == 0, 0, 1 / d)
            q = np.trunc((x - lo) * inv + np.float32(0.5)).astype(np.uint8).clip(0, 15)
            m = lo.astype(np.float16).reshape(-1)
        else:  # ternary TQ1_0 / TQ2_0: codes 0, 1, 2 for -1, 0, +1
            d = np.abs(x).max(axis=1, keepdims=True)
            inv = np.where(d == 0, 0, 1 / d)
            q = (_roundf(x * inv).astype(np.int8) + 1).astype(np.uint8)
    return q, d.astype(np.float16).reshape(-1), m


def dequantize_gguf_blocks(method, q, d, m):
    """Values of the blocks, computed in float32 as llama.cpp does."""
    d32 = d.astype(np.float32)[:, None]
    if method == "q8_0":
        return q.astype(np.int8).astype(np.float32) * d32
    if method == "q4_0":
        return d32 * (q.astype(np.int8) - np.int8(8)).astype(np.float32)
    if method == "q4_1":
        return d32 * q.astype(np.float32) + m.astype(np.float32)[:, None]
    return d32 * (q.astype(np.int8) - np.int8(1)).astype(np.float32)


def _quantize_gguf(w, method, rec, acc):
    B = GGUF_BLOCK[method]
    if w.ndim == 0 or w.shape[-1] % B:
        raise ValueError(
            f"method {method!r} needs the last dimension to be a multiple of {B}, got shape "
            f"{tuple(w.shape)}"
        )
    n_blocks = w.size // B
    codes = np.empty((n_blocks, B), dtype=np.int8 if method == "q8_0" else np.uint8)
    d = np.empty(n_blocks, dtype=np.float16)
    m = np.empty(n_blocks, dtype=np.float16) if method == "q4_1" else None
    per_row = w.size // max(1, w.shape[0]) // B if w.ndim > 1 else n_blocks
    for r0, r1 in _row_chunks(w.shape) if w.ndim > 1 else [(0, 1)]:
        wc = w[r0:r1] if w.ndim > 1 else w
        b0, b1 = r0 * per_row, r1 * per_row
        q, dc, mc = quantize_gguf_blocks(wc, method)
        codes[b0:b1], d[b0:b1] = q, dc
        if m is not None:
            m[b0:b1] = mc
        acc.add(wc, dequantize_gguf_blocks(method, q, dc, mc).reshape(wc.shape))
    rec.arrays["d"] = d
    if m is not None:
        rec.arrays["m"] = m
    _put_codes(rec.arrays, rec.meta, codes)
    rec.meta["bits"] = {"q8_0": 8, "q4_0": 4, "q4_1": 4}.get(method, 2)


class ErrorSums:
    """Squared weight and output errors, accumulated row chunk by row chunk (float64)."""

    def __init__(self, hessian, known_refs=None):
        self.H = hessian
        self.H32 = None if hessian is None else hessian.astype(np.float32)
        self.sq = self.ref = self.out = self.out_ref = 0.0
        # (||W||^2, tr(W H W^T)) when already measured for this tensor: skips W @ H
        self.known = known_refs

    def add(self, w, w_hat):
        W = np.asarray(w, dtype=np.float64)
        W = W.reshape(W.shape[0], -1) if W.ndim >= 2 else W.reshape(1, -1)
        D = W - np.asarray(w_hat, dtype=np.float64).reshape(W.shape)
        self.sq += float(np.sum(D * D))
        self.ref += float(np.sum(W * W))
        if self.H is not None:  # float32 products: the error needs ~6 digits, not 16
            H = self.H32
            D32, W32 = D.astype(np.float32), W.astype(np.float32)
            self.out += float(np.sum((D32 @ H) * D32, dtype=np.float64))
            if self.known is None:
                self.out_ref += float(np.sum((W32 @ H) * W32, dtype=np.float64))

    def add_all(self, w, w_hat):
        shape = w.shape if w.ndim >= 2 else (1, w.size)
        w2, h2 = w.reshape(shape), np.asarray(w_hat).reshape(shape)
        for r0, r1 in _row_chunks(shape):
            self.add(w2[r0:r1], h2[r0:r1])

    def result(self):
        """(relative weight error, relative output error or None, objective)."""

        def rel(a, b):
            return a / b if b > 0 else (0.0 if a == 0 else math.inf)

        if self.known is not None:
            self.ref, self.out_ref = self.known
        if self.H is None:
            return rel(self.sq, self.ref), None, self.sq
        return rel(self.sq, self.ref), rel(self.out, self.out_ref), self.out


def quantize_tensor(name, w, method, params, stats=None, errors=None):
    """Quantize one tensor with a validated method; return its :class:`Record`.

    ``errors``: an :class:`ErrorSums` to fill with the errors of the result.
    """
    acc = errors if errors is not None else ErrorSums(None)
    t0 = time.perf_counter()
    w = np.asarray(w)
    rec = Record(
        name=name,
        shape=tuple(int(s) for s in w.shape),
        dtype=str(w.dtype),
        method=method,
        params=json.loads(json.dumps(params)),
        kind="raw",
    )
    if method == "skip":
        rec.arrays["values"] = np.ascontiguousarray(w)
    else:
        if w.dtype.kind != "f":
            raise TypeError(f"method {method!r} needs a floating tensor, got dtype {w.dtype}")
        if _fused_plan(w, method, params, acc) is None and not np.all(np.isfinite(w)):
            raise ValueError("the tensor holds NaN or Inf values")
        if method in NEEDS_CALIBRATION:
            if stats is None:
                raise ValueError(
                    f"method {method!r} needs calibration inputs for this tensor; pass "
                    "calibration= (a mapping, a callable or an .npz of its inputs)"
                )
            n_in = _as_2d(w).shape[1]
            if stats.hessian.shape != (n_in, n_in):
                raise ValueError(
                    f"calibration inputs have {stats.hessian.shape[0]} features but the "
                    f"tensor of shape {rec.shape} has {n_in} inputs"
                )
        if method in rounding.available_quantizers():
            rec.kind = "registry"
            _quantize_registry(w, method, params, rec, acc)
        elif method in LAYER_METHODS:
            rec.kind = "grid"
            _quantize_layer(w, method, params, stats, rec, name)
        elif method in ("kmeans", "hessian_kmeans"):
            rec.kind = "codebook"
            _quantize_kmeans(w, method, params, stats, rec, name)
        elif method == "pq":
            rec.kind = "pq"
            _quantize_pq(w, params, rec)
        elif method in GGUF_METHODS:
            rec.kind = "gguf"
            _quantize_gguf(w, method, rec, acc)
        else:  # pragma: no cover - check_params rejects unknown names first
            raise ValueError(f"unknown method {method!r}")
        if rec.kind not in ("registry", "gguf") and errors is not None:
            acc.add_all(w, dequantize_record(rec))
    rec.seconds = time.perf_counter() - t0
    return rec


def dequantize_record(rec):
    """The float tensor a record stands for (its original shape and dtype)."""
    a, meta = rec.arrays, rec.meta
    if rec.kind == "raw":
        return a["values"]
    dtype = np.dtype(rec.dtype)
    if rec.kind == "grid":
        W = grid_stored_weight(rec)
        t = grid_transform(rec)
        if t is not None:
            W = t.inverse(W, axis=1)
        if "input_scale" in a:
            W = W * a["input_scale"].astype(np.float64)
        return W.astype(dtype).reshape(rec.shape)
    codes = get_codes(rec)
    if rec.kind == "registry":
        qa = rounding.QuantizedArray(
            codes=codes,
            scale=a.get("scale"),
            zero_point=a.get("zero_point"),
            codebook=a.get("codebook"),
            scale_neg=a.get("scale_neg"),
            bits=meta["bits"],
            axis=None if meta["axis"] is None else tuple(meta["axis"]),
            group_size=meta["group_size"],
            dtype=rec.dtype,
            scheme=meta["scheme"],
            shape=rec.shape,
        )
        return np.asarray(rounding.decode(qa)).reshape(rec.shape)
    if rec.kind == "codebook":
        return a["codebook"][codes].astype(dtype).reshape(rec.shape)
    if rec.kind == "pq":
        book = a["codebook"]
        parts = [book[j][codes[:, j]] for j in range(book.shape[0])]
        return np.concatenate(parts, axis=1).astype(dtype).reshape(rec.shape)
    if rec.kind == "gguf":
        v = dequantize_gguf_blocks(rec.method, codes, a["d"], a.get("m"))
        return v.reshape(rec.shape).astype(dtype)
    raise ValueError(f"unknown record kind {rec.kind!r}")  # pragma: no cover
