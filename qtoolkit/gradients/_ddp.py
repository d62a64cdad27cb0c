"""Compressed gradients in ``torch.distributed``: DDP communication hooks on the wire formats."""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import numpy as np

from .._array import describe
from ._qsgd import QSGDCompressor
from ._sign import SignErrorFeedback
from ._terngrad import TernGradCompressor

_COMPRESSORS = (QSGDCompressor, TernGradCompressor, SignErrorFeedback)


class _CommHookState:
    """State of :func:`ddp_comm_hook`: one compressor per bucket and the byte counts."""

    def __init__(self, compressor, process_group, keep_received):
        self.compressor = compressor
        self.process_group = process_group
        self.keep_received = keep_received
        self.compressors_ = {}
        self.bytes_per_step_ = 0
        self.padded_bytes_per_step_ = 0
        self.elements_per_step_ = 0
        self.bytes_sent_ = 0
        self.steps_ = 0
        self.received_ = {}
        self._step_bytes = self._step_padded = self._step_elements = 0

    @property
    def bits_per_element_(self):
        """Bits sent per gradient entry in the last complete step (messages, headers included)."""
        return 8 * self.bytes_per_step_ / max(self.elements_per_step_, 1)

    def _compressor_for(self, index, n, rank):
        """This bucket's compressor; a fresh one (own noise stream, no carried error) on a
        first use or when DDP has rebuilt the bucket with another size."""
        have = self.compressors_.get(index)
        if have is not None and have[0] == n:
            return have[1]
        comp = copy.deepcopy(self.compressor)
        if hasattr(comp, "_rng"):
            # an independent stream per rank and bucket, reproducible from the prototype's seed
            seed = comp.rng if isinstance(comp.rng, (int, np.integer)) else None
            if seed is None:
                seed = int(self.compressor._rng.integers(2**63))
            comp._rng = np.random.default_rng([int(seed), rank, index, n])
        self.compressors_[index] = (n, comp)
        return comp

    def __repr__(self):
        return f"ddp_comm_hook state({self.compressor!r}, steps_={self.steps_})"


