"""Whole networks: checkpoints in and out, recipes, calibration, mixed precision, Dask.

Background
----------
Every other subpackage works on one tensor. This one makes a whole network
the unit of work, whatever framework produced it: a mapping of names to
arrays (a PyTorch ``state_dict()`` through DLPack, JAX or NumPy arrays), a
``.safetensors`` file read tensor by tensor from a memory map, or an ``.npz``.

- :func:`quantize` applies a *recipe* — ordered rules matching tensor names
  (globs or ``re:`` regexes) to a method: any fixed-codebook quantizer of
  :mod:`qtoolkit.rounding`, the Hessian-guided roundings of
  :mod:`qtoolkit.optimize` (GPTQ, AdaRound), the adaptive codebooks of
  :mod:`qtoolkit.codebooks` (optimal or Hessian-weighted scalar k-means,
  product quantization), or llama.cpp's block formats (Q8_0, Q4_0, Q4_1,
  TQ1_0, TQ2_0); biases, norms, embeddings and 1-D tensors are kept unless a
  rule names them.
- Calibration is framework-agnostic and streaming (:class:`Calibration`
  keeps only each layer's :math:`X^\\top X`); :class:`Sequential` re-runs the
  user's forward pass after each block, as GPTQ does.
- Mixed precision to a bit budget is an exact multiple-choice knapsack
  (:func:`allocate`) with its whole Pareto curve (:func:`pareto`).
- The result (:class:`QuantizedNetwork`) is saved as one packed
  ``.safetensors`` file with a versioned JSON header (:func:`load` validates
  it) or as GGUF, comes with a :class:`Report`, and the per-tensor work runs
  on a Dask cluster when a ``dask.distributed.Client`` is given.
"""

from ._budget import Allocation, ParetoCurve, allocate, pareto
from ._calibration import Calibration, Sequential
from ._errors import CheckpointError
from ._format import load
from ._methods import available_methods as _available_methods
from ._network import QuantizedNetwork, quantize
from ._report import Report


def available_methods() -> list[str]:
    """List the method names a recipe rule accepts.

    Returns
    -------
    names : list of str
        Sorted: the quantizers of :func:`qtoolkit.rounding.available_quantizers`,
        ``"gptq"``, ``"adaround"``, ``"awq"``, ``"rtn"``, ``"hqq"``, ``"kmeans"``,
        ``"hessian_kmeans"``, ``"pq"``,
        the GGUF block formats and ``"skip"``.

    See Also
    --------
    quantize : Where the names are used.

    Examples
    --------
    >>> from qtoolkit.network import available_methods
    >>> {"gptq", "q4_0", "skip", "uniform"} <= set(available_methods())
    True
    """
    return _available_methods()


__all__ = [
    "Allocation",
    "Calibration",
    "CheckpointError",
    "ParetoCurve",
    "QuantizedNetwork",
    "Report",
    "Sequential",
    "allocate",
    "available_methods",
    "load",
    "pareto",
    "quantize",
]
