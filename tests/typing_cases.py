"""Call sites that a type checker must accept with the types written here.

Not a test module (pytest does not collect it): ``tests/test_typing.py`` runs ``mypy`` over it
together with the package, so an overload that resolves to the wrong type, or a return type
that does not match what callers rely on, is an error. Running it is harmless.
"""

import numpy as np
from numpy.typing import NDArray

from qtoolkit import bitops, codebooks, optimize, rounding

w = np.linspace(-1.0, 1.0, 8)

# return_codes selects the result type
values: NDArray[np.float64] = rounding.round_to_codebook(w, [-1.0, 0.0, 1.0])
coded: rounding.CodedValues = rounding.round_to_codebook(w, [-1.0, 0.0, 1.0], return_codes=True)
book = [-1.0, 0.0, 1.0]
sr: rounding.CodedValues = rounding.stochastic_round(w, codebook=book, rng=0, return_codes=True)
lq: rounding.CodedValues = optimize.lq_quantize(w, np.array([1.0]), return_codes=True)
lq_values: NDArray[np.floating] = optimize.lq_quantize(w, np.array([1.0]))

# array in, array of the same kind out
u: NDArray[np.float64] = rounding.uniform(w, bits=4)
q: rounding.QuantizedArray = rounding.encode(w, bits=4)

# fit returns the estimator; fixed output dtypes
km: codebooks.KMeansQuantizer = codebooks.KMeansQuantizer(n_clusters=2).fit(w)
packed: bitops.PackedBits = bitops.pack_bits(np.array([[1.0, -1.0]]))
dots: NDArray[np.int32] = bitops.xnor_gemm(packed, packed)
layer: optimize.QuantizedLayer = optimize.rtn(np.ones((2, 4)), bits=4)
