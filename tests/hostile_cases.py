"""Crafted files, messages and parameters, each with the clean error it must raise.

``python tests/hostile_cases.py [NAME ...]`` runs the cases in this process,
one after another, and prints one JSON line per case: the exception raised
(or None), its message, the peak of memory traced by ``tracemalloc`` while
the case ran, and the wall time. ``tests/test_hostile_files.py`` runs this
script in a subprocess, so a case that crashes the interpreter fails its test
instead of killing the test run.

A case is ``(build, call, expected)``: ``build()`` crafts the input (not
measured), ``call(input)`` feeds it to the library (measured), and
``expected`` is the exception type the library must raise (a ``ValueError``
or ``TypeError`` subclass) or None when the call must succeed.
"""

import io
import json
import math
import struct
import sys
import time
import tracemalloc
import zipfile

import numpy as np

import qtoolkit  # noqa: F401  (import cost outside the measured calls)
from qtoolkit.bitops import binary_matmul, pack_bits
from qtoolkit.codebooks import (
    EntropyConstrainedQuantizer,
    KMeansQuantizer,
    ProbabilisticWeights,
    ProductQuantizer,
    QuantizerFileError,
    ResidualQuantizer,
    SoftQuantizer,
    load_quantizer,
    save_quantizer,
)
from qtoolkit.gradients import QSGDCompressor, SignErrorFeedback, TernGradCompressor
from qtoolkit.rounding import (
    QuantizedArray,
    QuantizedFileError,
    decode,
    encode,
    get,
    load_quantized,
    save_quantized,
)

CASES = {}


def case(expected):
    """Register ``fn`` (returning ``(build, call)``) as a case raising ``expected``."""

    def deco(fn):
        CASES[fn.__name__] = (fn, expected)
        return fn

    return deco


# ----------------------------------------------------------------------------- crafting


def npy_bytes(arr, *, header_shape=None, header_dtype=None):
    """A .npy member for ``arr``; the header may claim another shape or dtype."""
    buf = io.BytesIO()
    d = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(header_dtype or arr.dtype)),
        "fortran_order": False,
        "shape": tuple(arr.shape if header_shape is None else header_shape),
    }
    np.lib.format.write_array_header_1_0(buf, d)
    buf.write(np.ascontiguousarray(arr).tobytes())
    return buf.getvalue()


def npz(members, *, deflate=True, big=None):
    """An .npz archive (bytes) of ``members`` (name -> array or raw .npy bytes).

    ``big`` maps a name to ``(dtype, shape)``: a member of zeros of that shape
    written in chunks, so a bomb that inflates to gigabytes is crafted in a few MB.
    """
    buf = io.BytesIO()
    mode = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", mode) as zf:
        for name, value in members.items():
            raw = value if isinstance(value, bytes) else npy_bytes(np.asarray(value))
            zf.writestr(name + ".npy", raw)
        for name, (dtype, shape) in (big or {}).items():
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                head,
                {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(shape)},
            )
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                f.write(head.getvalue())
                left = math.prod(shape) * np.dtype(dtype).itemsize
                chunk = bytes(1 << 22)
                while left:
                    n = min(left, len(chunk))
                    f.write(chunk[:n])
                    left -= n
    return buf.getvalue()


