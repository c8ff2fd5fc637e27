"""Plane-sweep multi-view stereo for one reference view (torch, CPU or CUDA).

Fronto-parallel planes in the reference camera, sampled uniformly in inverse depth.
Each source image is warped onto every plane with one ``grid_sample`` call; the cost is
1 - ZNCC over a square window computed with box filters; sources are combined by the
mean of the best ``k`` (robust to occlusion); winner-take-all with parabolic
sub-sample refinement; confidence from the ZNCC score and the cost-curve peak ratio.

Pixel convention: the centre of pixel (i, j) is at (j + 0.5, i + 0.5) (COLMAP), which is
exactly ``grid_sample(align_corners=False)``'s convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class SweepResult:
    """depth: (H,W) float32, 0 where invalid; confidence: (H,W) float32 in [0,1]."""

    depth: np.ndarray
    confidence: np.ndarray


def to_gray(image: np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 RGB -> (1,1,H,W) float32 in [0,1]."""
    g = image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114
    return torch.from_numpy(np.ascontiguousarray(g, np.float32) / 255.0)[None, None]


def pixel_rays(K: np.ndarray, h: int, w: int) -> torch.Tensor:
    """(3,H*W) rays K^-1 [u,v,1] at pixel centres (z = 1)."""
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    pix = np.stack([u.ravel(), v.ravel(), np.ones(h * w)], 0)
    return torch.from_numpy((np.linalg.inv(K) @ pix).astype(np.float32))


def inverse_depth_samples(dmin: float, dmax: float, num: int) -> np.ndarray:
    """(D,) depths from near to far, uniform in inverse depth."""
    return (1.0 / np.linspace(1.0 / dmin, 1.0 / dmax, num)).astype(np.float32)


def _window_counts(n: int, r: int, like: torch.Tensor) -> torch.Tensor:
    """(n,) on ``like``'s device and dtype: how many of the 2r+1 window positions around each index
    fall inside [0, n)."""
    i = torch.arange(n, device=like.device)
    return (torch.clamp(i + r + 1, max=n) - torch.clamp(i - r, min=0)).to(like.dtype)


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window; x: (B,1,H,W). Border windows average what is inside.

    Separable running sums (a cumulative sum, then one difference of two shifted views per axis) and one
    division by the in-image window size: the same means as ``avg_pool2d(..., count_include_pad=False)``.
    Two passes over the volume per axis instead of 2r+1 shifted slices (1.5x faster on the CPU, where the
    box sums are a third of the dense stage). On images in [0, 1] at the sweep's working size the float32
    running sums keep the means and variances within ~4e-6 of float64's (docs/experiments/geometry.md).
    """
    k, (H, W) = 2 * r + 1, x.shape[-2:]
    c = F.pad(x, (r + 1, r, 0, 0)).cumsum_(-1)
    rows = c[..., k:] - c[..., :W]
    c = F.pad(rows, (0, 0, r + 1, r)).cumsum_(-2)
    out = c[..., k:, :] - c[..., :H, :]
    counts = _window_counts(H, r, x)[:, None] * _window_counts(W, r, x)[None, :]
    return out.div_(counts)


def warp_to_planes(
    src: torch.Tensor, K_ref: np.ndarray, K_src: np.ndarray, src_from_ref: np.ndarray,
    depths: np.ndarray, h: int, w: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp a source image onto every depth plane of the reference view.

    src: (1,C,Hs,Ws); src_from_ref: (4,4); depths: (D,) fronto-parallel planes, or (D,H,W) one depth
    per pixel (any surface, e.g. the room's box; inf = a point at infinity).
    Returns warped (D,C,H,W) and in-bounds mask (D,1,H,W) bool.
    """
    dev = src.device
    rays = pixel_rays(K_ref, h, w).to(dev)  # (3,HW)
    R = torch.from_numpy(src_from_ref[:3, :3].astype(np.float32)).to(dev)
    t = torch.from_numpy(src_from_ref[:3, 3].astype(np.float32)).to(dev)
    Ks = torch.from_numpy(K_src.astype(np.float32)).to(dev)
    inv = 1.0 / torch.from_numpy(np.ascontiguousarray(depths, np.float32)).to(dev)
    num = depths.shape[0]
    inv = inv[:, None] if inv.ndim == 1 else inv.reshape(num, h * w)  # (D,1) or (D,HW)
    # Projection is linear in (ray, 1/d): x_s ~ Ks (R ray + t / d), so no per-depth 3D points; each image
    # coordinate is one (D,HW) plane, written straight into the sampling grid.
    a = Ks @ (R @ rays)  # (3,HW)
    b = Ks @ t  # (3,)
    z = a[2] + inv * b[2]  # (D,HW); the product first: a broadcast addcmul is several times slower on the CPU
    ok = z > 1e-6
    rz = torch.where(ok, z, 1.0).reciprocal_()
    hs, ws = src.shape[-2:]
    grid = torch.empty(num, h * w, 2, device=dev)
    for c, size in ((0, ws), (1, hs)):
        g = (a[c] + inv * b[c]).mul_(rz).mul_(2.0 / size).sub_(1.0)
        ok &= g.abs() <= 1.0
        grid[..., c] = g
    warped = F.grid_sample(src, grid.reshape(1, num * h, w, 2), mode="bilinear", padding_mode="border",
                           align_corners=False)
    warped = warped.reshape(src.shape[1], num, h, w).transpose(0, 1)
    return warped, ok.reshape(num, 1, h, w)


