"""A registry of the rounding schemes as configurable quantizer objects."""

import inspect
import json
import math
import numbers

from array_api_compat import device as _device

from .._validation import check_random_state, describe, warn_renamed
from ._binary import _binary_scale, _validate_binarize, binarize, stochastic_binarize
from ._codebook import round_to_codebook, stochastic_round
from ._common import _check_weights
from ._dorefa import _dorefa_weight_parts, dorefa_activations, dorefa_weights
from ._fixed import _fixed_codes, _validate_fixed, fixed_point
from ._lsq import _lsq_codes, _lsq_levels, _validate_lsq, lsq
from ._pow2 import _inq_parts, _logquant_parts, _validate_pow2, power_of_two
from ._quantized import QuantizedArray, decode
from ._ternary import _ternary, _validate_ternarize, ternarize
from ._uniform import _code_dtype, _dtype_name, encode, uniform

CONFIG_VERSION = 1


def _dtname(w):
    return _dtype_name(w)


def _cb(values, w, xp):
    return xp.asarray([float(v) for v in values], dtype=w.dtype, device=_device(w))


def _dorefa_grid(n, w, xp, signed):
    """The DoReFa levels i/n (or 2 i/n - 1), computed with the same operations, in the same
    dtype, as the forward map, so that decoding gives back its values bit for bit."""
    g = xp.arange(n + 1, dtype=w.dtype, device=_device(w)) / float(n)
    return 2 * g - 1 if signed else g


def _codes_int(x, xp, dtype=None):
    return xp.astype(x, xp.int8 if dtype is None else dtype)


def _encode_binary(w, params, rng):
    w, xp, axis, d = _validate_binarize(w, params.get("scale"), params.get("axis"), params.get("d"))
    alpha = _binary_scale(w, xp, params.get("scale"), axis, d)
    codes = _codes_int(w >= 0, xp)
    return QuantizedArray(
        codes=codes,
        scale=alpha,
        codebook=_cb([-1, 1], w, xp),
        bits=1,
        axis=axis,
        dtype=_dtname(w),
        scheme="binary",
    )


def _encode_stochastic_binary(w, params, rng):
    w, xp = _check_weights(w)
    v = stochastic_binarize(w, rng=rng)
    return QuantizedArray(
        codes=_codes_int(v > 0, xp),
        scale=None,
        codebook=_cb([-1, 1], w, xp),
        bits=1,
        dtype=_dtname(w),
        scheme="stochastic_binary",
    )


def _encode_ternary(w, params, rng):
    p = {"method": "twn", "delta": 0.7, "threshold": 0.05, "axis": None, "scales": None}
    p.update(params)
    w, xp, method, delta, threshold, axis = _validate_ternarize(
        w, p["method"], p["delta"], p["threshold"], p["axis"], p["scales"]
    )
    t, ap, an, _ = _ternary(w, xp, method, delta, threshold, axis, p["scales"])
    return QuantizedArray(
        codes=_codes_int(t + 1, xp),
        scale=ap,
        scale_neg=an if method == "ttq" else None,
        codebook=_cb([-1, 0, 1], w, xp),
        bits=2,
        axis=axis,
        dtype=_dtname(w),
        scheme="ternary",
    )


def _encode_uniform(w, params, rng):
    return encode(w, **params)


def _encode_dorefa(w, params, rng):
    bits = params["bits"]
    v = dorefa_weights(w, **params)
    w, xp = _check_weights(w)
    axis = params.get("axis")
    if bits == 1:
        _, alpha = _dorefa_weight_parts(
            w,
            xp,
            1,
            None
            if axis is None
            else tuple(sorted(a % w.ndim for a in (axis if isinstance(axis, tuple) else (axis,)))),
        )
        return QuantizedArray(
            codes=_codes_int(v >= 0, xp),
            scale=alpha,
            codebook=_cb([-1, 1], w, xp),
            bits=1,
            dtype=_dtname(w),
            scheme="dorefa",
        )
    n = 2**bits - 1
    codes = xp.astype(xp.round((v + 1) * (n / 2)), xp.int32 if bits > 7 else xp.int8)
    return QuantizedArray(
        codes=codes,
        scale=None,
        codebook=_dorefa_grid(n, w, xp, True),
        bits=bits,
        dtype=_dtname(w),
        scheme="dorefa",
    )


