"""Hessian-weighted k-means (Choi et al. 2017): importance weights for weight sharing."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._typing import ArrayLike, NDArray
from ._common import check_tensor
from ._kmeans import KMeansQuantizer

__all__ = ["hessian_importance", "hessian_weighted_kmeans"]


def hessian_importance(
    *,
    hessian: ArrayLike | None = None,
    second_moment: ArrayLike | None = None,
    eps: float = 0.0,
) -> NDArray[np.float64]:
    r"""Per-weight importance for Hessian-weighted quantization.

    Exactly one of ``hessian`` and ``second_moment`` is given.

    Parameters
    ----------
    hessian : array_like, optional
        Diagonal of the Hessian of the loss with respect to the weights
        (any shape). Used as is; must be non-negative.
    second_moment : array_like, optional
        Adam's second-moment estimate :math:`\hat v` (any shape); the
        importance is :math:`\sqrt{\hat v} + \epsilon`.
    eps : float, default=0.0
        Added to the square root of ``second_moment`` (ignored with ``hessian``).

    Returns
    -------
    importance : ndarray of float64
        Non-negative weights of the shape of the input.

    Raises
    ------
    ValueError
        If both or neither of ``hessian`` and ``second_moment`` are given, if
        they hold NaN/Inf or negative values, or if ``eps`` is negative.

    See Also
    --------
    hessian_weighted_kmeans : k-means with these weights.

    Notes
    -----
    Choi et al. approximate the loss increase of quantization by the
    second-order term :math:`\tfrac12 \sum_i h_{ii} (w_i - \hat w_i)^2`, and
    note that Adam's :math:`\sqrt{\hat v_i}` is a free stand-in for
    :math:`h_{ii}`.

    References
    ----------
    .. [1] Y. Choi, M. El-Khamy and J. Lee, "Towards the limit of network
       quantization", ICLR 2017.

    Examples
    --------
    >>> from qtoolkit.codebooks import hessian_importance
    >>> hessian_importance(second_moment=[4.0, 0.25])
    array([2. , 0.5])
    """
    if (hessian is None) == (second_moment is None):
        raise ValueError(
            "give exactly one of hessian and second_moment, got "
            f"{'both' if hessian is not None else 'neither'}"
        )
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps >= 0:
        raise ValueError(f"eps must be a non-negative real number, got {eps!r}")
    name = "hessian" if hessian is not None else "second_moment"
    h = check_tensor(hessian if hessian is not None else second_moment, name).astype(np.float64)
    if np.any(h < 0):
        raise ValueError(f"{name} must be non-negative, got a minimum of {h.min()!r}")
    return h if hessian is not None else np.sqrt(h) + eps


def hessian_weighted_kmeans(
    w: ArrayLike,
    n_clusters: int,
    *,
    hessian: ArrayLike | None = None,
    second_moment: ArrayLike | None = None,
    eps: float = 0.0,
    **params: Any,
) -> KMeansQuantizer:
    r"""Fit scalar weight sharing with Hessian (or Adam second-moment) importance weights.

    Parameters
    ----------
    w : array_like of any shape
        The weights to share.
    n_clusters : int
        Codebook size.
    hessian : array_like of the shape of ``w``, optional
        Hessian diagonal :math:`h_{ii}` (exactly one of ``hessian`` and
        ``second_moment``).
    second_moment : array_like of the shape of ``w``, optional
        Adam's :math:`\hat v`; the importance is :math:`\sqrt{\hat v} + \epsilon`.
    eps : float, default=0.0
        See :func:`hessian_importance`.
    **params
        Further parameters of :class:`KMeansQuantizer` (``algorithm``, ``init``...).

    Returns
    -------
    quantizer : KMeansQuantizer
        Fitted, with ``sample_weight`` equal to the importance.

    Raises
    ------
    ValueError
        As :func:`hessian_importance` and :meth:`KMeansQuantizer.fit`, and if the
        importance does not have the shape of ``w``.

    See Also
    --------
    KMeansQuantizer, hessian_importance

    Notes
    -----
    Minimises the Hessian-weighted distortion

    .. math::

        \sum_j \sum_{w_i \in C_j} h_{ii} |w_i - c_j|^2, \qquad
        c_j = \frac{\sum_{w_i \in C_j} h_{ii} w_i}{\sum_{w_i \in C_j} h_{ii}}.

    References
    ----------
    .. [1] Y. Choi, M. El-Khamy and J. Lee, "Towards the limit of network
       quantization", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.codebooks import hessian_weighted_kmeans
    >>> w = np.array([0.0, 1.0, 10.0])
    >>> q = hessian_weighted_kmeans(w, 2, hessian=[1.0, 3.0, 1.0])
    >>> q.codebook_
    array([ 0.75, 10.  ])
    """
    x = check_tensor(w, "w")
    imp = hessian_importance(hessian=hessian, second_moment=second_moment, eps=eps)
    if imp.shape != x.shape:
        raise ValueError(f"the importance must have the shape of w {x.shape}, got {imp.shape}")
    return KMeansQuantizer(n_clusters=n_clusters, **params).fit(x, sample_weight=imp)
