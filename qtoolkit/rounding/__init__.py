"""Rounding schemes: fixed codebooks, deterministic and stochastic.

Background
----------
In the survey's taxonomy (Guo, 2018), quantization is *deterministic* (a
one-to-one map from a real value to a quantized one) or *stochastic* (the
quantized value is sampled from a distribution set by the real value), and
its codebook is *fixed* (predefined) or *adaptive* (learned). This
subpackage holds the fixed-codebook schemes, both deterministic and
stochastic (random rounding):

- binary: :func:`binarize` (BinaryConnect sign, XNOR-Net and loss-aware
  scales), :func:`stochastic_binarize`;
- ternary: :func:`ternarize` (TWN, the exact least-squares optimum, TTQ);
- uniform grids: :func:`uniform`, :func:`encode`, :func:`decode`,
  :func:`fixed_point`, DoReFa (:func:`dorefa_weights`,
  :func:`dorefa_activations`, :func:`dorefa_gradients`);
- logarithmic grids: :func:`power_of_two` (LogQuant, INQ),
  :func:`inq_codebook`;
- any sorted scalar codebook: :func:`round_to_codebook`,
  :func:`stochastic_round` (unbiased);
- pseudo-gradients for training: :func:`straight_through`,
  :func:`clipped_straight_through`, :func:`approx_sign_gradient`,
  :func:`swish_sign_gradient`; :func:`ste` puts any quantizer with its
  pseudo-gradient into PyTorch autograd or JAX autodiff, with the learned
  scales of TTQ, LSQ (:func:`lsq`) and PACT-style DoReFa activations;
- a registry of configurable quantizers (:func:`get`, :class:`Quantizer`)
  and a versioned file format (:func:`save_quantized`,
  :func:`load_quantized`) for the encoded form (:class:`QuantizedArray`).

Every function takes any Array API array (NumPy, PyTorch, CuPy, JAX, Dask,
array-api-strict) and returns the same kind of array, on the same device,
with the same floating dtype; a Dask array stays lazy. Every function also
runs inside ``jax.jit`` / ``jax.grad`` and ``torch.compile``: shape, dtype and
parameter checks always run, while the checks that read values (NaN/Inf in an
input a scale is estimated from, all-zero input, negative curvature) run only
on arrays whose values exist when the function is called -- not on Dask
arrays, JAX tracers, or tensors that ``torch.compile`` is tracing, where
non-finite values propagate instead. Adaptive codebooks
(k-means and relatives) are in :mod:`qtoolkit.codebooks`.
"""

from ._binary import binarize, stochastic_binarize
from ._codebook import CodedValues, round_to_codebook, stochastic_round
from ._dorefa import dorefa_activations, dorefa_gradients, dorefa_weights
from ._fixed import fixed_point
from ._gradients import (
    approx_sign_gradient,
    clipped_straight_through,
    straight_through,
    swish_sign_gradient,
)
from ._lsq import lsq
from ._pow2 import inq_codebook, power_of_two
from ._quantized import QuantizedArray, decode
from ._registry import Quantizer, available_quantizers, get
from ._ste import ste
from ._storage import QuantizedFileError, load_quantized, save_quantized
from ._ternary import ternarize
from ._uniform import encode, uniform

__all__ = [
    "CodedValues",
    "QuantizedArray",
    "QuantizedFileError",
    "Quantizer",
    "approx_sign_gradient",
    "available_quantizers",
    "binarize",
    "clipped_straight_through",
    "decode",
    "dorefa_activations",
    "dorefa_gradients",
    "dorefa_weights",
    "encode",
    "fixed_point",
    "get",
    "inq_codebook",
    "load_quantized",
    "lsq",
    "power_of_two",
    "round_to_codebook",
    "save_quantized",
    "ste",
    "stochastic_binarize",
    "stochastic_round",
    "straight_through",
    "swish_sign_gradient",
    "ternarize",
    "uniform",
]
