"""Checkpoints out: the packed ``.safetensors`` format (and its validating loader), and GGUF."""

from __future__ import annotations

import contextlib
import json
import math
import os

import numpy as np

from .._typing import PathLike
from ._errors import CheckpointError
from ._methods import (
    GGUF_BLOCK,
    GGUF_METHODS,
    Record,
    available_methods,
    get_codes,
    grid_transform,
)
from ._network import QuantizedNetwork
from ._packing import DENSE_BITS, WIDE_BITS, packed_nbytes
from ._report import Report

FORMAT = "qtoolkit.network"
VERSION = 1
META_KEY = "qtoolkit.network"
KINDS = ("raw", "registry", "grid", "codebook", "pq", "gguf")
GRID_SCHEMES = ("uniform", "uniform-real-zero", "codebook")
DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
)
_KIND_ARRAYS = {
    "raw": ({"values"}, set()),
    "registry": ({"codes"}, {"scale", "zero_point", "codebook", "scale_neg"}),
    "grid": (
        {"codes", "groups"},
        {"scale", "zero_point", "codebook", "signs", "block", "input_scale"},
    ),
    "codebook": ({"codes", "codebook"}, set()),
    "pq": ({"codes", "codebook"}, set()),
    "gguf": ({"codes", "d"}, {"m"}),
}


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it over ``path`` only on success."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def save_safetensors(path, records, report):
    from safetensors.numpy import save_file

    tensors, entries = {}, []
    for i, rec in enumerate(records.values()):
        keys = {}
        for key, arr in rec.arrays.items():
            k = f"t{i}.{key}"
            tensors[k] = np.ascontiguousarray(arr)
            keys[key] = k
        entry = {"name": rec.name, **rec.header(), "arrays": keys}
        entries.append(entry)
    header = {"format": FORMAT, "version": VERSION, "tensors": entries, "report": report.to_dict()}
    meta = {META_KEY: json.dumps(header, default=str)}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return os.fspath(path)


def _fail(path, msg):
    raise CheckpointError(f"{path}: {msg}")


def _int_list(value):
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    )


def _check_entry(path, i, e):
    where = f"tensor entry {i}"
    if not isinstance(e, dict):
        _fail(path, f"{where} is not an object")
    need = {"name", "shape", "dtype", "method", "params", "kind", "meta", "arrays"}
    if set(e) != need:
        _fail(path, f"{where} must have exactly the keys {sorted(need)}, got {sorted(e)}")
    if not isinstance(e["name"], str):
        _fail(path, f"{where} has a non-string name")
    where = f"tensor {e['name']!r}"
    if not _int_list(e["shape"]) or len(e["shape"]) > 32:
        _fail(path, f"{where}: shape must be a list of at most 32 non-negative ints")
    if e["dtype"] not in DTYPES:
        _fail(path, f"{where}: unsupported dtype {e['dtype']!r}")
    if e["kind"] not in KINDS:
        _fail(path, f"{where}: unknown kind {e['kind']!r}")
    if e["method"] not in available_methods():
        _fail(path, f"{where}: unknown method {e['method']!r}")
    if not isinstance(e["params"], dict) or not isinstance(e["meta"], dict):
        _fail(path, f"{where}: params and meta must be objects")
    arrays = e["arrays"]
    if not isinstance(arrays, dict) or not all(isinstance(v, str) for v in arrays.values()):
        _fail(path, f"{where}: arrays must map names to tensor keys")
    need, extra = _KIND_ARRAYS[e["kind"]]
    if not need <= set(arrays) <= need | extra:
        _fail(
            path, f"{where}: kind {e['kind']!r} needs arrays {sorted(need)}, got {sorted(arrays)}"
        )
    return where


def _check_codes(path, where, meta, codes, expected_shape):
    bits = meta.get("code_bits")
    if bits not in DENSE_BITS + WIDE_BITS:
        _fail(path, f"{where}: code_bits must be one of {DENSE_BITS + WIDE_BITS}, got {bits!r}")
    off = meta.get("code_offset")
    if isinstance(off, bool) or not isinstance(off, int) or abs(off) > 2**62:
        _fail(path, f"{where}: code_offset must be an int, got {off!r}")
    shape = meta.get("code_shape")
    if not _int_list(shape) or (expected_shape is not None and tuple(shape) != expected_shape):
        _fail(
            path,
            f"{where}: code_shape {shape!r} does not fit the tensor (expected {expected_shape})",
        )
    count = math.prod(shape)
    want = {16: np.uint16, 32: np.uint32}.get(bits, np.uint8)
    if (
        codes.dtype != want
        or codes.ndim != 1
        or codes.size * codes.itemsize != packed_nbytes(count, bits)
    ):
        _fail(
            path,
            f"{where}: codes must be {packed_nbytes(count, bits)} bytes of {np.dtype(want)} for "
            f"{count} codes of {bits} bits, got {codes.dtype} of shape {codes.shape}",
        )
    return count


