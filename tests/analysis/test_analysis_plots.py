"""Plots render with Agg and hold the expected artists."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.container import ErrorbarContainer

from qtoolkit.analysis import (
    angle_experiment,
    arcsine_experiment,
    arcsine_law,
    dot_product_experiment,
    plot_angle_histograms,
    plot_angle_vs_dimension,
    plot_arcsine_law,
    plot_cosine_vs_bits,
    plot_dot_product,
    plot_rotation,
    rotation_experiment,
)


@pytest.fixture(scope="module")
def angle_res():
    return angle_experiment(np.sign, dims=[16, 64, 256], n_trials=60, vectorized=True, rng=0)


def test_angle_histograms(angle_res):
    fig, ax = plt.subplots()
    assert plot_angle_histograms(angle_res, ax=ax) is ax
    assert len(ax.patches) == 3  # one step histogram per dimension
    assert len(ax.lines) == 3 + 1  # one theory density per dimension + the limit
    limit = ax.lines[-1]
    np.testing.assert_allclose(limit.get_xdata(), np.degrees(angle_res.theory_limit))
    # Each theory density integrates to about 1 over its plotted range.
    x, y = ax.lines[0].get_data()
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=1e-3)
    fig.canvas.draw()


def test_angle_vs_dimension_uses_current_axes_when_none(angle_res):
    fig = plt.figure()
    ax = plot_angle_vs_dimension({"a": angle_res, "b": angle_res})
    assert ax is fig.gca()
    assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == 2
    assert ax.get_xscale() == "log"
    np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(), np.degrees(angle_res.mean))


def test_dot_product_plot():
    res = dot_product_experiment(np.sign, d=64, n_outputs=2, n_samples=200, rng=1)
    ax = plot_dot_product(res, ax=plt.subplots()[1])
    assert sum(isinstance(c, QuadMesh) for c in ax.collections) == 1
    assert len(ax.lines) == 2
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"{float(res.r[0]):.3f}" in labels[0] and f"{float(res.slope[0]):.3f}" in labels[0]


def test_arcsine_plot():
    res = arcsine_experiment(
        np.sign, rho=[-0.5, 0.0, 0.5], d=128, n_trials=10, vectorized=True, rng=2
    )
    ax = plot_arcsine_law(res, ax=plt.subplots()[1])
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(y, arcsine_law(x))
    assert len(ax.containers) == 1


def test_cosine_vs_bits_plot():
    curves = {
        "a": {
            "bits": [1, 2, 3],
            "theory": [0.8, 0.9, 0.95],
            "measured": [0.8, 0.9, 0.95],
            "measured_std": [0.01, 0.01, 0.01],
        },
        "b": {"bits": [1.58], "theory": [0.9]},
    }
    ax = plot_cosine_vs_bits(curves, ax=plt.subplots()[1])
    assert len(ax.containers) == 1  # only "a" has measurements
    assert len(ax.lines) >= 3  # two theory lines and the sqrt(2/pi) reference
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.8, 0.9, 0.95])
    ax = plot_cosine_vs_bits(curves, ax=plt.subplots()[1], y="angle", legend=False)
    assert ax.get_yscale() == "log" and ax.get_legend() is None
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.degrees(np.arccos([0.8, 0.9, 0.95])))
    with pytest.raises(ValueError, match="y must be 'cosine' or 'angle'"):
        plot_cosine_vs_bits(curves, y="bits")
    with pytest.raises(ValueError, match="same length"):
        plot_cosine_vs_bits({"a": {"bits": [1, 2], "theory": [0.8]}})
    with pytest.raises(ValueError, match="must be a dict with 'bits' and 'theory'"):
        plot_cosine_vs_bits({"a": {"bits": [1]}})
    with pytest.raises(TypeError, match="curves must be a dict"):
        plot_cosine_vs_bits([1, 2])


def test_rotation_plot():
    res = rotation_experiment(
        np.sign, d=32, length_scales=[1.0, 4.0], n_trials=10, n_rotations=2, rng=3
    )
    ax = plot_rotation({"exp": res}, ax=plt.subplots()[1])
    assert len(ax.containers) == 2
    assert any(np.allclose(line.get_ydata(), np.degrees(res.theory_mean)) for line in ax.lines)


def test_plots_reject_wrong_results(angle_res):
    with pytest.raises(TypeError, match="result must be the result of the matching experiment"):
        plot_dot_product(angle_res)
    with pytest.raises(TypeError, match="must be the result of the matching experiment"):
        plot_rotation(angle_res)