def zncc_cost(ref: torch.Tensor, warped: torch.Tensor, valid: torch.Tensor, radius: int) -> torch.Tensor:
    """1 - ZNCC in [0,2] per pixel and plane; ref (1,1,H,W), warped (D,1,H,W) -> (D,H,W).

    Pixels whose window is textureless or falls outside the source get cost 1 (no evidence).
    """
    mu_r = _box(ref, radius)
    var_r = (_box(ref * ref, radius) - mu_r * mu_r).clamp_min_(0)
    # In-place arithmetic on the (D,1,H,W) volumes: fewer large allocations on the CPU.
    mu_w = _box(warped, radius)
    var_w = _box(warped * warped, radius).sub_(mu_w * mu_w).clamp_min_(0)
    cov = _box(ref * warped, radius).sub_(mu_w.mul_(mu_r))
    eps = 1e-5
    invalid = ~valid | (var_w <= eps)
    ncc = cov.mul_(var_w.mul_(var_r).add_(eps * eps).rsqrt_()).clamp_(-1, 1)
    return ncc.neg_().add_(1.0).masked_fill_(invalid, 1.0)[:, 0]


def best_k_costs(ref: torch.Tensor, src_images: list[np.ndarray], K: np.ndarray, ref_world_from_cam: np.ndarray,
                 src_world_from_cam: list[np.ndarray], depths: np.ndarray, radius: int, best_k: int,
                 device: str | torch.device, src_K: list[np.ndarray] | None = None) -> torch.Tensor:
    """1 - ZNCC (D,H,W) of the reference (1,1,H,W) with each source warped onto ``depths`` ((D,) planes or
    (D,H,W) per pixel, as ``warp_to_planes``), averaged over the best ``best_k`` sources (occlusion)."""
    h, w = ref.shape[-2:]
    costs = []
    for s, (img, wfc) in enumerate(zip(src_images, src_world_from_cam)):
        src_from_ref = np.linalg.inv(wfc) @ ref_world_from_cam
        Ks = K if src_K is None else src_K[s]
        warped, ok = warp_to_planes(to_gray(img).to(device), K, Ks, src_from_ref, depths, h, w)
        costs.append(zncc_cost(ref, warped, ok, radius))
        del warped
    return mean_of_smallest(costs, best_k)


def mean_of_smallest(costs: list[torch.Tensor], k: int) -> torch.Tensor:
    """Elementwise mean of the ``k`` smallest of ``costs`` (S tensors of one shape; all of them when S <= k).
    For k = 2 (the default) a running pair of minima (a few elementwise passes, no (S,...) stack): topk along
    the stacked first axis was a tenth of the dense stage."""
    k = min(k, len(costs))
    if k != 2:
        return torch.stack(costs, 0).topk(k, dim=0, largest=False).values.mean(0)
    low, second = torch.minimum(costs[0], costs[1]), torch.maximum(costs[0], costs[1])
    for c in costs[2:]:
        second = torch.minimum(second, torch.maximum(low, c))
        low = torch.minimum(low, c)
    return low.add_(second).mul_(0.5)


