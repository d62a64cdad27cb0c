"""``qtoolkit reproduce``: every theory figure (PNG and SVG) and the theory-vs-measurement table."""

from __future__ import annotations

import csv
import functools
import math
import numbers
import os
import pathlib
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from .._typing import PathLike, RNGLike
from .._validation import check_random_state, describe, renamed_parameters
from ._experiments import (
    angle_experiment,
    arcsine_experiment,
    dot_product_experiment,
    rotation_experiment,
)
from ._lloydmax import lloyd_max
from ._measures import cosine
from ._plots import (
    plot_angle_histograms,
    plot_angle_vs_dimension,
    plot_arcsine_law,
    plot_cosine_vs_bits,
    plot_dot_product,
    plot_rotation,
)
from ._theory import expected_angle, expected_cosine, sign_cosine_gaussian

__all__ = ["FIGURES", "MAIN_FIGURE", "TABLES", "reproduce"]

FIGURES = (
    "cosine_vs_bits",
    "angle_histograms",
    "angle_vs_dimension",
    "dot_product",
    "arcsine_law",
    "rotation",
)
MAIN_FIGURE = "cosine_vs_bits"
TABLES = ("theory_vs_measurement.csv", "theory_vs_measurement.md")

# Max (1960), Table I, N(0, 1): (levels, MSE) for 2, 4 and 8 levels (positive half).
_MAX_1960 = {
    2: ((0.7979,), 0.3634),
    4: ((0.4528, 1.510), 0.1175),
    8: ((0.2451, 0.7560, 1.344, 2.152), 0.03454),
}

_COLUMNS = ("quantity", "quantizer", "distribution", "d", "theory", "measured", "std_error", "z")


class _Progress:
    """A text progress bar on a stream (stderr)."""

    def __init__(self, total, stream, width=30):
        self.total, self.stream, self.width, self.done = total, stream, width, 0
        self.t0 = time.perf_counter()

    def step(self, label):
        self.done += 1
        if self.stream is None:
            return
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total} {label:<28s} {time.perf_counter() - self.t0:6.1f}s"
        )
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def _families(quick):
    """The schemes of qtoolkit.rounding in the main figure: name -> (bits, quantizers)."""
    from ..rounding import binarize, power_of_two, ternarize, uniform

    log2_3 = math.log2(3)
    fams = {
        "binary": ([1.0], [lambda x: binarize(x, scale="mean")]),
        "ternary (TWN)": ([log2_3], [lambda x: ternarize(x, method="twn")]),
        "ternary (optimal)": ([log2_3], [lambda x: ternarize(x, method="optimal")]),
    }
    bits = list(range(2, 7 if quick else 9))
    fams["uniform (MSE range)"] = (
        [float(b) for b in bits],
        [functools.partial(uniform, bits=b, mode="symmetric", range="mse") for b in bits],
    )
    bits = [1, 2, 3] if quick else [1, 2, 3, 4]
    # LogQuant: 2^b + 1 exponents FSR - 2^b .. FSR and a sign; FSR = 1 (top level 2 sigma).
    fams["power of two (LogQuant, FSR=1)"] = (
        [math.log2(2 * (2**b + 1)) for b in bits],
        [functools.partial(power_of_two, bits=b, method="logquant", fsr=1) for b in bits],
    )
    return fams


def _kmeans_quantizer(k):
    from ..codebooks import KMeansQuantizer

    def q(x):
        return KMeansQuantizer(n_clusters=k, n_threads=1).fit(x).quantize(x)

    return q


def _mc_cosine(quantizer, d, n_trials, rng):
    X = rng.standard_normal((n_trials, d))
    Q = np.stack([np.asarray(quantizer(x), dtype=np.float64) for x in X])
    c = cosine(X, Q)
    return float(np.mean(c)), float(np.std(c, ddof=1) / math.sqrt(n_trials))


def _row(rows, quantity, quantizer, distribution, d, theory, measured, se=float("nan")):
    z = (measured - theory) / se if se and np.isfinite(se) and se > 0 else float("nan")
    rows.append((quantity, quantizer, distribution, d, theory, measured, se, z))


def _save(fig, out, name, written):
    for ext in ("png", "svg"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=120 if ext == "png" else None, bbox_inches="tight")
        written.append(path)


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.8))
    return fig, fig.add_subplot()


