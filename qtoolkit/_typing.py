"""Type aliases used by the public signatures.

These names exist for annotations only; nothing here changes what a function accepts (the
public functions validate their arguments at run time, see :mod:`qtoolkit._validation`).

- ``ArrayLike``: anything :func:`numpy.asarray` accepts (NumPy's own alias). Functions that also
  accept an Array API array (CuPy, PyTorch, JAX, Dask) say so in their docstrings; those arrays
  are array-likes as well.
- ``ArrayT``: an Array API array (NumPy, PyTorch, JAX, Dask...) given to a function that returns
  an array of the same kind (same namespace and device).
- ``Array``: an Array API array whose namespace the signature does not pin down (a plain
  alias of ``Any``: NumPy, PyTorch, JAX and Dask arrays share no static type).
- ``AxisLike``: an axis, a tuple of axes or None.
- ``NDArray[dtype]``: a NumPy array whose dtype is fixed by the function.
- ``RNGLike``: the ``rng`` parameter (None, an int seed or a :class:`numpy.random.Generator`).
- ``RandomStateLike``: the ``random_state`` parameter of the scikit-learn estimators.
- ``FileLike``: a path or an open binary file, as for :func:`numpy.save`.
- ``DistributionLike``: a distribution name, a frozen :mod:`scipy.stats` distribution or a
  1-D sample (what :mod:`qtoolkit.analysis` accepts as ``distribution``).
- ``Axes``: a :class:`matplotlib.axes.Axes` for a type checker; ``Any`` at run time, since
  matplotlib is imported only when something is plotted.
- ``SupportsQuantizedArray``: an object with ``to_quantized_array()`` (such as
  :class:`qtoolkit.optimize.QuantizedLayer`).
- ``QuantizedArrayLike``: what the lower subpackages read of a
  :class:`qtoolkit.rounding.QuantizedArray` (they cannot import it: it lives above them).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .rounding import QuantizedArray
else:
    Axes = Any

Array: TypeAlias = Any
ArrayT = TypeVar("ArrayT", bound=Any)
AxisLike = int | tuple[int, ...] | None
RNGLike = int | np.random.Generator | None
RandomStateLike = int | np.random.RandomState | np.random.Generator | None
DistributionLike: TypeAlias = str | ArrayLike | Any  # Any: a frozen scipy.stats distribution
FileLike = str | os.PathLike[str] | IO[bytes]
PathLike = str | os.PathLike[str]


class QuantizedArrayLike(Protocol):
    """The fields of :class:`qtoolkit.rounding.QuantizedArray` read by ``bitops`` (read-only)."""

    @property
    def codes(self) -> Any: ...
    @property
    def scale(self) -> Any: ...
    @property
    def zero_point(self) -> Any: ...
    @property
    def codebook(self) -> Any: ...
    @property
    def scale_neg(self) -> Any: ...
    @property
    def bits(self) -> int: ...
    @property
    def group_size(self) -> int | None: ...


class SupportsQuantizedArray(Protocol):
    """An object that converts itself to a :class:`qtoolkit.rounding.QuantizedArray`."""

    def to_quantized_array(self) -> QuantizedArray: ...


# the type of a function kept unchanged by a decorator
F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "Array",
    "ArrayLike",
    "ArrayT",
    "Axes",
    "AxisLike",
    "DTypeLike",
    "DistributionLike",
    "F",
    "FileLike",
    "NDArray",
    "PathLike",
    "QuantizedArrayLike",
    "RNGLike",
    "RandomStateLike",
    "SupportsQuantizedArray",
]
