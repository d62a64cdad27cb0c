"""Inference layers that hold packed low-bit weights and run on the integer kernels.

Background
----------
The survey's promise for quantized networks is arithmetic, not only storage:
with binary weights and activations a dot product becomes xnor and popcount
(XNOR-Net, BNN), with ternary ones two popcounts over sign and non-zero bit
planes (TWN, BitNet b1.58), and with k-bit weights and int8 activations an
exact int32 accumulation followed by the scales (the integer-arithmetic-only
inference of Jacob et al.). This subpackage turns a trained float layer into
one that stores only the codes and computes with them:

- :class:`Linear` (``y = x W^T + b``) and :class:`Conv2d` (NCHW or NHWC,
  stride, padding, dilation, groups), built with ``from_float`` or from the
  codes of :mod:`qtoolkit.rounding` (a :class:`~qtoolkit.rounding.QuantizedArray`);
- weight modes ``"binary"`` (per-filter :math:`\\alpha = \\overline{|w|}`),
  ``"ternary"`` (absmean), 2, 3, 4 or 8 bits (per row or per group), and
  from codes also indices into a codebook of at most 16 entries (k-means
  weight sharing);
  activation modes None (float), ``"binary"`` (sign), ``"ternary"`` and 8
  (dynamic int8 per row, or per sample for a convolution);
- for each layer its float reference (``dequantized().forward``), a size
  report (:class:`LayerSize`: bytes and bits per weight) and batch-norm
  folding into the scales (``fold_batch_norm``), which keeps a binary layer
  binary.

In the survey's taxonomy this is the *bitwise operations* branch applied at
inference: the codebook (fixed, from :mod:`qtoolkit.rounding`, or learned and
rounded by :mod:`qtoolkit.optimize`) is chosen elsewhere, and the kernels live
in :mod:`qtoolkit.bitops`. Binary convolutions pad with -1 and correct the
border exactly, so a padded pixel contributes 0, as zero padding does in the
float network.
"""

from ._conv import Conv2d
from ._layer import LayerSize
from ._linear import Linear

__all__ = ["Conv2d", "LayerSize", "Linear"]
