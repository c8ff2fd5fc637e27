"""Blender-side glue that is not UI: properties, preferences, the job runner and the
SemanticScene -> Blender object builder. Submodules import bpy; this file does not."""


def register() -> None:
    from . import job_runner, preferences, properties

    properties.register()
    preferences.register()
    job_runner.register()


def unregister() -> None:
    from . import job_runner, preferences, properties

    job_runner.unregister()
    preferences.unregister()
    properties.unregister()
