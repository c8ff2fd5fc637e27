"""Exports that need no Blender (PLY with attributes, labelled PLY + labels JSON)."""

from .labels import labels_document, labels_json_path, read_labels_json, write_labelled_ply, write_labels_json
from .ply import read_ply_vertices, write_ply

__all__ = ["labels_document", "labels_json_path", "read_labels_json", "read_ply_vertices", "write_labelled_ply",
           "write_labels_json", "write_ply"]
