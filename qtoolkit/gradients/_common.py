"""Helpers shared by the gradient quantizers (validation, dtypes, sizes)."""

import math

from .._array import check_finite, check_real_floating


def check_gradient(g, name="g"):
    """Validate a real floating, finite gradient array; return ``(g, xp)``."""
    if not hasattr(g, "dtype") or not hasattr(g, "shape"):
        raise TypeError(
            f"{name} must be a real floating array (NumPy or any Array API array), "
            f"got {type(g).__name__}"
        )
    g, xp = check_real_floating(g, name)
    check_finite(g, name, xp)
    return g, xp


def work_dtype(xp, g):
    """float32 for float16 input (probabilities need the precision), else the input dtype."""
    f16 = getattr(xp, "float16", None)  # absent from some namespaces (array-api-strict)
    return xp.float32 if f16 is not None and g.dtype == f16 else g.dtype


def numel(x):
    """Number of elements of an Array API array (``size`` is a method on some, e.g. torch)."""
    return math.prod(x.shape)
