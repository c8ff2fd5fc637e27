"""Operators (bpy.types.Operator classes). Submodules import bpy; this file does not."""


def _modules():
    from . import align_scale, cancel, deps, export, import_scene, import_video, isolate, label, proxies, query

    return (import_video, import_scene, cancel, query, label, isolate, proxies, align_scale, export, deps)


def register() -> None:
    for mod in _modules():
        mod.register()


def unregister() -> None:
    for mod in reversed(_modules()):
        mod.unregister()
