"""qtoolkit: quantized neural networks as a NumPy toolkit.

The subpackages follow the taxonomy of the quantization survey literature:

- :mod:`qtoolkit.rounding`: fixed codebooks, deterministic and stochastic rounding;
- :mod:`qtoolkit.codebooks`: adaptive codebooks learned from the weights;
- :mod:`qtoolkit.optimize`: quantization as optimization;
- :mod:`qtoolkit.gradients`: quantized gradients for data-parallel training;
- :mod:`qtoolkit.bitops`: bit packing and binary / low-bit matrix products;
- :mod:`qtoolkit.analysis`: why quantization works, measured and predicted;
- :mod:`qtoolkit.nn`: inference layers (Linear, Conv2d) on packed low-bit weights;
- :mod:`qtoolkit.network`: whole networks: recipes, calibration, bit budgets, packed files.
"""

from . import analysis, bitops, codebooks, gradients, network, nn, optimize, rounding
from ._version import __version__
from .bitops import show_runtime

__all__ = [
    "__version__",
    "analysis",
    "bitops",
    "codebooks",
    "gradients",
    "network",
    "nn",
    "optimize",
    "rounding",
    "show_runtime",
]
