"""Reading ``.npz`` archives from untrusted sources without trusting their contents.

``numpy.load`` reads a member in full as soon as it is indexed, whatever its
declared size; a forged header can ask for terabytes, a small deflated member
can inflate to gigabytes, and a truncated or garbage archive raises any of a
dozen exception types. :class:`NpzReader` instead

- lists the members from the zip directory (names, declared uncompressed
  sizes) without reading any data;
- reads each member's ``.npy`` header on its own (``numpy.lib.format``),
  rejects object, structured and sub-array dtypes, and checks that the
  header's shape and dtype account exactly for the member's declared size;
- lets the caller check the shape and dtype against what the rest of the
  file says they must be *before* a single byte of data is read or allocated;
- reads the data into one buffer of exactly the declared size;
- turns every failure into one exception type chosen by the caller (a
  ``ValueError`` subclass) whose message names the member and the problem.
"""

import math
import os
import zipfile
import zlib

import numpy as np

__all__ = ["NpzReader"]

_MAX_HEADER = 4096  # bytes of .npy header; numpy writes < 200 for our members
_MAX_MEMBERS = 256
_MAX_TEXT = 1 << 16  # characters of a string member (class names, JSON parameters)

# failures of the zip / deflate / npy layers that mean "the file is corrupt"
_CORRUPT = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,  # unsupported compression method
    RuntimeError,  # encrypted member
    UnicodeDecodeError,
    ValueError,
    OverflowError,
    KeyError,
    SyntaxError,  # malformed header dictionary
)


def _source_name(file):
    if isinstance(file, (str, os.PathLike)):
        return repr(os.fspath(file))
    return f"the {type(file).__name__} given"


def _starts_with_npy_magic(file):
    try:
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as f:
                head = f.read(6)
        else:
            pos = file.tell()
            file.seek(0)
            head = file.read(6)
            file.seek(pos)
    except (OSError, ValueError, AttributeError):
        return False
    return head == b"\x93NUMPY"


class NpzReader:
    """A read-only view of an ``.npz`` archive that validates before it allocates.

    Parameters
    ----------
    file : str, os.PathLike or binary file object
        The archive.
    error : type
        The exception raised for every malformed input (a ``ValueError``
        subclass).

    Notes
    -----
    A path that does not exist raises the usual ``OSError``; everything that
    is wrong with the bytes raises ``error``.
    """

    def __init__(self, file, error):
        self.error = error
        self.name = _source_name(file)
        if not isinstance(file, (str, os.PathLike)) and not hasattr(file, "read"):
            raise TypeError(
                f"file must be a path or a binary file object, got {type(file).__name__}"
            )
        try:
            self._zip = zipfile.ZipFile(file, "r")
        except OSError:
            if isinstance(file, (str, os.PathLike)):
                raise
            raise self.fail("cannot be read") from None
        except _CORRUPT as exc:
            if _starts_with_npy_magic(file):
                raise self.fail("holds a single array (.npy), not an .npz archive") from None
            raise self.fail(f"is not a readable .npz file ({type(exc).__name__}: {exc})") from None
        infos = self._zip.infolist()
        if len(infos) > _MAX_MEMBERS:
            self.close()
            raise self.fail(f"has {len(infos)} members (at most {_MAX_MEMBERS} expected)")
        self.members = {}
        for info in infos:
            key = info.filename[:-4] if info.filename.endswith(".npy") else None
            if key is None or key in self.members:
                self.close()
                raise self.fail(f"has an unexpected member {info.filename[:80]!r}")
            self.members[key] = info

    def fail(self, what):
        """The caller's exception, with a message about this file."""
        return self.error(f"{self.name} {what}")

    def close(self):
        """Close the archive."""
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __contains__(self, key):
        return key in self.members

    def _open(self, key):
        if key not in self.members:
            raise self.fail(f"lacks the member {key!r}")
        try:
            return self._zip.open(self.members[key])
        except _CORRUPT as exc:
            raise self.fail(f"has a corrupt member {key!r} ({type(exc).__name__})") from None

    def header(self, key):
        """``(shape, dtype, fortran_order)`` of member ``key``, read from its header only.

        The header's shape and dtype must account exactly for the member's
        declared uncompressed size, so nothing later can read past it.
        """
        fp = self._open(key)
        try:
            return self._header(fp, key)
        finally:
            fp.close()

    def _header(self, fp, key):
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                    fp, max_header_size=_MAX_HEADER
                )
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    fp, max_header_size=_MAX_HEADER
                )
            else:
                raise self.fail(f"member {key!r} has .npy version {version}")
            start = fp.tell()
        except self.error:
            raise
        except _CORRUPT as exc:
            raise self.fail(
                f"member {key!r} has no valid .npy header ({type(exc).__name__}: {exc})"
            ) from None
        dtype = np.dtype(dtype)
        if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None:
            raise self.fail(f"member {key!r} has the unsupported dtype {dtype}")
        if dtype.kind not in "biufcUS" or (dtype.itemsize == 0 and dtype.kind not in "US"):
            raise self.fail(f"member {key!r} has the unsupported dtype {dtype}")
        if not all(isinstance(s, int) and s >= 0 for s in shape):
            raise self.fail(f"member {key!r} has an invalid shape {shape!r}")
        nbytes = math.prod(shape) * dtype.itemsize
        declared = self.members[key].file_size - start
        if nbytes != declared:
            raise self.fail(
                f"member {key!r} declares {declared} data bytes but its header "
                f"(shape {shape}, dtype {dtype}) needs {nbytes}"
            )
        return tuple(shape), dtype, bool(fortran)

    def read(self, key, check=None):
        """Read member ``key`` as an ndarray (writeable, native byte order).

        ``check(shape, dtype)`` is called with the header's values before any
        data is read; it raises the caller's error for a shape or dtype the
        file must not hold.
        """
        fp = self._open(key)
        try:
            shape, dtype, fortran = self._header(fp, key)
            if check is not None:
                check(shape, dtype)
            nbytes = math.prod(shape) * dtype.itemsize
            buf = bytearray(nbytes)
            view = memoryview(buf)
            got = 0
            try:
                while got < nbytes:
                    n = fp.readinto(view[got : got + (1 << 24)])
                    if not n:
                        break
                    got += n
            except _CORRUPT as exc:
                raise self.fail(f"has a corrupt member {key!r} ({type(exc).__name__})") from None
            if got != nbytes:
                raise self.fail(f"member {key!r} is truncated ({got} of {nbytes} bytes)")
        finally:
            fp.close()
        arr = np.frombuffer(buf, dtype=dtype)
        if dtype.kind not in "US":
            arr = arr.reshape(shape, order="F" if fortran else "C")
            if not dtype.isnative:
                arr = arr.astype(dtype.newbyteorder("="))
        else:
            arr = arr.reshape(shape, order="F" if fortran else "C")
        return arr

    def scalar(self, key, kinds, what):
        """A 0-d member of a dtype kind in ``kinds``, as a Python value."""

        def check(shape, dtype):
            if shape != () or dtype.kind not in kinds:
                raise self.fail(f"has {key!r} of shape {shape} and dtype {dtype}, expected {what}")
            if dtype.kind in "US" and dtype.itemsize > 4 * _MAX_TEXT:
                raise self.fail(f"has a {key!r} field of {dtype.itemsize} bytes, expected {what}")

        value = self.read(key, check)[()]
        if isinstance(value, bytes):
            try:
                value = value.decode("ascii")
            except UnicodeDecodeError:
                raise self.fail(f"has a non-ASCII {key!r} field") from None
        return value.item() if isinstance(value, np.generic) else value