def _encode_dorefa_activation(x, params, rng):
    bits = params["bits"]
    v = dorefa_activations(x, bits)
    x, xp = _check_weights(x, "x")
    n = 2**bits - 1
    codes = xp.astype(xp.round(v * n), xp.int32 if bits > 7 else xp.int8)
    return QuantizedArray(
        codes=codes,
        scale=None,
        codebook=_dorefa_grid(n, x, xp, False),
        bits=bits,
        dtype=_dtname(x),
        scheme="dorefa_activation",
    )


def _encode_pow2(w, params, rng):
    p = {"method": "logquant", "fsr": None, "axis": None}
    p.update(params)
    w, xp, bits, method, axis = _validate_pow2(w, p["bits"], p["method"], p["fsr"], p["axis"])
    if method == "inq":
        v, top = _inq_parts(w, xp, bits, axis)
        n_mag = 2 ** (bits - 2)
    else:
        v, top = _logquant_parts(w, xp, bits, p["fsr"], axis)
        n_mag = 2**bits + 1
    mags = [2.0 ** (-k) for k in range(n_mag - 1, -1, -1)]
    book = [-m for m in reversed(mags)] + [0.0] + mags
    scale = xp.pow(2.0 * xp.ones_like(top), top)
    rel = v / scale
    c = _cb(book, w, xp)
    mid = (c[1:] + c[:-1]) / 2
    codes = xp.astype(xp.searchsorted(mid, xp.reshape(rel, (-1,))), xp.int16)
    return QuantizedArray(
        codes=xp.reshape(codes, tuple(w.shape)),
        scale=scale,
        codebook=c,
        bits=_pow2_bits(p),
        axis=axis,
        dtype=_dtname(w),
        scheme="power_of_two",
    )


def _encode_fixed(w, params, rng):
    p = {"saturate": True, "rounding": "half_even"}
    p.update({k: v for k, v in params.items() if k != "rng"})
    w, xp, ib, fb, rounding = _validate_fixed(
        w, p["int_bits"], p["frac_bits"], p["saturate"], p["rounding"]
    )
    wide = xp.astype(w, xp.float32) if str(w.dtype).endswith("float16") else w
    c, scale = _fixed_codes(wide, xp, ib, fb, p["saturate"], rounding, rng)
    dt = xp.int8 if ib + fb < 8 else (xp.int16 if ib + fb < 16 else xp.int32)
    return QuantizedArray(
        codes=xp.astype(c, dt),
        scale=_cb([1.0 / scale], w, xp)[0],
        bits=1 + ib + fb,
        dtype=_dtname(w),
        scheme="fixed_point",
    )


def _encode_lsq(w, params, rng):
    p = {"bits": 4, "signed": True}
    p.update(params)
    w, xp, s, bits = _validate_lsq(w, p["step_size"], p["bits"], p["signed"])
    c, _ = _lsq_codes(w, xp, s, bits, p["signed"])
    qn, qp = _lsq_levels(bits, p["signed"])
    return QuantizedArray(
        codes=xp.astype(c, _code_dtype(xp, -qn, qp)),
        scale=s,
        bits=bits,
        dtype=_dtname(w),
        scheme="lsq",
    )


def _encode_codebook(w, params, rng):
    _, codes = round_to_codebook(w, params["codebook"], return_codes=True)
    xp = _check_weights(w)[1]
    return QuantizedArray(
        codes=codes,
        scale=None,
        codebook=_cb(params["codebook"], w, xp),
        bits=_book_bits(params),
        dtype=_dtname(w),
        scheme="codebook",
    )


