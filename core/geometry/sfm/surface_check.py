"""Matching costs along a given surface (a planar prior beside the fronto-parallel plane sweep).

The fronto-parallel plane sweep warps a neighbour onto planes facing the camera, so a floor or a wall
seen at a grazing angle never matches its window (the window spans many depths) and stays unmeasured
even where it is textured (a wooden floor, a rug, a poster). Given the room's box, every pixel has one
depth hypothesis: where its ray leaves the room. Warping each neighbour by that per-pixel depth is exact
for whatever lies on the box, so its window matches at any slant. Copies of the box scaled about the
camera (each pixel's depth times a factor below 1) are the alternatives: a pixel that matches on the box
about as well as on any nearer copy is taken to lie on it; one a nearer copy explains clearly better
(something standing in front) is not. At short baselines an object a little in front of a wall still
half-matches on the wall, so the caller keeps a stricter measurement's veto (planar_fill).
"""

from __future__ import annotations

import numpy as np
import torch

from .plane_sweep import best_k_costs, to_gray, window_std


def box_factors(near: float, num: int) -> np.ndarray:
    """(num,) factors from ``near`` to one step beyond 1, uniform in inverse depth, with 1 itself at index num-2."""
    inv = np.linspace(1.0 / near, 1.0, num - 1)
    step = inv[-2] - inv[-1]
    return (1.0 / np.append(inv, 1.0 - step)).astype(np.float32)


def surface_costs(ref_image: np.ndarray, src_images: list[np.ndarray], K: np.ndarray, ref_world_from_cam: np.ndarray,
                  src_world_from_cam: list[np.ndarray], depth: np.ndarray, factors: np.ndarray, radius: int = 3,
                  best_k: int = 2, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Matching cost of the reference at each factor of ``depth``, and its windows' texture.

    ref_image, src_images: (H,W,3) uint8, one K (3,3); *_world_from_cam: (4,4) OpenCV;
    depth: (H,W) float32 surface hypothesis (inf or 0 where none); factors: (F,).
    Returns cost (F,H,W) float32, 1 - ZNCC in [0,2] averaged over the best ``best_k`` sources (1 where there
    is no hypothesis), and the grey standard deviation (H,W) float32 (0-1) of the reference's windows.
    """
    ref = to_gray(ref_image).to(device)
    finite = np.isfinite(depth) & (depth > 0)
    base = np.where(finite, depth, 1.0).astype(np.float32)
    hyp = np.asarray(factors, np.float32)[:, None, None] * base[None]  # (F,H,W)
    with torch.no_grad():
        cost = best_k_costs(ref, src_images, K, ref_world_from_cam, src_world_from_cam, hyp, radius, best_k, device)
        std = window_std(ref, radius)
    cost = cost.cpu().numpy().astype(np.float32)
    cost[:, ~finite] = 1.0
    return cost, std.cpu().numpy().astype(np.float32)
