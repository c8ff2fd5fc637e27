"""Property groups: the running job's state (window manager, not saved) and the
import settings (scene, saved with the .blend)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

ENGINE_ITEMS = [
    ("sfm", "Structure from Motion", "Classical pycolmap SfM + dense stereo on the CPU (no weights)"),
    ("clip3r", "CLIP3R", "The learned point-map network of the Ov3R paper (needs weights)"),
]


class OV3R_PG_job(bpy.types.PropertyGroup):
    """What the sidebar shows about the import that is running (or just ended)."""

    running: BoolProperty(name="Running", default=False)
    stage: StringProperty(name="Stage", default="")
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    message: StringProperty(name="Message", default="")
    error: StringProperty(name="Last Error", default="")
    warning: StringProperty(name="Last Warning", default="", description="What the last import could not place")
    video: StringProperty(name="Video", default="", subtype="FILE_PATH")


class OV3R_PG_import_settings(bpy.types.PropertyGroup):
    engine: EnumProperty(name="Engine", items=ENGINE_ITEMS, default="sfm")
    max_frames: IntProperty(
        name="Max Frames", default=0, min=0, soft_max=2000, description="Keyframes to use at most (0 = automatic)"
    )
    max_side: IntProperty(
        name="Max Side",
        default=0,
        min=0,
        soft_max=4096,
        subtype="PIXEL",
        description="Downscale frames so their longer side is at most this (0 = automatic)",
    )
    point_size: FloatProperty(
        name="Point Size", default=0.01, min=0.0, soft_max=0.1, subtype="DISTANCE", description="Radius of each point"
    )
    align: BoolProperty(
        name="Align to Floor", default=True,
        description="Put the floor on Z=0 (up = +Z) and the main walls along X / Y on import",
    )


CLASSES = (OV3R_PG_job, OV3R_PG_import_settings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.ov3r_job = PointerProperty(type=OV3R_PG_job)
    bpy.types.Scene.ov3r_settings = PointerProperty(type=OV3R_PG_import_settings)


def unregister() -> None:
    del bpy.types.Scene.ov3r_settings
    del bpy.types.WindowManager.ov3r_job
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
