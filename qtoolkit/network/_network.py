"""Quantize a whole network: plan, calibrate, quantize tensor by tensor (or on Dask), report."""

from __future__ import annotations

import math
import sys
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from .._array import describe
from .._typing import ArrayLike, NDArray, PathLike
from ..nn import Conv2d, Linear
from ._budget import allocate, pareto
from ._calibration import Calibration, Sequential, n_inputs, open_calibration, stats_for
from ._checkpoint import open_checkpoint
from ._methods import ErrorSums, dequantize_record, quantize_tensor
from ._recipe import load_recipe, plan
from ._report import Report


class _Progress:
    def __init__(self, total, enabled, stream=None):
        self.total, self.enabled, self.done = total, enabled, 0
        self.stream = stream or sys.stderr

    def step(self, name):
        self.done += 1
        if not self.enabled:
            return
        width = 30
        fill = int(width * self.done / max(self.total, 1))
        label = name if len(name) <= 40 else "..." + name[-37:]
        self.stream.write(
            f"\r[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} {label:<40}"
        )
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def _options(rule, budget):
    if rule.candidates is not None and budget is not None:
        return list(rule.candidates)
    if rule.method is None:
        raise ValueError(
            f"{rule.describe()} only has 'candidates', which need a budget; give budget= "
            "(bits per weight) or a 'method' for the rule"
        )
    return [(rule.method, rule.params)]


def _work(name, w, options, stats):
    """Quantize one tensor with each of its options: records and (rel_w, rel_o, objective)."""
    out = []
    known = None
    for method, params in options:
        acc = ErrorSums(None if stats is None else stats.hessian, known)
        try:
            rec = quantize_tensor(name, w, method, params, stats, acc)
        except (TypeError, ValueError) as err:
            raise type(err)(
                f"method {method!r} with params {params} on tensor {name!r} of shape "
                f"{tuple(np.shape(w))}: {err}"
            ) from None
        out.append((rec, (None, None, 0.0) if method == "skip" else acc.result()))
        if method != "skip":
            known = (acc.ref, acc.out_ref)
    return out


def _task(source, name, options, stats):
    """A Dask task: read the tensor itself when given a path, then quantize it."""
    if isinstance(source, str):
        ck = open_checkpoint(source)
        try:
            w = ck.get(name)
        finally:
            ck.close()
    else:
        w = source
    return _work(name, np.asarray(w), options, stats)


