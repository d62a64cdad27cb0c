"""Weight distributions for the experiments and the theory.

A distribution is given as a name (``"gaussian"``, ``"laplace"``,
``"uniform"``, ``"student-t"``), as a frozen continuous distribution of
:mod:`scipy.stats`, or as a 1-D array of samples (the empirical distribution).
The named distributions are centred and scaled to unit variance, so their
results are directly comparable:

- ``"gaussian"`` (alias ``"normal"``): N(0, 1);
- ``"laplace"``: Laplace with scale 1/sqrt(2);
- ``"uniform"``: uniform on [-sqrt(3), sqrt(3)];
- ``"student-t"``: Student's t with 5 degrees of freedom, scaled by sqrt(3/5)
  (five degrees of freedom keep the fourth moment finite, which the 1/sqrt(d)
  spread of the angle needs).

Prior validation of everything but ``distribution`` itself is assumed by the
private helpers below.
"""

import math
import numbers

import numpy as np
from scipy import special, stats

from .._array import describe

DISTRIBUTION_NAMES = ("gaussian", "laplace", "uniform", "student-t")
_ALIASES = {"normal": "gaussian", "gauss": "gaussian", "t": "student-t", "student_t": "student-t"}


def _named(name):
    if name == "gaussian":
        return stats.norm()
    if name == "laplace":
        return stats.laplace(scale=1.0 / math.sqrt(2.0))
    if name == "uniform":
        return stats.uniform(loc=-math.sqrt(3.0), scale=2.0 * math.sqrt(3.0))
    return stats.t(df=5, scale=math.sqrt(3.0 / 5.0))


class Distribution:
    """A scalar distribution: sampling, a quantile grid and partial moments (private)."""

    def __init__(self, name, frozen=None, samples=None):
        self.name = name
        self.frozen = frozen
        self.samples = samples  # sorted float64, or None

    # -- sampling --------------------------------------------------------
    def rvs(self, size, rng):
        """Draw iid values of shape ``size`` with the Generator ``rng``."""
        if self.samples is not None:
            return rng.choice(self.samples, size=size, replace=True)
        return np.asarray(self.frozen.rvs(size=size, random_state=rng), dtype=np.float64)

    # -- integration -----------------------------------------------------
    def quantile_grid(self, n):
        """Midpoint quantiles ``F^{-1}((i - 1/2) / n)``, or the sorted samples."""
        if self.samples is not None:
            return self.samples
        u = (np.arange(n, dtype=np.float64) + 0.5) / n
        return np.asarray(self.frozen.ppf(u), dtype=np.float64)

    def variance(self):
        """Variance (finite, checked at construction)."""
        if self.samples is not None:
            return float(np.var(self.samples))
        return float(self.frozen.var())

    def second_moment(self):
        """E[X^2]."""
        if self.samples is not None:
            return float(np.mean(self.samples**2))
        m, v = self.frozen.stats(moments="mv")
        return float(v + m * m)

    def _standard(self):
        """(family, shape parameter, loc, scale) for the families with fast closed forms."""
        dist = self.frozen
        loc = float(dist.kwds.get("loc", 0.0))
        scale = float(dist.kwds.get("scale", 1.0))
        name = dist.dist.name
        extra = set(dist.kwds) - {"loc", "scale"}
        if name in ("norm", "laplace", "uniform") and not dist.args and not extra:
            return name, None, loc, scale
        if name == "t" and len(dist.args) + len(extra) == 1 and extra <= {"df"}:
            return name, float(dist.args[0] if dist.args else dist.kwds["df"]), loc, scale
        return None, None, loc, scale

    def cdf(self, t):
        """P[X <= t] for an array of points ``t`` (may hold +-inf)."""
        t = np.asarray(t, dtype=np.float64)
        if self.samples is not None:
            return np.searchsorted(self.samples, t, side="right") / self.samples.size
        name, df, loc, scale = self._standard()
        z = (t - loc) / scale
        if name == "norm":
            return special.ndtr(z)
        if name == "t":
            return special.stdtr(df, z)
        if name == "laplace":
            return np.where(
                z < 0, 0.5 * np.exp(np.minimum(z, 0.0)), 1.0 - 0.5 * np.exp(-np.maximum(z, 0.0))
            )
        if name == "uniform":
            return np.clip(z, 0.0, 1.0)
        return self.frozen.cdf(t)

    def partial_moment(self, t):
        """E[X 1{X <= t}] for an array of points ``t`` (may hold +-inf)."""
        t = np.asarray(t, dtype=np.float64)
        if self.samples is not None:
            csum = np.concatenate(([0.0], np.cumsum(self.samples)))
            return csum[np.searchsorted(self.samples, t, side="right")] / self.samples.size
        dist = self.frozen
        name, df, loc, scale = self._standard()
        z = (t - loc) / scale
        # E[X 1{X<=t}] = loc F(t) + scale E[Z 1{Z<=z}] for X = loc + scale Z.
        with np.errstate(invalid="ignore", over="ignore"):
            if name == "norm":
                zf = np.where(np.isinf(z), 0.0, z)
                mz = np.where(np.isinf(z), 0.0, -np.exp(-0.5 * zf * zf) / math.sqrt(2.0 * math.pi))
            elif name == "laplace":
                mz = np.where(
                    z < 0,
                    (z - 1.0) * np.exp(np.minimum(z, 0.0)) / 2.0,
                    -(z + 1.0) * np.exp(-np.maximum(z, 0.0)) / 2.0,
                )
                mz = np.where(np.isinf(z), 0.0, mz)
            elif name == "t":
                # d/dz [-(df + z^2) f(z) / (df - 1)] = z f(z) for Student's t.
                zf = np.where(np.isinf(z), 0.0, z)
                mz = -(df + zf * zf) / (df - 1.0) * stats.t.pdf(zf, df)
                mz = np.where(np.isinf(z), 0.0, mz)
            elif name == "uniform":
                zc = np.clip(z, 0.0, 1.0)
                mz = zc * zc / 2.0
            else:
                return np.array([_quad_partial_moment(dist, ti) for ti in t.ravel()]).reshape(
                    t.shape
                )
        return loc * self.cdf(t) + scale * mz


