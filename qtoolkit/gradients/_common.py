"""Helpers shared by the gradient quantizers (validation, random draws, norms)."""
import numpy as np

from .._array import check_finite, check_real_floating


def check_gradient(g, name="g"):
    """Validate a real floating, finite gradient array; return ``(g, xp)``."""
    if not hasattr(g, "dtype") or not hasattr(g, "shape"):
        raise TypeError(f"{name} must be a real floating array (NumPy or any Array API array), "
                        f"got {type(g).__name__}")
    g, xp = check_real_floating(g, name)
    check_finite(g, name, xp)
    return g, xp


def work_dtype(xp, g):
    """float32 for float16 input (probabilities need the precision), else the input dtype."""
    f16 = getattr(xp, "float16", None)     # absent from some namespaces (array-api-strict)
    return xp.float32 if f16 is not None and g.dtype == f16 else g.dtype


def l2_norm(xp, v):
    """Euclidean norm of ``v`` without overflow in low precision (scaled by max |v|)."""
    m = xp.max(xp.abs(v)) if v.size else xp.asarray(0, dtype=v.dtype)
    if float(m) == 0.0:
        return m
    return m * xp.sqrt(xp.sum((v / m) ** 2))


def as_dtype_scalar(value, dtype):
    """``value`` rounded to ``dtype`` as a NumPy scalar (what the wire stores)."""
    return np.asarray(value, dtype=dtype)[()]
