"""The tests of what the render extra brings: Blender renders (bpy) and the anomaly engine
(manifold3d, pymeshlab), plus the pure render helpers (regions, coverage, EXR passes, texture
prefiltering). They need ``pip install -e ".[render,ray,test]"``; the tests one folder up need only
the core (``pip install -e ".[test]"``; run them alone with ``pytest --ignore=tests/render``).
"""

# bpy must load before pymeshlab in one process (both ship libembree4.so.4; whichever loads first
# wins the soname, and bpy needs its newer one). pytest imports this file while collecting, before
# any test runs, and no core test imports pymeshlab.
import brokenchairs.blender_scripts  # noqa: F401
