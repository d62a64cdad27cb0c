"""The single source of qtoolkit's version (read by ``pyproject.toml`` and the package)."""

__version__ = "0.1.0"
