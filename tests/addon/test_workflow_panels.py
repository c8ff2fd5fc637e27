"""The sidebar panels of a scan draw (recorded layout calls): query field + Select, the
threshold with the live count, the saved-queries list, the legend with colour swatches,
the tools and export buttons; and they do not show for other objects."""

from __future__ import annotations

import pytest
from conftest import bpy
from ov3r.ov3r_addon import query_client
from test_workflow_common import LABELS, build, use_stand_in

pytestmark = pytest.mark.blender_matrix  # also run in every supported Blender (make test-blender)


class _Recorder:
    def __init__(self, calls):
        self.calls = calls

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self

        return call


def _draw(panel_cls):
    calls = []
    panel = type("P", (), {"layout": _Recorder(calls)})()
    panel_cls.draw(panel, bpy.context)
    return calls


@pytest.fixture(autouse=True)
def stand_in(registered_addon):
    use_stand_in()
    yield
    query_client.set_encoder_override(None)


def test_scan_panels_draw():
    from ov3r.panels import scan_panels as sp

    obj = build()
    obj.ov3r_scan.vocabulary = ", ".join(LABELS)
    assert bpy.ops.ov3r.label_all(wait=True) == {"FINISHED"}
    assert bpy.ops.ov3r.query_select(text="sofa", threshold=0.95, wait=True) == {"FINISHED"}
    for cls in (sp.VIEW3D_PT_ov3r_query, sp.VIEW3D_PT_ov3r_labels, sp.VIEW3D_PT_ov3r_tools, sp.VIEW3D_PT_ov3r_export):
        assert cls.poll(bpy.context)
    q = _draw(sp.VIEW3D_PT_ov3r_query)
    ops = [c[1][0] for c in q if c[0] == "operator"]
    assert ops[:1] == ["ov3r.query_select"] and {"ov3r.query_save", "ov3r.query_run_saved"} <= set(ops)
    assert any(c[0] == "label" and c[2].get("text") == "'sofa': 200 points, 1 segments" for c in q)
    assert any(c[0] == "template_list" and c[1][0] == "OV3R_UL_saved_queries" for c in q)
    labels = _draw(sp.VIEW3D_PT_ov3r_labels)
    assert any(c[0] == "operator" and c[1][0] == "ov3r.label_all" for c in labels)
    assert any(c[0] == "template_list" and c[1][0] == "OV3R_UL_legend" for c in labels)
    # The legend rows: a colour swatch + the name + the count.
    legend_calls = []
    sp.OV3R_UL_legend.draw_item(None, bpy.context, _Recorder(legend_calls), None, obj.ov3r_scan.legend[0],
                                0, None, "")
    assert any(c[0] == "prop" and c[1][1] == "color" for c in legend_calls)
    assert any(c[0] == "label" and c[2].get("text") == "sofa" for c in legend_calls)
    tools = [c[1][0] for c in _draw(sp.VIEW3D_PT_ov3r_tools) if c[0] == "operator"]
    assert {"ov3r.isolate", "ov3r.make_proxies", "ov3r.align_scene", "ov3r.set_scale"} <= set(tools)
    export = [c[1][0] for c in _draw(sp.VIEW3D_PT_ov3r_export) if c[0] == "operator"]
    assert export == ["ov3r.export_ply", "ov3r.export_gltf"]
    cam = bpy.data.objects[obj["ov3r"]["camera"]]
    bpy.context.view_layer.objects.active = cam
    assert not sp.VIEW3D_PT_ov3r_query.poll(bpy.context)
