"""qtoolkit.gradients."""
__all__ = []
