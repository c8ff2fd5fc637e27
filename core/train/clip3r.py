"""``ov3r train clip3r``: train CLIP3R on the rendered training rooms.

Two stages, as in SLAM3R / Ov3R:

1. **I2P**: windows of ``L`` views (keyframe = the middle one); confidence-aware L1 on the
   point maps of every view in the keyframe's frame (scale-normalised,
   :func:`core.models.clip3r.losses.confidence_l1_loss`), plus the retrieval scorer's patch
   logits against the GT covisibility of each support patch with the keyframe (binary cross
   entropy: ``(s - 1) / s`` of the score ``s = 1 + exp(x)`` is ``sigmoid(x)``). The whole I2P
   trains (encoder from scratch: no pretrained weights), with the CLIP injection unless
   ``--no-clip-injection`` (the ablation, plain SLAM3R I2P).
2. **L2W**: ``R`` scene frames (GT world points) + keyframes to register (camera-frame points
   at a random scale); confidence-aware L1 on the world points (no normalisation: the scene
   frames fix the frame and the scale) + ``w_clip * L_oCLIP`` between the DPT head's CLIP3R
   features and F_oCLIP on the keyframes (on a 4-pixel grid). The image encoder / I2P are
   frozen (their tokens and CLIP deltas are inputs).

Single process on the CPU (or one GPU), or ``torchrun --nproc-per-node N -m core.train.clip3r``
for DDP (gloo on CPU, nccl on CUDA; a ``DistributedSampler`` shards the windows; rank 0
writes the checkpoints and the log). Resumable: ``--resume`` continues from
``<out>/last.safetensors`` + ``<out>/state.pt`` bit-exactly (data order and randomness depend
only on the seed, the epoch and the step; optimizer state is saved). ``--time-budget-min``
bounds the wall time (the I2P stage gets ``--i2p-fraction`` of it). Checkpoints are
safetensors (:mod:`core.models.clip3r.checkpoint`); the optimizer state is a plain tensor
dict loaded with ``torch.load(weights_only=True)``.

``--precision auto`` (default) trains the transformers under bf16 autocast where the hardware
is fast at it (CUDA; CPUs with AVX512-BF16 / AMX, ~4x fp32 matrix throughput); master weights,
optimizer state, point heads and losses stay fp32.

Output: ``<out>/final.safetensors`` (``--install`` also copies it to the engine's default
``$OV3R_CACHE/clip3r/clip3r.safetensors``), ``<out>/train.log`` (one JSON line per log step).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import cache_dir
from ..models.clip3r import CLIP3R, clip_feature_loss, confidence_l1_loss, get_config, load_checkpoint, save_checkpoint
from ..models.clip3r.checkpoint import default_weights_path
from ..models.clip3r.config import CLIP3RConfig
from .clip3r_data import Clip3rDataConfig, Clip3rWindows, PreparedRoom, build_dataset, collate, load_prepared

__all__ = [
    "I2PStep",
    "L2WStep",
    "TrainConfig",
    "Trainer",
    "default_weights_path",
    "main",
    "setup_distributed",
    "train",
]

STAGES = ("i2p", "l2w")


@dataclass
class TrainConfig:
    preset: str = "small"
    model_overrides: dict = field(default_factory=dict)  # CLIP3RConfig fields (img_size follows the data)
    clip_injection: bool = True
    i2p_steps: int = 1500  # length of the I2P learning-rate schedule
    l2w_steps: int = 800
    i2p_max_steps: int | None = None  # stop the stage earlier than its schedule (same steps as another run)
    l2w_max_steps: int | None = None
    batch_size: int = 2
    i2p_views: int = 5
    l2w_register: int = 1  # keyframes registered per L2W sample (R scene frames from the config)
    strides: tuple = (1, 2)
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup: int = 50
    alpha: float = 0.2  # weight of -log C
    w_retrieval: float = 0.1
    w_clip: float = 0.05  # L_oCLIP sums |.| over 384 channels (~30 at init): keeps it on the scale of the point loss
    seed: int = 0
    time_budget_min: float | None = None
    i2p_fraction: float = 0.6
    ckpt_every: int = 10
    log_every: int = 5
    threads: int | None = None
    precision: str = "fp32"  # "bf16": transformer matmuls under bf16 autocast (CPUs with AVX512-BF16 / AMX, GPUs)
    l2w_init: str = "fresh"  # "i2p": L2W's decoders / heads start as copies of the trained I2P's (see init_l2w_from_i2p)

    def model_config(self, img_size: Sequence[int]) -> CLIP3RConfig:
        ov = dict(self.model_overrides)
        ov.setdefault("img_size", tuple(img_size))
        ov["clip_injection"] = self.clip_injection
        return get_config(self.preset, **ov)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["strides"] = list(self.strides)
        return d


# ------------------------------------------------------------------------------ train steps

class I2PStep(nn.Module):
    """One I2P training pass as a module (so DDP sees a forward): batch -> losses."""

    def __init__(self, model: CLIP3R, tc: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.tc = tc

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        i2p = self.model.i2p
        k = int(batch["keyframe"][0])
        tokens, grid = i2p.encode(batch["images"])
        fused, _ = i2p.fuse(tokens, batch["clip"], batch["clip_valid"])
        pts, conf, rt = i2p.decode(fused, grid, k, return_retrieval_tokens=True)
        l_pts = confidence_l1_loss(pts, conf, batch["points"], batch["valid"], alpha=self.tc.alpha, normalize=True)
        logits = i2p.retrieval.mlp(i2p.retrieval.norm(rt))[..., 0]  # (B, V-1, N)
        cov = batch["covis"]
        target = torch.cat((cov[:, :k], cov[:, k + 1:]), dim=1)
        l_ret = F.binary_cross_entropy_with_logits(logits, target)
        total = l_pts + self.tc.w_retrieval * l_ret
        return {"loss": total, "pts": l_pts.detach(), "retrieval": l_ret.detach()}


class L2WStep(nn.Module):
    """One L2W training pass (encoder / I2P frozen)."""

    def __init__(self, model: CLIP3R, tc: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.tc = tc

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m = self.model
        R = int(batch["num_scene"][0])
        with torch.no_grad():
            tokens, grid = m.i2p.encode(batch["images"])
            _, delta = m.i2p.fuse(tokens, batch["clip"], batch["clip_valid"])
        H, W = batch["points_in"].shape[2:4]
        # CLIP3R features predicted on the 4-pixel grid of L_oCLIP (the engine's feature_stride)
        out = m.l2w(tokens, batch["points_in"], R, semantic=delta, void=batch["void"], grid=grid,
                    features="register", feature_size=(H // 4, W // 4))
        l_pts = confidence_l1_loss(out.points, out.conf, batch["points"], batch["valid"], alpha=self.tc.alpha,
                                   normalize=False)
        # L_oCLIP on a 4-pixel grid of the keyframes
        pred = out.features.float()  # (B, K, d, h', w')
        seg = batch["seg"][:, R:, 2::4, 2::4]  # (B, K, h', w')
        table = batch["seg_table"]
        if table.shape[0]:
            target = table[(seg - 1).clamp(min=0)].permute(0, 1, 4, 2, 3)  # (B, K, d, h', w')
            l_clip = clip_feature_loss(pred, target, seg > 0)
        else:
            l_clip = pred.sum() * 0.0
        total = l_pts + self.tc.w_clip * l_clip
        return {"loss": total, "pts": l_pts.detach(), "clip": l_clip.detach()}


def init_l2w_from_i2p(model: CLIP3R) -> None:
    """Start L2W from the trained I2P (SLAM3R starts both from DUSt3R): the same roles map onto
    each other. The scene frames are L2W's reference side, like I2P's keyframe (its decoder and
    head: points in the reference's own frame); the keyframes to register are the sources, like
    I2P's supports (points expressed in the reference frame). Token norm and decoder embedding
    are copied too; the point embedding and the CLIP3R feature head stay as they are."""
    i2p, l2w = model.i2p, model.l2w
    with torch.no_grad():
        for dst, src in ((l2w.token_norm, i2p.token_norm), (l2w.decoder_embed, i2p.decoder_embed),
                         (l2w.scene_decoder, i2p.keyframe_decoder), (l2w.register_decoder, i2p.support_decoder),
                         (l2w.dec_norm, i2p.dec_norm), (l2w.scene_head, i2p.keyframe_head),
                         (l2w.register_head, i2p.support_head)):
            dst.load_state_dict(src.state_dict())


# ------------------------------------------------------------------------------ distributed

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    enabled: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(backend: str | None = None) -> Dist:
    """torchrun (``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` in the environment) -> an initialised
    process group (nccl with CUDA, else gloo); otherwise a single process on CUDA or the CPU."""
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        backend = backend or ("nccl" if cuda else "gloo")
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, rank=rank, world_size=world)
        device = torch.device("cuda", local) if cuda and backend == "nccl" else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return Dist(rank, world, local, True, device)
    return Dist(device=torch.device("cuda" if cuda else "cpu"))


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# ------------------------------------------------------------------------------ trainer

class Trainer:
    """Both stages, checkpoints and resume. ``rooms``: prepared training rooms."""

    def __init__(self, tc: TrainConfig, rooms: Sequence[PreparedRoom], out: Path, dist: Dist | None = None,
                 log=None, progress: bool = True, data_id: str = "", foclip_encoder: str = "") -> None:
        self.tc = tc
        self.rooms = list(rooms)
        self.out = Path(out)
        self.dist = dist or Dist()
        self.progress = progress
        self.data_id = data_id
        # which image encoder made the F_oCLIP inputs (its weights' sha256[:16]): the engine must use the same
        self.foclip_encoder = foclip_encoder
        self._print = log or (lambda s: print(s, file=sys.stderr, flush=True))
        img_size = self.rooms[0].images.shape[1:3]
        self.cfg = tc.model_config(img_size)
        torch.manual_seed(tc.seed)
        self.model = CLIP3R(self.cfg).to(self.dist.device)
        self.stage = 0
        self.step = 0
        self.elapsed = [0.0, 0.0]
        self.opt_state: dict | None = None
        self.history: list[dict] = []

    # -- data -----------------------------------------------------------------------------
    def dataset(self, stage: int) -> Clip3rWindows:
        patch = self.cfg.patch_size
        if STAGES[stage] == "i2p":
            return Clip3rWindows(self.rooms, "i2p", views=self.tc.i2p_views, strides=self.tc.strides,
                                 seed=self.tc.seed, patch_size=patch)
        R = self.cfg.num_scene_frames
        return Clip3rWindows(self.rooms, "l2w", views=R + self.tc.l2w_register, num_scene=R,
                             strides=self.tc.strides, seed=self.tc.seed, patch_size=patch)

    def _batch_indices(self, ds: Clip3rWindows, step: int) -> tuple[int, list[int]]:
        """(epoch, indices of this rank's batch) of global step ``step`` (DistributedSampler order)."""
        from torch.utils.data import DistributedSampler

        bs = self.tc.batch_size
        sampler = DistributedSampler(ds, num_replicas=self.dist.world, rank=self.dist.rank, shuffle=True,
                                     seed=self.tc.seed, drop_last=True)
        per_epoch = max(1, len(sampler) // bs)
        epoch, off = divmod(step, per_epoch)
        if getattr(self, "_epoch_cache", (None,))[0] != (id(ds), epoch):
            sampler.set_epoch(epoch)
            self._epoch_cache = ((id(ds), epoch), list(sampler))
        idx = self._epoch_cache[1]
        return epoch, idx[off * bs:(off + 1) * bs]

    # -- optimisation ---------------------------------------------------------------------
    def _trainable(self, stage: int) -> list[nn.Parameter]:
        train_i2p = STAGES[stage] == "i2p"
        for p in self.model.i2p.parameters():
            p.requires_grad_(train_i2p)
        for p in self.model.l2w.parameters():
            p.requires_grad_(not train_i2p)
        return [p for p in self.model.parameters() if p.requires_grad]

    def _lr(self, stage: int, step: int) -> float:
        total = self.tc.i2p_steps if stage == 0 else self.tc.l2w_steps
        if step < self.tc.warmup:
            return self.tc.lr * (step + 1) / self.tc.warmup
        t = min(1.0, (step - self.tc.warmup) / max(1, total - self.tc.warmup))
        return self.tc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    def _budget(self, stage: int) -> float | None:
        if self.tc.time_budget_min is None:
            return None
        total = 60.0 * self.tc.time_budget_min
        if stage == 0:
            return total * self.tc.i2p_fraction
        return total - self.elapsed[0]

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.out / "last.safetensors"

    @property
    def state_path(self) -> Path:
        return self.out / "state.pt"

    def save(self, opt: torch.optim.Optimizer | None) -> None:
        if not self.dist.main:
            return
        meta = {"stage": STAGES[min(self.stage, 1)], "step": self.step, "train_config": json.dumps(self.tc.to_dict()),
                "foclip_encoder": self.foclip_encoder,
                "data": self.data_id}
        save_checkpoint(self.model, self.last_path, metadata=meta)
        state = {"stage": torch.tensor(self.stage), "step": torch.tensor(self.step),
                 "elapsed": torch.tensor(self.elapsed, dtype=torch.float64),
                 "optimizer": opt.state_dict() if opt is not None else {}}
        tmp = self.state_path.with_name("state.pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.state_path)

    def resume(self) -> bool:
        """Load ``last.safetensors`` + ``state.pt`` if present; True if resumed."""
        if not (self.last_path.exists() and self.state_path.exists()):
            return False
        model, _ = load_checkpoint(self.last_path, device=self.dist.device)
        if model.cfg != self.cfg:
            raise ValueError(f"{self.last_path}: its model config differs from this run's; use another --out")
        self.model = model
        st = torch.load(self.state_path, map_location="cpu", weights_only=True)
        self.stage, self.step = int(st["stage"]), int(st["step"])
        self.elapsed = [float(x) for x in st["elapsed"]]
        self.opt_state = st["optimizer"] or None
        self._print(f"[clip3r] resumed at stage {STAGES[min(self.stage, 1)]} step {self.step}")
        return True

    def _log(self, rec: dict) -> None:
        self.history.append(rec)
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "train.log", "a") as f:
                f.write(json.dumps(rec) + "\n")

    # -- the loop -------------------------------------------------------------------------
    def run(self, stop_after: int | None = None) -> Path | None:
        """Train to the end (returns the final weights' path), or stop after ``stop_after``
        optimiser steps of this call with a checkpoint (returns None; :meth:`resume` goes on)."""
        self._stop_after = stop_after
        self._steps_this_run = 0
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.main:
            (self.out / "train_config.json").write_text(json.dumps(
                {"train": self.tc.to_dict(), "model": self.cfg.to_dict(), "data": self.data_id}, indent=1))
        while self.stage < len(STAGES):
            if not self._run_stage(self.stage):
                return None
            self.stage += 1
            self.step = 0
            self.opt_state = None
            self.save(None)
        final = self.out / "final.safetensors"
        if self.dist.main:
            save_checkpoint(self.model, final, metadata={"foclip_encoder": self.foclip_encoder,
                "train_config": json.dumps(self.tc.to_dict()), "data": self.data_id,
                "seconds_i2p": f"{self.elapsed[0]:.1f}", "seconds_l2w": f"{self.elapsed[1]:.1f}"})
        return final

    def _run_stage(self, stage: int) -> bool:
        """Train one stage to its end or budget (True), or until ``stop_after`` (False)."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        name = STAGES[stage]
        total = self.tc.i2p_steps if stage == 0 else self.tc.l2w_steps
        cap = self.tc.i2p_max_steps if stage == 0 else self.tc.l2w_max_steps
        total = min(total, cap) if cap is not None else total
        if self.step >= total:
            return True
        if stage == 1 and self.step == 0 and self.tc.l2w_init == "i2p":
            init_l2w_from_i2p(self.model)
            self._print("[clip3r] l2w: decoders and heads initialised from the trained I2P")
        ds = self.dataset(stage)
        params = self._trainable(stage)
        opt = torch.optim.AdamW(params, lr=self.tc.lr, weight_decay=self.tc.weight_decay, betas=(0.9, 0.95))
        if self.opt_state:
            opt.load_state_dict(self.opt_state)
        step_mod: nn.Module = (I2PStep if name == "i2p" else L2WStep)(self.model, self.tc)
        if self.dist.enabled:
            step_mod = DDP(step_mod, device_ids=[self.dist.device.index] if self.dist.device.type == "cuda" else None)
        self.model.train()
        budget = self._budget(stage)
        bar = None
        if self.progress and self.dist.main:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, desc=f"clip3r {name}", file=sys.stderr, dynamic_ncols=True,
                       mininterval=1.0 if sys.stderr.isatty() else 30.0)
        t_last = time.perf_counter()
        try:
            while self.step < total:
                if self._stop_after is not None and self._steps_this_run >= self._stop_after:
                    self.save(opt)
                    return False
                if budget is not None and self.elapsed[stage] >= budget:
                    self._print(f"[clip3r] {name}: time budget reached at step {self.step}/{total}")
                    break
                epoch, idx = self._batch_indices(ds, self.step)
                ds.set_epoch(epoch)
                batch = _to(collate([ds[i] for i in idx]), self.dist.device)
                lr = self._lr(stage, self.step)
                for g in opt.param_groups:
                    g["lr"] = lr
                with torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=self.tc.precision == "bf16"):
                    losses = step_mod(batch)
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                self.step += 1
                self._steps_this_run += 1
                now = time.perf_counter()
                self.elapsed[stage] += now - t_last
                t_last = now
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{float(v.detach()):.3f}" for k, v in losses.items()})
                if self.step % self.tc.log_every == 0 or self.step == total:
                    self._log({"stage": name, "step": self.step, "epoch": epoch, "lr": lr,
                               "seconds": round(self.elapsed[stage], 2),
                               **{k: float(v.detach()) for k, v in losses.items()}})
                if self.step % self.tc.ckpt_every == 0:
                    self.save(opt)
                    t_last = time.perf_counter()  # checkpoint time is not training time
        finally:
            if bar is not None:
                bar.close()
        self.save(opt)
        return True


# ------------------------------------------------------------------------------ entry points

def train(tc: TrainConfig, dc: Clip3rDataConfig, out: Path, resume: bool = False, install: bool = False,
          progress: bool = True, dist: Dist | None = None, foclip_weights: str | None = None) -> Path:
    dist = dist or setup_distributed()
    if tc.threads:
        torch.set_num_threads(tc.threads)
    # subnormal floats are very slow on x86 CPUs: flush them to 0 while training (restored at the end:
    # the flag is process state and e.g. scipy's cKDTree crashes under it)
    torch.set_flush_denormal(True)
    try:
        return _train(tc, dc, out, resume, install, progress, dist, foclip_weights)
    finally:
        torch.set_flush_denormal(False)


def _train(tc: TrainConfig, dc: Clip3rDataConfig, out: Path, resume: bool, install: bool, progress: bool,
           dist: Dist, foclip_weights: str | None = None) -> Path:
    log = lambda s: print(s, file=sys.stderr, flush=True)
    encoder = None
    if foclip_weights:  # F_oCLIP from these compact weights instead of the shipped default
        from ..models.compact import ImageEncoder

        encoder = ImageEncoder.from_pretrained(foclip_weights, device="cpu")
        encoder._ov3r_path = Path(foclip_weights)  # type: ignore[attr-defined]
    if dist.main:
        folder = build_dataset(dc, encoder=encoder, log=log)
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()
        if not dist.main:
            folder = build_dataset(dc, encoder=encoder, log=log)  # cached by now: only finds the folder
    rooms = load_prepared(folder)
    out = Path(out)
    if out.exists() and not resume and (out / "state.pt").exists():
        raise SystemExit(f"ov3r: error: {out} holds a training run; pass --resume or another --out")
    enc_id = str(json.loads((folder / "meta.json").read_text()).get("encoder", ""))
    tr = Trainer(tc, rooms, out, dist, log=log, progress=progress, data_id=folder.name, foclip_encoder=enc_id)
    if resume:
        tr.resume()
    t0 = time.perf_counter()
    final = tr.run()
    if dist.main:
        log(f"[clip3r] done in {time.perf_counter() - t0:.0f} s (I2P {tr.elapsed[0]:.0f} s, L2W {tr.elapsed[1]:.0f} s)"
            f" -> {final}")
        if install:
            dst = default_weights_path()
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(final, dst)
            log(f"[clip3r] installed as the engine's default weights: {dst}")
    return final


def _size(s: str) -> tuple:
    h, w = s.lower().split("x")
    return int(h), int(w)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ov3r train clip3r", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="small", choices=["small", "paper"], help="model preset")
    p.add_argument("--no-clip-injection", action="store_true", help="ablation: I2P without F_fuse")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder (default $OV3R_CACHE/clip3r_runs/<config>[-noclip])")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.safetensors + state.pt")
    p.add_argument("--install", action="store_true", help="copy the final weights to the engine's default path")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop both stages within this wall time")
    p.add_argument("--i2p-fraction", type=float, default=TrainConfig.i2p_fraction)
    p.add_argument("--i2p-steps", type=int, default=TrainConfig.i2p_steps)
    p.add_argument("--l2w-steps", type=int, default=TrainConfig.l2w_steps)
    p.add_argument("--i2p-max-steps", type=int, default=None, help="end the I2P stage here (schedule unchanged)")
    p.add_argument("--l2w-max-steps", type=int, default=None, help="end the L2W stage here (schedule unchanged)")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--ckpt-every", type=int, default=TrainConfig.ckpt_every, help="steps between checkpoints")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="bf16 autocast for the transformers (auto: bf16 on CUDA and on CPUs with AVX512-BF16/AMX)")
    p.add_argument("--foclip-weights", default=None,
                   help="compact encoder weights that make F_oCLIP (default: the shipped one; the checkpoint records it)")
    p.add_argument("--l2w-init", default="fresh", choices=["fresh", "i2p"],
                   help="i2p: start L2W's decoders and heads from the trained I2P's")
    p.add_argument("--rooms", type=int, default=Clip3rDataConfig.rooms, help="training rooms to render")
    p.add_argument("--frames", type=int, default=Clip3rDataConfig.frames, help="frames per training room")
    p.add_argument("--samples", type=int, default=Clip3rDataConfig.samples, help="Cycles samples")
    p.add_argument("--img-size", type=_size, default=None, help="network HxW (default 160x224 for small, "
                   "224x224 for paper)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    img = a.img_size or ((160, 224) if a.config == "small" else (224, 224))
    dc = replace(Clip3rDataConfig(), rooms=a.rooms, frames=a.frames, samples=a.samples, seed=a.data_seed,
                 img_size=img)
    tc = TrainConfig(preset=a.config, clip_injection=not a.no_clip_injection, i2p_steps=a.i2p_steps,
                     l2w_steps=a.l2w_steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                     time_budget_min=a.time_budget_min, i2p_fraction=a.i2p_fraction, threads=a.threads,
                     ckpt_every=a.ckpt_every, i2p_max_steps=a.i2p_max_steps, l2w_max_steps=a.l2w_max_steps,
                     l2w_init=a.l2w_init)
    if a.precision == "auto":
        from ..precision import cpu_has_fast_bf16

        tc.precision = "bf16" if torch.cuda.is_available() or cpu_has_fast_bf16() else "fp32"
    else:
        tc.precision = a.precision
    out = a.out
    if out is None:
        root = cache_dir("clip3r_runs")
        out = root / (a.config + ("-noclip" if a.no_clip_injection else ""))
    train(tc, dc, out, resume=a.resume, install=a.install, progress=not a.quiet, foclip_weights=a.foclip_weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