class QuantizedNetwork:
    """A quantized network: one packed record per tensor, and its report.

    Built by :func:`quantize` or :func:`load`; not meant to be constructed directly.

    Parameters
    ----------
    records : dict
        Tensor name to its packed record, in checkpoint order.
    report : Report
        The per-tensor report.

    Attributes
    ----------
    names : list of str
        Tensor names, in checkpoint order.
    report : Report
        Rows per tensor (method, bits per weight, errors, time) and totals.

    See Also
    --------
    quantize, load

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.network import quantize
    >>> w = np.random.default_rng(0).normal(size=(4, 64)).astype(np.float32)
    >>> net = quantize({"fc.weight": w}, [{"match": "*", "method": "q8_0"}])
    >>> net.names, net["fc.weight"].shape
    (['fc.weight'], (4, 64))
    """

    def __init__(self, records: dict[str, Any], report: Report) -> None:
        self._records = dict(records)
        self.report = report

    @property
    def names(self) -> list[str]:
        return list(self._records)

    def __getitem__(self, name: str) -> NDArray[Any]:
        return dequantize_record(self._records[name])

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        t = self.report.totals
        return (
            f"QuantizedNetwork({t['n_tensors']} tensors, {t['n_quantized']} quantized, "
            f"{t['bytes_after']} bytes)"
        )

    def dequantize(self) -> dict[str, NDArray[Any]]:
        """All tensors back in floating point (the original shapes and dtypes).

        Returns
        -------
        state : dict of str to numpy.ndarray
            A float state dict, in checkpoint order (tensors kept in floating
            point come back unchanged).

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.network import quantize
        >>> net = quantize({"b": np.ones(3)}, [{"match": "*", "method": "uniform"}])
        >>> net.dequantize()["b"]
        array([1., 1., 1.])
        """
        return {name: dequantize_record(rec) for name, rec in self._records.items()}

    def _bias_for(self, name, bias):
        if isinstance(bias, bool):
            if not bias:
                return None
            stem = name[: -len(".weight")] if name.endswith(".weight") else name
            key = stem + ".bias"
            return self[key] if key in self._records else None
        if isinstance(bias, str):
            if bias not in self._records:
                raise ValueError(f"bias {bias!r} is not a tensor of this network")
            return self[bias]
        raise TypeError(f"bias must be a bool or a tensor name, got {describe(bias)}")

    def layer(
        self,
        name: str,
        *,
        bias: bool | str = True,
        activations: Literal["binary", "ternary", 8] | None = None,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        data_format: Literal["NCHW", "NHWC"] = "NCHW",
        n_threads: int | None = None,
    ) -> Linear | Conv2d:
        r"""One weight as a :mod:`qtoolkit.nn` layer that runs on its packed low-bit codes.

        Parameters
        ----------
        name : str
            A 2-D weight (out, in) becomes a :class:`qtoolkit.nn.Linear`, a
            4-D weight (out, in / groups, kh, kw) a :class:`qtoolkit.nn.Conv2d`.
        bias : bool or str, default=True
            True: the tensor ``<stem>.bias`` (``<stem>`` = ``name`` without
            ``.weight``) when the network has one; False: no bias; a string:
            that tensor.
        activations : {None, "binary", "ternary", 8}, default=None
            The layer's run-time activation mode (see :class:`qtoolkit.nn.Linear`).
        stride, padding, dilation, groups, data_format
            The convolution's geometry (:class:`qtoolkit.nn.Conv2d`); only
            for a 4-D weight.
        n_threads : int, optional
            Threads of the kernels.

        Returns
        -------
        layer : qtoolkit.nn.Linear or qtoolkit.nn.Conv2d
            A layer holding the same codes and scales (a tensor kept in
            floating point gives a float32 layer).

        Raises
        ------
        KeyError
            If ``name`` is not a tensor of the network.
        ValueError
            If the tensor is neither 2-D nor 4-D, or its scheme has no integer
            kernel: product quantization, real zero points (HQQ, Q4_1),
            scale groups that are not contiguous blocks (GPTQ ``act_order``),
            codes wider than 8 bits, codebooks of more than 16 entries,
            per-group scales in a convolution, or a weight mode the
            activation mode cannot run with; the message names the tensor.
        TypeError
            If ``bias`` or a geometry argument has the wrong type.

        See Also
        --------
        to_nn : Every quantized weight at once.

        Notes
        -----
        The mapping: uniform codes (registry ``uniform``, ``rtn``, ``gptq``,
        ``adaround``) keep their integer zero points and per-row or per-group
        scales; codes of 1, 5, 6 or 7 bits are held as 2- or 8-bit codes of
        the same values. Registry ``binary`` and ``ternary`` codes and GGUF
        ``tq1_0``/``tq2_0`` become binary / ternary weights, ``q8_0`` and
        ``q4_0`` 8- and 4-bit codes in groups of 32 (zero point 8 for Q4_0),
        ``kmeans`` and small registry codebooks codebook weights.

        Accuracy. The layer's :attr:`~qtoolkit.nn.Linear.weight` equals
        ``network[name]`` up to one float32 rounding (exactly for the GGUF
        formats, whose products of codes and float16 scales are exact in
        float32), except for codebook weights, which the kernel computes
        with the codebook rounded to int8 steps of :math:`\max|c| / 127`
        (each weight within half a step of ``network[name]``). With
        ``activations=None`` the output is ``x @ weight.T`` in float32;
        with binary or ternary activations and binary or ternary weights it
        is the exact integer product times the scales; with ``activations=8``
        the exact int32 product of the int8 codes times the scales.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.network import quantize
        >>> rng = np.random.default_rng(0)
        >>> state = {"fc.weight": rng.normal(size=(8, 64)).astype(np.float32),
        ...          "fc.bias": np.zeros(8, np.float32)}
        >>> net = quantize(state, [{"match": "*.weight", "method": "q4_0"}])
        >>> fc = net.layer("fc.weight", activations=8)
        >>> fc
        Linear(in_features=64, out_features=8, weights=4, activations=8, group_size=32)
        >>> x = rng.normal(size=(2, 64)).astype(np.float32)
        >>> bool(np.array_equal(fc.weight, net["fc.weight"]))
        True
        >>> y = fc(x)  # int8 activations times the packed 4-bit codes
        >>> bool(np.allclose(y, x @ net["fc.weight"].T, atol=0.1))
        True
        """
        from ._layers import build_layer

        if name not in self._records:
            raise KeyError(f"{name!r} is not a tensor of this network")
        rec = self._records[name]
        conv = {
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
            "data_format": data_format,
        }
        if len(rec.shape) != 4:  # only the options that differ from Conv2d's defaults
            default = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "data_format": "NCHW"}
            conv = {k: v for k, v in conv.items() if v is not default[k]}
        return build_layer(rec, self._bias_for(name, bias), activations, conv, n_threads)

    def to_nn(
        self,
        names: list[str] | None = None,
        *,
        activations: Literal["binary", "ternary", 8] | None = None,
        conv: dict[str, dict[str, Any]] | None = None,
        n_threads: int | None = None,
    ) -> dict[str, Linear | Conv2d]:
        """The network's weights as :mod:`qtoolkit.nn` layers, keyed by module name.

        Parameters
        ----------
        names : list of str, optional
            The weights to convert. Default: every quantized tensor with 2
            (Linear) or 4 (Conv2d) axes; tensors kept in floating point may be
            listed and give float32 layers.
        activations : {None, "binary", "ternary", 8}, default=None
            Run-time activation mode of every layer.
        conv : dict, optional
            Per 4-D weight name, the options of its :class:`qtoolkit.nn.Conv2d`
            (``stride``, ``padding``, ``dilation``, ``groups``,
            ``data_format``); weights not listed get the defaults.
        n_threads : int, optional
            Threads of the kernels.

        Returns
        -------
        layers : dict of str to qtoolkit.nn.Linear or qtoolkit.nn.Conv2d
            Keyed by the weight's name without ``.weight`` (``"fc1"`` for
            ``"fc1.weight"``), in checkpoint order, each with its bias
            ``<stem>.bias`` when the network has one (see :meth:`layer`).

        Raises
        ------
        ValueError
            If a name is not a tensor of the network, two weights give the
            same key, a ``conv`` entry names no 4-D weight, or a tensor cannot
            become a layer (see :meth:`layer`; the message names it).
        TypeError
            If ``names`` or ``conv`` has the wrong type or ``conv`` an unknown
            option.

        See Also
        --------
        layer : One weight, with all the options.
        dequantize : The float state dict.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.network import quantize
        >>> rng = np.random.default_rng(0)
        >>> state = {"fc1.weight": rng.normal(size=(32, 64)).astype(np.float32),
        ...          "fc1.bias": np.zeros(32, np.float32),
        ...          "fc2.weight": rng.normal(size=(10, 32)).astype(np.float32)}
        >>> net = quantize(state, [{"match": "*.weight", "method": "uniform",
        ...                         "params": {"bits": 4, "axis": 0}}])
        >>> layers = net.to_nn()
        >>> list(layers)
        ['fc1', 'fc2']
        >>> x = rng.normal(size=(5, 64)).astype(np.float32)
        >>> y = layers["fc2"](np.maximum(layers["fc1"](x), 0))
        >>> w = net.dequantize()
        >>> ref = np.maximum(x @ w["fc1.weight"].T + w["fc1.bias"], 0) @ w["fc2.weight"].T
        >>> bool(np.allclose(y, ref, rtol=1e-5, atol=1e-5))
        True
        """
        from ._layers import check_conv_options

        if names is None:
            names = [
                n for n, r in self._records.items() if r.kind != "raw" and len(r.shape) in (2, 4)
            ]
        elif isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"names must be a list of tensor names, got {describe(names)}")
        names = list(names)
        for n in names:
            if n not in self._records:
                raise ValueError(f"{n!r} is not a tensor of this network")
        if conv is None:
            conv = {}
        if not isinstance(conv, dict):
            raise TypeError(f"conv must be a dict of weight name to options, got {describe(conv)}")
        for key in conv:
            rec = self._records.get(key)
            if rec is None or len(rec.shape) != 4 or key not in names:
                raise ValueError(
                    f"conv names {key!r}, which is not one of the 4-D weights converted"
                )
        layers = {}
        for n in names:
            stem = n[: -len(".weight")] if n.endswith(".weight") else n
            if stem in layers:
                raise ValueError(f"two weights give the layer name {stem!r}")
            opts = check_conv_options(n, conv[n]) if n in conv else {}
            layers[stem] = self.layer(n, activations=activations, n_threads=n_threads, **opts)
        return layers

    def save(self, path: PathLike, format: Literal["safetensors", "gguf"] = "safetensors") -> str:
        """Write the packed network to one file (atomically: a temporary file, then a rename).

        Parameters
        ----------
        path : str or os.PathLike
            Destination file.
        format : {"safetensors", "gguf"}, default="safetensors"
            ``"safetensors"``: densely packed codes, scales, zero points and
            codebooks with a versioned JSON header (read back by :func:`load`).
            ``"gguf"``: llama.cpp's format; tensors quantized with ``"q8_0"``,
            ``"q4_0"``, ``"q4_1"``, ``"tq1_0"`` or ``"tq2_0"`` map to those GGUF
            types, tensors kept in floating point are stored as they are.

        Returns
        -------
        path : str
            The path written.

        Raises
        ------
        ValueError
            If ``format`` is unknown, or (GGUF) a tensor's method has no GGUF type.

        See Also
        --------
        load : Read a packed ``.safetensors`` network.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from qtoolkit.network import load, quantize
        >>> w = np.linspace(-1, 1, 256, dtype=np.float32).reshape(4, 64)
        >>> net = quantize({"fc.weight": w}, [{"match": "*", "method": "uniform",
        ...                                     "params": {"bits": 4, "axis": 0}}])
        >>> path = net.save(os.path.join(tempfile.mkdtemp(), "net.safetensors"))
        >>> bool(np.array_equal(load(path)["fc.weight"], net["fc.weight"]))
        True
        """
        from ._format import save_gguf, save_safetensors

        if format == "safetensors":
            return save_safetensors(path, self._records, self.report)
        if format == "gguf":
            return save_gguf(path, self._records)
        raise ValueError(f"format must be 'safetensors' or 'gguf', got {format!r}")


