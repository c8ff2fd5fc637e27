"""UI: the sidebar "Ov3R" tab and the File > Import entries. Submodules import bpy."""


def register() -> None:
    from . import import_menu, sidebar

    sidebar.register()
    import_menu.register()


def unregister() -> None:
    from . import import_menu, sidebar

    import_menu.unregister()
    sidebar.unregister()
