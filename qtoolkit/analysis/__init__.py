"""qtoolkit.analysis."""
__all__ = []
