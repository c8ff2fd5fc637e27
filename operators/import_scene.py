"""File > Import > Ov3R Scene (.ov3r.npz): build objects from a saved SemanticScene,
no worker involved."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core.scene import SceneFormatError, load_scene
from ..ov3r_addon import scene_builder


class OV3R_OT_import_scene(bpy.types.Operator, ImportHelper):
    """Import a SemanticScene file written by the Ov3R engine"""

    bl_idname = "ov3r.import_scene"
    bl_label = "Import Ov3R Scene"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.ov3r.npz", options={"HIDDEN"})
    point_size: FloatProperty(name="Point Size", default=0.01, min=0.0, soft_max=0.1, subtype="DISTANCE")
    align: BoolProperty(name="Align to Floor", default=True,
                        description="Floor on Z=0 (up = +Z), main walls along X / Y")

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = bpy.path.abspath(self.filepath)
        try:
            scene = load_scene(path)
        except SceneFormatError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if self.align:
            from ..core.scene.align import auto_align

            scene, why = auto_align(scene)
            if why:
                self.report({"WARNING"}, f"Ov3R: not aligned ({why})")
        meta_video = (scene.metadata.get("video") or {}).get("path") or ""
        built = scene_builder.build_scene(
            scene, video_path=meta_video, scene_path=path, point_size=self.point_size, bl_scene=context.scene
        )
        scene_builder.make_active(built.points_object(), context.view_layer)
        self.report({"INFO"}, f"Ov3R: imported {len(scene)} points, {len(scene.cameras)} keyframes")
        return {"FINISHED"}


def register() -> None:
    bpy.utils.register_class(OV3R_OT_import_scene)


def unregister() -> None:
    bpy.utils.unregister_class(OV3R_OT_import_scene)