def _validate_grid(path, where, rec, two_d):
    """A layer method's record: a uniform grid or per-row codebooks, an optional rotation
    (signs, one bit each, and a random block) and optional input scales."""
    a, meta = rec.arrays, rec.meta
    if two_d is None:
        _fail(path, f"{where}: a grid tensor needs at least one row")
    n_out, n_in = two_d
    _check_codes(path, where, meta, a["codes"], two_d)
    g = a["groups"]
    if g.shape != (n_in,) or g.dtype.kind not in "iu":
        _fail(path, f"{where}: groups must be {n_in} ints, got {g.dtype} {g.shape}")
    scheme = meta.get("scheme", "uniform")
    if scheme not in GRID_SCHEMES:
        _fail(path, f"{where}: scheme must be one of {GRID_SCHEMES}, got {scheme!r}")
    if "codebook" in a:
        if scheme != "codebook" or "scale" in a or "zero_point" in a:
            _fail(path, f"{where}: a codebook record has scheme 'codebook' and no scale")
        book = a["codebook"]
        if book.ndim != 3 or book.shape[0] != n_out or book.dtype.kind != "f" or 0 in book.shape:
            _fail(path, f"{where}: codebook must be float ({n_out}, G, K), got {book.shape}")
        n_groups, k = book.shape[1], book.shape[2]
        c = get_codes(rec)
        if c.size and (c.min() < 0 or c.max() >= k):
            _fail(path, f"{where}: codes index outside the {k} codewords of a row")
    else:
        if scheme == "codebook" or "scale" not in a or "zero_point" not in a:
            _fail(path, f"{where}: a uniform grid record needs scale and zero_point")
        s, z = a["scale"], a["zero_point"]
        if s.dtype.kind != "f" or z.dtype.kind not in "iuf":
            _fail(path, f"{where}: scale must be float and zero_point numeric")
        if s.ndim != 2 or s.shape[0] != n_out or z.shape != s.shape or s.shape[1] < 1:
            _fail(path, f"{where}: scale {s.shape} and zero_point {z.shape} must be ({n_out}, G)")
        n_groups = s.shape[1]
    if g.size and (g.min() < 0 or g.max() >= n_groups):
        _fail(path, f"{where}: groups index outside the {n_groups} grid columns")
    if "block" in a and "signs" not in a:
        _fail(path, f"{where}: a rotation block needs its signs")
    if "signs" in a:
        sg = a["signs"]
        if sg.dtype != np.uint8 or sg.ndim != 1 or sg.size != packed_nbytes(n_in, 1):
            _fail(path, f"{where}: signs must be {packed_nbytes(n_in, 1)} uint8 bytes (1 bit each)")
        try:
            grid_transform(rec)
        except ValueError as err:
            _fail(path, f"{where}: bad rotation: {err}")
    if "input_scale" in a:
        v = a["input_scale"]
        if v.shape != (n_in,) or v.dtype.kind != "f":
            _fail(path, f"{where}: input_scale must be {n_in} floats, got {v.dtype} {v.shape}")


