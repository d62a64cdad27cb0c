"""Save and load fitted codebook learners as ``.npz`` (no pickle)."""

import json

import numpy as np

from .._array import describe

__all__ = ["load_quantizer", "save_quantizer"]

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


def save_quantizer(quantizer, file):
    """Write a fitted codebook learner to an ``.npz`` file, arrays bit for bit.

    Parameters
    ----------
    quantizer : estimator
        A fitted learner of :mod:`qtoolkit.codebooks`.
    file : str, os.PathLike or file-like
        Destination, as for :func:`numpy.savez`.

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
    The file holds the class name, the constructor parameters (JSON, arrays
    stored as arrays) and every fitted attribute (names ending in ``_``) as
    arrays, so that ``numpy.load(..., allow_pickle=False)`` reads it.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from qtoolkit.codebooks import KMeansQuantizer, save_quantizer, load_quantizer
    >>> q = KMeansQuantizer(n_clusters=2).fit(np.array([0.0, 0.1, 1.0]))
    >>> buf = io.BytesIO()
    >>> save_quantizer(q, buf)
    >>> _ = buf.seek(0)
    >>> load_quantizer(buf).codebook_
    array([0.05, 1.  ])
    """
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


def load_quantizer(file):
    """Read a learner written by :func:`save_quantizer` (no pickle involved).

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
    ValueError
        If the file was not written by :func:`save_quantizer` or names an
        unknown class.

    See Also
    --------
    save_quantizer : the inverse.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from qtoolkit.codebooks import ProductQuantizer, save_quantizer, load_quantizer
    >>> X = np.random.default_rng(0).normal(size=(64, 4))
    >>> pq = ProductQuantizer(n_subspaces=2, n_clusters=4, random_state=0).fit(X)
    >>> buf = io.BytesIO()
    >>> save_quantizer(pq, buf)
    >>> _ = buf.seek(0)
    >>> bool(np.array_equal(load_quantizer(buf).transform(X), pq.transform(X)))
    True
    """
    with np.load(file, allow_pickle=False) as data:
        if "__format__" not in data.files or str(data["__format__"]) != _FORMAT:
            raise ValueError(f"file was not written by save_quantizer (format {_FORMAT} expected)")
        name = str(data["__class__"])
        registry = _registry()
        if name not in registry:
            raise ValueError(
                f"unknown quantizer class {name!r}; expected one of {sorted(registry)}"
            )
        params = json.loads(str(data["__params__"]))
        attrs = {}
        for key in data.files:
            if key.startswith("param:"):
                params[key[6:]] = data[key]
            elif key.startswith("attr:"):
                arr = data[key]
                attrs[key[5:]] = arr.item() if arr.ndim == 0 else arr
    est = registry[name](**params)
    for key, value in attrs.items():
        setattr(est, key, value)
    return est
