"""qtoolkit.rounding."""
__all__ = []
