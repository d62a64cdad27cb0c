"""Helpers shared by the gradient quantizers (validation, dtypes, sizes)."""

import math


def work_dtype(xp, g):
    """float32 for float16 input (probabilities need the precision), else the input dtype."""
    f16 = getattr(xp, "float16", None)  # absent from some namespaces (array-api-strict)
    return xp.float32 if f16 is not None and g.dtype == f16 else g.dtype


def numel(x):
    """Number of elements of an Array API array (``size`` is a method on some, e.g. torch)."""
    return math.prod(x.shape)
