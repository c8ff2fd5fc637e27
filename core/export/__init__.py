"""Exports that need no Blender (PLY with attributes)."""

from .ply import read_ply_vertices, write_ply

__all__ = ["read_ply_vertices", "write_ply"]
