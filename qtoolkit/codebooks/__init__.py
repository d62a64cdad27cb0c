"""qtoolkit.codebooks: adaptive codebooks learned from the weights.

Background
----------
In the survey's taxonomy (Guo 2018) quantization is *deterministic* (a fixed
map from a real value to a quantized one) or *stochastic*, and the codebook
is *fixed* (predefined grids, see :mod:`qtoolkit.rounding`) or *adaptive*
(learned from the data). This subpackage holds the adaptive side:

- vector quantization, hard assignment: scalar weight sharing by exact or
  Lloyd 1-D k-means (Deep Compression), Hessian-weighted k-means (Choi et
  al.), entropy-constrained scalar quantization, product and residual
  quantization (Gong et al., Jégou et al.);
- soft assignment: soft-to-hard vector quantization (Agustsson et al.);
- probabilistic quantization: weights that are themselves categorical
  random variables over a codebook (LR-nets, Shayer et al.);
- the storage accounting of all of them, and ``.npz`` save / load.
"""

from ._accounting import (
    bits_per_weight,
    deep_compression_ratio,
    entropy_bits,
    entropy_coded_bits,
    huffman_code_lengths,
    pq_compression_ratio,
    rq_compression_ratio,
)
from ._ecsq import EntropyConstrainedQuantizer
from ._hessian import hessian_importance, hessian_weighted_kmeans
from ._io import QuantizerFileError, load_quantizer, save_quantizer
from ._kmeans import KMeans1DResult, KMeans1DRows, KMeansQuantizer, kmeans_1d, kmeans_1d_rows
from ._pq import PQSearchResult, ProductQuantizer
from ._probabilistic import PreactivationMoments, ProbabilisticWeights
from ._rq import ResidualQuantizer
from ._soft import SoftQuantizer

__all__ = [
    "EntropyConstrainedQuantizer",
    "KMeans1DResult",
    "KMeans1DRows",
    "KMeansQuantizer",
    "PQSearchResult",
    "PreactivationMoments",
    "ProbabilisticWeights",
    "ProductQuantizer",
    "QuantizerFileError",
    "ResidualQuantizer",
    "SoftQuantizer",
    "bits_per_weight",
    "deep_compression_ratio",
    "entropy_bits",
    "entropy_coded_bits",
    "hessian_importance",
    "hessian_weighted_kmeans",
    "huffman_code_lengths",
    "kmeans_1d",
    "kmeans_1d_rows",
    "load_quantizer",
    "pq_compression_ratio",
    "rq_compression_ratio",
    "save_quantizer",
]
