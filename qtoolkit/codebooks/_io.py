"""Save and load fitted codebook learners as ``.npz`` (no pickle)."""

from __future__ import annotations

import json
import numbers

import numpy as np
from sklearn.base import BaseEstimator

from .._array import MAX_ITER, check_int, check_n_threads, describe
from .._npz import NpzReader
from .._typing import FileLike
from .._validation import warn_renamed

__all__ = ["QuantizerFileError", "load_quantizer", "save_quantizer"]

_FORMAT = "qtoolkit.codebooks/1"


def _registry():
    from ._ecsq import EntropyConstrainedQuantizer
    from ._kmeans import KMeansQuantizer
    from ._pq import ProductQuantizer
    from ._probabilistic import ProbabilisticWeights
    from ._rq import ResidualQuantizer
    from ._soft import SoftQuantizer

    classes = (
        EntropyConstrainedQuantizer,
        KMeansQuantizer,
        ProductQuantizer,
        ProbabilisticWeights,
        ResidualQuantizer,
        SoftQuantizer,
    )
    return {cls.__name__: cls for cls in classes}


def save_quantizer(file: FileLike, quantizer: BaseEstimator) -> None:
    """Write a fitted codebook learner to an ``.npz`` file, arrays bit for bit.

    Parameters
    ----------
    file : str, os.PathLike or file-like
        Destination, as for :func:`numpy.savez` (the same argument order).
    quantizer : estimator
        A fitted learner of :mod:`qtoolkit.codebooks`.

    Raises
    ------
    TypeError
        If ``quantizer`` is not one of the codebook learners, or a parameter
        or fitted attribute cannot be stored without pickle (for instance a
        ``numpy.random.Generator`` as ``random_state``).
    ValueError
        If ``quantizer`` is not fitted.

    See Also
    --------
    load_quantizer : the inverse.

    Notes
    -----
    Before 0.2.0 the order was ``save_quantizer(quantizer, file)``; that order
    still works for one release, with a ``DeprecationWarning``. The file holds
    the class name, the constructor parameters (JSON, arrays
    stored as arrays) and every fitted attribute (names ending in ``_``) as
    arrays, so that ``numpy.load(..., allow_pickle=False)`` reads it.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from qtoolkit.codebooks import KMeansQuantizer, save_quantizer, load_quantizer
    >>> q = KMeansQuantizer(n_clusters=2).fit(np.array([0.0, 0.1, 1.0]))
    >>> buf = io.BytesIO()
    >>> save_quantizer(buf, q)
    >>> _ = buf.seek(0)
    >>> load_quantizer(buf).codebook_
    array([0.05, 1.  ])
    """
    if hasattr(file, "get_params") and not hasattr(quantizer, "get_params"):
        # the order before 0.2.0, save_quantizer(quantizer, file)
        warn_renamed("save_quantizer(quantizer, file)", "save_quantizer(file, quantizer)")
        file, quantizer = quantizer, file
    registry = _registry()
    name = type(quantizer).__name__
    if registry.get(name) is not type(quantizer):
        raise TypeError(f"quantizer must be one of {sorted(registry)}, got {describe(quantizer)}")
    fitted = {k: v for k, v in vars(quantizer).items() if k.endswith("_") and not k.startswith("_")}
    if not fitted:
        raise ValueError(f"{name} is not fitted: call fit before save_quantizer")
    arrays = {"__format__": np.array(_FORMAT), "__class__": np.array(name)}
    params = {}
    for key, value in quantizer.get_params(deep=False).items():
        if isinstance(value, np.ndarray):
            arrays["param:" + key] = value
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise TypeError(
                f"parameter {key}={describe(value)} cannot be saved without pickle; "
                "use an int seed, None or a plain value"
            )
        params[key] = value
    arrays["__params__"] = np.array(json.dumps(params, sort_keys=True))
    for key, value in fitted.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(
                f"fitted attribute {key} ({describe(value)}) cannot be saved without pickle"
            )
        arrays["attr:" + key] = arr
    np.savez(file, **arrays)


class QuantizerFileError(ValueError):
    """A file given to :func:`load_quantizer` is not a valid quantizer file.

    Raised for every malformed input: not an ``.npz`` archive, truncated or
    corrupt, a format or class this version does not read, parameters or
    fitted arrays of the wrong type, shape or dtype, non-finite or unsorted
    codebooks, members whose declared size disagrees with their header, and
    unknown members. The message names the member and what is wrong. It is a
    ``ValueError``, so ``except ValueError`` catches it too.

    See Also
    --------
    load_quantizer : the loader that raises it.

    Examples
    --------
    >>> import io
    >>> from qtoolkit.codebooks import QuantizerFileError, load_quantizer
    >>> try:
    ...     load_quantizer(io.BytesIO(b"not a zip archive"))
    ... except QuantizerFileError as exc:
    ...     print(type(exc).__name__, isinstance(exc, ValueError))
    QuantizerFileError True
    """


