"""Ov3R for Blender: an RGB room video -> a coloured point cloud with its camera path.

Inside Blender this package is ``bl_ext.<repo>.ov3r``; every import is relative and
happens inside ``register()`` so that importing the package root is cheap and does not
need bpy (the engine in ``core/`` is also imported in plain Python).
"""


def register() -> None:
    from . import operators, ov3r_addon, panels

    ov3r_addon.register()
    operators.register()
    panels.register()


def unregister() -> None:
    from . import operators, ov3r_addon, panels

    panels.unregister()
    operators.unregister()
    ov3r_addon.unregister()
