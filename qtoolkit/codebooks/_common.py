"""Validation and small helpers shared by the codebook learners.

Prior validation of the estimator parameters is the caller's job; these
helpers validate data arrays and turn them into the float64 buffers the
kernels expect.
"""

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data

from .._validation import describe

__all__ = []


class CodesTransformerMixin:
    """scikit-learn tags shared by the codebook learners (put it before ``TransformerMixin``).

    ``transform`` returns integer codes, never the input's floating dtype, so no dtype is
    preserved; NaN is refused (scikit-learn's default, stated here once for all of them).
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        tags.input_tags.allow_nan = False
        return tags


def _reject_text(x, name):
    """Text is a wrong type (``TypeError``), as everywhere in qtoolkit, not a wrong value.

    scikit-learn's own checks stay in force for everything else (its messages for NaN,
    Inf and complex data, which the estimator API specifies as ``ValueError``).
    """
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    if kind is None and isinstance(x, (list, tuple, str, bytes)):
        kind = np.asarray(x).dtype.kind
    if kind in ("U", "S"):
        raise TypeError(f"{name} must be an array of real numbers, got {describe(x)}")


def validate_real_data(est, X, **kwargs):
    """``sklearn.utils.validation.validate_data`` after refusing text with a ``TypeError``."""
    _reject_text(X, "X")
    return validate_data(est, X, **kwargs)


def check_tensor(w, name="X"):
    """Validate a weight tensor of any shape (ndim >= 1); return it as a float ndarray.

    Float32 is kept, every other real dtype becomes float64. NaN, Inf, complex
    or empty input is rejected with scikit-learn's messages, which name ``name``.
    """
    if hasattr(w, "__array_namespace__") and not isinstance(w, np.ndarray):
        w = np.asarray(w)
    _reject_text(w, name)
    if np.ndim(w) == 0:
        raise ValueError(f"{name} must have at least one dimension, got {describe(w)}")
    out = check_array(
        w,
        dtype=[np.float64, np.float32],
        ensure_2d=False,
        allow_nd=True,
        ensure_all_finite=True,
        input_name=name,
    )
    if out.size == 0:
        raise ValueError(f"{name} is empty: got {describe(w)}")
    return out


def check_weights(sample_weight, shape, name="sample_weight"):
    """Validate weights for a tensor of ``shape``; return float64 weights of that shape.

    ``None`` means unit weights. Weights may have the tensor's shape, or shape
    ``(shape[0],)`` (one weight per sample, shared by its entries). They must
    be finite and non-negative, with a positive sum.
    """
    if sample_weight is None:
        return np.ones(shape, dtype=np.float64)
    sw = np.asarray(sample_weight)
    if sw.dtype == object or not (
        np.issubdtype(sw.dtype, np.floating) or np.issubdtype(sw.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be an array of real numbers, got {describe(sample_weight)}")
    sw = sw.astype(np.float64, copy=False)  # read only below and by every caller
    if sw.ndim == 0:
        sw = np.full(shape, float(sw))
    elif sw.shape == tuple(shape):
        pass
    elif sw.ndim == 1 and len(shape) >= 1 and sw.shape[0] == shape[0]:
        sw = np.broadcast_to(sw.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    else:
        raise ValueError(
            f"{name} must have shape {tuple(shape)} or ({shape[0]},), got shape {sw.shape}"
        )
    # a finite sum means finite weights (a NaN or an infinity makes the sum NaN or
    # infinite), so two reductions usually suffice; an infinite sum of finite weights
    # (overflow) or a NaN sum is told apart by the elementwise test
    total = sw.sum()
    if not np.isfinite(total) and not np.all(np.isfinite(sw)):
        raise ValueError(f"{name} contains NaN or Inf")
    low = sw.min()
    if low < 0:
        raise ValueError(f"{name} must be non-negative, got a minimum of {low!r}")
    if not total > 0:
        raise ValueError(f"{name} must have a positive sum, got all zeros")
    return sw


def code_dtype(n_clusters):
    """Smallest unsigned integer dtype that holds the codes ``0 .. n_clusters - 1``."""
    if n_clusters <= 1 << 8:
        return np.dtype(np.uint8)
    if n_clusters <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def check_codes(codes, n_clusters, name="codes", shape_tail=None):
    """Validate integer codes in ``[0, n_clusters)``; return them as an intp array."""
    arr = np.asarray(codes)
    if not (
        np.issubdtype(arr.dtype, np.integer)
        or (
            np.issubdtype(arr.dtype, np.floating)
            and arr.size
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
        )
    ):
        raise TypeError(f"{name} must be an array of integer codes, got {describe(codes)}")
    if shape_tail is not None and (
        arr.ndim != len(shape_tail) + 1 or arr.shape[1:] != tuple(shape_tail)
    ):
        raise ValueError(
            f"{name} must have shape (n_samples, {', '.join(map(str, shape_tail))}), "
            f"got shape {arr.shape}"
        )
    arr = arr.astype(np.intp)
    if arr.size and (arr.min() < 0 or arr.max() >= n_clusters):
        raise ValueError(
            f"{name} must lie in [0, {n_clusters - 1}], got values in [{arr.min()}, {arr.max()}]"
        )
    return arr


def check_finite_state(est, name="X"):
    """``ValueError`` if ``fit`` produced a NaN or Inf attribute from finite data.

    Sums of squares overflow float64 for values near its maximum; such data
    is refused (rescale it) instead of returning a silently broken learner.
    """
    for key, value in vars(est).items():
        if not key.endswith("_") or key.startswith("_") or key == "sigma_":
            continue  # (an infinite softness sigma_ is the hard assignment, by design)
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{name} is too large in magnitude: its squared distances overflow "
                f"{arr.dtype} ({key} is not finite); rescale {name}"
            )
    return est
