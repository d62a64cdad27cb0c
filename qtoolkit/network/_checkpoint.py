"""Checkpoints in: a mapping of arrays, a ``.safetensors`` file (tensor by tensor), a ``.npz``."""

import math
import os
import zipfile
from collections.abc import Mapping

import numpy as np

from .._array import describe
from ._errors import CheckpointError

FLOAT_KINDS = "f"
SLICE_BYTES = 1 << 23  # the part of a .safetensors file mapped at a time while a tensor is read


def to_numpy(value, name):
    """A NumPy view (or copy) of one tensor: NumPy, DLPack (PyTorch, JAX...) or array_like."""
    if isinstance(value, np.ndarray):
        return value
    detach = getattr(value, "detach", None)
    if callable(detach):  # a torch tensor that requires grad cannot be exported through DLPack
        value = detach()
    if hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except (TypeError, RuntimeError, BufferError, ValueError):
            to = getattr(value, "float", None)  # e.g. torch bfloat16 has no NumPy dtype
            if callable(to):
                try:
                    return np.from_dlpack(to())
                except (TypeError, RuntimeError, BufferError, ValueError):
                    pass
    try:
        arr = np.asarray(value)
    except Exception as err:
        raise TypeError(
            f"checkpoint[{name!r}] must be an array (NumPy, DLPack or array_like), "
            f"got {describe(value)}"
        ) from err
    if arr.dtype == object:
        raise TypeError(f"checkpoint[{name!r}] must be a numeric array, got {describe(value)}")
    return arr


class Checkpoint:
    """Tensor-by-tensor access to a checkpoint; ``get`` reads one tensor at a time."""

    def __init__(self, names, getter, shaper, path=None, closer=None):
        self.names = list(names)
        self._get = getter
        self._shape = shaper
        self.path = path
        self._close = closer

    def shape(self, name):
        """The shape of one tensor, without reading its values where the format allows."""
        try:
            return tuple(int(s) for s in self._shape(name))
        except CheckpointError:
            raise
        except Exception as err:
            raise CheckpointError(
                f"cannot read the shape of {name!r} in {self.path}: {err}"
            ) from err

    def get(self, name):
        try:
            arr = self._get(name)
        except CheckpointError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise CheckpointError(f"cannot read tensor {name!r} of {self.path}: {err}") from err
        arr = to_numpy(arr, name)
        if arr.dtype.kind not in "fiub":
            raise CheckpointError(
                f"tensor {name!r} of {self.path or 'the checkpoint'} has unsupported dtype "
                f"{arr.dtype}"
            )
        return arr

    def close(self):
        if self._close is not None:
            self._close()
            self._close = None


def _open_safetensors(path):
    from safetensors import safe_open

    try:
        handle = safe_open(path, framework="numpy")
        names = list(handle.keys())
    except Exception as err:
        raise CheckpointError(f"cannot read {path} as a safetensors file: {err}") from err

    def get(name):
        # Row slices of about SLICE_BYTES, each through a map of its own that is unmapped once
        # the slice is copied out: the pages read stay in the page cache but leave this
        # process's resident set, which then holds the tensor plus one slice of the file.
        try:
            shape = handle.get_slice(name).get_shape()
            rows = shape[0] if shape else 0
            row_bytes = 8 * math.prod(shape[1:])  # an upper bound of the itemsize
            per = max(1, SLICE_BYTES // max(1, row_bytes))
            if rows <= per:
                with safe_open(path, framework="numpy") as own:
                    return own.get_tensor(name)
            out = None
            for r0 in range(0, rows, per):
                with safe_open(path, framework="numpy") as own:
                    part = own.get_slice(name)[r0 : r0 + per]
                if out is None:
                    out = np.empty(tuple(shape), dtype=part.dtype)
                out[r0 : r0 + per] = part
                del part
            return out
        except Exception as err:
            raise CheckpointError(f"cannot read tensor {name!r} of {path}: {err}") from err

    def shape(name):
        return handle.get_slice(name).get_shape()

    return Checkpoint(names, get, shape, path, None)


def _open_npz(path):
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:
        raise CheckpointError(f"cannot read {path} as an .npz file: {err}") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path} is a single .npy array, not an .npz archive of named arrays")

    def get(name):
        try:
            return data[name]
        except Exception as err:
            raise CheckpointError(f"cannot read tensor {name!r} of {path}: {err}") from err

    def shape(name):
        with data.zip.open(name + ".npy") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                return np.lib.format.read_array_header_1_0(fh)[0]
            return np.lib.format.read_array_header_2_0(fh)[0]

    return Checkpoint(data.files, get, shape, path, data.close)


def open_checkpoint(checkpoint):
    """A :class:`Checkpoint` from a mapping or a path (``.safetensors`` or ``.npz``)."""
    if isinstance(checkpoint, Checkpoint):
        return checkpoint
    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        if not os.path.isfile(path):
            raise CheckpointError(f"cannot read checkpoint {path!r}: no such file")
        if path.endswith(".safetensors"):
            return _open_safetensors(path)
        if path.endswith(".npz"):
            return _open_npz(path)
        raise ValueError(f"checkpoint path must end in '.safetensors' or '.npz', got {path!r}")
    if isinstance(checkpoint, Mapping):
        for key in checkpoint:
            if not isinstance(key, str):
                raise TypeError(f"checkpoint names must be strings, got {key!r}")

        def shape(name):
            value = checkpoint[name]
            return value.shape if hasattr(value, "shape") else np.shape(value)

        return Checkpoint(list(checkpoint), checkpoint.__getitem__, shape, None, None)
    raise TypeError(
        "checkpoint must be a mapping of names to arrays or a path to a .safetensors or "
        f".npz file, got {describe(checkpoint)}"
    )
