"""asv benchmarks of qtoolkit.rounding and qtoolkit.codebooks: time, and quality (track_*)."""

from typing import ClassVar

import numpy as np

from qtoolkit import codebooks, rounding


class Rounding:
    params: ClassVar[list] = [
        ["uniform4", "ternary_twn", "ternary_optimal", "stochastic_round", "copy"]
    ]
    param_names: ClassVar[list] = ["method"]

    def setup(self, method):
        self.w = np.random.default_rng(0).standard_normal(1 << 22, dtype=np.float32)

    def time_rounding(self, method):
        w = self.w
        if method == "uniform4":
            rounding.uniform(w, bits=4)
        elif method == "ternary_twn":
            rounding.ternarize(w, method="twn")
        elif method == "ternary_optimal":
            rounding.ternarize(w, method="optimal")
        elif method == "stochastic_round":
            rounding.stochastic_round(w, step=0.125, rng=0)
        else:
            w.copy()


class KMeans1D:
    params: ClassVar[list] = ([16, 256, 4096, 65536], ["optimal", "lloyd"])
    param_names: ClassVar[list] = ["n_clusters", "algorithm"]
    timeout = 300

    def setup(self, n_clusters, algorithm):
        self.w = np.random.default_rng(0).standard_normal(200_000).astype(np.float32)

    def time_fit(self, n_clusters, algorithm):
        codebooks.KMeansQuantizer(n_clusters=n_clusters, algorithm=algorithm).fit(self.w)

    def track_inertia(self, n_clusters, algorithm):
        return float(
            codebooks.KMeansQuantizer(n_clusters=n_clusters, algorithm=algorithm)
            .fit(self.w)
            .inertia_
        )

    track_inertia.unit = "squared error"


class KMeans1DRows:
    """One optimal codebook per row of a (4096, 4096) matrix (non-uniform per-row grids)."""

    params: ClassVar[list] = ([4, 16], [False, True])
    param_names: ClassVar[list] = ["n_clusters", "weighted"]
    timeout = 300

    def setup(self, n_clusters, weighted):
        rng = np.random.default_rng(0)
        self.W = rng.standard_normal((4096, 4096)).astype(np.float32)
        self.h = rng.exponential(size=4096) if weighted else None

    def time_fit_rows(self, n_clusters, weighted):
        codebooks.kmeans_1d_rows(self.W, n_clusters, sample_weight=self.h)

    def track_inertia(self, n_clusters, weighted):
        return float(
            codebooks.kmeans_1d_rows(self.W, n_clusters, sample_weight=self.h).inertia.sum()
        )

    track_inertia.unit = "squared error"


class ProductQuantization:
    timeout = 300

    def setup(self):
        self.X = np.random.default_rng(0).standard_normal((20_000, 64)).astype(np.float32)

    def time_fit_encode(self):
        pq = codebooks.ProductQuantizer(n_subspaces=8, n_clusters=64, random_state=0).fit(self.X)
        pq.transform(self.X)

    def track_reconstruction_error(self):
        pq = codebooks.ProductQuantizer(n_subspaces=8, n_clusters=64, random_state=0).fit(self.X)
        return float(((pq.inverse_transform(pq.transform(self.X)) - self.X) ** 2).sum())

    track_reconstruction_error.unit = "squared error"


class ResidualQuantization:
    """Two stages of 256 codewords, greedy and beam-5 encoding (compiled beam search)."""

    params: ClassVar[list] = [1, 5]
    param_names: ClassVar[list] = ["beam_size"]
    timeout = 300

    def setup(self, beam_size):
        self.X = np.random.default_rng(0).standard_normal((20_000, 64)).astype(np.float32)
        self.rq = codebooks.ResidualQuantizer(
            n_stages=2, n_clusters=256, beam_size=beam_size, random_state=0
        ).fit(self.X)

    def time_fit(self, beam_size):
        codebooks.ResidualQuantizer(
            n_stages=2, n_clusters=256, beam_size=beam_size, random_state=0
        ).fit(self.X)

    def time_encode(self, beam_size):
        self.rq.transform(self.X)

    def track_reconstruction_error(self, beam_size):
        return float(((self.rq.inverse_transform(self.rq.transform(self.X)) - self.X) ** 2).sum())

    track_reconstruction_error.unit = "squared error"