def _source_for(ck, name, client):
    if ck.path is not None:
        return ck.path
    return client.scatter(ck.get(name), hash=False)


def _run_dask(client, ck, jobs, progress):
    """Run ``jobs`` [(name, options, stats)] on Dask, a few in flight per worker."""
    from dask.distributed import as_completed

    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = 2 * n_workers
    token = uuid.uuid4().hex[:8]
    results = {}
    pending = list(jobs)
    futures = as_completed()
    index = {}

    def submit():
        name, options, stats = pending.pop(0)
        fut = client.submit(
            _task,
            _source_for(ck, name, client),
            name,
            options,
            stats,
            key=f"qtoolkit-network-{token}-{len(index)}",
            retries=2,
        )
        index[fut.key] = name
        futures.add(fut)

    for _ in range(min(window, len(pending))):
        submit()
    for fut in futures:
        name = index[fut.key]
        results[name] = fut.result()
        fut.release()
        progress.step(name)
        if pending:
            submit()
    return results


def _check_budget(budget):
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.number)):
        raise TypeError(f"budget must be a number of bits per weight, got {describe(budget)}")
    budget = float(budget)
    if not math.isfinite(budget) or budget <= 0:
        raise ValueError(f"budget must be a positive number of bits per weight, got {budget}")
    return budget