_INT = "iu"
_REAL = "iuf"
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_MAX_INT = 1 << 62
_MAX_SIZE = 1 << 16  # n_clusters, n_subspaces, n_stages, beam_size: what fit accepts

# string parameters and their allowed values; numeric parameters are range-checked below
_CHOICES = {
    "algorithm": ("optimal", "lloyd"),
    "kind": ("binary", "ternary"),
    "method": ("ecsq", "uniform"),
}
_INITS = {
    "KMeansQuantizer": ("histogram", "linear", "density", "k-means++", "random"),
    "ProductQuantizer": ("random", "k-means++"),
    "ResidualQuantizer": ("random", "k-means++"),
}


def _json_constant(token):
    raise ValueError(f"non-finite number {token}")


def _parse_params(text, cls, fail):
    try:
        params = json.loads(text, parse_constant=_json_constant)
    except (ValueError, RecursionError) as exc:
        raise fail(f"has unreadable parameters ({type(exc).__name__})") from None
    if not isinstance(params, dict):
        raise fail(f"has parameters of type {type(params).__name__}, expected a JSON object")
    allowed = set(cls().get_params(deep=False))
    for key, value in params.items():
        if key not in allowed:
            raise fail(f"has an unknown parameter {key[:40]!r} for {cls.__name__}")
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise fail(f"has a parameter {key}={describe(value)}, expected a plain value")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
            raise fail(f"has an out-of-range parameter {key}={value}")
    return params


def _check_params(est, fail):
    """The parameter checks of ``fit`` that matter once a learner is loaded."""
    name = type(est).__name__
    params = est.get_params(deep=False)
    try:
        for key in ("n_clusters", "n_subspaces", "n_stages", "beam_size"):
            if key in params:
                check_int(params[key], key, low=1, high=_MAX_SIZE)
        if "max_iter" in params:
            check_int(params["max_iter"], "max_iter", low=1, high=MAX_ITER)
        if "max_points_per_centroid" in params:
            check_int(
                params["max_points_per_centroid"],
                "max_points_per_centroid",
                low=1,
                high=1 << 31,
                allow_none=True,
            )
        if "n_threads" in params:
            check_n_threads(params["n_threads"])
        for key, choices in _CHOICES.items():
            if key in params and params[key] not in choices:
                raise ValueError(f"{key} must be one of {choices}, got {params[key]!r}")
        init = params.get("init")
        if isinstance(init, str) and init not in _INITS.get(name, ()):
            raise ValueError(f"init must be one of {_INITS.get(name, ())}, got {init!r}")
        for key in ("tol", "lam", "sigma", "sigma_growth", "p_min", "p_max", "scale", "step"):
            v = params.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
                raise ValueError(f"{key} must be a finite real number, got {v!r}")
            if v < 0 or (key in ("sigma", "scale", "step") and v == 0):
                raise ValueError(f"{key} must be positive, got {v!r}")
    except (TypeError, ValueError) as exc:
        raise fail(f"has invalid parameters: {exc}") from None


class _State:
    """Reads the fitted attributes of one learner, each checked before it is read."""

    def __init__(self, reader, fail):
        self.reader = reader
        self.fail = fail
        self.attrs = {}

    def scalar(self, key, kinds, *, low=None, optional=False):
        member = "attr:" + key
        if member not in self.reader:
            if optional:
                return None
            raise self.fail(f"lacks the fitted attribute {key}")
        value = self.reader.scalar(member, kinds, "a number")
        if isinstance(value, float) and not np.isfinite(value):
            raise self.fail(f"has a non-finite {key} ({value})")
        if low is not None and value < low:
            raise self.fail(f"has {key}={value}, expected at least {low}")
        if kinds == _INT and abs(value) > _MAX_INT:
            raise self.fail(f"has an out-of-range {key}={value}")
        self.attrs[key] = value
        return value

    def array(self, key, shape, dtypes=_FLOATS, *, finite=True):
        """Member ``attr:key``; ``shape`` is a tuple (None = any length) or a callable check."""

        def check(got, dtype):
            ok = (
                len(got) == len(shape) and all(e is None or e == g for e, g in zip(shape, got))
                if isinstance(shape, tuple)
                else shape(got)
            )
            if not ok:
                raise self.fail(f"has {key} of shape {got}, expected {shape}")
            if dtype.newbyteorder("=") not in dtypes:
                raise self.fail(
                    f"has {key} of dtype {dtype}, expected one of {[str(d) for d in dtypes]}"
                )

        arr = self.reader.read("attr:" + key, check)
        if finite and not np.all(np.isfinite(arr)):
            raise self.fail(f"has NaN or Inf in {key}")
        self.attrs[key] = arr
        return arr

    def sorted_array(self, key, shape):
        arr = self.array(key, shape)
        if arr.size > 1 and not np.all(arr[1:] >= arr[:-1]):
            raise self.fail(f"has a {key} that is not sorted in increasing order")
        return arr


