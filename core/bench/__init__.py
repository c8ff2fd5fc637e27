"""Benchmarks: synthetic ground-truth scenes rendered with Blender and geometry metrics.

Kept light on purpose: importing ``core.bench`` pulls in nothing heavy. Import the
submodules explicitly:

- ``core.bench.metrics``: Sim(3) Umeyama alignment, ATE, accuracy / completeness,
  F-score, ICP refinement (numpy + scipy only).
- ``core.bench.orbit``: renders a textured room-corner "orbit" video with Cycles
  through the ``bpy`` module (bpy is imported only inside its functions).
"""

__all__ = ["metrics", "orbit"]
