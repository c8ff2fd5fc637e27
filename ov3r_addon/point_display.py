"""How points look: a Geometry Nodes group "Mesh to Points" with a point-size input and
a material that shows the ``color`` attribute. Both are built in Python and reused.

The group's "Display" input picks what the shading colour is: 0 = the scan's ``color``,
1 = ``query_score`` through a colour ramp (points under the "Threshold" input greyed),
2 = ``label_color`` (written by Label All). Changing the display or the threshold only
sets a modifier input: no per-point data is written.
"""

from __future__ import annotations

import bpy

from . import compat

NODE_GROUP_NAME = "Ov3R Points"
MATERIAL_NAME = "Ov3R Point Color"
MODIFIER_NAME = "Ov3R Points"
POINT_SIZE_SOCKET = "Point Size"
DISPLAY_SOCKET = "Display"
THRESHOLD_SOCKET = "Threshold"
DISPLAY_MODES = {"COLOR": 0, "SCORE": 1, "LABEL": 2}
SCORE_ATTR = "query_score"
LABEL_COLOR_ATTR = "label_color"
GROUP_VERSION = 2  # bump when the node tree changes: older files are rebuilt in place
SHADING_COLOR = "ov3r_color"  # float copy of ``color`` on the evaluated points, read by the material
_MARK = "ov3r_builtin"  # custom property marking our own datablocks


def point_material() -> bpy.types.Material:
    mat = bpy.data.materials.get(MATERIAL_NAME)
    if mat is not None and mat.get(_MARK):
        return mat
    mat = bpy.data.materials.new(MATERIAL_NAME)
    mat[_MARK] = 1
    compat.enable_material_nodes(mat)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    out.location = (300, 0)
    # Emission: a scan's colours are already lit, so they render the same in any lighting.
    emit = nodes.new("ShaderNodeEmission")
    emit.location = (0, 0)
    attr = nodes.new("ShaderNodeAttribute")
    attr.location = (-300, 0)
    attr.attribute_type = "GEOMETRY"
    attr.attribute_name = SHADING_COLOR
    links.new(attr.outputs["Color"], emit.inputs["Color"])
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def points_node_group() -> bpy.types.GeometryNodeTree:
    group = bpy.data.node_groups.get(NODE_GROUP_NAME)
    if group is not None and group.get(_MARK):
        if int(group.get("ov3r_version", 1)) < GROUP_VERSION:
            _build_group(group)  # a file from an older version: same datablock, new nodes
        return group
    group = bpy.data.node_groups.new(NODE_GROUP_NAME, "GeometryNodeTree")
    group[_MARK] = 1
    _build_group(group)
    return group


def _socket(group: bpy.types.NodeTree, name: str, in_out: str, socket_type: str):
    for item in group.interface.items_tree:
        if item.item_type == "SOCKET" and item.in_out == in_out and item.name == name:
            return item
    return group.interface.new_socket(name=name, in_out=in_out, socket_type=socket_type)


def _build_group(group: bpy.types.GeometryNodeTree) -> None:
    """(Re)build the nodes; sockets are only added (modifier values keyed by them survive)."""
    group["ov3r_version"] = GROUP_VERSION
    _socket(group, "Geometry", "INPUT", "NodeSocketGeometry")
    size = _socket(group, POINT_SIZE_SOCKET, "INPUT", "NodeSocketFloat")
    size.default_value = 0.01
    size.min_value = 0.0
    size.max_value = 10.0
    size.subtype = "DISTANCE"
    size.description = "Radius of each point"
    mode = _socket(group, DISPLAY_SOCKET, "INPUT", "NodeSocketInt")
    mode.default_value, mode.min_value, mode.max_value = 0, 0, 2
    mode.description = "0 = scan colour, 1 = query score, 2 = label"
    thr = _socket(group, THRESHOLD_SOCKET, "INPUT", "NodeSocketFloat")
    thr.default_value, thr.min_value, thr.max_value = 0.3, -1.0, 1.0
    thr.description = "Query score under which points are greyed"
    _socket(group, "Geometry", "OUTPUT", "NodeSocketGeometry")

    nodes, links = group.nodes, group.links
    nodes.clear()
    gin = nodes.new("NodeGroupInput")
    gin.location = (-900, 0)
    to_points = nodes.new("GeometryNodeMeshToPoints")
    to_points.location = (-150, 0)
    to_points.mode = "VERTICES"
    set_mat = nodes.new("GeometryNodeSetMaterial")
    set_mat.location = (300, 0)
    set_mat.inputs["Material"].default_value = point_material()
    gout = nodes.new("NodeGroupOutput")
    gout.location = (500, 0)
    links.new(gin.outputs["Geometry"], to_points.inputs["Mesh"])
    links.new(gin.outputs[POINT_SIZE_SOCKET], to_points.inputs["Radius"])

    def named(name: str, data_type: str, y: float) -> bpy.types.Node:
        node = nodes.new("GeometryNodeInputNamedAttribute")
        node.location = (-700, y)
        node.data_type = data_type
        node.inputs["Name"].default_value = name
        return node

    # Cycles reads no BYTE_COLOR attribute on point clouds: store a float copy for shading.
    read_col = named("color", "FLOAT_COLOR", -200)
    read_score = named(SCORE_ATTR, "FLOAT", -400)
    read_label = named(LABEL_COLOR_ATTR, "FLOAT_COLOR", -600)
    # Score: ramp over [threshold, 1]; under the threshold the scan colour, dimmed to grey.
    rng = nodes.new("ShaderNodeMapRange")
    rng.location = (-500, -400)
    links.new(read_score.outputs["Attribute"], rng.inputs["Value"])
    links.new(gin.outputs[THRESHOLD_SOCKET], rng.inputs["From Min"])
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.location = (-320, -400)
    els = ramp.color_ramp.elements
    els[0].color, els[1].color = (1.0, 0.85, 0.1, 1.0), (0.9, 0.05, 0.05, 1.0)
    links.new(rng.outputs["Result"], ramp.inputs["Fac"])
    grey = nodes.new("ShaderNodeMix")
    grey.location = (-320, -200)
    grey.data_type = "RGBA"
    grey.inputs["Factor"].default_value = 0.8
    grey.inputs["B"].default_value = (0.08, 0.08, 0.1, 1.0)
    links.new(read_col.outputs["Attribute"], grey.inputs["A"])
    above = nodes.new("FunctionNodeCompare")
    above.location = (-500, -650)
    above.data_type, above.operation = "FLOAT", "GREATER_EQUAL"
    links.new(read_score.outputs["Attribute"], above.inputs["A"])
    links.new(gin.outputs[THRESHOLD_SOCKET], above.inputs["B"])
    pick = nodes.new("ShaderNodeMix")
    pick.location = (-150, -400)
    pick.data_type = "RGBA"
    links.new(above.outputs["Result"], pick.inputs["Factor"])
    links.new(grey.outputs["Result"], pick.inputs["A"])
    links.new(ramp.outputs["Color"], pick.inputs["B"])
    switch = nodes.new("GeometryNodeIndexSwitch")
    switch.location = (0, -250)
    switch.data_type = "RGBA"
    switch.index_switch_items.new()
    links.new(gin.outputs[DISPLAY_SOCKET], switch.inputs["Index"])
    links.new(read_col.outputs["Attribute"], switch.inputs[1])
    links.new(pick.outputs["Result"], switch.inputs[2])
    links.new(read_label.outputs["Attribute"], switch.inputs[3])
    store = nodes.new("GeometryNodeStoreNamedAttribute")
    store.location = (100, 0)
    store.data_type = "FLOAT_COLOR"
    store.domain = "POINT"
    store.inputs["Name"].default_value = SHADING_COLOR
    links.new(to_points.outputs["Points"], store.inputs["Geometry"])
    links.new(switch.outputs["Output"], store.inputs["Value"])
    links.new(store.outputs["Geometry"], set_mat.inputs["Geometry"])
    links.new(set_mat.outputs["Geometry"], gout.inputs["Geometry"])