def _check_scheduler(scheduler):
    if scheduler is None:
        return None
    if not (hasattr(scheduler, "submit") and hasattr(scheduler, "scatter")):
        raise TypeError(
            f"scheduler must be None or a dask.distributed.Client, got {describe(scheduler)}"
        )
    return scheduler


def _blocks(seq, names):
    """Split the quantized ``names`` into the blocks of a Sequential calibration."""
    from ._recipe import Rule

    if seq.blocks is None:
        return [[n] for n in names]
    left, out = list(names), []
    for b in seq.blocks:
        pats = [
            Rule(-1, {"match": p, "method": "skip"})
            for p in (b if isinstance(b, (list, tuple)) else [b])
        ]
        block = [n for n in left if any(p.matches(n) for p in pats)]
        left = [n for n in left if n not in block]
        if block:
            out.append(block)
    if left:
        out.append(left)
    return out


def quantize(
    checkpoint: Mapping[str, ArrayLike] | PathLike,
    recipe: list[dict[str, Any]] | str,
    *,
    calibration: Mapping[str, Any]
    | Callable[[str], Any]
    | PathLike
    | Calibration
    | Sequential
    | None = None,
    budget: float | None = None,
    scheduler: Any = None,
    progress: bool = False,
) -> QuantizedNetwork:
    """Quantize every tensor of a network by a recipe; return the packed network and its report.

    Parameters
    ----------
    checkpoint : mapping or str or os.PathLike
        Names to arrays (NumPy, or anything with DLPack: a PyTorch
        ``state_dict()``, JAX arrays), or a path to a ``.safetensors`` file
        (read tensor by tensor from a memory map, so the file may exceed
        memory) or an ``.npz``.
    recipe : list of dict, or str
        Ordered rules ``{"match": "<glob or re:regex>", "method": "<name>",
        "params": {...}}``, or a path to a JSON file of that list. ``method``
        is a registry quantizer (:func:`qtoolkit.rounding.available_quantizers`),
        ``"gptq"``, ``"adaround"``, ``"awq"`` (need calibration; AWQ uses the
        streamed mean :math:`|x|` as well), ``"rtn"``, ``"hqq"`` (params of the
        :mod:`qtoolkit.optimize` function of that name, including ``rotate=True``
        with an int seed ``rng`` and GPTQ's ``grid="optimal"``), ``"kmeans"`` (params
        ``bits`` or ``n_clusters`` and those of :func:`qtoolkit.codebooks.kmeans_1d`),
        ``"hessian_kmeans"`` (the same, weighted by the Hessian diagonal; needs
        calibration), ``"pq"`` (params of :class:`qtoolkit.codebooks.ProductQuantizer`),
        ``"q8_0"``, ``"q4_0"``, ``"q4_1"``, ``"tq1_0"``, ``"tq2_0"`` (llama.cpp's
        block formats, exportable to GGUF) or ``"skip"``. A rule may instead
        (or as well) list ``"candidates": [{"method": ..., "params": ...}, ...]``
        for the budget. The first matching rule applies; 1-D tensors, biases,
        embeddings and norms are kept in floating point unless the rule names
        the tensor literally or sets ``"force": true``.
    calibration : optional
        Inputs of the layers, each ``(n_samples, n_features)`` with
        ``n_features`` the weight's inputs (all but its first axis): a mapping
        of weight name to an array or an iterable of batches, a callable
        ``name -> array`` (None or ``KeyError`` when a layer has none), a
        path to an ``.npz``, a :class:`Calibration` or a :class:`Sequential`.
        Only ``XᵀX`` is kept, batch by batch.
    budget : float, optional
        Average bits per weight, over the quantized tensors and counting
        scales and codebooks, for the rules with ``"candidates"``: the
        choice of every such tensor minimises the total error (see Notes).
    scheduler : dask.distributed.Client, optional
        Run the per-tensor work as Dask tasks (each worker reads its tensor
        from the checkpoint file); the result equals the serial one bit for bit.
    progress : bool, default=False
        Print a progress bar over the tensors on standard error.

    Returns
    -------
    network : QuantizedNetwork
        Packed records, ``.report``, ``.dequantize()``, ``.save()``.

    Raises
    ------
    ValueError
        For a bad recipe (naming the rule), a method that fails on a tensor
        (naming both), calibration of the wrong shape, a budget below the
        cheapest configuration. :class:`CheckpointError` (a ValueError) for
        an unreadable or corrupt file.
    TypeError
        For arguments of the wrong type.

    See Also
    --------
    load : Read a saved network.
    allocate, pareto : The budget's knapsack.

    Notes
    -----
    The error of a candidate is the layer-output error
    :math:`\\operatorname{tr}(\\Delta W\\, H\\, \\Delta W^\\top)` with
    :math:`H = X^\\top X / n` when the layer has calibration inputs, else
    :math:`\\|\\Delta W\\|_F^2`; the budget solves the multiple-choice knapsack
    exactly (:func:`allocate`) and ``report.pareto`` holds the whole curve.

    References
    ----------
    .. [1] E. Frantar, S. Ashkboos, T. Hoefler, D. Alistarh, "GPTQ", ICLR 2023.
    .. [2] Z. Dong, Z. Yao, A. Gholami, M. W. Mahoney, K. Keutzer, "HAWQ: Hessian
       AWare Quantization of Neural Networks with Mixed-Precision", ICCV 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.network import quantize
    >>> rng = np.random.default_rng(0)
    >>> state = {"fc1.weight": rng.normal(size=(8, 64)), "fc1.bias": np.zeros(8)}
    >>> net = quantize(state, [{"match": "*.weight", "method": "uniform",
    ...                         "params": {"bits": 4, "axis": 0}}])
    >>> [(r["name"], r["method"]) for r in net.report.rows]
    [('fc1.weight', 'uniform'), ('fc1.bias', 'float')]
    >>> net.report.recipe["unmatched"]
    ['fc1.bias']
    """
    rules = load_recipe(recipe)
    budget = _check_budget(budget)
    client = _check_scheduler(scheduler)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {progress!r}")
    cal = open_calibration(calibration)
    if isinstance(cal, Sequential) and client is not None:
        raise ValueError("Sequential calibration runs in this process: pass scheduler=None")
    ck = open_checkpoint(checkpoint)
    try:
        return _quantize(ck, rules, cal, budget, client, progress)
    finally:
        if ck is not checkpoint:
            ck.close()


