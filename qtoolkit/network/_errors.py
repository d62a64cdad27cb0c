"""The one error type of the files that :mod:`qtoolkit.network` reads."""


class CheckpointError(ValueError):
    """A checkpoint, packed network or calibration file is unreadable, corrupt or inconsistent.

    Raised by :func:`qtoolkit.network.load`, by :func:`qtoolkit.network.quantize`
    when it reads a path, and by the ``qtoolkit quantize`` command. It is a
    :class:`ValueError`, so code that catches bad input in general keeps working.

    See Also
    --------
    load : Read a packed network.

    Examples
    --------
    >>> from qtoolkit.network import CheckpointError, load
    >>> try:
    ...     load("no-such-file.safetensors")
    ... except CheckpointError as err:
    ...     print("cannot read" in str(err))
    True
    """
