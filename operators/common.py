"""Shared by the scan operators: the poll for "the active object is an Ov3R scan"."""

from __future__ import annotations

import bpy

from ..ov3r_addon import blend_storage


def active_scan(context: bpy.types.Context) -> bpy.types.Object | None:
    obj = context.active_object
    return obj if blend_storage.info(obj) is not None else None


def poll_scan(cls, context: bpy.types.Context, modes: tuple[str, ...] = ("OBJECT",)) -> bool:
    obj = context.active_object
    if blend_storage.info(obj) is None:
        cls.poll_message_set("The active object is not an Ov3R scan")
        return False
    if obj.mode not in modes:
        cls.poll_message_set(f"Only in {' or '.join(m.title() for m in modes)} Mode")
        return False
    return True


class ScanPoll:
    """Mixin: the operator runs on an active Ov3R scan in one of ``poll_modes``."""

    poll_modes: tuple[str, ...] = ("OBJECT",)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_scan(cls, context, cls.poll_modes)