def _quantize(ck, rules, cal, budget, client, progress):
    shapes = {name: ck.shape(name) for name in ck.names}
    p = plan(rules, shapes)
    if budget is not None and not any(
        p.rule[n] is not None and p.rule[n].candidates and p.reason[n] is None for n in ck.names
    ):
        raise ValueError("budget needs at least one tensor matched by a rule with 'candidates'")
    opts = {}
    for name in ck.names:
        if p.reason[name] is None:
            opts[name] = _options(p.rule[name], budget)
        else:
            opts[name] = [("skip", {})]
    bar = _Progress(len(ck.names), progress)
    results = {}

    def stats_of(name, source):
        if p.reason[name] is not None or source is None:
            return None
        return stats_for(source, name, n_inputs(shapes[name]))

    if isinstance(cal, Sequential):
        state = {name: ck.get(name) for name in ck.names}
        todo = [n for n in ck.names if p.reason[n] is None]
        for block in _blocks(cal, todo):
            inputs = cal.forward(dict(state))
            for name in block:
                results[name] = _work(name, state[name], opts[name], stats_of(name, inputs))
            for name in block:  # the next forward pass sees this block quantized
                state[name] = (
                    dequantize_record(results[name][0][0]) if len(opts[name]) == 1 else state[name]
                )
                bar.step(name)
        for name in ck.names:
            if name not in results:
                results[name] = _work(name, state[name], opts[name], None)
                bar.step(name)
    elif client is not None:
        # tensors kept in floating point are copied by this process, which holds them in the
        # result anyway: a task would only read, serialise and send them back
        kept = {name for name in ck.names if opts[name] == [("skip", {})]}
        jobs = [(name, opts[name], stats_of(name, cal)) for name in ck.names if name not in kept]
        results = _run_dask(client, ck, jobs, bar)
        for name in ck.names:
            if name in kept:
                results[name] = _work(name, ck.get(name), opts[name], None)
                bar.step(name)
    else:
        for name in ck.names:
            results[name] = _work(name, ck.get(name), opts[name], stats_of(name, cal))
            bar.step(name)

    chosen = dict.fromkeys(ck.names, 0)
    pareto_info = None
    if budget is not None:
        chosen, pareto_info = _allocate(ck.names, results, p, budget)
    records, rows = {}, []
    for name in ck.names:
        rec, (rel_w, rel_o, _) = results[name][chosen[name]]
        records[name] = rec
        kept = rec.method == "skip"
        note = p.reason[name] or ""
        if name in p.multiple:
            note = (note + "; " if note else "") + f"also matched rules {p.multiple[name][1:]}"
        rows.append(
            {
                "name": name,
                "shape": list(rec.shape),
                "method": "float" if kept else rec.method,
                "bits_per_weight": 8 * rec.nbytes / rec.size if rec.size else 0.0,
                "weight_error": rel_w,
                "output_error": rel_o,
                "bytes_before": int(rec.size * np.dtype(rec.dtype).itemsize),
                "bytes_after": rec.nbytes,
                "seconds": sum(r.seconds for r, _ in results[name]),
                "note": note,
            }
        )
    recipe_info = {"unmatched": list(p.unmatched), "multiple": dict(p.multiple)}
    return QuantizedNetwork(records, Report(rows, recipe_info, pareto_info))


