"""Operators (bpy.types.Operator classes). Submodules import bpy; this file does not."""


def _modules():
    from . import cancel, import_scene, import_video

    return (import_video, import_scene, cancel)


def register() -> None:
    for mod in _modules():
        mod.register()


def unregister() -> None:
    for mod in reversed(_modules()):
        mod.unregister()
