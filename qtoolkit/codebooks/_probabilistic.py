"""Probabilistic weights (LR-nets, Shayer et al. 2018): a categorical law per weight."""

from __future__ import annotations

import numbers
from typing import Literal, NamedTuple

import numpy as np
from scipy.special import log_expit, logit, softmax
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._array import check_random_state
from .._typing import ArrayLike, NDArray, RNGLike
from ._common import check_tensor

__all__ = ["PreactivationMoments", "ProbabilisticWeights"]


class PreactivationMoments(NamedTuple):
    """Mean and variance of a layer's pre-activations under random weights.

    Returned by :meth:`ProbabilisticWeights.preactivation_moments` (the local
    reparameterisation trick: the pre-activation of a wide layer is close to
    Gaussian with these moments).

    Parameters
    ----------
    mean : ndarray of shape (n_samples, n_out)
        :math:`\\sum_i \\mu_i h_i`.
    var : ndarray of shape (n_samples, n_out)
        :math:`\\sum_i v_i h_i^2`.

    See Also
    --------
    ProbabilisticWeights.preactivation_moments : the method that returns it.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import ProbabilisticWeights
    >>> pw = ProbabilisticWeights(kind="binary", scale=1.0).fit(np.zeros((3, 2)))
    >>> m = pw.preactivation_moments(np.ones((1, 3)))
    >>> m.mean, m.var
    (array([[0., 0.]]), array([[3., 3.]]))
    """

    mean: NDArray[np.float64]
    var: NDArray[np.float64]