def _encode_stochastic(w, params, rng):
    _, codes = stochastic_round(w, codebook=params["codebook"], rng=rng, return_codes=True)
    xp = _check_weights(w)[1]
    return QuantizedArray(
        codes=codes,
        scale=None,
        codebook=_cb(params["codebook"], w, xp),
        bits=_book_bits(params),
        dtype=_dtname(w),
        scheme="stochastic",
    )


def _book_bits(p):
    return max(1, math.ceil(math.log2(len(p["codebook"]))))


def _pow2_bits(p):
    if p.get("method", "logquant") == "inq":
        return p["bits"]
    return math.ceil(math.log2(2 * (2 ** p["bits"] + 1) + 1))


# name -> (function, encoder, n_bits(params), required params, stochastic)
_REGISTRY = {
    "binary": (binarize, _encode_binary, lambda p: 1, (), False),
    "stochastic_binary": (stochastic_binarize, _encode_stochastic_binary, lambda p: 1, (), True),
    "ternary": (ternarize, _encode_ternary, lambda p: 2, (), False),
    "uniform": (uniform, _encode_uniform, lambda p: p.get("bits", 8), (), False),
    "dorefa": (dorefa_weights, _encode_dorefa, lambda p: p["bits"], ("bits",), False),
    "dorefa_activation": (
        dorefa_activations,
        _encode_dorefa_activation,
        lambda p: p["bits"],
        ("bits",),
        False,
    ),
    "power_of_two": (power_of_two, _encode_pow2, _pow2_bits, ("bits",), False),
    "fixed_point": (
        fixed_point,
        _encode_fixed,
        lambda p: 1 + p["int_bits"] + p["frac_bits"],
        ("int_bits", "frac_bits"),
        False,
    ),
    "lsq": (lsq, _encode_lsq, lambda p: p.get("bits", 4), ("step_size",), False),
    "codebook": (round_to_codebook, _encode_codebook, _book_bits, ("codebook",), False),
    "stochastic": (stochastic_round, _encode_stochastic, _book_bits, ("codebook",), True),
}
_NOT_CONFIG = {"w", "x", "rng", "return_codes", "d", "step"}


