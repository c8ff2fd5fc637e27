"""Blender-side glue that is not UI: properties, preferences, the job runner and the
SemanticScene -> Blender object builder. Submodules import bpy; this file does not."""


def register() -> None:
    from . import job_runner, preferences, properties, scan_props

    properties.register()
    scan_props.register()
    preferences.register()
    job_runner.register()


def unregister() -> None:
    from . import job_runner, preferences, properties, query_client, scan_props

    job_runner.unregister()
    query_client.shutdown()
    preferences.unregister()
    scan_props.unregister()
    properties.unregister()
