"""Ov3R engine: video -> SemanticScene. Never imports bpy.

Imported either as the top-level package ``core`` (the worker, started with the
extension folder on PYTHONPATH) or as ``ov3r.core`` / ``bl_ext.<repo>.ov3r.core``;
every import inside it is therefore relative.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
