"""A seeded random fuzzer over the public API, run as a script by ``tests/test_fuzz.py``.

``python tests/fuzz_cases.py N SEED`` makes ``N`` random calls of public
functions, estimator methods and compressor methods, with the input kinds a
hostile or careless caller produces: empty, 0-d and high-dimensional arrays;
NaN, Inf, -0.0, subnormals and extreme magnitudes; every dtype (bool, signed
and unsigned integers, float16/32/64, long double, big-endian, complex,
object, strings); non-contiguous, negatively strided, read-only and Fortran
arrays; absurd integer parameters (0, -1, 2**31, 2**63, 10**9, numpy
integers, bools, floats, strings); and wrong types. Each call must either
succeed or raise ``ValueError`` / ``TypeError`` (or a subclass); a call that
succeeds on finite input must return no NaN (and no Inf, except where the
exact answer is infinite). Every violation is printed as a ``FAIL`` line;
the script prints ``DONE n`` at the end. It runs in a subprocess so that an
interpreter crash fails the test with the case that caused it (the last
``CASE`` line printed).
"""

import dataclasses
import inspect
import json
import os
import sys
import traceback
import warnings

import numpy as np

import qtoolkit
from qtoolkit import bitops, codebooks, gradients, optimize, rounding

# names whose value is a data array
DATA = {
    "w", "x", "g", "X", "W", "A", "B", "a", "b", "values", "codes", "counts", "activations",
    "grad", "d", "hessian", "second_moment", "W_hat", "Q", "y", "rho", "scales", "basis",
}  # fmt: skip
# names whose value is an integer count, width or index
INTS = {
    "bits", "n_clusters", "n_subspaces", "n_stages", "levels", "max_iter", "n_iter",
    "inner_steps", "n_threads", "group_size", "int_bits", "frac_bits", "count", "n_levels",
    "block_size", "beam_size", "n_weights", "bucket_size", "axis", "n_nodes", "n_bits",
}  # fmt: skip
RNGS = {"rng", "random_state"}
# not fuzzed: I/O, global state, plotting and the long experiments (their own tests cover them)
SKIP = {
    "reproduce", "show_runtime", "set_simd_level", "simd_level", "save_quantized",
    "save_quantizer", "load_quantized", "load_quantizer", "available_simd_levels",
    "get_simd_level", "available_quantizers", "sign_cosine_gaussian",
}  # fmt: skip
# results that are exactly infinite for some finite input (SQNR of an exact copy)
INF_OK = {"sqnr"}
# documented NaN for finite input: the cosine / angle of a zero vector
NAN_OK = {
    "cosine",
    "angle",
    "angle_preservation",
    "pairwise_angle_preservation",
    "expected_angle",
}  # and the std of expected_angle without d

DTYPES = [
    np.float64, np.float32, np.float16, np.longdouble, ">f8", ">f4", np.int8, np.int32,
    np.int64, np.uint8, np.uint64, np.bool_, np.complex128, object, "U3",
]  # fmt: skip
ABSURD_INTS = [0, -1, 2**31, 2**63, 10**9, -(2**63), np.uint8(255), True, 2.5, "3", None]
SMALL_INTS = [1, 2, 3, 4, 8, np.int64(2), np.uint8(2)]


LAST = []  # the arguments of the last function call (for replay)