def _common(st, est, *, features):
    st.scalar("n_iter_", _INT, low=0)
    if features == "required":
        return st.scalar("n_features_in_", _INT, low=1)
    return st.scalar("n_features_in_", _INT, low=1, optional=True)


def _state_kmeans(st, est):
    _common(st, est, features="optional")
    st.scalar("inertia_", "f", low=0)
    c = st.sorted_array("codebook_", (est.n_clusters,))
    b = st.array("boundaries_", (est.n_clusters - 1,))
    if not np.array_equal(b, 0.5 * (c[1:] + c[:-1])):
        raise st.fail("has boundaries_ that are not the midpoints of codebook_")


def _state_ecsq(st, est):
    _common(st, est, features="optional")
    for key in ("entropy_", "huffman_bits_", "inertia_", "distortion_", "objective_"):
        st.scalar(key, "f", low=0)
    if "attr:codebook_" not in st.reader:
        raise st.fail("lacks the fitted attribute codebook_")
    shape = st.reader.header("attr:codebook_")[0]
    if len(shape) != 1 or shape[0] < 1:
        raise st.fail(f"has codebook_ of shape {shape}, expected (n_codewords,)")
    k = shape[0]
    st.sorted_array("codebook_", (k,))
    st.sorted_array("thresholds_", (k - 1,))
    p = st.array("probabilities_", (k,))
    if np.any(p < 0) or np.any(p > 1):
        raise st.fail("has probabilities_ outside [0, 1]")
    lengths = st.array("code_lengths_", (k,), dtypes=(np.dtype(np.int64),), finite=False)
    if np.any(lengths < 0) or np.any(lengths > 64):
        raise st.fail("has code_lengths_ outside [0, 64]")


def _state_vq(st, est, n_books):
    d = _common(st, est, features="required")
    st.scalar("inertia_", "f", low=0)
    if d % n_books:
        raise st.fail(f"has n_features_in_={d}, not a multiple of {n_books}")
    return d


