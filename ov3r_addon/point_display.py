"""How points look: a Geometry Nodes group "Mesh to Points" with a point-size input and
a material that shows the ``color`` attribute. Both are built in Python and reused."""

from __future__ import annotations

import bpy

NODE_GROUP_NAME = "Ov3R Points"
MATERIAL_NAME = "Ov3R Point Color"
MODIFIER_NAME = "Ov3R Points"
POINT_SIZE_SOCKET = "Point Size"
SHADING_COLOR = "ov3r_color"  # float copy of ``color`` on the evaluated points, read by the material
_MARK = "ov3r_builtin"  # custom property marking our own datablocks


def point_material() -> bpy.types.Material:
    mat = bpy.data.materials.get(MATERIAL_NAME)
    if mat is not None and mat.get(_MARK):
        return mat
    mat = bpy.data.materials.new(MATERIAL_NAME)
    mat[_MARK] = 1
    if bpy.app.version < (5, 0, 0):  # always on (and deprecated) from 5.0
        mat.use_nodes = True
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
        return group
    group = bpy.data.node_groups.new(NODE_GROUP_NAME, "GeometryNodeTree")
    group[_MARK] = 1
    iface = group.interface
    iface.new_socket(name="Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    size = iface.new_socket(name=POINT_SIZE_SOCKET, in_out="INPUT", socket_type="NodeSocketFloat")
    size.default_value = 0.01
    size.min_value = 0.0
    size.max_value = 10.0
    size.subtype = "DISTANCE"
    size.description = "Radius of each point"
    iface.new_socket(name="Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")

    nodes, links = group.nodes, group.links
    gin = nodes.new("NodeGroupInput")
    gin.location = (-400, 0)
    to_points = nodes.new("GeometryNodeMeshToPoints")
    to_points.location = (-150, 0)
    to_points.mode = "VERTICES"
    set_mat = nodes.new("GeometryNodeSetMaterial")
    set_mat.location = (100, 0)
    set_mat.inputs["Material"].default_value = point_material()
    gout = nodes.new("NodeGroupOutput")
    gout.location = (350, 0)
    links.new(gin.outputs["Geometry"], to_points.inputs["Mesh"])
    links.new(gin.outputs[POINT_SIZE_SOCKET], to_points.inputs["Radius"])
    # Cycles reads no BYTE_COLOR attribute on point clouds: store a float copy for shading.
    read_col = nodes.new("GeometryNodeInputNamedAttribute")
    read_col.location = (-150, -200)
    read_col.data_type = "FLOAT_COLOR"
    read_col.inputs["Name"].default_value = "color"
    store = nodes.new("GeometryNodeStoreNamedAttribute")
    store.location = (-150, 200)
    store.data_type = "FLOAT_COLOR"
    store.domain = "POINT"
    store.inputs["Name"].default_value = SHADING_COLOR
    links.new(to_points.outputs["Points"], store.inputs["Geometry"])
    links.new(read_col.outputs["Attribute"], store.inputs["Value"])
    links.new(store.outputs["Geometry"], set_mat.inputs["Geometry"])
    links.new(set_mat.outputs["Geometry"], gout.inputs["Geometry"])
    return group


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
        mod[point_size_identifier(mod.node_group)] = float(size)
        obj.update_tag()


def get_point_size(obj: bpy.types.Object) -> float | None:
    mod = points_modifier(obj)
    return float(mod[point_size_identifier(mod.node_group)]) if mod is not None else None


def remove_unused() -> None:
    """Drop our shared node group and material once no object uses them (after a failed or
    cancelled import nothing of ours may stay in the file)."""
    group = bpy.data.node_groups.get(NODE_GROUP_NAME)
    if group is not None and group.get(_MARK) and group.users == 0:
        bpy.data.node_groups.remove(group)
    mat = bpy.data.materials.get(MATERIAL_NAME)
    if mat is not None and mat.get(_MARK) and mat.users == 0:
        bpy.data.materials.remove(mat)
