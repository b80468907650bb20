"""The only package that imports bpy (Blender as a Python module).

bpy must be imported before pymeshlab in a process: pymeshlab ships an older libembree4 whose
symbols shadow Blender's (ImportError: undefined symbol rtcGetSceneTraversable). Importing this
package imports bpy at once, so entry points that need both import it first. bpy comes with the
``render`` extra (``pip install "brokenchairs[render]"``); without it, importing this package says so.
"""

import sys

if "pymeshlab" in sys.modules and "bpy" not in sys.modules:
    raise ImportError(
        "brokenchairs.blender_scripts must be imported before pymeshlab (their Embree libraries clash); "
        "import brokenchairs.blender_scripts at the start of the process"
    )

try:
    import bpy  # noqa: E402,F401  (imported first on purpose, see above)
except ModuleNotFoundError as exc:
    if exc.name != "bpy":
        raise
    from brokenchairs.extras import RENDER_INSTALL

    raise ModuleNotFoundError(f"No module named 'bpy': Blender comes with the render extra, {RENDER_INSTALL}",
                              name="bpy") from exc
