"""Why quantization works: angle preservation and dot-product proportionality, measured, predicted.

Background
----------
The quantization survey (Guo, 2018) closes its taxonomy with the theory of
why binarized networks work at all: Anderson & Berg showed that in high
dimension binarization nearly preserves directions -- a Gaussian vector and
its sign are about 37 degrees apart whatever the dimension, and the angle
concentrates as 1/sqrt(d) -- so dot products with any input stay
proportional to the real ones, and a following batch normalization absorbs
the constant. This subpackage measures those properties for any quantizer
(fixed codebooks from :mod:`qtoolkit.rounding`, learned ones from
:mod:`qtoolkit.codebooks`, or any callable array -> array), predicts them
(the d -> infinity cosine of any entrywise quantizer by numerical
integration, its 1/sqrt(d) spread, the arcsine law for pairs, Lloyd-Max
reference codebooks), checks the two against each other by Monte Carlo, and
draws the figures that ``qtoolkit reproduce`` regenerates.

- Measurements (any Array API array): :func:`angle`, :func:`cosine`,
  :func:`mse`, :func:`sqnr`, :func:`angle_preservation`,
  :func:`dot_product_proportionality`, :func:`pairwise_angle_preservation`.
- Theory: :func:`expected_cosine`, :func:`expected_angle`,
  :func:`expected_dot_product_fit`, :func:`arcsine_law`,
  :func:`sign_cosine_gaussian`, :func:`lloyd_max`.
- Experiments: :func:`angle_experiment`, :func:`dot_product_experiment`,
  :func:`arcsine_experiment`, :func:`rotation_experiment`.
- Plots (matplotlib, each takes ``ax=None`` and returns the Axes):
  :func:`plot_angle_histograms`, :func:`plot_angle_vs_dimension`,
  :func:`plot_dot_product`, :func:`plot_arcsine_law`,
  :func:`plot_cosine_vs_bits`, :func:`plot_rotation`.
- :func:`reproduce`: every figure and the theory-against-measurement table.
"""

from ._experiments import (
    AngleExperiment,
    AngleHistogram,
    ArcsineExperiment,
    DotProductExperiment,
    RotationExperiment,
    angle_experiment,
    arcsine_experiment,
    dot_product_experiment,
    rotation_experiment,
)
from ._lloydmax import LloydMaxQuantizer, lloyd_max
from ._measures import (
    DotProductFit,
    PairwiseAngles,
    angle,
    angle_preservation,
    cosine,
    dot_product_proportionality,
    mse,
    pairwise_angle_preservation,
    sqnr,
)
from ._plots import (
    plot_angle_histograms,
    plot_angle_vs_dimension,
    plot_arcsine_law,
    plot_cosine_vs_bits,
    plot_dot_product,
    plot_rotation,
)
from ._reproduce import reproduce
from ._theory import (
    AngleMoments,
    arcsine_law,
    expected_angle,
    expected_cosine,
    expected_dot_product_fit,
    sign_cosine_gaussian,
)

__all__ = [
    "AngleExperiment",
    "AngleHistogram",
    "AngleMoments",
    "ArcsineExperiment",
    "DotProductExperiment",
    "DotProductFit",
    "LloydMaxQuantizer",
    "PairwiseAngles",
    "RotationExperiment",
    # measurements
    "angle",
    # experiments
    "angle_experiment",
    "angle_preservation",
    "arcsine_experiment",
    "arcsine_law",
    "cosine",
    "dot_product_experiment",
    "dot_product_proportionality",
    "expected_angle",
    # theory
    "expected_cosine",
    "expected_dot_product_fit",
    "lloyd_max",
    "mse",
    "pairwise_angle_preservation",
    # plots
    "plot_angle_histograms",
    "plot_angle_vs_dimension",
    "plot_arcsine_law",
    "plot_cosine_vs_bits",
    "plot_dot_product",
    "plot_rotation",
    # command
    "reproduce",
    "rotation_experiment",
    "sign_cosine_gaussian",
    "sqnr",
]
