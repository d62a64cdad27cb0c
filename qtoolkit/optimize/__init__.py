"""Quantization as optimization: loss-aware, ADMM, learned bases, Hessian-guided rounding.

Background
----------
In the survey's taxonomy (Guo 2018) this is the third family of
*deterministic* quantization: instead of a fixed rounding rule or a
clustering of the weights, the quantized weights are the solution of an
optimization problem that involves the loss (or the layer's output), not
only the distance to the full-precision weights.

- *Loss-aware* quantization (Hou et al. 2017; Hou & Kwok 2018): the
  proximal Newton step with a diagonal curvature estimate, in closed form —
  :func:`loss_aware_binarize`, :func:`loss_aware_ternarize`.
- *ADMM* (Leng et al. 2018): the weights are split from their quantized copy,
  which is an exact projection onto a scaled codebook —
  :func:`admm_quantize`, :func:`project_scaled_codebook`.
- *Learned quantizer bases* (LQ-Nets, Zhang et al. 2018), for weights and
  activations — :func:`lq_fit`, :func:`lq_quantize`.
- *Hessian-guided post-training rounding* of a linear layer from
  calibration inputs, the direction the survey names as future work
  ("the structure of the weights guides the rounding"): GPTQ/OBQ
  (:func:`gptq`) and AdaRound (:func:`adaround`), both returning a
  :class:`QuantizedLayer`; :func:`output_error` measures
  :math:`\\|XW^\\top - X\\hat W^\\top\\|^2`.
- *Post-training accuracy* of a linear layer, every method called as
  ``method(W, X, *, bits, group_size, ...)`` and returning a
  :class:`QuantizedLayer` that converts to a
  :class:`~qtoolkit.rounding.QuantizedArray`: round-to-nearest (:func:`rtn`),
  incoherence processing (QuIP, QuaRot: ``rotate=True`` with
  :func:`incoherence_transform` built on the fast :func:`hadamard_transform`),
  activation-aware scaling (AWQ, :func:`awq`), half-quadratic zero points
  (HQQ, :func:`hqq`), and GPTQ's grids: clipping searched inside the loop
  (``clip="mse"``), static groups with act-order, and per-row non-uniform
  codebooks from the exact Hessian-weighted 1-D k-means (``grid="optimal"``).

The loss-aware steps take any Array API array; the layer-wise methods, ADMM
and LQ-Nets work on NumPy arrays.
"""

from ._adaround import adaround
from ._admm import ADMMResult, ScaledCodebook, admm_quantize, project_scaled_codebook
from ._awq import awq
from ._gptq import gptq
from ._hadamard import IncoherenceTransform, hadamard_transform, incoherence_transform
from ._hqq import hqq
from ._layer import QuantizedLayer, output_error
from ._loss_aware import loss_aware_binarize, loss_aware_ternarize
from ._lq import lq_fit, lq_quantize
from ._rtn import rtn

__all__ = [
    "ADMMResult",
    "IncoherenceTransform",
    "QuantizedLayer",
    "ScaledCodebook",
    "adaround",
    "admm_quantize",
    "awq",
    "gptq",
    "hadamard_transform",
    "hqq",
    "incoherence_transform",
    "loss_aware_binarize",
    "loss_aware_ternarize",
    "lq_fit",
    "lq_quantize",
    "output_error",
    "project_scaled_codebook",
    "rtn",
]