def _fmt(v):
    if isinstance(v, float):
        return "" if not np.isfinite(v) else f"{v:.6g}"
    return str(v)


def _write_tables(rows, out, notes):
    csv_path = out / TABLES[0]
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(_COLUMNS)
        for r in rows:
            w.writerow([_fmt(v) for v in r])
    md_path = out / TABLES[1]
    lines = [
        "# qtoolkit: theory against measurement",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    lines += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows]
    lines += ["", "z = (measured - theory) / std_error; angles in degrees."]
    lines += [f"- {n}" for n in notes]
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]


@renamed_parameters({"seed": "rng"})
def reproduce(
    out: PathLike, *, quick: bool = False, rng: RNGLike = 0, progress: bool = False
) -> list[pathlib.Path]:
    r"""Regenerate every theory figure (PNG and SVG) and the theory-against-measurement table.

    Parameters
    ----------
    out : str or os.PathLike
        Output directory, created if missing.
    quick : bool, default=False
        Smaller experiments (same figures and table rows, larger error bars).
    rng : int, numpy.random.Generator or None, default=0
        Source of every random draw; the same int seed writes the same numbers
        (and is recorded in the table's notes).
    progress : bool, default=False
        Print a progress bar to standard error.

    Returns
    -------
    paths : list of pathlib.Path
        The files written: ``<name>.png`` and ``<name>.svg`` for each name in
        ``FIGURES`` (the main figure is ``cosine_vs_bits.png``), then
        ``theory_vs_measurement.csv`` and ``theory_vs_measurement.md``.

    Raises
    ------
    TypeError
        If ``rng`` is not an int, a Generator or None, or ``out`` is not a path.
    ValueError
        If ``rng`` is a negative int.

    See Also
    --------
    angle_experiment, dot_product_experiment, arcsine_experiment, rotation_experiment :
        The experiments behind the figures.

    Notes
    -----
    Figures: the cosine of :math:`x` and :math:`q(x)` against bits for every
    quantizer family (binary, ternary, uniform, power-of-two, Lloyd-Max and
    k-means), theory against Monte Carlo; angle histograms against d; the
    angle against d for four distributions; the dot-product 2-D histogram;
    the arcsine law; the rotation experiment. The table lists every
    prediction beside its measurement, the standard error and
    :math:`z = (\text{measured} - \text{theory})/\text{se}`.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.
    .. [2] J. Max, "Quantizing for minimum distortion", IRE Transactions on
       Information Theory 6(1), 1960.

    Examples
    --------
    >>> import tempfile
    >>> from qtoolkit.analysis import reproduce
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
    ...     paths = reproduce(tmp, quick=True)
    ...     sorted(p.name for p in paths)[:2]
    ['angle_histograms.png', 'angle_histograms.svg']
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path, got {describe(out)}")
    seed = rng if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) else None
    rng = check_random_state(rng)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # The linear algebra here is on small matrices: one BLAS thread is the fastest.
    with threadpool_limits(limits=1, user_api="blas"):
        return _reproduce(out, quick, rng, seed, progress)


def _reproduce(out, quick, rng, seed, progress):
    bar = _Progress(8, sys.stderr if progress else None)
    rows, notes, written = [], [], []
    deg = math.degrees
    n_nodes = 2**18

    fams = _families(quick)
    binarize_q = fams["binary"][1][0]
    bin_name = "binarize(scale='mean')"

    # 1. Closed forms.
    _row(
        rows,
        "cos limit, sign of Gaussian (closed form vs quadrature)",
        bin_name,
        "gaussian",
        "inf",
        sign_cosine_gaussian(),
        expected_cosine(binarize_q, "gaussian"),
    )
    for k, (levels, mse_tab) in _MAX_1960.items():
        q = lloyd_max(k)
        _row(
            rows,
            f"Lloyd-Max MSE, {k} levels (Max 1960 table vs computed)",
            "lloyd_max",
            "gaussian",
            "inf",
            mse_tab,
            q.mse,
        )
        _row(
            rows,
            f"Lloyd-Max top level, {k} levels (Max 1960 table vs computed)",
            "lloyd_max",
            "gaussian",
            "inf",
            levels[-1],
            float(q.levels[-1]),
        )
    bar.step("closed forms")

    # 2. Angle histograms against d (sign on Gaussian).
    dims = (16, 64, 256, 1024, 4096)
    n_trials = 300 if quick else 4000
    res = angle_experiment(binarize_q, "gaussian", dims, n_trials=n_trials, rng=rng)
    for k, d in enumerate(res.dims):
        _row(
            rows,
            "mean angle (deg)",
            bin_name,
            "gaussian",
            int(d),
            deg(res.theory_mean[k]),
            deg(res.mean[k]),
            deg(res.std[k]) / math.sqrt(n_trials),
        )
        # sd of the sample sd of a normal sample ~ sd / sqrt(2 (n - 1)).
        _row(
            rows,
            "sd of angle (deg)",
            bin_name,
            "gaussian",
            int(d),
            deg(res.theory_std[k]),
            deg(res.std[k]),
            deg(res.std[k]) / math.sqrt(2 * (n_trials - 1)),
        )
    fig, ax = _figure()
    plot_angle_histograms(res, ax=ax)
    _save(fig, out, "angle_histograms", written)
    bar.step("angle histograms")

    # 3. Angle against d for four distributions.
    dims = (4, 16, 64, 256, 1024) if quick else (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
    n_trials = 100 if quick else 400
    per_dist = {}
    for name in ("gaussian", "laplace", "uniform", "student-t"):
        r = angle_experiment(binarize_q, name, dims, n_trials=n_trials, rng=rng)
        per_dist[name] = r
        _row(
            rows,
            "mean angle (deg)",
            bin_name,
            name,
            int(r.dims[-1]),
            deg(r.theory_mean[-1]),
            deg(r.mean[-1]),
            deg(r.std[-1]) / math.sqrt(n_trials),
        )
    fig, ax = _figure()
    plot_angle_vs_dimension(per_dist, ax=ax)
    _save(fig, out, "angle_vs_dimension", written)
    bar.step("angle against dimension")

    # 4. Dot products.
    d, n_out, n_samp = (512, 16, 1000) if quick else (1024, 64, 4000)
    res = dot_product_experiment(
        binarize_q, "gaussian", d, n_outputs=n_out, n_samples=n_samp, rng=rng
    )
    # r per output: sd about (1 - r^2)/sqrt(n) (Fisher), averaged over n_out outputs.
    se_r = float(np.std(res.r - res.cosine, ddof=1)) / math.sqrt(n_out)
    _row(
        rows,
        "dot-product r minus cos(w, q(w)), isotropic a",
        bin_name,
        "gaussian",
        d,
        0.0,
        float(np.mean(res.r - res.cosine)),
        se_r,
    )
    _row(
        rows,
        "dot-product r (limit)",
        bin_name,
        "gaussian",
        d,
        res.theory.r,
        float(np.mean(res.r)),
        float(np.std(res.r, ddof=1)) / math.sqrt(n_out),
    )
    fig, ax = _figure()
    plot_dot_product(res, ax=ax)
    _save(fig, out, "dot_product", written)
    bar.step("dot products")

    # 5. Arcsine law (plain sign: the law is about signs).
    rho = np.linspace(-0.9, 0.9, 7) if quick else np.linspace(-0.95, 0.95, 13)
    n_trials = 50 if quick else 400
    res = arcsine_experiment(np.sign, rho, 1024, n_trials=n_trials, vectorized=True, rng=rng)
    for k in range(rho.size):
        _row(
            rows,
            f"cos(sign x, sign y), rho = {rho[k]:.3f}",
            "numpy.sign",
            "gaussian",
            1024,
            float(res.theory[k]),
            float(res.cos_after[k]),
            float(res.cos_after_std[k]) / math.sqrt(n_trials),
        )
    fig, ax = _figure()
    plot_arcsine_law(res, ax=ax)
    _save(fig, out, "arcsine_law", written)
    bar.step("arcsine law")

    # 6. Rotation.
    scales = (1.0, 8.0, 64.0) if quick else (0.5, 2.0, 8.0, 32.0, 128.0)
    n_trials = 50 if quick else 400
    rot = {}
    for cov in ("exponential", "exponential-spectrum"):
        r = rotation_experiment(
            binarize_q,
            256,
            scales,
            covariance=cov,
            n_trials=n_trials,
            n_rotations=10 if quick else 20,
            rng=rng,
        )
        rot[f"{cov}:"] = r
        iso = deg(expected_angle(binarize_q, "gaussian", 256, n_nodes=n_nodes).mean)
        for k, ell in enumerate(r.length_scales):
            _row(
                rows,
                f"mean angle after rotation (deg), {cov} cov., l = {ell:g}",
                bin_name,
                "gaussian",
                256,
                iso,
                deg(r.mean_rotated[k]),
                deg(r.se_rotated[k]),
            )
    fig, ax = _figure()
    plot_rotation(rot, ax=ax)
    _save(fig, out, "rotation", written)
    bar.step("rotation")

    # 7. Cosine against bits, every family.
    d = 1024 if quick else 4096
    n_trials = 40 if quick else 400
    curves = {}
    for name, (bits, qs) in fams.items():
        theory, meas, se = [], [], []
        for b, q in zip(bits, qs):
            # A min-max based range has no d -> infinity limit: predict a d-vector (n_nodes = d).
            th = expected_cosine(
                q, "gaussian", n_nodes=d if name.startswith("uniform") else n_nodes
            )
            m, s = _mc_cosine(q, d, n_trials, rng)
            theory.append(th)
            meas.append(m)
            se.append(s)
            _row(rows, f"cos(x, q(x)), {b:.3g} bits", name, "gaussian", d, th, m, s)
        curves[name] = {
            "bits": bits,
            "theory": theory,
            "measured": meas,
            "measured_std": np.asarray(se) * math.sqrt(n_trials),
        }
    lm_bits = list(range(1, 9))
    # D is stationary at the optimum, so levels to 1e-7 give D to about 1e-14.
    lm_theory = [math.sqrt(1.0 - lloyd_max(2**b, tol=1e-7).mse) for b in lm_bits]
    km_bits = list(range(1, 5 if quick else 7))
    km_meas, km_se = [], []
    for b in km_bits:
        q = _kmeans_quantizer(2**b)
        m, s = _mc_cosine(q, d, max(n_trials // 4, 10), rng)
        km_meas.append(m)
        km_se.append(s)
        _row(
            rows,
            f"cos(x, q(x)), {b} bits: Lloyd-Max vs k-means",
            "KMeansQuantizer",
            "gaussian",
            d,
            lm_theory[b - 1],
            m,
            s,
        )
    curves["Lloyd-Max (theory) / k-means (MC)"] = {
        "bits": lm_bits,
        "theory": lm_theory,
        "measured": km_meas,
        "measured_bits": km_bits,
        "measured_std": np.asarray(km_se) * math.sqrt(max(n_trials // 4, 10)),
    }
    notes.append(
        "uniform (MSE range): the range search starts from max|x|, which grows with d, "
        "so its theory is the quantile-grid value for n_nodes = d, not a limit."
    )
    notes.append(
        "k-means rows: the codebook is fitted on each vector, so at finite d it beats the "
        "population optimum (Lloyd-Max) by O(k/d): positive z there is expected."
    )
    notes.append(
        "uniform (MSE range) at 7-8 bits: the grid stands for one typical vector, but the "
        "max of a real vector is random and so is its step; the grid misses that "
        "(Jensen), a gap of 1e-6 to 1e-5 in the cosine."
    )
    notes.append("d = 16 rows: the delta method is a large-d approximation.")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13.0, 5.2))
    ax1, ax2 = fig.subplots(1, 2)
    plot_cosine_vs_bits(curves, ax=ax1, legend=False)
    ax1.set_ylim(0.78, 1.003)
    plot_cosine_vs_bits(curves, ax=ax2, y="angle")
    ax2.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(
        f"Gaussian weights, d = {d}: lines = theory (d → ∞ quadrature; Lloyd-Max), "
        f"markers = Monte Carlo (mean ± sd over {n_trials} vectors, "
        f"{max(n_trials // 4, 10)} for k-means)",
        fontsize="medium",
    )
    _save(fig, out, "cosine_vs_bits", written)
    bar.step("cosine against bits")

    source = f"seed {seed}" if seed is not None else "a caller-supplied generator"
    notes.append(f"{source}, {'quick' if quick else 'full'} run.")
    written += _write_tables(rows, out, notes)
    bar.step("tables")
    return written