class ProbabilisticWeights(BaseEstimator):
    r"""Every weight a categorical random variable over a binary or ternary codebook.

    Parameters
    ----------
    kind : {"ternary", "binary"}, default="ternary"
        Codebook ``scale * {-1, 0, +1}`` or ``scale * {-1, +1}``.
    scale : float, optional
        Magnitude of the non-zero codewords (default: ``max |w|`` of the
        weights given to ``fit``).
    p_min, p_max : float, default=0.05, 0.95
        Bounds of the initial probabilities (keeps every logit finite).

    Attributes
    ----------
    codebook_ : ndarray of shape (n_codewords,)
        ``scale * [-1, 0, 1]`` or ``scale * [-1, 1]``.
    theta_ : ndarray of shape w.shape + (n_params,)
        The parameterisation: binary ``theta`` (``n_params=1``), with
        :math:`p(+1) = \sigma(\theta)`; ternary ``(a, c)`` (``n_params=2``),
        with :math:`p(0) = \sigma(c)`, :math:`p(+1) = \sigma(a)(1 - \sigma(c))`,
        :math:`p(-1) = (1 - \sigma(a))(1 - \sigma(c))`.
    logits_ : ndarray of shape w.shape + (n_codewords,)
        Log-probabilities over ``codebook_`` (categorical logits).
    scale_ : float
        The scale used.

    See Also
    --------
    SoftQuantizer : soft assignment to a learned codebook.

    Notes
    -----
    Initialisation from real weights :math:`w` (normalised by the scale and
    clipped to :math:`[-1, 1]`) as in LR-nets: binary
    :math:`p(+1) = \mathrm{clip}((1 + w)/2)`; ternary
    :math:`p(0) = p_{\max} - (p_{\max} - p_{\min})|w|` and
    :math:`p(+1 \mid \ne 0) = \mathrm{clip}(\tfrac12 (1 + w / (1 - p(0))))`,
    so that the mean is close to :math:`w`. With :math:`\mu_i`,
    :math:`v_i` the mean and variance of the weights, the pre-activation
    :math:`z = \sum_i w_i h_i` of a linear layer is approximated (local
    reparameterisation) by :math:`\mathcal N(\sum_i \mu_i h_i, \sum_i v_i h_i^2)`.

    References
    ----------
    .. [1] O. Shayer, D. Levi and E. Fetaya, "Learning discrete weights using
       the local reparameterization trick", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import ProbabilisticWeights
    >>> pw = ProbabilisticWeights(kind="binary", scale=1.0).fit(np.array([0.5, -0.5]))
    >>> pw.mean()
    array([ 0.5, -0.5])
    >>> pw.var()
    array([0.75, 0.75])
    """

    def __init__(
        self,
        kind: Literal["ternary", "binary"] = "ternary",
        *,
        scale: float | None = None,
        p_min: float = 0.05,
        p_max: float = 0.95,
    ) -> None:
        self.kind = kind
        self.scale = scale
        self.p_min = p_min
        self.p_max = p_max

    def fit(self, X: ArrayLike, y: None = None) -> ProbabilisticWeights:
        """Initialise the distributions from real weights.

        Parameters
        ----------
        X : array_like of any shape
            Real weights.
        y : None
            Ignored.

        Returns
        -------
        self : ProbabilisticWeights
            With ``theta_``, ``logits_``, ``codebook_`` and ``scale_`` set.
        """
        if self.kind not in ("binary", "ternary"):
            raise ValueError(f"kind must be 'binary' or 'ternary', got {self.kind!r}")
        for name in ("p_min", "p_max"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or isinstance(v, bool) or not 0 < v < 1:
                raise ValueError(f"{name} must be a real number in (0, 1), got {v!r}")
        if not self.p_min < self.p_max:
            raise ValueError(
                f"p_min must be below p_max, got p_min={self.p_min!r}, p_max={self.p_max!r}"
            )
        w = check_tensor(X, "X").astype(np.float64)
        if self.scale is None:
            scale = float(np.max(np.abs(w)))
            if scale == 0:
                scale = 1.0
        else:
            if (
                not isinstance(self.scale, numbers.Real)
                or isinstance(self.scale, bool)
                or not (np.isfinite(self.scale) and self.scale > 0)
            ):
                raise ValueError(
                    f"scale must be None or a positive real number, got {self.scale!r}"
                )
            scale = float(self.scale)
        u = np.clip(w / scale, -1.0, 1.0)
        lo, hi = float(self.p_min), float(self.p_max)
        if self.kind == "binary":
            theta = logit(np.clip((1.0 + u) / 2.0, lo, hi))[..., None]
            self.codebook_ = np.array([-scale, scale])
        else:
            p0 = hi - (hi - lo) * np.abs(u)
            q = np.clip(0.5 * (1.0 + u / (1.0 - p0)), lo, hi)
            theta = np.stack([logit(q), logit(p0)], axis=-1)
            self.codebook_ = np.array([-scale, 0.0, scale])
        self.scale_ = scale
        self.theta_ = theta
        self.logits_ = self._logits(theta)
        return self

    def _logits(self, theta):
        if theta.shape[-1] == 1:
            t = theta[..., 0]
            return np.stack([log_expit(-t), log_expit(t)], axis=-1)
        a, c = theta[..., 0], theta[..., 1]
        nz = log_expit(-c)
        return np.stack([nz + log_expit(-a), log_expit(c), nz + log_expit(a)], axis=-1)

    def probabilities(self) -> NDArray[np.float64]:
        """Probability of every codeword for every weight.

        Returns
        -------
        p : ndarray of shape w.shape + (n_codewords,)
            Rows sum to one.
        """
        check_is_fitted(self, "logits_")
        return softmax(self.logits_, axis=-1)

    def mean(self) -> NDArray[np.float64]:
        """Mean of every weight, :math:`\\mu = \\sum_j p_j c_j`.

        Returns
        -------
        mu : ndarray of the weights' shape
            Means.
        """
        return self.probabilities() @ self.codebook_

    def var(self) -> NDArray[np.float64]:
        """Variance of every weight, :math:`\\sum_j p_j c_j^2 - \\mu^2`.

        Returns
        -------
        v : ndarray of the weights' shape
            Variances (non-negative).
        """
        p = self.probabilities()
        mu = p @ self.codebook_
        return np.maximum(p @ self.codebook_**2 - mu**2, 0.0)

    def mode(self) -> NDArray[np.float64]:
        """Most probable codeword of every weight (ties go to the lower codeword).

        Returns
        -------
        w : ndarray of the weights' shape
            Codewords.
        """
        check_is_fitted(self, "logits_")
        return self.codebook_[np.argmax(self.logits_, axis=-1)]

    def sample(self, rng: RNGLike = None) -> NDArray[np.float64]:
        """Draw one discrete weight tensor.

        Parameters
        ----------
        rng : None, int or numpy.random.Generator, optional
            Randomness; the same seed gives the same draw.

        Returns
        -------
        w : ndarray of the weights' shape
            Codewords drawn independently per weight.
        """
        rng = check_random_state(rng)
        cdf = np.cumsum(self.probabilities(), axis=-1)
        u = rng.random(cdf.shape[:-1])[..., None]
        idx = np.minimum((u >= cdf).sum(axis=-1), cdf.shape[-1] - 1)
        return self.codebook_[idx]

    def preactivation_moments(self, h: ArrayLike) -> PreactivationMoments:
        """Mean and variance of the pre-activations ``h @ W`` (local reparameterisation).

        Parameters
        ----------
        h : array_like of shape (n_samples, n_in)
            Inputs of the layer; the fitted weights must have shape (n_in, n_out).

        Returns
        -------
        PreactivationMoments
            ``(mean, var)``, each of shape (n_samples, n_out):
            :math:`\\sum_i \\mu_i h_i` and :math:`\\sum_i v_i h_i^2`.
        """
        check_is_fitted(self, "logits_")
        shape = self.logits_.shape[:-1]
        if len(shape) != 2:
            raise ValueError(
                f"preactivation_moments needs weights of shape (n_in, n_out), "
                f"got weights of shape {shape}"
            )
        x = check_tensor(h, "h").astype(np.float64)
        if x.ndim != 2 or x.shape[1] != shape[0]:
            raise ValueError(f"h must have shape (n_samples, {shape[0]}), got {x.shape}")
        return PreactivationMoments(x @ self.mean(), (x * x) @ self.var())
