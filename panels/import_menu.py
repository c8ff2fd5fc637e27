"""File > Import entries."""

from __future__ import annotations

import bpy


def draw_import_entries(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator("ov3r.import_video", text="Video as Ov3R Scene (.mp4, .mov, ...)")
    self.layout.operator("ov3r.import_scene", text="Ov3R Scene (.ov3r.npz)")


def register() -> None:
    bpy.types.TOPBAR_MT_file_import.append(draw_import_entries)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(draw_import_entries)