class Gen:
    def __init__(self, rng):
        self.rng = rng
        self.finite = True  # every array given so far was finite

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def shape(self):
        r = self.rng.random()
        if r < 0.06:
            return ()
        if r < 0.12:
            return self.pick([(0,), (0, 3), (3, 0), (2, 0, 4)])
        if r < 0.16:
            return (1,) * int(self.rng.integers(20, 40)) + (3,)
        nd = int(self.rng.integers(1, 4))
        return tuple(int(v) for v in self.rng.integers(1, 9, size=nd))

    def values(self, shape):
        r = self.rng.random()
        v = np.asarray(self.rng.normal(size=shape)) * 10.0 ** float(self.rng.integers(-3, 3))
        v = np.asarray(v)
        if r < 0.08:
            v = v.copy()
            v.reshape(-1)[:: max(1, v.size // 3)] = self.pick([np.nan, np.inf, -np.inf])
        elif r < 0.14:
            v = v * 0.0 * self.pick([1.0, -1.0])  # zeros, or -0.0
        elif r < 0.20:
            v = np.asarray(np.sign(v)) * self.pick([5e-324, 1e-310, 1e-45, 6e-8])  # subnormals
        elif r < 0.27:
            v = np.sign(v + 0.1) * self.pick([3.4e38, 1e308, 6.5e4, 1e30])  # extreme magnitudes
        elif r < 0.32:
            v = np.round(v)  # integer-valued
        return np.asarray(v)

    def array(self, kind="any"):
        shape = self.shape() if kind == "any" else self.pick([(8,), (6, 4), (3, 8), (16, 2)])
        v = self.values(shape)
        dt = self.pick(DTYPES) if self.rng.random() < 0.35 else np.float64
        with np.errstate(all="ignore"):
            if dt is object:
                a = v.astype(object)
            elif dt == "U3":
                a = v.astype("U3")
            else:
                a = v.astype(dt)
        if np.dtype(a.dtype).kind in "fc" and not np.all(np.isfinite(a)):
            self.finite = False
        r = self.rng.random()
        if a.ndim and a.size and r < 0.12:
            a = a[..., ::-1]
        elif a.ndim and r < 0.22:
            a = np.repeat(a, 2, axis=-1)[..., ::2]  # non-contiguous view
        elif a.ndim > 1 and r < 0.3:
            a = np.asfortranarray(a)
        if self.rng.random() < 0.15:
            a = a.view()
            a.flags.writeable = False
        return a

    def int_param(self):
        return self.pick(ABSURD_INTS) if self.rng.random() < 0.4 else self.pick(SMALL_INTS)

    def junk(self):
        return self.pick([None, "bogus", -1.0, np.nan, [1, 2], {"a": 1}, object(), b"x"])

    def value_for(self, name, default):
        r = self.rng.random()
        if name in DATA:
            if r < 0.08:
                return self.junk()
            return self.array()
        if name in INTS:
            if name == "axis" and r < 0.3:
                return self.pick([None, (0,), (0, 0), (-1,), 7, -7])
            return self.int_param()
        if name in RNGS:
            return self.pick([None, 0, 3, -1, "seed", np.random.default_rng(1)])
        if name in ("quantizer", "identifier"):
            return self.pick([np.sign, rounding.binarize, "binary", "uniform", None, 3])
        if default is inspect.Parameter.empty or r < 0.25:
            return self.junk() if r < 0.12 else self.array()
        return default


def walk(obj, depth=0):
    """Every floating ndarray or float inside a result."""
    if depth > 4:
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc":
            yield obj
    elif isinstance(obj, (float, np.floating)):
        yield np.asarray(obj)
    elif isinstance(obj, (tuple, list)):
        for v in obj:
            yield from walk(v, depth + 1)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from walk(getattr(obj, f.name), depth + 1)


def public_functions():
    out = []
    for sub in (bitops, codebooks, gradients, optimize, rounding, qtoolkit.analysis):
        for name in sub.__all__:
            obj = getattr(sub, name)
            if name in SKIP or not inspect.isfunction(obj) or "experiment" in name:
                continue
            if name.startswith("plot_"):
                continue
            out.append((name, obj))
    return out


ESTIMATORS = [
    codebooks.KMeansQuantizer,
    codebooks.ProductQuantizer,
    codebooks.ResidualQuantizer,
    codebooks.SoftQuantizer,
    codebooks.EntropyConstrainedQuantizer,
    codebooks.ProbabilisticWeights,
]
COMPRESSORS = [gradients.QSGDCompressor, gradients.TernGradCompressor, gradients.SignErrorFeedback]


def call_function(gen, name, fn):
    sig = inspect.signature(fn)
    args, kwargs = [], {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        required = p.default is inspect.Parameter.empty
        if not required and gen.rng.random() < 0.6:
            continue
        v = gen.value_for(p.name, p.default)
        if p.kind == p.KEYWORD_ONLY:
            kwargs[p.name] = v
        else:
            args.append(v)
    LAST[:] = [args, kwargs]
    return fn(*args, **kwargs)


def call_estimator(gen, cls):
    params = {}
    for p in inspect.signature(cls).parameters.values():
        if gen.rng.random() < 0.35:
            params[p.name] = gen.value_for(p.name, p.default)
    if "n_clusters" not in params:
        params["n_clusters"] = gen.pick([2, 3])
    if cls is codebooks.ProductQuantizer and "n_subspaces" not in params:
        params["n_subspaces"] = gen.pick([1, 2])
    est = cls(**params)
    X = gen.array("data") if gen.rng.random() < 0.8 else gen.array()
    est.fit(X)
    out = [est]
    methods = [
        m
        for m in ("transform", "inverse_transform", "predict", "quantize", "transform_soft",
                  "expected_value", "adc_tables", "mean", "var", "mode", "probabilities")
        if hasattr(est, m)
    ]  # fmt: skip
    for _ in range(2):
        m = gen.pick(methods)
        fn = getattr(est, m)
        if m == "inverse_transform":
            arg = est.transform(X) if gen.rng.random() < 0.5 else gen.array()
            out.append(fn(arg))
        elif m in ("mean", "var", "mode", "probabilities"):
            out.append(fn())
        else:
            out.append(fn(X if gen.rng.random() < 0.5 else gen.array()))
    if hasattr(est, "search") and gen.rng.random() < 0.5:
        codes = est.transform(X)
        out.append(est.search(X, codes, n_neighbors=gen.pick([1, 2, 0, 10**9])))
    return out[1:]


def call_compressor(gen, cls):
    params = {}
    for p in inspect.signature(cls).parameters.values():
        if gen.rng.random() < 0.4:
            params[p.name] = gen.value_for(p.name, p.default)
    comp = cls(**params)
    g = gen.array()
    r = gen.rng.random()
    if r < 0.4:
        return comp.compress(g)
    data = comp.encode(g)
    if r < 0.7:
        return comp.decode(data)
    d = bytearray(data)
    if d:
        i = int(gen.rng.integers(len(d)))
        d[i] ^= 1 << int(gen.rng.integers(8))
    return comp.decode(bytes(d[: int(gen.rng.integers(len(d) + 1))]), max_elements=1 << 16)


def call_containers(gen):
    r = gen.rng.random()
    if r < 0.5:
        q = rounding.QuantizedArray(
            codes=gen.array(),
            scale=gen.array() if gen.rng.random() < 0.7 else None,
            bits=gen.int_param(),
            axis=gen.pick([None, (0,), (5,), 0]),
            group_size=gen.pick([None, 1, 2, 3, -1]),
            dtype=gen.pick(["float32", "float64", "int8", 3]),
        )
        return rounding.decode(q)
    words = gen.array()
    return bitops.unpack_bits(bitops.PackedBits(words, gen.int_param()))


def one_case(gen, targets):
    r = gen.rng.random()
    if r < 0.62:
        name, fn = gen.pick(targets)
        return name, lambda: call_function(gen, name, fn)
    if r < 0.82:
        cls = gen.pick(ESTIMATORS)
        return cls.__name__, lambda: call_estimator(gen, cls)
    if r < 0.94:
        cls = gen.pick(COMPRESSORS)
        return cls.__name__, lambda: call_compressor(gen, cls)
    return "containers", lambda: call_containers(gen)


def report(i, name, error, msg, where):
    record = {"case": i, "name": name, "error": error, "msg": msg, "where": where}
    print("FAIL " + json.dumps(record), flush=True)


def main(n, seed):
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    targets = public_functions()
    failures = 0
    counts = {}
    for i in range(n):
        gen = Gen(np.random.default_rng([seed, i]))
        name, thunk = one_case(gen, targets)
        counts[name] = counts.get(name, 0) + 1
        print(f"CASE {i} {name}", flush=True)
        try:
            result = thunk()
        except (ValueError, TypeError):
            continue
        except Exception as exc:  # a failure: report it, keep going
            failures += 1
            tb = traceback.format_exc().strip().splitlines()
            report(i, name, type(exc).__name__, str(exc)[:200], tb[-3:])
            continue
        if gen.finite and name not in NAN_OK:
            for arr in walk(result):
                bad = np.isnan(arr).any() or (name not in INF_OK and np.isinf(arr).any())
                if bad:
                    failures += 1
                    report(i, name, "non-finite", "NaN or Inf from finite input", [])
                    break
    print("COUNTS " + json.dumps(counts), flush=True)
    print(f"DONE {n} {failures}", flush=True)


def replay(i, seed):
    """Run case ``i`` of ``seed`` in this process and let its exception propagate."""
    gen = Gen(np.random.default_rng([seed, i]))
    name, thunk = one_case(gen, public_functions())
    print(name, "finite input" if gen.finite else "non-finite input")
    try:
        result = thunk()
    finally:
        for a in LAST[:1] and LAST[0] + list(LAST[1].values()):
            print(" arg", type(a).__name__, getattr(a, "shape", ""), getattr(a, "dtype", ""),
                  a if np.size(a) < 12 else "...")  # fmt: skip
    print(result)


if __name__ == "__main__":
    if sys.argv[1] == "replay":
        replay(int(sys.argv[2]), int(sys.argv[3]))
        sys.exit()
    # bound the address space: an input that makes the library allocate gigabytes fails
    # with MemoryError (reported) instead of swapping the machine
    try:
        import resource

        limit = int(os.environ.get("QTOOLKIT_FUZZ_MEMORY", 4 << 30))  # 0: no limit (ASan)
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    sys.stdout.reconfigure(line_buffering=True)
    main(int(sys.argv[1]), int(sys.argv[2]))
