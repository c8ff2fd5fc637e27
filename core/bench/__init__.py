"""Benchmarks: metrics and the runners that score the engines on rendered ground-truth scenes.

Kept light on purpose: importing ``core.bench`` pulls in nothing heavy. Import the
submodules explicitly:

- ``core.bench.metrics``: Sim(3) Umeyama alignment, ATE, accuracy / completeness,
  F-score, ICP refinement (numpy + scipy only); ``semantic_metrics``: mIoU / mAcc.
- ``core.bench.run`` (``ov3r bench``): an engine on the test suite or other room sets.
- ``core.bench.peer``: the product's geometry beside plain pycolmap on the same videos.
- ``core.bench.speed``: input frames per second and peak memory, per stage.

The scenes themselves (layouts, trajectories, Cycles renders) come from ``core.scenegen``.
"""

__all__ = ["metrics", "run", "peer", "speed"]