def _identifier(group: bpy.types.NodeTree, name: str) -> str:
    for item in group.interface.items_tree:
        if item.item_type == "SOCKET" and item.in_out == "INPUT" and item.name == name:
            return item.identifier
    raise KeyError(name)


def set_display(obj: bpy.types.Object, mode: str, threshold: float | None = None) -> None:
    """Show the scan colour / query score / labels ("COLOR", "SCORE", "LABEL")."""
    mod = points_modifier(obj)
    if mod is None:
        return
    points_node_group()  # upgrade an older group first
    compat.set_modifier_input(mod, _identifier(mod.node_group, DISPLAY_SOCKET), DISPLAY_MODES[mode])
    if threshold is not None:
        compat.set_modifier_input(mod, _identifier(mod.node_group, THRESHOLD_SOCKET), float(threshold))
    obj.update_tag()


def get_display(obj: bpy.types.Object) -> tuple[int, float] | None:
    mod = points_modifier(obj)
    if mod is None:
        return None
    group = mod.node_group
    return (int(compat.get_modifier_input(mod, _identifier(group, DISPLAY_SOCKET))),
            float(compat.get_modifier_input(mod, _identifier(group, THRESHOLD_SOCKET))))


def point_size_identifier(group: bpy.types.NodeTree) -> str:
    for item in group.interface.items_tree:
        if item.item_type == "SOCKET" and item.in_out == "INPUT" and item.name == POINT_SIZE_SOCKET:
            return item.identifier
    raise KeyError(POINT_SIZE_SOCKET)


def add_points_modifier(obj: bpy.types.Object, point_size: float) -> bpy.types.NodesModifier:
    mod = obj.modifiers.get(MODIFIER_NAME) or obj.modifiers.new(MODIFIER_NAME, "NODES")
    mod.node_group = points_node_group()
    set_point_size(obj, point_size)
    return mod


def points_modifier(obj: bpy.types.Object | None) -> bpy.types.NodesModifier | None:
    if obj is None:
        return None
    mod = obj.modifiers.get(MODIFIER_NAME)
    return mod if mod is not None and mod.type == "NODES" and mod.node_group is not None else None


def set_point_size(obj: bpy.types.Object, size: float) -> None:
    mod = points_modifier(obj)
    if mod is not None:
        compat.set_modifier_input(mod, point_size_identifier(mod.node_group), float(size))
        obj.update_tag()


def get_point_size(obj: bpy.types.Object) -> float | None:
    mod = points_modifier(obj)
    return float(compat.get_modifier_input(mod, point_size_identifier(mod.node_group))) if mod is not None else None


def remove_unused() -> None:
    """Drop our shared node group and material once no object uses them (after a failed or
    cancelled import nothing of ours may stay in the file)."""
    group = bpy.data.node_groups.get(NODE_GROUP_NAME)
    if group is not None and group.get(_MARK) and group.users == 0:
        bpy.data.node_groups.remove(group)
    mat = bpy.data.materials.get(MATERIAL_NAME)
    if mat is not None and mat.get(_MARK) and mat.users == 0:
        bpy.data.materials.remove(mat)