def members_of(data):
    """name -> raw .npy bytes of an archive."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename[:-4]: zf.read(i) for i in zf.infolist()}


def saved(est):
    buf = io.BytesIO()
    save_quantizer(buf, est)
    return members_of(buf.getvalue())


def _X(n=64, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def fitted_pq():
    return ProductQuantizer(n_subspaces=2, n_clusters=4, random_state=0).fit(_X())


def fitted_kmeans():
    return KMeansQuantizer(n_clusters=4).fit(_X()[:, 0])


def quantizer_file(est, replace=(), drop=(), big=None, params=None):
    """A save_quantizer file of ``est`` with members replaced, dropped or added."""
    m = saved(est)
    for k in drop:
        m.pop(k)
    if params is not None:
        p = json.loads(str(np.load(io.BytesIO(m["__params__"]))))
        p.update(params)
        m["__params__"] = npy_bytes(np.array(json.dumps(p)))
    for k, v in dict(replace).items():
        m[k] = v if isinstance(v, bytes) else npy_bytes(np.asarray(v))
    for k in big or {}:
        m.pop(k, None)
    return npz(m, big=big)


def load(data):
    return load_quantizer(io.BytesIO(data))


def load_and_use(data):
    est = load_quantizer(io.BytesIO(data))
    X = _X(8, getattr(est, "n_features_in_", 4))
    est.transform(X if hasattr(est, "n_features_in_") else X[:, 0])
    return est


# ------------------------------------------------------- 1. loaded estimators (load_quantizer)


@case(QuantizerFileError)
def pq_codebook_longer_than_features():
    # codebook (2, 1, 5e6) while n_features_in_ = 4: the kernel would read 40 MB past X
    return lambda: quantizer_file(
        fitted_pq(), big={"attr:codebook_": (np.float64, (2, 1, 5_000_000))}
    ), load_and_use


@case(QuantizerFileError)
def pq_codebook_no_codewords():
    return lambda: quantizer_file(fitted_pq(), replace={"attr:codebook_": np.zeros((2, 0, 2))}), (
        load_and_use
    )


@case(QuantizerFileError)
def pq_codebook_wrong_subspaces():
    return lambda: quantizer_file(fitted_pq(), replace={"attr:codebook_": np.zeros((3, 4, 2))}), (
        load_and_use
    )


@case(QuantizerFileError)
def pq_codebook_int_dtype():
    return lambda: quantizer_file(
        fitted_pq(), replace={"attr:codebook_": np.zeros((2, 4, 2), np.int64)}
    ), load_and_use


@case(QuantizerFileError)
def pq_codebook_nan():
    return lambda: quantizer_file(
        fitted_pq(), replace={"attr:codebook_": np.full((2, 4, 2), np.nan)}
    ), load_and_use


@case(QuantizerFileError)
def pq_missing_features():
    return lambda: quantizer_file(fitted_pq(), drop=["attr:n_features_in_"]), load_and_use


@case(QuantizerFileError)
def attr_replaces_transform():
    return lambda: quantizer_file(fitted_kmeans(), replace={"attr:transform": np.array(1)}), load


@case(QuantizerFileError)
def attr_unknown_private():
    return lambda: quantizer_file(fitted_kmeans(), replace={"attr:__class__": np.array(1)}), load


@case(QuantizerFileError)
def kmeans_unsorted_codebook():
    def build():
        est = fitted_kmeans()
        c = est.codebook_[::-1].copy()
        return quantizer_file(
            est, replace={"attr:codebook_": c, "attr:boundaries_": 0.5 * (c[1:] + c[:-1])}
        )

    return build, load_and_use


@case(QuantizerFileError)
def kmeans_boundaries_disagree():
    def build():
        est = fitted_kmeans()
        return quantizer_file(est, replace={"attr:boundaries_": est.boundaries_ + 1.0})

    return build, load_and_use


@case(QuantizerFileError)
def kmeans_short_boundaries():
    def build():
        est = fitted_kmeans()
        return quantizer_file(est, replace={"attr:boundaries_": est.boundaries_[:1]})

    return build, load_and_use


@case(QuantizerFileError)
def kmeans_codebook_longer_than_n_clusters():
    def build():
        c = np.arange(9.0)
        return quantizer_file(
            fitted_kmeans(),
            replace={"attr:codebook_": c, "attr:boundaries_": 0.5 * (c[1:] + c[:-1])},
        )

    return build, load_and_use


@case(QuantizerFileError)
def params_n_threads_huge():
    return lambda: quantizer_file(fitted_pq(), params={"n_threads": 10**6}), load_and_use


@case(QuantizerFileError)
def params_n_clusters_2_63():
    return lambda: quantizer_file(fitted_pq(), params={"n_clusters": 2**63}), load_and_use


@case(QuantizerFileError)
def params_unknown_key():
    return lambda: quantizer_file(fitted_pq(), params={"transform": 1}), load


@case(QuantizerFileError)
def params_deeply_nested_json():
    return lambda: quantizer_file(
        fitted_pq(), replace={"__params__": np.array("[" * 30000 + "]" * 30000)}
    ), load


@case(QuantizerFileError)
def params_nan_tol():
    return lambda: quantizer_file(
        fitted_pq(), replace={"__params__": np.array('{"n_subspaces": 2, "tol": NaN}')}
    ), load


@case(QuantizerFileError)
def params_not_object():
    return lambda: quantizer_file(fitted_pq(), replace={"__params__": np.array("[1, 2]")}), load


@case(QuantizerFileError)
def unknown_class():
    return lambda: quantizer_file(fitted_pq(), replace={"__class__": np.array("os.system")}), load


@case(QuantizerFileError)
def soft_sigma_negative():
    return lambda: quantizer_file(
        SoftQuantizer(n_clusters=2, random_state=0).fit(_X()), replace={"attr:sigma_": -1.0}
    ), load_and_use


@case(QuantizerFileError)
def rq_stage_count_disagrees():
    return lambda: quantizer_file(
        ResidualQuantizer(n_stages=2, n_clusters=4, random_state=0).fit(_X()),
        replace={"attr:codebook_": np.zeros((3, 4, 4))},
    ), load_and_use


@case(QuantizerFileError)
def ecsq_thresholds_too_long():
    def build():
        est = EntropyConstrainedQuantizer(n_clusters=4).fit(_X()[:, 0])
        return quantizer_file(est, replace={"attr:thresholds_": np.arange(10.0)})

    return build, load_and_use


@case(QuantizerFileError)
def probabilistic_logits_disagree():
    def build():
        est = ProbabilisticWeights().fit(_X())
        return quantizer_file(est, replace={"attr:logits_": est.logits_ + 1})

    return build, load


@case(QuantizerFileError)
def probabilistic_logits_bomb():
    # theta (64, 4, 2) but logits claims 2**27 rows: rejected from the header alone
    return lambda: quantizer_file(
        ProbabilisticWeights().fit(_X()), big={"attr:logits_": (np.float64, (1 << 24, 1, 3))}
    ), load


@case(None)
def roundtrip_every_learner():
    def build():
        X = _X()
        ests = [
            fitted_kmeans(),
            KMeansQuantizer(n_clusters=3).fit(X),
            fitted_pq(),
            ProductQuantizer(2, 4, random_state=0).fit(X.astype(np.float32)),
            ResidualQuantizer(n_stages=2, n_clusters=4, random_state=0).fit(X),
            SoftQuantizer(n_clusters=3, random_state=0).fit(X),
            EntropyConstrainedQuantizer(n_clusters=4).fit(X[:, 0]),
            ProbabilisticWeights(kind="binary").fit(X),
            ProbabilisticWeights().fit(X),
        ]
        files = []
        for est in ests:
            buf = io.BytesIO()
            save_quantizer(buf, est)
            files.append((est, buf.getvalue()))
        return files

    def call(files):
        for est, data in files:
            back = load(data)
            for k, v in vars(est).items():
                if k.endswith("_"):
                    got = getattr(back, k)
                    assert type(got) is type(v) or isinstance(v, np.ndarray), k
                    assert np.array_equal(got, v), k
                    assert getattr(got, "dtype", None) == getattr(v, "dtype", None), k

    return build, call


# ------------------------------------------------------------------- 2. thread counts


@case(ValueError)
def pack_bits_n_threads_1e5():
    return lambda: np.ones((4, 64)), lambda x: pack_bits(x, n_threads=10**5)


@case(ValueError)
def pack_bits_n_threads_2_31():
    return lambda: np.ones((4, 64)), lambda x: pack_bits(x, n_threads=2**31)


@case(ValueError)
def binary_matmul_n_threads_1e5():
    return lambda: np.ones((4, 64)), lambda x: binary_matmul(x, x, n_threads=10**5)


@case(ValueError)
def pq_transform_n_threads_1e6():
    def call(est):
        est.set_params(n_threads=10**6)
        return est.transform(_X(8))

    return fitted_pq, call


@case(ValueError)
def pq_search_n_threads_1e6():
    def call(est):
        codes = est.transform(_X(8))
        est.set_params(n_threads=10**6)
        return est.search(_X(2), codes)

    return fitted_pq, call


@case(None)
def pack_bits_many_threads_tiny_input():
    # 4000 threads asked for 4 rows: capped, and the result is the serial one
    def call(x):
        assert np.array_equal(pack_bits(x, n_threads=4000).words, pack_bits(x, n_threads=1).words)

    return lambda: np.random.default_rng(1).normal(size=(4, 64)), call


# ------------------------------------------------------------------ 3. wire size caps


def qsgd_elias_header(shape, body=b""):
    head = b"QG" + struct.pack("<BcB", 1, b"d", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)
    return head + struct.pack("<IBQ", 4, 0, 0) + body


@case(ValueError)
def qsgd_elias_2_28_zeros_38_bytes():
    # a zero gradient of 2**28 values: one norm and nnz = 0 after the header
    return lambda: qsgd_elias_header((1 << 28,), struct.pack("<d", 0.0) + struct.pack("<Q", 0)), (
        lambda d: QSGDCompressor().decode(d)
    )


@case(ValueError)
def qsgd_elias_2_29_zeros():
    return lambda: qsgd_elias_header(
        (1 << 29,), struct.pack("<d", 0.0) + struct.pack("<Q", 0)
    ), lambda d: QSGDCompressor().decode(d)


@case(ValueError)
def qsgd_nnz_larger_than_message():
    return lambda: qsgd_elias_header((1000,), struct.pack("<d", 1.0) + struct.pack("<Q", 999)), (
        lambda d: QSGDCompressor().decode(d)
    )


@case(ValueError)
def qsgd_shape_product_overflows():
    return lambda: qsgd_elias_header((1 << 40, 1 << 40), struct.pack("<Q", 0)), (
        lambda d: QSGDCompressor().decode(d)
    )


@case(ValueError)
def terngrad_huge_shape():
    def build():
        head = b"QG" + struct.pack("<BcB", 2, b"d", 1) + struct.pack("<Q", 1 << 40)
        return head + struct.pack("<d", 1.0)

    return build, lambda d: TernGradCompressor().decode(d)


@case(ValueError)
def sign_ndim_255():
    def build():
        head = b"QG" + struct.pack("<BcB", 3, b"d", 255) + struct.pack("<255Q", *([1] * 255))
        return head + struct.pack("<dd", 1.0, -1.0) + b"\x00"

    return build, lambda d: SignErrorFeedback().decode(d)


@case(ValueError)
def qsgd_max_elements_lowered():
    # the documented cap is a parameter: a zero gradient of 2**20 values with a cap of 2**19
    return lambda: qsgd_elias_header(
        (1 << 20,), struct.pack("<d", 0.0) + struct.pack("<Q", 0)
    ), lambda d: QSGDCompressor().decode(d, max_elements=1 << 19)


@case(None)
def qsgd_max_elements_default_decodes():
    def call(d):
        q = QSGDCompressor().decode(d)
        assert q.shape == (1 << 20,) and not q.any()

    return lambda: qsgd_elias_header(
        (1 << 20,), struct.pack("<d", 0.0) + struct.pack("<Q", 0)
    ), call


# ---------------------------------------------------------- 7-8. corrupt wire messages


def elias_message(values, signs, n, s=4, norm=1.0):
    """A QSGD Elias message of ``n`` float64 values, with a hand-made stream.

    ``values`` are the 2 nnz Elias-gamma values (gaps then levels), as Python ints
    (any size): unary prefixes first, then mantissas, then the sign bits.
    """
    nnz = len(signs)
    prefix = "".join("0" * (v.bit_length() - 1) + "1" for v in values)
    mantissa = "".join(bin(v)[3:] for v in values)
    bits = prefix + mantissa + "".join("1" if x else "0" for x in signs)
    bits += "0" * (-len(bits) % 8)
    body = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
    head = b"QG" + struct.pack("<BcB", 1, b"d", 1) + struct.pack("<Q", n)
    return (
        head
        + struct.pack("<IBQ", s, 0, 0)
        + struct.pack("<d", norm)
        + struct.pack("<Q", nnz)
        + body
    )


@case(None)
def qsgd_hand_made_message_decodes():
    # the crafted layout is the real one: gap 3, level 2 -> value 2 at index 2
    def call(d):
        q = QSGDCompressor(n_levels=4).decode(d)
        assert np.array_equal(q, [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0])

    return lambda: elias_message([3, 2], [False], 8), call


@case(ValueError)
def qsgd_gap_2_64_minus_5():
    return lambda: elias_message([2**64 - 5, 1], [False], 8), lambda d: QSGDCompressor().decode(d)


@case(ValueError)
def qsgd_gap_past_the_array():
    return lambda: elias_message([9, 1], [False], 8), lambda d: QSGDCompressor().decode(d)


@case(ValueError)
def qsgd_level_1000_with_s_1():
    return lambda: elias_message([1, 1000], [False], 8, s=1), lambda d: QSGDCompressor().decode(d)


@case(ValueError)
def qsgd_s_0():
    return lambda: elias_message([1, 1], [False], 8, s=0), lambda d: QSGDCompressor().decode(d)


@case(ValueError)
def qsgd_nan_norm():
    return lambda: elias_message([1, 1], [False], 8, norm=float("nan")), (
        lambda d: QSGDCompressor().decode(d)
    )


@case(ValueError)
def qsgd_trailing_bytes():
    return lambda: elias_message([1, 1], [False], 8) + b"\x00", lambda d: QSGDCompressor().decode(d)


@case(ValueError)
def terngrad_nan_scale():
    def build():
        d = bytearray(TernGradCompressor(rng=0).encode(np.ones(10)))
        d[13:21] = struct.pack("<d", float("nan"))
        return bytes(d)

    return build, lambda d: TernGradCompressor().decode(d)


@case(None)
def wire_truncated_garbage_bitflipped():
    # every compressor: every truncation, random garbage, 300 single-bit flips each:
    # a clean ValueError, or (a flip that stays consistent) a finite array; decoded
    # sizes capped at 4096 values (a flipped shape bit may otherwise ask for up to 2**26)
    def build():
        g = np.random.default_rng(4).normal(size=(7, 9)).astype(np.float32)
        comps = [
            QSGDCompressor(n_levels=5, rng=0),
            QSGDCompressor(n_levels=5, coding="packed", bucket_size=16, rng=0),
            TernGradCompressor(rng=0),
            SignErrorFeedback(),
        ]
        return g, [(c, c.encode(g)) for c in comps]

    def call(arg):
        _, pairs = arg
        rng = np.random.default_rng(5)
        for comp, data in pairs:
            for n in range(len(data)):
                try:
                    comp.decode(data[:n])
                except ValueError:
                    continue
                raise AssertionError(f"{type(comp).__name__}: truncation to {n} bytes decoded")
            for _ in range(50):
                junk = rng.integers(0, 256, size=int(rng.integers(0, 200)), dtype=np.uint8)
                for d in (junk.tobytes(), data[:5] + junk.tobytes()):
                    try:
                        q = comp.decode(d, max_elements=1 << 12)
                    except ValueError:
                        continue
                    assert np.all(np.isfinite(q)), type(comp).__name__
            for _ in range(300):
                d = bytearray(data)
                bit = int(rng.integers(0, 8 * len(d)))
                d[bit // 8] ^= 1 << (bit % 8)
                try:
                    q = comp.decode(bytes(d), max_elements=1 << 12)
                except ValueError:
                    continue
                assert q.size <= 1 << 12 and np.all(np.isfinite(q)), type(comp).__name__

    return build, call


@case(None)
def encode_byte_swapped_float():
    # big-endian input encodes like the native one (main: KeyError)
    def call(g):
        for make in (
            lambda: QSGDCompressor(n_levels=4, rng=0),
            lambda: TernGradCompressor(rng=0),
            SignErrorFeedback,
        ):
            a, b = make(), make()
            q = a.decode(a.encode(g.astype(">f4")))
            assert np.array_equal(q, b.decode(b.encode(g))), make
            assert q.dtype == np.float32

    return lambda: np.random.default_rng(6).normal(size=11).astype(np.float32), call


@case(TypeError)
def sign_encode_longdouble():
    return lambda: np.ones(3, np.longdouble), lambda g: SignErrorFeedback().encode(g)


@case(None)
def qsgd_numpy_integer_bucket_size():
    # bucket_size=np.uint8(2) behaves as 2 (main: uint8 arithmetic overflowed later)
    def call(g):
        a = QSGDCompressor(n_levels=3, bucket_size=np.uint8(2), rng=0)
        b = QSGDCompressor(n_levels=3, bucket_size=2, rng=0)
        assert np.array_equal(a.decode(a.encode(g)), b.decode(b.encode(g)))
        assert np.array_equal(a.compress(g), b.compress(g))

    return lambda: np.random.default_rng(7).normal(size=1000), call


# ------------------------------------------- 4-6. hostile and corrupt files (load_quantized)


def quantized_file(q, replace=(), drop=(), big=None, deflate=True):
    buf = io.BytesIO()
    save_quantized(buf, q)
    m = members_of(buf.getvalue())
    for k in drop:
        m.pop(k)
    for k, v in dict(replace).items():
        m[k] = v if isinstance(v, bytes) else npy_bytes(np.asarray(v))
    for k in big or {}:
        m.pop(k, None)
    return npz(m, big=big, deflate=deflate)


def small_q(**kw):
    w = np.random.default_rng(2).normal(size=(4, 8)).astype(np.float32)
    return encode(w, bits=4, **kw)


def loadq(data):
    return load_quantized(io.BytesIO(data))


def loadq_and_decode(data):
    return decode(load_quantized(io.BytesIO(data)))


def _quantized_case(replace=(), drop=(), big=None, q=small_q, call=loadq_and_decode):
    return lambda: quantized_file(q(), replace=replace, drop=drop, big=big), call


@case(QuantizedFileError)
def scale_bomb_128mib():
    # a ~130 kB file whose scale member inflates to 128 MiB (the tensor has 32 entries)
    return _quantized_case(big={"scale": (np.float64, (1 << 24,))})


@case(QuantizedFileError)
def codes_bomb_wrong_count():
    # packed codes member of 128 MiB for a 32-entry tensor
    return _quantized_case(big={"codes": (np.uint8, (1 << 27,))})


@case(QuantizedFileError)
def unknown_member_bomb():
    return _quantized_case(big={"junk": (np.float64, (1 << 24,))})


@case(QuantizerFileError)
def quantizer_unknown_member_bomb():
    return lambda: quantizer_file(fitted_pq(), big={"attr:junk_": (np.float64, (1 << 24,))}), load


@case(None)
def consistent_codes_not_widened():
    # 2**24 consistent 8-bit codes: loading allocates a small multiple of the codes'
    # own size (main widened them to int64: > 16 bytes per code)
    n = 1 << 24

    def build():
        codes = (np.arange(n) % 251 - 125).astype(np.int8)
        q = QuantizedArray(codes=codes, scale=np.ones(1, np.float32), bits=8)
        return quantized_file(q, deflate=False)

    def call(data):
        q = loadq(data)
        assert q.codes.dtype == np.int8 and q.codes.shape == (n,)
        assert q.codes[0] == -125 and q.codes[250] == 125 and q.codes[251] == -125

    return build, call


@case(QuantizedFileError)
def codes_2_40_wrap_int8():
    return _quantized_case(
        replace={"codes": np.full(32, 2**40, np.int64), "codes_width": np.array(0)}
    )


@case(QuantizedFileError)
def codes_out_of_range_for_bits():
    return _quantized_case(
        replace={
            "codes": np.full(32, 100, np.int8),
            "codes_width": np.array(0),
            "codes_offset": np.array(0),
        }
    )


@case(QuantizedFileError)
def offset_2_62():
    return _quantized_case(replace={"codes_offset": np.array(2**62)})


@case(QuantizedFileError)
def float_codes():
    return _quantized_case(replace={"codes": np.full(32, 1.7), "codes_width": np.array(0)})


@case(QuantizedFileError)
def float_shape():
    return _quantized_case(replace={"shape": np.array([4.0, 8.0])})


@case(QuantizedFileError)
def string_shape():
    return _quantized_case(replace={"shape": np.array(["4", "8"])})


@case(QuantizedFileError)
def negative_shape():
    return _quantized_case(replace={"shape": np.array([-4, -8])})


@case(QuantizedFileError)
def version_1_9():
    return _quantized_case(replace={"version": np.array(1.9)})


@case(QuantizedFileError)
def bits_1e6():
    return _quantized_case(replace={"bits": np.array(10**6)})


@case(QuantizedFileError)
def axis_7_on_2d():
    return _quantized_case(
        replace={"axis": np.array([7]), "axis_is_none": np.array(False)}, q=lambda: small_q()
    )


@case(QuantizedFileError)
def nan_scale():
    return _quantized_case(replace={"scale": np.full(1, np.nan, np.float32)})


@case(QuantizedFileError)
def scale_wrong_shape():
    return _quantized_case(replace={"scale": np.ones(3, np.float32)})


@case(QuantizedFileError)
def group_size_minus_1():
    return _quantized_case(replace={"group_size": np.array(-1)})


@case(QuantizedFileError)
def group_size_3():
    return _quantized_case(replace={"group_size": np.array(3)})


@case(QuantizedFileError)
def negative_codes_index_codebook():
    def q():
        return get("ternary").encode(np.random.default_rng(3).normal(size=16))

    return _quantized_case(
        replace={
            "codes": np.full(16, -1, np.int8),
            "codes_width": np.array(0),
            "codes_offset": np.array(0),
        },
        q=q,
    )


@case(QuantizedFileError)
def codebook_bomb():
    def q():
        return get("ternary").encode(np.random.default_rng(3).normal(size=16))

    return _quantized_case(big={"codebook": (np.float64, (1 << 24,))}, q=q)


@case(QuantizedFileError)
def missing_codes():
    return _quantized_case(drop=["codes"])


@case(ValueError)
def quantized_array_shape_disagrees():
    # a QuantizedArray whose shape disagrees with its codes (saved and loaded back empty)
    return lambda: np.zeros((4, 8), np.int8), lambda c: QuantizedArray(
        codes=c, scale=None, shape=(0,)
    )


@case(TypeError)
def quantized_array_float_codes():
    return lambda: np.zeros(4), lambda c: QuantizedArray(codes=c, scale=None)


@case(ValueError)
def quantized_array_scale_larger_than_codes():
    return lambda: np.zeros(4, np.int8), lambda c: QuantizedArray(codes=c, scale=np.ones(5))


def _malformed(loader, error):
    # a family of inputs that are not files of the format at all
    def build():
        good = io.BytesIO()
        if loader is load_quantized:
            save_quantized(good, small_q())
        else:
            save_quantizer(good, fitted_pq())
        good = good.getvalue()
        forged = npz({"format": npy_bytes(np.zeros(1), header_shape=(1 << 40,))})
        npy = io.BytesIO()
        np.save(npy, np.arange(3))
        return [
            b"",
            b"PK\x03\x04",
            good[: len(good) // 2],
            good[:-30],
            npy.getvalue(),
            forged,
            b"\x00" * 1000,
            bytes(range(256)) * 4,
        ]

    def call(inputs):
        for data in inputs:
            try:
                loader(io.BytesIO(data))
            except error:
                continue
            raise AssertionError(f"{data[:20]!r} loaded")

    return build, call


@case(None)
def quantized_malformed_inputs():
    return _malformed(load_quantized, QuantizedFileError)


@case(None)
def quantizer_malformed_inputs():
    return _malformed(load_quantizer, QuantizerFileError)


@case(QuantizedFileError)
def forged_npy_header_2_40():
    return _quantized_case(
        replace={"scale": npy_bytes(np.ones(1, np.float32), header_shape=(1 << 40,))}
    )


# ---------------------------------------------------------------------------- runner


def run(name):
    fn, expected = CASES[name]
    build, call = fn()
    arg = build()
    tracemalloc.start()
    t0 = time.perf_counter()
    exc = msg = None
    try:
        call(arg)
    except Exception as e:  # report whatever happened; the test judges it
        exc, msg = type(e).__name__, str(e)[:300]
        mro = [c.__name__ for c in type(e).__mro__]
    else:
        mro = []
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "name": name,
        "expected": None if expected is None else expected.__name__,
        "exc": exc,
        "mro": mro,
        "msg": msg,
        "peak": peak,
        "seconds": seconds,
    }


def main(names):
    for name in names or list(CASES):
        print("START " + name, flush=True)
        print("RESULT " + json.dumps(run(name)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