def _validate_record(path, where, rec):
    a, meta, shape = rec.arrays, rec.meta, tuple(rec.shape)
    size = math.prod(shape)
    if rec.kind == "raw":
        v = a["values"]
        if tuple(v.shape) != shape or str(v.dtype) != rec.dtype:
            _fail(path, f"{where}: values of {v.dtype} {v.shape} do not match {rec.dtype} {shape}")
        return
    if np.dtype(rec.dtype).kind != "f":
        _fail(path, f"{where}: a quantized tensor must have a floating dtype, got {rec.dtype}")
    for key, arr in a.items():
        if key != "codes" and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            _fail(path, f"{where}: {key} holds NaN or Inf")
    two_d = (shape[0], size // shape[0]) if len(shape) >= 1 and shape[0] else None
    if rec.kind == "registry":
        _check_codes(path, where, meta, a["codes"], shape)
        gs = meta.get("group_size")
        if gs is not None and (not isinstance(gs, int) or gs < 1 or not shape or shape[-1] % gs):
            _fail(path, f"{where}: bad group_size {gs!r} for shape {shape}")
        view = shape if gs is None else (*shape[:-1], shape[-1] // gs, gs)
        for key in ("scale", "zero_point", "scale_neg"):
            if key in a:
                try:
                    ok = np.broadcast_shapes(view, a[key].shape) == view
                except ValueError:
                    ok = False
                if not ok:
                    _fail(
                        path, f"{where}: {key} of shape {a[key].shape} does not broadcast to {view}"
                    )
        if not isinstance(meta.get("bits"), int) or not isinstance(meta.get("scheme"), str):
            _fail(path, f"{where}: meta needs int 'bits' and str 'scheme'")
        ax = meta.get("axis")
        if ax is not None and not (isinstance(ax, list) and all(isinstance(x, int) for x in ax)):
            _fail(path, f"{where}: axis must be null or a list of ints")
        if "codebook" in a:
            book = a["codebook"]
            if book.ndim != 1 or book.size == 0:
                _fail(path, f"{where}: codebook must be 1-D and non-empty")
            c = get_codes(rec)
            if c.size and (c.min() < 0 or c.max() >= book.size):
                _fail(path, f"{where}: codes index outside the codebook of {book.size} entries")
    elif rec.kind == "grid":
        _validate_grid(path, where, rec, two_d)
    elif rec.kind == "codebook":
        _check_codes(path, where, meta, a["codes"], shape)
        book = a["codebook"]
        if book.ndim != 1 or book.size == 0 or book.dtype.kind != "f":
            _fail(path, f"{where}: codebook must be a non-empty 1-D float array")
        c = get_codes(rec)
        if c.size and (c.min() < 0 or c.max() >= book.size):
            _fail(path, f"{where}: codes index outside the codebook of {book.size} entries")
    elif rec.kind == "pq":
        book = a["codebook"]
        if book.ndim != 3 or book.dtype.kind != "f" or 0 in book.shape or two_d is None:
            _fail(path, f"{where}: codebook must be a float array (M, K, d_sub)")
        M, K, d = book.shape
        if M * d != two_d[1]:
            _fail(path, f"{where}: codebook {book.shape} does not cover {two_d[1]} features")
        _check_codes(path, where, meta, a["codes"], (two_d[0], M))
        c = get_codes(rec)
        if c.size and (c.min() < 0 or c.max() >= K):
            _fail(path, f"{where}: codes index outside the {K} codewords")
    elif rec.kind == "gguf":
        if rec.method not in GGUF_METHODS:
            _fail(path, f"{where}: kind 'gguf' needs a GGUF method, got {rec.method!r}")
        B = GGUF_BLOCK[rec.method]
        if not shape or shape[-1] % B:
            _fail(path, f"{where}: last dimension of {shape} is not a multiple of {B}")
        nb = size // B
        _check_codes(path, where, meta, a["codes"], (nb, B))
        lo, hi = {"q8_0": (-128, 127), "q4_0": (0, 15), "q4_1": (0, 15)}.get(rec.method, (0, 2))
        off, bits = meta["code_offset"], meta["code_bits"]
        if off < lo or (off + 2**bits - 1 > hi and get_codes(rec).max(initial=lo) > hi):
            _fail(path, f"{where}: codes outside [{lo}, {hi}] of {rec.method}")
        for key in ("d", "m") if rec.method == "q4_1" else ("d",):
            if key not in a or a[key].dtype != np.float16 or a[key].shape != (nb,):
                _fail(path, f"{where}: {key} must be {nb} float16 values")


def load(path: PathLike) -> QuantizedNetwork:
    """Read a packed network written by :meth:`QuantizedNetwork.save` (safetensors format).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors`` file written by qtoolkit.

    Returns
    -------
    network : QuantizedNetwork
        With its records and the report stored at save time.

    Raises
    ------
    CheckpointError
        If the file is missing, not a safetensors file, lacks the qtoolkit
        header, has another format version, or any tensor's header and
        arrays disagree (shapes, byte counts, code ranges, dtypes).

    See Also
    --------
    quantize, QuantizedNetwork.save

    Notes
    -----
    No pickle is involved: the file is a safetensors file whose metadata
    entry ``"qtoolkit.network"`` holds a JSON header ``{"format", "version",
    "tensors": [...], "report"}``. Every array's size is checked against the
    header before it is used, so what is allocated on decoding is bounded by
    the header's shapes, which are themselves tied to the stored bytes.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from qtoolkit.network import load, quantize
    >>> net = quantize({"w": np.eye(32, dtype=np.float32)}, [{"match": "w", "method": "q4_0"}])
    >>> back = load(net.save(os.path.join(tempfile.mkdtemp(), "w.safetensors")))
    >>> back.names, back.report.rows[0]["method"]
    (['w'], 'q4_0')
    """
    from safetensors import safe_open

    from ._network import QuantizedNetwork

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"cannot read {path!r}: no such file")
    try:
        handle = safe_open(path, framework="numpy")
        meta = handle.metadata() or {}
        keys = set(handle.keys())
    except Exception as err:
        raise CheckpointError(f"cannot read {path!r} as a safetensors file: {err}") from err
    if META_KEY not in meta:
        _fail(path, "not a qtoolkit packed network (no 'qtoolkit.network' header)")
    try:
        header = json.loads(meta[META_KEY])
    except json.JSONDecodeError as err:
        _fail(path, f"the header is not valid JSON: {err}")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        _fail(path, "the header does not describe a qtoolkit packed network")
    if header.get("version") != VERSION:
        _fail(
            path,
            f"format version {header.get('version')!r} is not supported (this reads {VERSION})",
        )
    entries = header.get("tensors")
    if not isinstance(entries, list):
        _fail(path, "the header has no list of tensors")
    records, names = {}, set()
    for i, e in enumerate(entries):
        where = _check_entry(path, i, e)
        if e["name"] in names:
            _fail(path, f"{where} appears twice")
        names.add(e["name"])
        arrays = {}
        for key, k in e["arrays"].items():
            if k not in keys:
                _fail(path, f"{where}: array {k!r} is missing from the file")
            try:
                arrays[key] = handle.get_tensor(k)
            except Exception as err:
                _fail(path, f"{where}: cannot read array {k!r}: {err}")
        rec = Record(
            name=e["name"],
            shape=tuple(e["shape"]),
            dtype=e["dtype"],
            method=e["method"],
            params=e["params"],
            kind=e["kind"],
            arrays=arrays,
            meta=e["meta"],
        )
        try:
            _validate_record(path, where, rec)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as err:
            _fail(path, f"{where}: inconsistent header: {err!r}")
        records[rec.name] = rec
    rep = header.get("report")
    rows = rep.get("rows", []) if isinstance(rep, dict) else []
    if (
        not isinstance(rows, list)
        or len(rows) != len(records)
        or not all(isinstance(r, dict) and set(Report.COLUMNS) <= set(r) for r in rows)
    ):
        _fail(path, "the stored report does not match the tensors")
    return QuantizedNetwork(records, Report(rows, rep.get("recipe"), rep.get("pareto")))


def gguf_blocks(rec):
    """The GGUF bytes of a ``gguf`` record: shape (rows, bytes per row), uint8."""
    q = get_codes(rec)
    d = rec.arrays["d"].view(np.uint8).reshape(-1, 2)
    n_blocks = q.shape[0]
    if rec.method == "q8_0":
        blocks = np.concatenate([d, q.astype(np.int8).view(np.uint8)], axis=1)
    elif rec.method in ("q4_0", "q4_1"):
        q8 = q.astype(np.uint8)
        nib = q8[:, :16] | (q8[:, 16:] << np.uint8(4))
        parts = [d] + (
            [rec.arrays["m"].view(np.uint8).reshape(-1, 2)] if rec.method == "q4_1" else []
        )
        blocks = np.concatenate([*parts, nib], axis=1)
    elif rec.method == "tq2_0":
        q8 = q.astype(np.uint8).reshape(n_blocks, 2, 4, 32)
        qs = q8[:, :, 0] | (q8[:, :, 1] << 2) | (q8[:, :, 2] << 4) | (q8[:, :, 3] << 6)
        blocks = np.concatenate([qs.reshape(n_blocks, 64), d], axis=1)
    else:  # tq1_0: five trits per byte (base 3), scaled to a byte with ceil(256 v / 243)
        t = q.astype(np.uint16)
        p5 = np.array([81, 27, 9, 3, 1], dtype=np.uint16)
        a = (t[:, :160].reshape(n_blocks, 5, 32) * p5[None, :, None]).sum(axis=1)
        b = (t[:, 160:240].reshape(n_blocks, 5, 16) * p5[None, :, None]).sum(axis=1)
        h = (t[:, 240:].reshape(n_blocks, 4, 4) * p5[:4, None][None]).sum(axis=1)
        v = np.concatenate([a, b, h], axis=1)
        v = ((v * 256 + 242) // 243).astype(np.uint8)
        blocks = np.concatenate([v, d], axis=1)
    rows = math.prod(rec.shape[:-1]) if len(rec.shape) > 1 else 1
    return np.ascontiguousarray(blocks.reshape(rows, -1))


def save_gguf(path, records):
    import gguf

    types = {m: getattr(gguf.GGMLQuantizationType, m.upper()) for m in GGUF_METHODS}
    bad = [r.name for r in records.values() if r.kind not in ("raw", "gguf")]
    if bad:
        raise ValueError(
            f"GGUF export needs every tensor quantized with one of {list(GGUF_METHODS)} or kept "
            f"in floating point; these are not: {bad[:5]}{' ...' if len(bad) > 5 else ''}"
        )
    with atomic_path(path) as tmp:
        writer = gguf.GGUFWriter(tmp, arch="qtoolkit")
        writer.add_string("general.name", "qtoolkit quantized network")
        for rec in records.values():
            if rec.kind == "raw":
                writer.add_tensor(rec.name, np.ascontiguousarray(rec.arrays["values"]))
            else:
                blocks = gguf_blocks(rec)
                writer.add_tensor(
                    rec.name, blocks, raw_shape=blocks.shape, raw_dtype=types[rec.method]
                )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return os.fspath(path)
