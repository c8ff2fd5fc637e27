"""The few places where Blender's Python API differs between the supported versions
(4.2 LTS to 5.3). Each helper detects the feature on the object it is given rather than
comparing version numbers, so a point release that back-ports an API needs no change here.

- Geometry Nodes modifier inputs: up to 5.1 they are ID properties on the modifier
  (``mod["Socket_0"]``); from 5.2 they are RNA structs (``mod.properties.inputs.Socket_0.value``)
  and the modifier no longer takes ID properties at all.
- Action F-curves: up to 4.3 ``action.fcurves``; from 4.4 (slotted actions) they live in the
  channel bag of the animation data's slot, and ``action.fcurves`` is gone from 5.0.
- Materials: ``use_nodes`` must be switched on before 5.0; from 5.0 it is always on (deprecated).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import bpy


def _rna_inputs(mod: bpy.types.NodesModifier) -> Any | None:
    """The modifier's input structs (5.2+), or None where inputs are ID properties."""
    props = getattr(mod, "properties", None)
    return getattr(props, "inputs", None) if props is not None else None


def has_modifier_input(mod: bpy.types.NodesModifier, identifier: str) -> bool:
    inputs = _rna_inputs(mod)
    if inputs is not None:
        return getattr(inputs, identifier, None) is not None
    return identifier in mod.keys()


def get_modifier_input(mod: bpy.types.NodesModifier, identifier: str) -> Any:
    """The value of the group input ``identifier`` (e.g. "Socket_1") on this modifier."""
    inputs = _rna_inputs(mod)
    if inputs is not None:
        item = getattr(inputs, identifier, None)
        if item is None:
            raise KeyError(identifier)
        return item.value
    return mod[identifier]


def set_modifier_input(mod: bpy.types.NodesModifier, identifier: str, value: Any) -> None:
    inputs = _rna_inputs(mod)
    if inputs is not None:
        item = getattr(inputs, identifier, None)
        if item is None:
            raise KeyError(identifier)
        item.value = value
    else:
        mod[identifier] = value


def action_fcurves(anim_data: bpy.types.AnimData | None) -> Iterable[bpy.types.FCurve]:
    """The F-curves that animate ``anim_data``'s owner (empty when it has no action)."""
    action = anim_data.action if anim_data is not None else None
    if action is None:
        return ()
    slot = getattr(anim_data, "action_slot", None)
    if slot is not None:
        from bpy_extras import anim_utils

        bag = anim_utils.action_get_channelbag_for_slot(action, slot)
        return bag.fcurves if bag is not None else ()
    return getattr(action, "fcurves", ())


def find_fcurve(anim_data: bpy.types.AnimData | None, data_path: str, index: int = 0) -> bpy.types.FCurve | None:
    for curve in action_fcurves(anim_data):
        if curve.data_path == data_path and curve.array_index == index:
            return curve
    return None


def enable_material_nodes(mat: bpy.types.Material) -> None:
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True


def draw_modifier_input(layout: bpy.types.UILayout, mod: bpy.types.NodesModifier, identifier: str,
                        text: str) -> None:
    """A UI field that edits the modifier's group input ``identifier``."""
    inputs = _rna_inputs(mod)
    if inputs is not None:
        layout.prop(getattr(inputs, identifier), "value", text=text)
    else:
        layout.prop(mod, f'["{identifier}"]', text=text)
