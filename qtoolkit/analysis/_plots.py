"""Plots of the experiments against the theory (matplotlib; ``ax=None``, the Axes returned)."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from .._array import describe
from .._typing import Axes
from ._experiments import (
    AngleExperiment,
    ArcsineExperiment,
    DotProductExperiment,
    RotationExperiment,
)
from ._theory import arcsine_law

__all__ = [
    "plot_angle_histograms",
    "plot_angle_vs_dimension",
    "plot_arcsine_law",
    "plot_cosine_vs_bits",
    "plot_dot_product",
    "plot_rotation",
]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        return plt.gca()
    return ax


def _require(result, fields, name="result"):
    missing = [f for f in fields if not hasattr(result, f)]
    if missing:
        raise TypeError(
            f"{name} must be the result of the matching experiment (missing "
            f"{', '.join(missing)}), got {describe(result)}"
        )


def plot_angle_histograms(
    result: AngleExperiment, *, ax: Axes | None = None, bins: int = 40
) -> Axes:
    r"""Draw histograms of angle(x, q(x)) for each dimension, with the delta-method theory.

    Parameters
    ----------
    result : AngleExperiment
        Output of :func:`angle_experiment`.
    ax : matplotlib.axes.Axes or None, default=None
        Where to draw; the current Axes if None.
    bins : int, default=40
        Histogram bins per dimension.

    Returns
    -------
    ax : matplotlib.axes.Axes
        One step histogram (a patch) and one dashed normal density (a line)
        per dimension, and a vertical line at the d -> infinity limit.

    Raises
    ------
    TypeError
        If ``result`` is not an :class:`AngleExperiment`.

    See Also
    --------
    angle_experiment : The experiment.
    expected_angle : The theory drawn.

    Notes
    -----
    The theory curve for dimension d is the normal density with the
    second-order mean and the delta-method standard deviation
    :math:`\sigma_\theta \propto 1/\sqrt d`.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from qtoolkit.analysis import angle_experiment, plot_angle_histograms
    >>> res = angle_experiment(np.sign, dims=[64, 1024], n_trials=100, vectorized=True, rng=0)
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> ax = plot_angle_histograms(res, ax=ax)
    >>> len(ax.patches), len(ax.lines)
    (2, 3)
    """
    _require(result, ("dims", "angles", "theory_mean", "theory_std", "theory_limit"))
    ax = _axes(ax)
    deg = np.degrees
    colors = [f"C{i % 10}" for i in range(len(result.dims))]
    for k, d in enumerate(result.dims):
        a = deg(result.angles[k])
        a = a[np.isfinite(a)]
        ax.hist(a, bins=bins, density=True, histtype="step", color=colors[k], label=f"d = {d}")
        mu, sd = deg(result.theory_mean[k]), deg(result.theory_std[k])
        if sd > 0:
            lo, hi = min(a.min(), mu - 4 * sd), max(a.max(), mu + 4 * sd)
            t = np.linspace(lo, hi, 200)
            ax.plot(
                t,
                np.exp(-0.5 * ((t - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)),
                "--",
                color=colors[k],
                lw=1,
            )
    ax.axvline(
        deg(result.theory_limit), color="k", lw=1, label=f"limit {deg(result.theory_limit):.2f}°"
    )
    ax.set_xlabel("angle between x and q(x) (degrees)")
    ax.set_ylabel("density")
    ax.set_title("Angle preservation: Monte Carlo (steps) vs theory (dashed)")
    ax.legend(fontsize="small")
    return ax


def plot_angle_vs_dimension(
    results: AngleExperiment | dict[str, AngleExperiment],
    *,
    ax: Axes | None = None,
    theory_from: int = 16,
) -> Axes:
    r"""Draw the mean +- standard deviation of the angle against the dimension, with the theory.

    Parameters
    ----------
    results : AngleExperiment or dict of str to AngleExperiment
        One experiment, or several labelled ones (e.g. one per distribution).
    ax : matplotlib.axes.Axes or None, default=None
        Where to draw; the current Axes if None.
    theory_from : int, default=16
        Draw the delta-method curve only for dimensions ``d >= theory_from``
        (it is a large-d expansion; for heavy tails it fails at small d).

    Returns
    -------
    ax : matplotlib.axes.Axes
        Per experiment: error bars (a container), the theory mean with a
        +-1 sd band, and a dotted line at the limit.

    Raises
    ------
    TypeError
        If an entry is not an :class:`AngleExperiment`.

    See Also
    --------
    angle_experiment : The experiment.

    Notes
    -----
    The band is :math:`\bar\theta_d \pm \sigma_\theta(d)` from the delta method.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from qtoolkit.analysis import angle_experiment, plot_angle_vs_dimension
    >>> res = angle_experiment(np.sign, dims=[16, 256], n_trials=50, vectorized=True, rng=0)
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> ax = plot_angle_vs_dimension({"gaussian": res}, ax=ax)
    >>> len(ax.containers)
    1
    """
    if not isinstance(results, dict):
        results = {"": results}
    ax = _axes(ax)
    for k, (label, res) in enumerate(results.items()):
        _require(
            res,
            ("dims", "mean", "std", "theory_mean", "theory_std", "theory_limit"),
            f"results[{label!r}]",
        )
        c = f"C{k % 10}"
        deg = np.degrees
        ax.errorbar(
            res.dims,
            deg(res.mean),
            yerr=deg(res.std),
            fmt="o",
            color=c,
            capsize=3,
            label=f"{label} Monte Carlo".strip(),
        )
        big = np.asarray(res.dims) >= theory_from
        dims, tm, ts = (
            np.asarray(res.dims)[big],
            np.asarray(res.theory_mean)[big],
            np.asarray(res.theory_std)[big],
        )
        ax.plot(dims, deg(tm), "-", color=c, lw=1)
        ax.fill_between(dims, deg(tm - ts), deg(tm + ts), color=c, alpha=0.15)
        ax.axhline(deg(res.theory_limit), color=c, ls=":", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("dimension d")
    ax.set_ylabel("angle between x and q(x) (degrees)")
    ax.set_title(
        "The angle concentrates like 1/√d: points Monte Carlo (mean ± sd),\n"
        "lines and bands theory (delta method), dotted the d → ∞ limit",
        fontsize="medium",
    )
    ax.legend(fontsize="small")
    return ax


def plot_dot_product(
    result: DotProductExperiment, *, ax: Axes | None = None, bins: int = 60
) -> Axes:
    r"""Draw the 2-D histogram of a.q(w) against a.w with the fitted line, r and slope.

    Parameters
    ----------
    result : DotProductExperiment
        Output of :func:`dot_product_experiment` (its first output is drawn).
    ax : matplotlib.axes.Axes or None, default=None
        Where to draw; the current Axes if None.
    bins : int, default=60
        Bins per axis.

    Returns
    -------
    ax : matplotlib.axes.Axes
        A 2-D histogram (a QuadMesh collection), the least-squares line and
        the theory line (two lines), with r and slope in the legend.

    Raises
    ------
    TypeError
        If ``result`` is not a :class:`DotProductExperiment`.

    See Also
    --------
    dot_product_experiment : The experiment.
    dot_product_proportionality : The measurement.

    Notes
    -----
    The fitted line is :math:`v = \text{slope}\,u + \text{intercept}`; the
    theory line has the limiting slope :math:`E[wq]/E[w^2]` and zero intercept.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from qtoolkit.analysis import dot_product_experiment, plot_dot_product
    >>> res = dot_product_experiment(np.sign, d=256, n_outputs=2, n_samples=500, rng=0)
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> ax = plot_dot_product(res, ax=ax)
    >>> len(ax.collections), len(ax.lines)
    (1, 2)
    """
    _require(result, ("u", "v", "r", "slope", "intercept", "theory"))
    ax = _axes(ax)
    u, v = np.asarray(result.u), np.asarray(result.v)
    ax.hist2d(u, v, bins=bins, cmap="Blues")
    t = np.linspace(u.min(), u.max(), 2)
    r0, s0, i0 = float(result.r[0]), float(result.slope[0]), float(result.intercept[0])
    ax.plot(t, s0 * t + i0, "r-", lw=1.5, label=f"fit: r = {r0:.3f}, slope = {s0:.3f}")
    ax.plot(
        t,
        result.theory.slope * t,
        "k--",
        lw=1,
        label=f"theory: r = {result.theory.r:.3f}, slope = {result.theory.slope:.3f}",
    )
    ax.set_xlabel("a · w")
    ax.set_ylabel("a · q(w)")
    ax.set_title("Dot-product proportionality")
    ax.legend(fontsize="small", loc="upper left")
    return ax


def plot_arcsine_law(result: ArcsineExperiment, *, ax: Axes | None = None) -> Axes:
    r"""Draw the cosine after quantization against the cosine before, with the arcsine law.

    Parameters
    ----------
    result : ArcsineExperiment
        Output of :func:`arcsine_experiment`.
    ax : matplotlib.axes.Axes or None, default=None
        Where to draw; the current Axes if None.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The law (2/pi) arcsin(rho) and the identity (two lines) and the
        Monte Carlo means with error bars (a container).

    Raises
    ------
    TypeError
        If ``result`` is not an :class:`ArcsineExperiment`.

    See Also
    --------
    arcsine_law : The closed form.
    arcsine_experiment : The experiment.

    Notes
    -----
    .. math:: \cos\angle(\operatorname{sign}x, \operatorname{sign}y) \to \frac{2}{\pi}\arcsin\rho.

    References
    ----------
    .. [1] W. F. Sheppard, "On the application of the theory of error to cases
       of normal distribution and normal correlation", Phil. Trans. R. Soc. A
       192, 1899.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from qtoolkit.analysis import arcsine_experiment, plot_arcsine_law
    >>> res = arcsine_experiment(np.sign, rho=[-0.5, 0.0, 0.5], d=256, n_trials=20, rng=0)
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> ax = plot_arcsine_law(res, ax=ax)
    >>> len(ax.lines) >= 2, len(ax.containers)
    (True, 1)
    """
    _require(result, ("rho", "cos_before", "cos_after", "cos_after_std"))
    ax = _axes(ax)
    r = np.linspace(-1.0, 1.0, 401)
    ax.plot(r, arcsine_law(r), "k-", lw=1.5, label="(2/π) arcsin ρ")
    ax.plot(r, r, color="0.6", ls=":", lw=1, label="identity")
    ax.errorbar(
        result.cos_before,
        result.cos_after,
        yerr=result.cos_after_std,
        fmt="o",
        color="C3",
        capsize=3,
        label="Monte Carlo",
    )
    ax.set_xlabel("cos ∠(x, y)")
    ax.set_ylabel("cos ∠(q(x), q(y))")
    ax.set_title("Arcsine law for pairs of vectors")
    ax.legend(fontsize="small")
    return ax


def plot_cosine_vs_bits(
    curves: dict[str, dict[str, Any]],
    *,
    ax: Axes | None = None,
    y: Literal["cosine", "angle"] = "cosine",
    legend: bool = True,
) -> Axes:
    r"""Draw the cosine of x and q(x) against bits per weight for several quantizer families.

    Parameters
    ----------
    curves : dict of str to dict
        One entry per family: ``{"bits": array, "theory": array,
        "measured": array, "measured_std": array}`` (``"measured"`` and
        ``"measured_std"`` optional); bits is usually log2 of the number of
        levels.
    ax : matplotlib.axes.Axes or None, default=None
        Where to draw; the current Axes if None.
    y : {"cosine", "angle"}, default="cosine"
        Plot the cosine, or the angle in degrees on a logarithmic axis (which
        shows the geometric decay with bits).
    legend : bool, default=True
        Draw the legend.

    Returns
    -------
    ax : matplotlib.axes.Axes
        Per family a theory line and, if measured, Monte Carlo markers with
        error bars (a container); the sign limit (sqrt(2/pi), 37.07 degrees)
        as a dotted line.

    Raises
    ------
    TypeError
        If ``curves`` is not a dict of dicts.
    ValueError
        If an entry lacks ``"bits"`` or ``"theory"`` or their lengths differ,
        or ``y`` is unknown.

    See Also
    --------
    expected_cosine : The theory.
    lloyd_max : The MSE-optimal reference.

    Notes
    -----
    For MMSE (centroid) quantizers :math:`\cos^2 = 1 - D/E[x^2]`, so the
    Lloyd-Max curve is an upper bound for every scalar quantizer with the
    same number of levels.

    References
    ----------
    .. [1] J. Max, "Quantizing for minimum distortion", IRE Transactions on
       Information Theory 6(1), 1960.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from qtoolkit.analysis import plot_cosine_vs_bits
    >>> curves = {"toy": {"bits": [1, 2], "theory": [0.8, 0.94], "measured": [0.8, 0.94]}}
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> ax = plot_cosine_vs_bits(curves, ax=ax)
    >>> len(ax.lines) >= 2, len(ax.containers)
    (True, 1)
    """
    if not isinstance(curves, dict):
        raise TypeError(f"curves must be a dict of family name to dict, got {describe(curves)}")
    if y not in ("cosine", "angle"):
        raise ValueError(f"y must be 'cosine' or 'angle', got {y!r}")
    if y == "angle":

        def tr(c):
            return np.degrees(np.arccos(np.clip(np.asarray(c, dtype=float), -1.0, 1.0)))
    else:

        def tr(c):
            return np.asarray(c, dtype=float)

    ax = _axes(ax)
    markers = "osD^v<>ph*"
    for k, (label, c) in enumerate(curves.items()):
        if not isinstance(c, dict) or "bits" not in c or "theory" not in c:
            raise ValueError(
                f"curves[{label!r}] must be a dict with 'bits' and 'theory', got {describe(c)}"
            )
        bits = np.asarray(c["bits"], dtype=float)
        theory = np.asarray(c["theory"], dtype=float)
        if bits.shape != theory.shape:
            raise ValueError(
                f"curves[{label!r}]: 'bits' and 'theory' must have the same length, "
                f"got {bits.shape} and {theory.shape}"
            )
        col = f"C{k % 10}"
        ax.plot(bits, tr(theory), "-", marker=".", color=col, lw=1.2, label=f"{label}: theory")
        if c.get("measured") is not None:
            meas = np.asarray(c["measured"], dtype=float)
            mb = np.asarray(c.get("measured_bits", bits), dtype=float)
            err = c.get("measured_std")
            if err is not None and y == "angle":
                # d(angle)/d(cos) = -1/sin(angle): the same error bar in degrees.
                err = np.degrees(
                    np.asarray(err, dtype=float) / np.sqrt(np.clip(1 - meas**2, 1e-300, None))
                )
            ax.errorbar(
                mb,
                tr(meas),
                yerr=err,
                fmt=markers[k % len(markers)],
                ms=7,
                color=col,
                mfc="none",
                capsize=2,
                label=f"{label}: Monte Carlo",
            )
    ax.axhline(
        float(tr(math.sqrt(2 / math.pi))),
        color="0.5",
        ls=":",
        lw=1,
        label="sign of a Gaussian: √(2/π), 37.07°",
    )
    ax.set_xlabel("bits per weight (log2 of the number of levels)")
    if y == "angle":
        ax.set_yscale("log")
        ax.set_ylabel("angle ∠(x, q(x)) (degrees, log scale)")
    else:
        ax.set_ylabel("cos ∠(x, q(x))")
    ax.set_title("Angle preservation of every quantizer family")
    if legend:
        ax.legend(fontsize="x-small")
    return ax


def plot_rotation(
    results: RotationExperiment | dict[str, RotationExperiment], *, ax: Axes | None = None
) -> Axes:
    r"""Draw the angle of correlated vectors, with and without a rotation, against the length scale.

    Parameters
    ----------
    results : RotationExperiment or dict of str to RotationExperiment
        One experiment or several labelled ones (e.g. one per covariance family).
    ax : matplotlib.axes.Axes or None, default=None
        Where to draw; the current Axes if None.

    Returns
    -------
    ax : matplotlib.axes.Axes
        Per experiment two error-bar containers (without, with rotation),
        and the isotropic limit as a horizontal line.

    Raises
    ------
    TypeError
        If an entry is not a :class:`RotationExperiment`.

    See Also
    --------
    rotation_experiment : The experiment.

    Notes
    -----
    A Haar rotation :math:`R` makes the coordinates of :math:`Rx`
    exchangeable, which restores the isotropic angle
    :math:`\arccos E[xq]/\sqrt{E[x^2]E[q^2]}`.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from qtoolkit.analysis import rotation_experiment, plot_rotation
    >>> res = rotation_experiment(np.sign, d=64, length_scales=[1.0, 8.0], n_trials=20, rng=0)
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> ax = plot_rotation(res, ax=ax)
    >>> len(ax.containers)
    2
    """
    if not isinstance(results, dict):
        results = {"": results}
    ax = _axes(ax)
    limit = None
    for k, (label, res) in enumerate(results.items()):
        _require(
            res,
            ("length_scales", "mean", "std", "mean_rotated", "std_rotated", "theory_mean"),
            f"results[{label!r}]",
        )
        deg = np.degrees
        c = f"C{k % 10}"
        ax.errorbar(
            res.length_scales,
            deg(res.mean),
            yerr=deg(res.std),
            fmt="o-",
            color=c,
            capsize=3,
            label=f"{label} no rotation".strip(),
        )
        ax.errorbar(
            res.length_scales,
            deg(res.mean_rotated),
            yerr=deg(res.std_rotated),
            fmt="s--",
            color=c,
            mfc="none",
            capsize=3,
            label=f"{label} random rotation".strip(),
        )
        limit = res.theory_mean
    ax.axhline(
        np.degrees(limit),
        color="k",
        lw=1,
        ls=":",
        label=f"isotropic limit {np.degrees(limit):.2f}°",
    )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("correlation length ℓ")
    ax.set_ylabel("angle between x and q(x) (degrees)")
    ax.set_title("Correlated inputs, with and without a random rotation")
    ax.legend(fontsize="small")
    return ax