def window_std(ref: torch.Tensor, radius: int) -> torch.Tensor:
    """(H,W) grey standard deviation of the reference's (1,1,H,W) windows: a textureless one matches anything."""
    return (_box(ref * ref, radius) - _box(ref, radius) ** 2).clamp_min(0).sqrt()[0, 0]


def plane_sweep(
    ref_image: np.ndarray,
    src_images: list[np.ndarray],
    K: np.ndarray,
    ref_world_from_cam: np.ndarray,
    src_world_from_cam: list[np.ndarray],
    depth_range: tuple[float, float],
    num_depths: int = 64,
    radius: int = 3,
    best_k: int = 2,
    min_texture_std: float = 0.01,
    device: str | torch.device = "cpu",
    src_K: list[np.ndarray] | None = None,
) -> SweepResult:
    """Depth and confidence of the reference view.

    ref_image: (H,W,3) uint8; src_images: S x (H,W,3) uint8 (same K unless ``src_K``).
    K: (3,3) of the reference (and of the sources when ``src_K`` is None; a rectified stereo
    pair's right camera has its own principal point); *_world_from_cam: (4,4) OpenCV;
    depth_range: (near, far) > 0.
    """
    depths = inverse_depth_samples(depth_range[0], depth_range[1], num_depths)
    ref = to_gray(ref_image).to(device)
    with torch.no_grad():
        cost = best_k_costs(ref, src_images, K, ref_world_from_cam, src_world_from_cam, depths, radius, best_k,
                            device, src_K)
        depth, conf = _winner_take_all(cost, torch.from_numpy(depths).to(device))
        textured = window_std(ref, radius) > min_texture_std
        conf = torch.where(textured, conf, torch.zeros_like(conf))
        depth = torch.where(conf > 0, depth, torch.zeros_like(depth))
    return SweepResult(depth.cpu().numpy().astype(np.float32), conf.cpu().numpy().astype(np.float32))


def _winner_take_all(cost: torch.Tensor, depths: torch.Tensor, exclude: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """cost (D,H,W), depths (D,) -> depth (H,W) refined, confidence (H,W) in [0,1]."""
    num = cost.shape[0]
    c1, idx = cost.min(0)  # (H,W)
    # Parabola through the neighbouring costs, in index space (= inverse-depth space).
    im = (idx - 1).clamp(0, num - 1)
    ip = (idx + 1).clamp(0, num - 1)
    cm = cost.gather(0, im[None])[0]
    cp = cost.gather(0, ip[None])[0]
    denom = cm - 2 * c1 + cp
    off = torch.where(denom > 1e-6, 0.5 * (cm - cp) / denom.clamp_min(1e-6), torch.zeros_like(c1))
    interior = (idx > 0) & (idx < num - 1)
    off = torch.where(interior, off.clamp(-0.5, 0.5), torch.zeros_like(off))
    inv = 1.0 / depths
    pos = idx.float() + off
    lo = pos.floor().long().clamp(0, num - 1)
    hi = (lo + 1).clamp(0, num - 1)
    frac = pos - lo.float()
    inv_d = inv[lo] * (1 - frac) + inv[hi] * frac
    depth = 1.0 / inv_d
    # Second-best minimum away from the winner: a flat or multi-modal curve -> low confidence.
    ar = torch.arange(num, device=cost.device)[:, None, None]
    far = (ar - idx[None]).abs() > exclude
    c2 = torch.where(far, cost, torch.full_like(cost, 2.0)).min(0).values
    score = (1.0 - c1).clamp(0, 1)  # ZNCC of the winner
    ratio = ((c2 - c1) / c2.clamp_min(1e-6)).clamp(0, 1)
    conf = score * ratio.sqrt()
    conf = torch.where(interior, conf, torch.zeros_like(conf))  # range boundary = not found
    return depth, conf