def _allocate(names, results, p, budget):
    """Exact knapsack over the tensors with candidates; fixed tensors count against the budget."""
    quantized = [n for n in names if p.reason[n] is None]
    free = [n for n in quantized if len(results[n]) > 1]
    n_weights = sum(results[n][0][0].size for n in quantized)
    fixed_bits = sum(8 * results[n][0][0].nbytes for n in quantized if n not in free)
    errors = [[e[2] for _, e in results[n]] for n in free]
    costs = [[8 * r.nbytes for r, _ in results[n]] for n in free]
    total = math.floor(budget * n_weights) - fixed_bits
    low = sum(min(c) for c in costs)
    if total < low:
        raise ValueError(
            f"budget {budget} bits per weight is below the smallest configuration "
            f"({(low + fixed_bits) / n_weights:.4f} bits per weight)"
        )
    a = allocate(errors, costs, total)
    curve = pareto(errors, costs)
    fixed_err = sum(results[n][0][1][2] for n in quantized if n not in free)
    chosen = dict.fromkeys(names, 0)
    chosen.update({n: int(c) for n, c in zip(free, a.choice)})
    info = {
        "bits_per_weight": [(int(c) + fixed_bits) / n_weights for c in curve.cost],
        "error": [float(e) + fixed_err for e in curve.error],
        "budget": budget,
        "chosen": [(a.cost + fixed_bits) / n_weights, a.error + fixed_err],
        "exact": bool(a.exact and curve.exact),
        "tensors": free,
        "choices": {n: [results[n][k][0].method for k in range(len(results[n]))] for n in free},
    }
    return chosen, info