def _quad_partial_moment(dist, t):
    from scipy import integrate

    if t == -np.inf:
        return 0.0
    lo, hi = dist.support()
    hi = min(hi, t)
    if hi <= lo:
        return 0.0
    val, _ = integrate.quad(lambda x: x * dist.pdf(x), lo, hi, limit=200)
    return val


def as_distribution(distribution, name="distribution"):
    """Turn a name, a frozen scipy distribution or samples into a :class:`Distribution`."""
    if isinstance(distribution, Distribution):
        return distribution
    if isinstance(distribution, str):
        key = _ALIASES.get(distribution.lower(), distribution.lower())
        if key not in DISTRIBUTION_NAMES:
            raise ValueError(
                f"{name} must be one of {DISTRIBUTION_NAMES}, a frozen scipy.stats distribution "
                f"or a 1-D array of samples, got {distribution!r}"
            )
        return Distribution(key, frozen=_named(key))
    if hasattr(distribution, "dist") and hasattr(distribution, "ppf"):
        if not isinstance(distribution.dist, stats.rv_continuous):
            raise TypeError(
                f"{name} must be a continuous scipy.stats distribution, "
                f"got {describe(distribution)}"
            )
        var = float(distribution.var())
        if not np.isfinite(var) or var <= 0:
            raise ValueError(
                f"{name} must have a finite, positive variance, "
                f"got variance {var} for {distribution.dist.name}"
            )
        return Distribution(distribution.dist.name, frozen=distribution)
    if isinstance(distribution, numbers.Number) or distribution is None:
        raise TypeError(
            f"{name} must be a name, a frozen scipy.stats distribution or a 1-D array "
            f"of samples, got {describe(distribution)}"
        )
    try:
        samples = np.asarray(distribution)
    except Exception as exc:  # an object numpy cannot read
        raise TypeError(
            f"{name} must be a name, a frozen scipy.stats distribution or a 1-D array "
            f"of samples, got {describe(distribution)}"
        ) from exc
    if samples.ndim != 1 or samples.size < 2:
        raise ValueError(
            f"{name} given as samples must be a 1-D array of at least 2 values, "
            f"got {describe(distribution)}"
        )
    if not np.issubdtype(samples.dtype, np.floating) and not np.issubdtype(
        samples.dtype, np.integer
    ):
        raise TypeError(
            f"{name} given as samples must be real numbers, got {describe(distribution)}"
        )
    samples = np.sort(samples.astype(np.float64))
    if not np.all(np.isfinite(samples)):
        raise ValueError(f"{name} given as samples contains NaN or Inf")
    if samples[0] == samples[-1]:
        raise ValueError(f"{name} given as samples must not be constant (zero variance)")
    return Distribution("samples", samples=samples)