def _state_pq(st, est):
    M = est.n_subspaces
    d = _state_vq(st, est, M)
    st.array("codebook_", (M, est.n_clusters, d // M))


def _state_rq(st, est):
    d = _state_vq(st, est, 1)
    st.array("codebook_", (est.n_stages, est.n_clusters, d))
    st.array("stage_inertia_", (est.n_stages,), dtypes=(np.dtype(np.float64),))


def _state_soft(st, est):
    d = _state_vq(st, est, 1)
    sigma = st.scalar("sigma_", "f")
    if not sigma > 0:
        raise st.fail(f"has sigma_={sigma}, expected a positive number")
    st.array("codebook_", (est.n_clusters, d), dtypes=(np.dtype(np.float64),))


def _state_probabilistic(st, est):
    scale = st.scalar("scale_", "f")
    if not scale > 0:
        raise st.fail(f"has scale_={scale}, expected a positive number")
    n_params, n_code = (1, 2) if est.kind == "binary" else (2, 3)
    f64 = (np.dtype(np.float64),)
    theta = st.array("theta_", lambda s: len(s) >= 2 and s[-1] == n_params, dtypes=f64)
    st.array("logits_", (*theta.shape[:-1], n_code), dtypes=f64)
    expected = np.array([-scale, scale] if n_code == 2 else [-scale, 0.0, scale])
    cb = st.array("codebook_", (n_code,), dtypes=f64)
    if not np.array_equal(cb, expected):
        raise st.fail(
            f"has a codebook_ that is not scale_ * {[-1, 1] if n_code == 2 else [-1, 0, 1]}"
        )
    if not np.array_equal(st.attrs["logits_"], est._logits(theta)):
        raise st.fail("has logits_ that do not follow from theta_")


_STATES = {
    "KMeansQuantizer": (_state_kmeans, {"codebook_", "boundaries_", "inertia_", "n_iter_"}),
    "EntropyConstrainedQuantizer": (
        _state_ecsq,
        {
            "codebook_",
            "thresholds_",
            "probabilities_",
            "code_lengths_",
            "entropy_",
            "huffman_bits_",
            "inertia_",
            "distortion_",
            "objective_",
            "n_iter_",
        },
    ),
    "ProductQuantizer": (_state_pq, {"codebook_", "inertia_", "n_iter_"}),
    "ResidualQuantizer": (_state_rq, {"codebook_", "stage_inertia_", "inertia_", "n_iter_"}),
    "SoftQuantizer": (_state_soft, {"codebook_", "sigma_", "inertia_", "n_iter_"}),
    "ProbabilisticWeights": (_state_probabilistic, {"codebook_", "scale_", "theta_", "logits_"}),
}


def load_quantizer(file: FileLike) -> BaseEstimator:
    """Read a learner written by :func:`save_quantizer` (no pickle involved).

    The file is not trusted: every parameter and fitted array is validated as
    strictly as :meth:`fit` would produce it (shapes against the parameters,
    dtypes, finiteness, sorted 1-D codebooks, ``boundaries_`` the midpoints of
    ``codebook_``), each member's header is checked against its declared size
    before its data is read, and only the attributes that ``fit`` sets are
    accepted, so a file cannot replace a method.

    Parameters
    ----------
    file : str, os.PathLike or file-like
        Source, as for :func:`numpy.load`.

    Returns
    -------
    quantizer : estimator
        The fitted learner, with the same parameters and bit-identical arrays.

    Raises
    ------
    QuantizerFileError
        (a ``ValueError``) If the file is not a valid file of
        :func:`save_quantizer`: not an ``.npz`` archive, truncated, corrupt,
        of another format, an unknown class, or with any parameter or fitted
        attribute missing, unknown, or of the wrong type, shape or value.
    OSError
        If a path cannot be opened.

    See Also
    --------
    save_quantizer : the inverse.
    QuantizerFileError : the error raised for malformed files.

    Notes
    -----
    Memory is bounded by the file's contents: a member is read only after its
    ``.npy`` header has been checked against the size the zip directory
    declares and against the shape the parameters require, into a buffer of
    exactly that size; arrays are not widened.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from qtoolkit.codebooks import ProductQuantizer, save_quantizer, load_quantizer
    >>> X = np.random.default_rng(0).normal(size=(64, 4))
    >>> pq = ProductQuantizer(n_subspaces=2, n_clusters=4, random_state=0).fit(X)
    >>> buf = io.BytesIO()
    >>> save_quantizer(buf, pq)
    >>> _ = buf.seek(0)
    >>> bool(np.array_equal(load_quantizer(buf).transform(X), pq.transform(X)))
    True
    """
    with NpzReader(file, QuantizerFileError) as r:
        fail = r.fail
        if "__format__" not in r or r.scalar("__format__", "U", "a format name") != _FORMAT:
            raise fail(f"was not written by save_quantizer (format {_FORMAT} expected)")
        name = r.scalar("__class__", "U", "a class name")
        registry = _registry()
        if name not in registry:
            raise fail(
                f"names an unknown quantizer class {name[:60]!r}; "
                f"expected one of {sorted(registry)}"
            )
        cls = registry[name]
        params = _parse_params(r.scalar("__params__", "U", "JSON parameters"), cls, fail)
        check_state, attr_names = _STATES[name]
        allowed = {"attr:" + a for a in attr_names | {"n_features_in_"}}
        array_params = [k for k in r.members if k.startswith("param:")]
        for key in r.members:
            if key in ("__format__", "__class__", "__params__") or key in array_params:
                continue
            if key not in allowed:
                raise fail(f"has an unexpected member {key[:60]!r} for {name}")
        for key in array_params:
            if key != "param:init" or name not in ("KMeansQuantizer", "ProductQuantizer"):
                raise fail(f"has an unexpected array parameter {key[:60]!r} for {name}")
        est = cls(**params)
        _check_params(est, fail)
        if array_params:
            k = est.n_clusters
            if name == "KMeansQuantizer":
                est.init = r.read("param:init", _shape_check(fail, "init", (k,)))
            else:
                est.init = r.read(
                    "param:init", _shape_check(fail, "init", (est.n_subspaces, k, None))
                )
            if not np.all(np.isfinite(est.init)):
                raise fail("has NaN or Inf in the init parameter")
        st = _State(r, fail)
        check_state(st, est)
    for key, value in st.attrs.items():
        setattr(est, key, value)
    return est


def _shape_check(fail, key, shape):
    def check(got, dtype):
        if len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got)):
            raise fail(f"has {key} of shape {got}, expected {shape}")
        if dtype.newbyteorder("=") not in _FLOATS:
            raise fail(f"has {key} of dtype {dtype}, expected float32 or float64")

    return check
