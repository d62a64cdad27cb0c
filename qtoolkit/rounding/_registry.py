"""A registry of the rounding schemes as configurable quantizer objects."""

from __future__ import annotations

import inspect
import json
import math
import numbers
from typing import Any

from .._typing import Array, ArrayT
from .._validation import check_random_state, describe, warn_renamed
from ._binary import binarize, encode_binary, encode_stochastic_binary, stochastic_binarize
from ._codebook import (
    codebook_code_bits,
    encode_codebook,
    encode_stochastic,
    round_to_codebook,
    stochastic_round,
)
from ._dorefa import (
    dorefa_activations,
    dorefa_weights,
    encode_dorefa_activations,
    encode_dorefa_weights,
)
from ._fixed import encode_fixed_point, fixed_point
from ._lsq import encode_lsq, lsq
from ._pow2 import encode_power_of_two, power_of_two, power_of_two_code_bits
from ._quantized import QuantizedArray, decode
from ._ternary import encode_ternary, ternarize
from ._uniform import encode, uniform

CONFIG_VERSION = 1

# name -> (forward map, encoder, bits of the codes(params), required params, stochastic).
# Each scheme module owns its encoder: it takes the forward map's parameters and
# decode(encoder(w, **p)) == forward(w, **p) bit for bit (tests/rounding checks every row).
_REGISTRY = {
    "binary": (binarize, encode_binary, lambda p: 1, (), False),
    "stochastic_binary": (stochastic_binarize, encode_stochastic_binary, lambda p: 1, (), True),
    "ternary": (ternarize, encode_ternary, lambda p: 2, (), False),
    "uniform": (uniform, encode, lambda p: p.get("bits", 8), (), False),
    "dorefa": (dorefa_weights, encode_dorefa_weights, lambda p: p["bits"], ("bits",), False),
    "dorefa_activation": (
        dorefa_activations,
        encode_dorefa_activations,
        lambda p: p["bits"],
        ("bits",),
        False,
    ),
    "power_of_two": (
        power_of_two,
        encode_power_of_two,
        lambda p: power_of_two_code_bits(p["bits"], p.get("method", "logquant")),
        ("bits",),
        False,
    ),
    "fixed_point": (
        fixed_point,
        encode_fixed_point,
        lambda p: 1 + p["int_bits"] + p["frac_bits"],
        ("int_bits", "frac_bits"),
        False,
    ),
    "lsq": (lsq, encode_lsq, lambda p: p.get("bits", 4), ("step_size",), False),
    "codebook": (
        round_to_codebook,
        encode_codebook,
        lambda p: codebook_code_bits(p["codebook"]),
        ("codebook",),
        False,
    ),
    "stochastic": (
        stochastic_round,
        encode_stochastic,
        lambda p: codebook_code_bits(p["codebook"]),
        ("codebook",),
        True,
    ),
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

    def __init__(self, name: str, **params: Any) -> None:
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

    def _scheme_params(self, kwargs):
        """The keyword arguments of the forward map and the encoder (with this rng's stream)."""
        params = {k: v for k, v in self.params.items() if k != "rng"}
        params.update(kwargs)
        stochastic = _REGISTRY[self.name][4]
        if stochastic or (self.name == "fixed_point" and params.get("rounding") == "stochastic"):
            params["rng"] = self._rng
        return params

    def __call__(self, w: ArrayT, **kwargs: Any) -> ArrayT:
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
        return _REGISTRY[self.name][0](w, **self._scheme_params(kwargs))

    def encode(self, w: Array, **kwargs: Any) -> QuantizedArray:
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
        return _REGISTRY[self.name][1](w, **self._scheme_params(kwargs))

    def decode(self, q: QuantizedArray) -> Array:
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
    def bits(self) -> int:
        """Bits per code (the bit width) of this scheme with these parameters.

        Examples
        --------
        >>> from qtoolkit.rounding import get
        >>> get("fixed_point", int_bits=3, frac_bits=4).bits
        8
        """
        return int(_REGISTRY[self.name][2](self.params))

    @property
    def n_bits(self) -> int:
        """Deprecated alias of :attr:`bits` (removed in the next release)."""
        warn_renamed("Quantizer.n_bits", "Quantizer.bits", stacklevel=2)
        return self.bits

    def get_config(self) -> dict[str, Any]:
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
    def from_config(cls, config: dict[str, Any]) -> Quantizer:
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

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Quantizer) and other.name == self.name and other.params == self.params
        )

    __hash__ = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"Quantizer({self.name!r}{', ' if args else ''}{args})"


def available_quantizers() -> list[str]:
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


def get(identifier: str | dict[str, Any] | Quantizer, **params: Any) -> Quantizer:
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
