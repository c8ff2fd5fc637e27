"""UI: the sidebar "Ov3R" tab and the File > Import entries. Submodules import bpy."""


def register() -> None:
    from . import import_menu, scan_panels, sidebar

    sidebar.register()
    scan_panels.register()
    import_menu.register()


def unregister() -> None:
    from . import import_menu, scan_panels, sidebar

    import_menu.unregister()
    scan_panels.unregister()
    sidebar.unregister()
