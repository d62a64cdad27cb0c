"""The kernels the layers run on: the low-bit kernels of :mod:`qtoolkit.bitops`.

Where the installed :mod:`qtoolkit.bitops` predates them, the private NumPy
stand-ins of :mod:`._fallback` (same names, same exact results, no SIMD) are
used instead; ``KERNELS`` says which.
"""

try:
    from qtoolkit.bitops import (
        LowBitWeights,
        QuantizedActivations,
        TernaryBits,
        lowbit_gemm_int,
        lowbit_matmul,
        pack_binary,
        pack_ternary,
        pack_ternary_bits,
        pack_weights,
        quantize_activations,
        ternary_gemm,
    )

    KERNELS = "bitops"
except ImportError:  # pragma: no cover - depends on the bitops version
    from ._fallback import (
        LowBitWeights,
        QuantizedActivations,
        TernaryBits,
        lowbit_gemm_int,
        lowbit_matmul,
        pack_binary,
        pack_ternary,
        pack_ternary_bits,
        pack_weights,
        quantize_activations,
        ternary_gemm,
    )

    KERNELS = "numpy"

__all__ = [
    "KERNELS",
    "LowBitWeights",
    "QuantizedActivations",
    "TernaryBits",
    "lowbit_gemm_int",
    "lowbit_matmul",
    "pack_binary",
    "pack_ternary",
    "pack_ternary_bits",
    "pack_weights",
    "quantize_activations",
    "ternary_gemm",
]
