"""qtoolkit.codebooks."""
__all__ = []