def _jsonable(value, name):
    """Turn a parameter into plain JSON types (tuples become lists), or raise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise ValueError(f"parameter {name!r} must be finite, got {value!r}")
        return float(value)
    if isinstance(value, (tuple, list)) or hasattr(value, "tolist"):
        seq = value.tolist() if hasattr(value, "tolist") else value
        return [_jsonable(v, name) for v in seq]
    raise TypeError(
        f"parameter {name!r} must be a number, string, bool, None or a list of "
        f"them, got {describe(value)}"
    )


class Quantizer:
    """A rounding scheme with its parameters: call it, encode, decode, serialise.

    Parameters
    ----------
    name : str
        Registry name, one of :func:`available_quantizers`.
    **params
        Keyword parameters of the scheme's function (``bits``, ``axis``,
        ``method`` ...); stochastic schemes also take ``rng`` (an int seed or
        None, so that the configuration stays JSON; ``seed`` is a deprecated alias).
        Values must be JSON-representable; their ranges are checked by the
        scheme's function when the quantizer is called.

    Attributes
    ----------
    name : str
        The registry name.
    params : dict
        The parameters, as given (tuples become lists in ``get_config``).

    Raises
    ------
    ValueError
        If ``name`` is unknown or a required parameter is missing.
    TypeError
        If a parameter is unknown to the scheme or not JSON-representable.

    See Also
    --------
    get : Build one from a name, a config or an instance.

    Notes
    -----
    ``Quantizer(name, **p)(w)`` equals the scheme's function called with
    ``**p``; ``decode(q.encode(w))`` equals ``q(w)`` for the deterministic
    schemes. ``get_config()`` returns
    ``{"name": ..., "params": {...}, "version": 1}``, a JSON-serialisable
    dict that :meth:`from_config` turns back into an equal quantizer.

    References
    ----------
    .. [1] L. Geiger, P. Team, "Larq: An Open-Source Library for Training
       Binarized Neural Networks", JOSS 5(45), 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import get
    >>> q = get("ternary", method="optimal")
    >>> q(np.array([-1.0, 0.1, 1.0])), q.bits
    (array([-1.,  0.,  1.]), 2)
    """

    def __init__(self, name, **params):
        if "seed" in params:
            if "rng" in params:
                raise TypeError("give rng, not both rng and the deprecated seed")
            warn_renamed("Quantizer(seed=...)", "rng=...")
            params["rng"] = params.pop("seed")
        if not isinstance(name, str) or name not in _REGISTRY:
            raise ValueError(f"name must be one of {sorted(_REGISTRY)}, got {name!r}")
        fn, _, _, required, stochastic = _REGISTRY[name]
        allowed = set(inspect.signature(fn).parameters) - _NOT_CONFIG
        if stochastic or name == "fixed_point":
            allowed.add("rng")
        for key in params:
            if key not in allowed:
                raise TypeError(
                    f"{key!r} is not a parameter of quantizer {name!r}; "
                    f"expected some of {sorted(allowed)}"
                )
        for key in required:
            if key not in params:
                raise ValueError(f"quantizer {name!r} needs the parameter {key!r}")
        clean = {k: _jsonable(v, k) for k, v in params.items()}
        for key in ("axis", "scales"):
            if isinstance(clean.get(key), list):
                clean[key] = tuple(clean[key])
        self.name = name
        self.params = clean
        self._rng = check_random_state(clean.get("rng"), "rng")

    def _call_params(self):
        return {k: v for k, v in self.params.items() if k != "rng"}

    def __call__(self, w, **kwargs):
        """Quantize ``w`` with this scheme and these parameters.

        Parameters
        ----------
        w : array of real floating dtype
            Tensor to quantize, in any Array API namespace.
        **kwargs
            Extra keyword arguments of the scheme's function (e.g. ``d``
            for loss-aware binarization); they override ``params``.

        Returns
        -------
        w_q : array, same shape, dtype, namespace and device as ``w``
            The quantized (dequantized-valued) tensor.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.rounding import get
        >>> get("binary")(np.array([-0.2, 0.3]))
        array([-1.,  1.])
        """
        fn, _, _, _, stochastic = _REGISTRY[self.name]
        params = self._call_params()
        params.update(kwargs)
        if stochastic or (self.name == "fixed_point" and params.get("rounding") == "stochastic"):
            params["rng"] = self._rng
        return fn(w, **params)

    def encode(self, w, **kwargs):
        """Encode ``w`` as integer codes with the scales or codebook.

        Parameters
        ----------
        w : array of real floating dtype
            Tensor to quantize, in any Array API namespace.
        **kwargs
            Extra keyword arguments of the scheme (override ``params``).

        Returns
        -------
        q : QuantizedArray
            Codes, scales and codebook, in ``w``'s namespace.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.rounding import get
        >>> get("ternary").encode(np.array([-1.0, 0.0, 1.0])).codes
        array([0, 1, 2], dtype=int8)
        """
        params = self._call_params()
        params.update(kwargs)
        return _REGISTRY[self.name][1](w, params, self._rng)

    def decode(self, q):
        """Reconstruct the real tensor of a :class:`QuantizedArray`.

        Parameters
        ----------
        q : QuantizedArray
            As returned by :meth:`encode`.

        Returns
        -------
        w_hat : array
            See :func:`decode`.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.rounding import get
        >>> t = get("ternary")
        >>> t.decode(t.encode(np.array([-1.0, 0.0, 1.0])))
        array([-1.,  0.,  1.])
        """
        return decode(q)

    @property
    def bits(self):
        """Bits per code (the bit width) of this scheme with these parameters.

        Examples
        --------
        >>> from qtoolkit.rounding import get
        >>> get("fixed_point", int_bits=3, frac_bits=4).bits
        8
        """
        return int(_REGISTRY[self.name][2](self.params))

    @property
    def n_bits(self):
        """Deprecated alias of :attr:`bits` (removed in the next release)."""
        warn_renamed("Quantizer.n_bits", "Quantizer.bits", stacklevel=2)
        return self.bits

    def get_config(self):
        """Return the configuration as a JSON-serialisable dict.

        Returns
        -------
        config : dict
            ``{"name": str, "params": dict, "version": int}``.

        Examples
        --------
        >>> from qtoolkit.rounding import get
        >>> get("uniform", bits=4, axis=0).get_config()
        {'name': 'uniform', 'params': {'bits': 4, 'axis': 0}, 'version': 1}
        """
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params.items()}
        return {"name": self.name, "params": params, "version": CONFIG_VERSION}

    @classmethod
    def from_config(cls, config):
        """Build a quantizer from a configuration.

        Parameters
        ----------
        config : dict or str
            The dict of :meth:`get_config`, or its JSON text.

        Returns
        -------
        quantizer : Quantizer

        Raises
        ------
        ValueError
            If the config is malformed or of an unknown version.

        Examples
        --------
        >>> import json
        >>> from qtoolkit.rounding import Quantizer, get
        >>> q = get("power_of_two", bits=3)
        >>> Quantizer.from_config(json.dumps(q.get_config())) == q
        True
        """
        if isinstance(config, str):
            config = json.loads(config)
        if not isinstance(config, dict) or "name" not in config:
            raise ValueError(
                f"config must be a dict with 'name' and 'params', got {describe(config)}"
            )
        version = config.get("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ValueError(
                f"config version {version!r} is not supported "
                f"(this qtoolkit reads version {CONFIG_VERSION})"
            )
        params = config.get("params", {})
        if not isinstance(params, dict):
            raise ValueError(f"config['params'] must be a dict, got {describe(params)}")
        return cls(config["name"], **params)

    def __eq__(self, other):
        return (
            isinstance(other, Quantizer) and other.name == self.name and other.params == self.params
        )

    __hash__ = None

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"Quantizer({self.name!r}{', ' if args else ''}{args})"


def available_quantizers():
    """List the names accepted by :func:`get`.

    Returns
    -------
    names : list of str
        Sorted registry names.

    See Also
    --------
    get : Build a quantizer by name.

    Examples
    --------
    >>> from qtoolkit.rounding import available_quantizers
    >>> "ternary" in available_quantizers()
    True
    """
    return sorted(_REGISTRY)


def get(identifier, **params):
    """Get a :class:`Quantizer` from a name, a config dict or an existing quantizer.

    Parameters
    ----------
    identifier : str, dict or Quantizer
        A registry name (see :func:`available_quantizers`), a dict from
        :meth:`Quantizer.get_config`, or a quantizer (returned as is).
    **params
        Parameters of the scheme when ``identifier`` is a name.

    Returns
    -------
    quantizer : Quantizer

    Raises
    ------
    ValueError
        If the name is unknown or the config is invalid.
    TypeError
        If ``identifier`` has another type, or parameters come with a config
        or an instance.

    See Also
    --------
    Quantizer : The object returned.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import get
    >>> q = get("uniform", bits=4)
    >>> get(q.get_config()) == q
    True
    """
    if isinstance(identifier, Quantizer):
        if params:
            raise TypeError("parameters cannot be combined with a Quantizer instance")
        return identifier
    if isinstance(identifier, dict):
        if params:
            raise TypeError("parameters cannot be combined with a config dict")
        return Quantizer.from_config(identifier)
    if isinstance(identifier, str):
        return Quantizer(identifier, **params)
    raise TypeError(
        f"identifier must be a name, a config dict or a Quantizer, got {describe(identifier)}"
    )
