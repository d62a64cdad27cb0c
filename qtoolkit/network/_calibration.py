"""Calibration: each layer's input statistics, accumulated batch by batch."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._array import describe
from .._typing import ArrayLike, NDArray
from ._errors import CheckpointError

CHUNK_ROWS = 4096


class LayerStats:
    """Running ``sum X^T X``, ``sum |X|`` and the sample count of one layer's inputs."""

    def __init__(self, n_features):
        self.n_features = n_features
        self.xtx = np.zeros((n_features, n_features))
        self.abs_sum = np.zeros(n_features)
        self.n_samples = 0

    @property
    def hessian(self):
        """``X^T X / n_samples`` (float64)."""
        return self.xtx / max(self.n_samples, 1)

    @property
    def abs_mean(self):
        """Mean absolute input per feature."""
        return self.abs_sum / max(self.n_samples, 1)


class Calibration:
    """Streaming accumulator of every layer's input statistics (``XᵀX``, mean ``|x|``).

    Feed batches of each layer's inputs with :meth:`update`; only the
    ``(n_features, n_features)`` sums are kept, never the activations, so
    the memory is independent of the number of calibration samples. Pass
    the object as ``calibration=`` to :func:`quantize`.

    Parameters
    ----------
    chunk_rows : int, default=4096
        Rows converted to float64 at a time inside :meth:`update` (bounds the
        temporary memory of one update).

    Attributes
    ----------
    names : list of str
        The layers seen so far, in order of first update.

    See Also
    --------
    Sequential : Re-run the forward pass after each block is quantized.
    quantize : Uses the statistics of each quantized layer.

    Notes
    -----
    After batches :math:`X_1, \\dots, X_B` the layer's Hessian proxy is

    .. math::

        H = \\frac{1}{n} \\sum_b X_b^\\top X_b, \\qquad n = \\sum_b \\text{rows}(X_b),

    the matrix of the layer-output error
    :math:`\\|X W^\\top - X \\hat W^\\top\\|_F^2 / n =
    \\operatorname{tr}(\\Delta W H \\Delta W^\\top)`
    that GPTQ and AdaRound minimise.

    References
    ----------
    .. [1] E. Frantar, S. Ashkboos, T. Hoefler, D. Alistarh, "GPTQ: Accurate
       Post-Training Quantization for Generative Pre-trained Transformers", ICLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.network import Calibration
    >>> cal = Calibration()
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> cal.update("fc.weight", X[:4]); cal.update("fc.weight", X[4:])
    >>> bool(np.allclose(cal.hessian("fc.weight"), X.T @ X / 6))
    True
    """

    def __init__(self, chunk_rows: int = CHUNK_ROWS) -> None:
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
        self.chunk_rows = chunk_rows
        self._stats = {}

    @property
    def names(self) -> list[str]:
        return list(self._stats)

    def update(self, name: str, X: ArrayLike) -> None:
        """Add a batch of inputs of layer ``name``.

        Parameters
        ----------
        name : str
            The weight's name in the checkpoint.
        X : array_like of shape (n_samples, n_features)
            A batch of the layer's inputs (NumPy or any DLPack array), finite.

        Raises
        ------
        ValueError
            If ``X`` is not 2-D, holds NaN/Inf, or its feature count differs
            from earlier batches of the same layer.
        TypeError
            If ``name`` is not a string or ``X`` is not numeric.
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {describe(name)}")
        X = _as_inputs(X, name)
        st = self._stats.get(name)
        if st is None:
            st = self._stats[name] = LayerStats(X.shape[1])
        elif st.n_features != X.shape[1]:
            raise ValueError(
                f"calibration inputs of {name!r} must have {st.n_features} features like the "
                f"earlier batches, got shape {X.shape}"
            )
        for i in range(0, X.shape[0], self.chunk_rows):
            c = np.asarray(X[i : i + self.chunk_rows], dtype=np.float64)
            st.xtx += c.T @ c
            st.abs_sum += np.abs(c).sum(axis=0)
        st.n_samples += X.shape[0]

    def hessian(self, name: str) -> NDArray[np.float64]:
        """The mean ``XᵀX / n`` of layer ``name``.

        Parameters
        ----------
        name : str
            A layer given to :meth:`update`.

        Returns
        -------
        H : numpy.ndarray of float64, shape (n_features, n_features)

        Raises
        ------
        KeyError
            If no batch of ``name`` was given.
        """
        return self._stats[name].hessian

    def _get(self, name):
        return self._stats.get(name)


class Sequential:
    """Sequential calibration: call the forward pass again after each block is quantized.

    Later layers are then calibrated on the activations of the partly
    quantized network, so they can compensate for the error of the layers
    before them (the sequential procedure of GPTQ).

    Parameters
    ----------
    forward : callable
        ``forward(state) -> inputs``: given the current weights (a dict of
        name to NumPy array: quantized-dequantized for the blocks already
        done, original for the rest), return the inputs of the layers, as a
        mapping of name to an ``(n_samples, n_features)`` array (or an
        iterable of batches), or a callable ``name -> array``.
    blocks : list of (str or list of str), optional
        Groups of weights quantized together between two forward passes,
        in order; each entry is a name, a glob, a ``"re:"`` regex or a list
        of them. Default: every quantized weight is its own block, in
        checkpoint order. Weights in no block are quantized at the end.

    See Also
    --------
    Calibration : One-shot streaming statistics.
    quantize : Takes ``calibration=Sequential(...)``.

    Notes
    -----
    For blocks :math:`B_1, \\dots, B_K`, block :math:`B_k` is calibrated on
    :math:`X^{(k)} = f(\\hat W_{B_1}, \\dots, \\hat W_{B_{k-1}}, W_{B_k}, \\dots)`, one
    call of ``forward`` per block.

    References
    ----------
    .. [1] E. Frantar, S. Ashkboos, T. Hoefler, D. Alistarh, "GPTQ: Accurate
       Post-Training Quantization for Generative Pre-trained Transformers", ICLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.network import Sequential
    >>> X = np.ones((4, 2))
    >>> seq = Sequential(lambda state: {"fc.weight": X})
    >>> seq.blocks is None
    True
    """

    def __init__(
        self, forward: Callable[..., Any], blocks: list[str | list[str]] | None = None
    ) -> None:
        if not callable(forward):
            raise TypeError(f"forward must be callable, got {describe(forward)}")
        if blocks is not None:
            if isinstance(blocks, str) or not isinstance(blocks, (list, tuple)):
                raise TypeError(f"blocks must be a list of names or patterns, got {blocks!r}")
            for b in blocks:
                items = b if isinstance(b, (list, tuple)) else [b]
                if not items or not all(isinstance(s, str) for s in items):
                    raise TypeError(f"each block must be a name or a list of names, got {b!r}")
        self.forward = forward
        self.blocks = blocks


def _as_inputs(X, name):
    from ._checkpoint import to_numpy

    X = to_numpy(X, name)
    if X.ndim != 2:
        raise ValueError(
            f"calibration inputs of {name!r} must be 2-D (n_samples, n_features), got {describe(X)}"
        )
    if X.dtype.kind not in "fiu":
        raise TypeError(f"calibration inputs of {name!r} must be numeric, got {describe(X)}")
    if X.shape[0] == 0:
        raise ValueError(f"calibration inputs of {name!r} are empty (shape {X.shape})")
    if X.dtype.kind == "f" and not np.all(np.isfinite(X)):
        raise ValueError(f"calibration inputs of {name!r} hold NaN or Inf")
    return X


def _batches(value, name):
    """One array, a list of batch arrays, or any iterable (a generator) of batches."""
    if value is None:
        return
    if hasattr(value, "shape") or hasattr(value, "__dlpack__"):
        yield value
    elif isinstance(value, (list, tuple)):
        if value and hasattr(value[0], "shape"):
            yield from value
        else:
            yield value
    else:
        try:
            it = iter(value)
        except TypeError:
            yield value
            return
        yield from it


def _lookup(source, name):
    if isinstance(source, Mapping):
        return source.get(name)
    try:
        return source(name)
    except KeyError:
        return None


def stats_for(source, name, n_features, chunk_rows=CHUNK_ROWS):
    """Accumulate the statistics of ``name`` from a mapping, a callable or a Calibration."""
    if source is None:
        return None
    if isinstance(source, Calibration):
        st = source._get(name)
    else:
        st = None
        for batch in _batches(_lookup(source, name), name):
            X = _as_inputs(batch, name)
            if st is None:
                st = LayerStats(X.shape[1])
            if X.shape[1] != st.n_features:
                raise ValueError(
                    f"calibration batches of {name!r} disagree in width: {st.n_features} then "
                    f"{X.shape[1]} features"
                )
            for i in range(0, X.shape[0], chunk_rows):
                c = np.asarray(X[i : i + chunk_rows], dtype=np.float64)
                st.xtx += c.T @ c
                st.abs_sum += np.abs(c).sum(axis=0)
            st.n_samples += X.shape[0]
    if st is not None and st.n_features != n_features:
        raise ValueError(
            f"calibration inputs of {name!r} have {st.n_features} features, but the weight "
            f"has {n_features} inputs (expected inputs of shape (n_samples, {n_features}))"
        )
    return st


def open_calibration(calibration):
    """Normalise ``calibration=``: None, Calibration, Sequential, mapping, callable or .npz path."""
    if calibration is None or isinstance(calibration, (Calibration, Sequential, Mapping)):
        return calibration
    if isinstance(calibration, (str, os.PathLike)):
        path = os.fspath(calibration)
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as err:
            raise CheckpointError(f"cannot read calibration file {path!r}: {err}") from err
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise CheckpointError(f"calibration file {path!r} must be an .npz of named arrays")

        def get(name):
            if name not in data.files:
                return None
            try:
                return data[name]
            except Exception as err:
                raise CheckpointError(
                    f"cannot read {name!r} from calibration file {path!r}: {err}"
                ) from err

        return get
    if callable(calibration):
        return calibration
    raise TypeError(
        "calibration must be None, a Calibration, a Sequential, a mapping of names to "
        f"inputs, a callable or a path to an .npz file, got {describe(calibration)}"
    )


def n_inputs(shape):
    """Input features of a weight of this shape (all but the first axis)."""
    return int(math.prod(shape[1:])) if len(shape) >= 2 else 0