def _exchange(state, index, flat, torch, dist):
    """Encode ``flat`` (this rank's bucket), all-gather the messages, decode and average."""
    group = state.process_group
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    n = flat.numel()
    comp = state._compressor_for(index, n, rank)
    data = comp.encode(flat.detach().cpu().numpy())  # encoded on the host, in NumPy
    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([len(data)], dtype=torch.int64), group=group)
    sizes = [int(s.item()) for s in sizes]
    width = max(sizes)
    mine = torch.zeros(width, dtype=torch.uint8)
    mine[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    gathered = [torch.empty(width, dtype=torch.uint8) for _ in range(world)]
    dist.all_gather(gathered, mine, group=group)
    decoded = [
        comp.decode(t[:size].numpy().tobytes(), max_elements=n) for t, size in zip(gathered, sizes)
    ]
    total = decoded[0].astype(np.float64) if world > 1 else decoded[0]
    for d in decoded[1:]:
        total = total + d
    mean = (total / world).astype(decoded[0].dtype).reshape(-1)
    if state.keep_received:
        state.received_[index] = decoded
    state._step_bytes += len(data)
    state._step_padded += width + 8
    state._step_elements += n
    return torch.from_numpy(mean).to(dtype=flat.dtype, device=flat.device)


class DDPCommHook(NamedTuple):
    """A communication hook and its state, from :func:`ddp_comm_hook`.

    Parameters
    ----------
    hook : callable
        ``hook(state, bucket) -> torch.futures.Future``.
    state : object
        The hook state (byte counts, per-bucket compressors, received messages).

    See Also
    --------
    ddp_comm_hook : the function that returns it; pass both to
        ``DistributedDataParallel.register_comm_hook(state, hook)``.

    Examples
    --------
    >>> from qtoolkit.gradients import QSGDCompressor, ddp_comm_hook
    >>> res = ddp_comm_hook(QSGDCompressor(n_levels=16, bucket_size=512, rng=0))
    >>> res.state.steps_
    0
    """

    hook: Any
    state: Any


def ddp_comm_hook(
    compressor: QSGDCompressor | TernGradCompressor | SignErrorFeedback,
    *,
    process_group: Any = None,
    keep_received: bool = False,
) -> DDPCommHook:
    r"""A DistributedDataParallel communication hook that sends compressed gradients.

    Parameters
    ----------
    compressor : QSGDCompressor, TernGradCompressor or SignErrorFeedback
        The prototype: each gradient bucket gets its own copy (its own
        carried error for error feedback, its own noise stream -- seeded from
        the prototype's ``rng``, the rank and the bucket -- for the
        stochastic ones).
    process_group : torch.distributed.ProcessGroup or None, default=None
        The group to average over; None is the default group.
    keep_received : bool, default=False
        Keep the decoded messages of every rank in ``state.received_``
        (bucket index -> list of NumPy arrays, by rank) for inspection.

    Returns
    -------
    hook : callable
        ``hook(state, bucket) -> torch.futures.Future`` for
        ``DistributedDataParallel.register_comm_hook(state, hook)``.
    state : object
        The hook state. Its attributes: ``bytes_per_step_`` (bytes of the
        messages this rank sent in the last complete step, headers
        included), ``bits_per_element_`` (the same per gradient entry),
        ``padded_bytes_per_step_`` (what the all-gather really carried from
        this rank: every message is padded to the longest of the group, plus
        8 bytes of length), ``bytes_sent_`` (total over all steps),
        ``steps_``, ``compressors_`` (bucket index -> ``(size, compressor)``)
        and ``received_``.

    Raises
    ------
    TypeError
        If ``compressor`` is not one of the three compressors, or
        ``keep_received`` is not a bool.
    ImportError
        If PyTorch is not installed.

    See Also
    --------
    DDPCommHook : the named pair ``(hook, state)`` returned.
    QSGDCompressor, TernGradCompressor, SignErrorFeedback

    Notes
    -----
    For each bucket, every rank :math:`r` encodes its local gradient
    :math:`g_r` with the compressor's wire format (:meth:`encode`), the
    byte messages (of different lengths) are exchanged with two
    ``all_gather`` calls (lengths, then messages padded to the longest),
    and every rank decodes all of them and takes the mean

    .. math::

        \bar g = \frac{1}{R} \sum_{r=1}^{R} \operatorname{decode}(\operatorname{encode}(g_r)),

    summed in float64, which is the same on every rank. For QSGD and TernGrad it is an unbiased
    estimate of the average gradient; with error feedback each rank carries its own
    compression error into its next step. DDP rebuilds its buckets after the first step; a
    bucket whose size changes starts with a fresh compressor (and no carried error). The
    hook runs synchronously (its future is already complete) and on the host, which suits
    the gloo backend; a GPU bucket is copied to the host and back.

    References
    ----------
    .. [1] D. Alistarh et al., "QSGD: Communication-Efficient SGD via Gradient
       Quantization and Encoding", NeurIPS 2017.
    .. [2] W. Wen et al., "TernGrad: Ternary Gradients to Reduce Communication
       in Distributed Deep Learning", NeurIPS 2017.
    .. [3] S. P. Karimireddy, Q. Rebjock, S. U. Stich, M. Jaggi, "Error Feedback
       Fixes SignSGD and other Gradient Compression Schemes", ICML 2019.

    Examples
    --------
    >>> from qtoolkit.gradients import QSGDCompressor, ddp_comm_hook
    >>> hook, state = ddp_comm_hook(QSGDCompressor(n_levels=16, bucket_size=512, rng=0))
    >>> state.bytes_per_step_
    0

    In a training script, after ``model = DistributedDataParallel(module)``::

        model.register_comm_hook(state, hook)
    """
    if not isinstance(compressor, _COMPRESSORS):
        raise TypeError(
            "compressor must be a QSGDCompressor, TernGradCompressor or SignErrorFeedback, "
            f"got {describe(compressor)}"
        )
    if not isinstance(keep_received, bool):
        raise TypeError(f"keep_received must be a bool, got {describe(keep_received)}")
    import torch
    import torch.distributed as dist

    state = _CommHookState(copy.deepcopy(compressor), process_group, keep_received)

    def hook(state, bucket):
        buf = bucket.buffer()
        out = _exchange(state, bucket.index(), buf, torch, dist)
        if bucket.is_last():
            state.bytes_per_step_ = state._step_bytes
            state.padded_bytes_per_step_ = state._step_padded
            state.elements_per_step_ = state._step_elements
            state.bytes_sent_ += state._step_bytes
            state.steps_ += 1
            state._step_bytes = state._step_padded = state._step_elements = 0
        fut = torch.futures.Future()
        fut.set_result(out)
        return fut

    return DDPCommHook(hook, state)
