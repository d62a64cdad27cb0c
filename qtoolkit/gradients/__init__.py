"""Quantized gradients for data-parallel training.

Background
----------
In the survey's taxonomy (Guo 2018) quantized gradients belong to the
"why and where quantization pays" part: in data-parallel training every worker
sends its gradient each step, and quantizing it cuts the synchronisation
cost. Two families are provided:

- *unbiased stochastic* quantizers (stochastic quantization / random
  rounding): :func:`qsgd` (Alistarh et al. 2017, ``s`` levels scaled by the
  Euclidean norm) and :func:`terngrad` (Wen et al. 2017, three levels scaled
  by the max norm, optional 2.5-sigma clipping). Their variance is bounded and
  stated by each compressor's ``variance_bound``;
- *biased deterministic* 1-bit quantization, :func:`scaled_sign`, made safe
  by error feedback (Seide et al. 2014): :class:`SignErrorFeedback` carries
  the quantization error into the next step.

Each compressor has ``compress`` (array in, quantized array out, in the
input's Array API namespace), ``encode`` (bytes on the wire) and ``decode``
(bytes to a NumPy array equal to what ``compress`` gives), and records the
measured ``bits_per_element_`` of its last message. :func:`ddp_comm_hook` sends
these messages through ``torch.distributed`` as a DistributedDataParallel
communication hook.
"""

from ._ddp import DDPCommHook, ddp_comm_hook
from ._qsgd import QSGDCompressor, qsgd
from ._sign import SignErrorFeedback, scaled_sign
from ._terngrad import TernGradCompressor, terngrad

__all__ = [
    "DDPCommHook",
    "QSGDCompressor",
    "SignErrorFeedback",
    "TernGradCompressor",
    "ddp_comm_hook",
    "qsgd",
    "scaled_sign",
    "terngrad",
]
