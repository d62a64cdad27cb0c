"""qtoolkit.optimize."""
__all__ = []
