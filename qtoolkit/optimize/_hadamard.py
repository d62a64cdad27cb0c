"""Fast Walsh-Hadamard transform and the randomized incoherence transform (QuIP, QuaRot)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from .._array import check_int, check_random_state, describe, is_numpy_array
from .._typing import ArrayLike, NDArray, RNGLike

_MAX_PALEY = 256  # largest Paley block tried when factoring a length


def _is_prime(q):
    if q < 2:
        return False
    return all(q % d for d in range(2, int(q**0.5) + 1))


@cache
def _paley(m):
    """Hadamard matrix of order ``m = q + 1`` (Paley I, q prime, q = 3 mod 4), entries +-1."""
    q = m - 1
    squares = {(i * i) % q for i in range(1, q)}
    chi = np.array([0] + [1 if r in squares else -1 for r in range(1, q)], dtype=np.int64)
    idx = (np.arange(q)[None, :] - np.arange(q)[:, None]) % q
    S = np.zeros((m, m), dtype=np.int64)
    S[0, 1:] = 1
    S[1:, 0] = -1
    S[1:, 1:] = chi[idx]
    H = S + np.eye(m, dtype=np.int64)
    H.setflags(write=False)
    return H


def _paley_orders():
    return [q + 1 for q in range(3, _MAX_PALEY) if q % 4 == 3 and _is_prime(q)]


def _factor(n):
    """``(2**k, m)`` with ``n = 2**k * m`` and a Hadamard matrix of order ``m`` known (m = 1
    or a Paley order), the largest power of two first; None if there is none."""
    if n & (n - 1) == 0:
        return n, 1
    for m in _paley_orders():
        if n % m == 0:
            a = n // m
            if a & (a - 1) == 0:
                return a, m
    return None


def _fwht_last(x):
    """Unnormalized Sylvester Walsh-Hadamard transform of the last axis (length 2**k), in place
    on a float copy; O(n log n) with one vectorized butterfly pass per bit."""
    n = x.shape[-1]
    lead = x.shape[:-1]
    h = 1
    while h < n:
        v = x.reshape(*lead, n // (2 * h), 2, h)
        a = v[..., 0, :].copy()
        v[..., 0, :] += v[..., 1, :]
        v[..., 1, :] *= -1
        v[..., 1, :] += a
        h *= 2
    return x


def _float_copy(x, name):
    if not is_numpy_array(x):
        raise TypeError(f"{name} must be a NumPy array of real numbers, got {describe(x)}")
    if np.issubdtype(x.dtype, np.floating):
        return np.array(x, dtype=x.dtype, copy=True)
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        return x.astype(np.float64)
    raise TypeError(f"{name} must hold real numbers, got {describe(x)}")


def _check_axis(axis, ndim, name="axis"):
    axis = check_int(axis, name)
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name} must be in [{-ndim}, {ndim - 1}] for a {ndim}-D array, got {axis}"
        )
    return axis % ndim


def _kron_apply(x, a, block, transpose):
    """``(H_a/sqrt(a) kron B) x`` on the last axis (``B^T`` if ``transpose``), x float, (..., n)."""
    lead = x.shape[:-1]
    m = 1 if block is None else block.shape[0]
    v = x.reshape(*lead, a, m)
    if block is not None:
        v = v @ (block if transpose else block.T)
    v = np.ascontiguousarray(np.swapaxes(v, -1, -2))  # (..., m, a)
    v = _fwht_last(v)
    v *= 1.0 / np.sqrt(a)
    return np.swapaxes(v, -1, -2).reshape(*lead, a * m)


def hadamard_transform(
    x: ArrayLike, axis: int = -1, *, inverse: bool = False
) -> NDArray[np.floating]:
    r"""Orthonormal fast Walsh-Hadamard transform along one axis, O(n log n).

    Parameters
    ----------
    x : numpy.ndarray
        Real array; integers and booleans are converted to float64, floating
        dtypes are kept.
    axis : int, default=-1
        The axis transformed. Its length ``n`` must be a power of two, or
        ``2**k * m`` with ``m`` the order of a Paley Hadamard matrix
        (``m = q + 1`` for a prime ``q = 3 mod 4`` below 256: 4, 8, 12, 20, 24,
        32, 44, 48, 60, ...), which covers sizes such as 384 = 32 * 12, 768 and
        1536.
    inverse : bool, default=False
        Apply the inverse (the transpose; for a power of two the transform is
        its own inverse).

    Returns
    -------
    y : numpy.ndarray
        ``H x / sqrt(n)`` along ``axis``, same shape and floating dtype as ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not a real NumPy array or ``axis`` is not an integer.
    ValueError
        If ``axis`` is out of range or no Hadamard matrix of the axis length is known
        (use :func:`incoherence_transform`, which accepts any length).

    See Also
    --------
    incoherence_transform : the randomized transform used for incoherence processing.

    Notes
    -----
    With :math:`H_1 = [1]`, :math:`H_{2n} = \begin{pmatrix} H_n & H_n \\ H_n & -H_n
    \end{pmatrix}` (Sylvester order) and, for ``n = 2**k * m``,
    :math:`H_n = H_{2^k} \otimes P_m` with :math:`P_m` the Paley matrix, the
    result is :math:`y = H_n x / \sqrt n`. :math:`H_n H_n^\top = n I`, so the
    map is orthogonal: :math:`\|y\| = \|x\|` and the inverse is the transpose.
    The power-of-two part runs as :math:`\log_2 n` vectorized butterfly passes
    (:math:`(a, b) \mapsto (a + b, a - b)`); the Paley block is a dense
    :math:`m \times m` product.

    References
    ----------
    .. [1] R. E. A. C. Paley, "On orthogonal matrices", J. Math. Phys. 12, 1933.
    .. [2] J. Chee, Y. Cai, V. Kuleshov, C. De Sa, "QuIP: 2-Bit Quantization of
       Large Language Models With Guarantees", NeurIPS 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import hadamard_transform
    >>> hadamard_transform(np.array([1.0, 0.0, 0.0, 0.0]))
    array([0.5, 0.5, 0.5, 0.5])
    >>> x = np.random.default_rng(0).normal(size=(3, 12))
    >>> bool(np.allclose(hadamard_transform(hadamard_transform(x), inverse=True), x))
    True
    """
    y = _float_copy(x, "x")
    if y.ndim == 0:
        raise ValueError(f"x must have at least one dimension, got {describe(x)}")
    axis = _check_axis(axis, y.ndim)
    if not isinstance(inverse, (bool, np.bool_)):
        raise TypeError(f"inverse must be a bool, got {inverse!r}")
    n = y.shape[axis]
    f = _factor(n) if n > 0 else (0, 1)
    if f is None:
        raise ValueError(
            f"no Hadamard matrix of order {n} (axis {axis}) is known: the length must be a "
            "power of two or 2**k * m with m a Paley order (12, 20, 24, 44, ...); "
            "incoherence_transform handles any length"
        )
    if n == 0:
        return y
    a, m = f
    block = None if m == 1 else (_paley(m) / np.sqrt(m)).astype(y.dtype)
    y = np.moveaxis(y, axis, -1)
    out = _kron_apply(np.ascontiguousarray(y), a, block, bool(inverse))
    return np.moveaxis(out, -1, axis).astype(y.dtype, copy=False)


@dataclass(frozen=True)
class IncoherenceTransform:
    r"""A random orthogonal transform of length ``n``: signs, then a Kronecker Hadamard.

    Created by :func:`incoherence_transform`; :meth:`forward` rotates vectors
    (rows of a weight, activations), :meth:`inverse` undoes it exactly.

    Parameters
    ----------
    signs : numpy.ndarray of shape (n,)
        Random :math:`\pm 1` applied first.
    n_pow2 : int
        The power-of-two factor :math:`a` of ``n``.
    block : numpy.ndarray of shape (m, m) or None
        Orthonormal block :math:`B` (a normalized Paley matrix or a random
        orthogonal matrix); None when ``n`` is a power of two.
    random_block : bool
        Whether ``block`` is a random orthogonal matrix (stored in full) rather
        than a Paley matrix (rebuilt from its order).

    See Also
    --------
    incoherence_transform, hadamard_transform

    Notes
    -----
    :math:`T x = (H_a/\sqrt a \otimes B)\,\operatorname{diag}(\sigma)\,x`. For a
    layer :math:`y = W x`, :math:`W x = (T W^\top)^\top (T x)`: the rotated
    weight has rows :math:`T w_i` and the rotated input is :math:`T x`.

    References
    ----------
    .. [1] J. Chee et al., "QuIP", NeurIPS 2023; A. Tseng et al., "QuIP#",
       ICML 2024; S. Ashkboos et al., "QuaRot", NeurIPS 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import incoherence_transform
    >>> t = incoherence_transform(6, rng=0)
    >>> x = np.arange(6.0)
    >>> bool(np.allclose(t.inverse(t.forward(x)), x))
    True
    """

    signs: np.ndarray
    n_pow2: int
    block: np.ndarray | None = None
    random_block: bool = False

    @property
    def n(self) -> int:
        """The length transformed."""
        return int(self.signs.shape[0])

    @property
    def storage_bits(self) -> int:
        """Bits to store the transform: one per sign plus 16 per entry of a random block."""
        extra = 16 * self.block.size if self.random_block else 0
        return self.n + extra

    def _prep(self, x, axis):
        y = _float_copy(x, "x")
        if y.ndim == 0:
            raise ValueError(f"x must have at least one dimension, got {describe(x)}")
        axis = _check_axis(axis, y.ndim)
        if y.shape[axis] != self.n:
            raise ValueError(f"x must have length {self.n} along axis {axis}, got shape {y.shape}")
        return np.ascontiguousarray(np.moveaxis(y, axis, -1)), axis

    def forward(self, x: ArrayLike, axis: int = -1) -> NDArray[np.floating]:
        """Apply :math:`T` along ``axis``.

        Parameters
        ----------
        x : numpy.ndarray
            Real array of length ``n`` along ``axis``.
        axis : int, default=-1
            The axis transformed.

        Returns
        -------
        y : numpy.ndarray
            :math:`T x`, same shape and floating dtype as ``x`` (float64 for integers).
        """
        y, axis = self._prep(x, axis)
        dt = y.dtype
        y = y * self.signs.astype(dt)
        block = None if self.block is None else self.block.astype(dt)
        out = _kron_apply(y, self.n_pow2, block, False)
        return np.moveaxis(out, -1, axis).astype(dt, copy=False)

    def inverse(self, x: ArrayLike, axis: int = -1) -> NDArray[np.floating]:
        """Apply :math:`T^{-1} = T^\\top` along ``axis``.

        Parameters
        ----------
        x : numpy.ndarray
            Real array of length ``n`` along ``axis``.
        axis : int, default=-1
            The axis transformed.

        Returns
        -------
        y : numpy.ndarray
            :math:`T^\\top x`, same shape and floating dtype as ``x``.
        """
        y, axis = self._prep(x, axis)
        dt = y.dtype
        block = None if self.block is None else self.block.astype(dt)
        out = _kron_apply(y, self.n_pow2, block, True) * self.signs.astype(dt)
        return np.moveaxis(out, -1, axis).astype(dt, copy=False)

    @classmethod
    def from_signs(cls, signs: ArrayLike, block: ArrayLike | None = None) -> IncoherenceTransform:
        """Rebuild a transform from its stored description: the signs and a random block.

        Parameters
        ----------
        signs : numpy.ndarray of shape (n,)
            The signs :math:`\\sigma` (any real or integer dtype), each -1 or +1.
        block : numpy.ndarray of shape (m, m) or None, default=None
            The random orthogonal block of a length without a Paley factor
            (``random_block=True``), with ``n / m`` a power of two; None for the
            deterministic Kronecker Hadamard of :func:`incoherence_transform`.

        Returns
        -------
        transform : IncoherenceTransform
            Equal to the transform described, its ``forward`` and ``inverse``
            computing the same floating-point operations.

        Raises
        ------
        ValueError
            If ``signs`` is not a 1-D array of -1 and +1, ``block`` is None for a
            length that needs a random block, or ``block`` is not a finite
            orthogonal ``(m, m)`` matrix with ``n / m`` a power of two.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.optimize import IncoherenceTransform, incoherence_transform
        >>> t = incoherence_transform(384, rng=0)
        >>> u = IncoherenceTransform.from_signs(t.signs.astype(np.int8))
        >>> x = np.random.default_rng(1).normal(size=384)
        >>> bool(np.array_equal(u.forward(x), t.forward(x)))
        True
        """
        if not isinstance(signs, np.ndarray) or signs.ndim != 1 or signs.size == 0:
            raise ValueError(f"signs must be a non-empty 1-D NumPy array, got {describe(signs)}")
        if signs.dtype.kind not in "iuf" or not np.all((signs == 1) | (signs == -1)):
            raise ValueError("signs must hold only -1 and +1")
        n = int(signs.size)
        sig = signs.astype(np.float64)
        if block is None:
            f = _factor(n)
            if f is None:
                raise ValueError(f"a transform of length {n} has a random block: pass it as block=")
            a, m = f
            pb = None if m == 1 else _paley(m) / np.sqrt(m)
            return cls(signs=sig, n_pow2=a, block=pb, random_block=False)
        if not isinstance(block, np.ndarray) or block.ndim != 2 or block.dtype.kind != "f":
            raise ValueError(f"block must be a 2-D float NumPy array, got {describe(block)}")
        m = block.shape[0]
        if block.shape != (m, m) or m < 1 or n % m:
            raise ValueError(f"block must be square with a size dividing {n}, got {block.shape}")
        a = n // m
        if a & (a - 1):
            raise ValueError(f"n / m must be a power of two, got {n} / {m}")
        B = block.astype(np.float64)
        if not np.all(np.isfinite(B)) or not np.allclose(B @ B.T, np.eye(m), atol=1e-6):
            raise ValueError("block must be a finite orthogonal matrix")
        return cls(signs=sig, n_pow2=a, block=B, random_block=True)

    def matrix(self) -> NDArray[np.floating]:
        """The dense orthogonal matrix of the transform (for tests and small ``n``).

        Returns
        -------
        T : numpy.ndarray of shape (n, n)
            float64, with ``T @ x == forward(x)`` for a vector ``x``.
        """
        return self.forward(np.eye(self.n), axis=0)


def incoherence_transform(n: int, *, rng: RNGLike = None) -> IncoherenceTransform:
    r"""A random orthogonal transform of any length, applied in O(n log n) (QuIP, QuaRot).

    Parameters
    ----------
    n : int
        Length of the vectors transformed (a layer's number of inputs), >= 1.
    rng : None, int or numpy.random.Generator, optional
        Randomness of the signs (and of the block when one is drawn).

    Returns
    -------
    transform : IncoherenceTransform
        The transform :math:`T` with ``forward`` / ``inverse``.

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n < 1``.

    See Also
    --------
    hadamard_transform : the deterministic transform underneath.
    gptq, hqq, rtn : ``rotate=True`` quantizes the layer in the rotated basis.

    Notes
    -----
    :math:`n = a\,m` with :math:`a` the largest power of two for which a
    Hadamard matrix of order :math:`m` is known (:math:`m = 1` or a Paley
    order); then :math:`T = (H_a/\sqrt a \otimes P_m/\sqrt m)\,\operatorname{diag}(\sigma)`
    with random signs :math:`\sigma`. Otherwise :math:`a` is the power of two
    dividing :math:`n` and :math:`B` is a random :math:`m \times m` orthogonal
    matrix (QR of a Gaussian matrix, signs fixed so that it is Haar
    distributed). Rotating a weight's input dimension spreads each outlier
    over all coordinates: the entries of :math:`T w` are close to Gaussian
    with a max-to-norm ratio of order :math:`\sqrt{2 \log n / n}` (the
    incoherence of QuIP), which is what a uniform grid quantizes best.

    References
    ----------
    .. [1] J. Chee, Y. Cai, V. Kuleshov, C. De Sa, "QuIP: 2-Bit Quantization of
       Large Language Models With Guarantees", NeurIPS 2023.
    .. [2] A. Tseng, J. Chee, Q. Sun, V. Kuleshov, C. De Sa, "QuIP#: Even Better
       LLM Quantization with Hadamard Incoherence and Lattice Codebooks", ICML 2024.
    .. [3] S. Ashkboos et al., "QuaRot: Outlier-Free 4-Bit Inference in Rotated
       LLMs", NeurIPS 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import incoherence_transform
    >>> t = incoherence_transform(384, rng=0)
    >>> (t.n_pow2, t.block.shape)
    (32, (12, 12))
    >>> T = t.matrix()
    >>> bool(np.allclose(T @ T.T, np.eye(384)))
    True
    """
    n = check_int(n, "n", low=1)
    gen = check_random_state(rng)
    signs = gen.choice(np.array([-1.0, 1.0]), size=n)
    f = _factor(n)
    if f is not None:
        a, m = f
        block = None if m == 1 else _paley(m) / np.sqrt(m)
        return IncoherenceTransform(signs=signs, n_pow2=a, block=block, random_block=False)
    a = n & -n
    m = n // a
    G = gen.normal(size=(m, m))
    Qm, R = np.linalg.qr(G)
    Qm = Qm * np.sign(np.diag(R))[None, :]
    return IncoherenceTransform(signs=signs, n_pow2=a, block=Qm, random_block=True)
