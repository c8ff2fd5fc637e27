"""Run a TensorFlow.js *graph model* (``model.json`` + ``.bin`` shards) as a torch module.

Only the ops of convolutional backbones are implemented (convolutions with their fused
bias / ReLU, depthwise convolutions, element-wise arithmetic, ReLU6 / sigmoid, spatial
mean, concat, legacy bilinear resize): enough for the MobileNetV3 CenterNet detector
that :mod:`core.models.pretrained.centernet` uses. The graph is kept as data (node list
+ weights), so a converted model is a safetensors file plus a JSON node list, no code.

Tensors run NCHW inside; TF's NHWC attributes (strides, axes) are mapped on load.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["read_tfjs_model", "TfGraph", "GraphNode", "prune"]

GraphNode = Dict  # {"name", "op", "input": [...], "attr": {...}} as in model.json

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


def read_tfjs_model(model_json: Path) -> Tuple[List[GraphNode], Dict[str, np.ndarray]]:
    """Parse ``model.json`` and its weight shards -> (nodes, weights by name, float32 / int32).

    Handles the float16 and uint8 / uint16 affine quantisations of ``tensorflowjs_converter``.
    """
    model_json = Path(model_json)
    m = json.loads(model_json.read_text())
    if m.get("format") != "graph-model":
        raise ValueError(f"{model_json}: not a TF.js graph model (format {m.get('format')!r})")
    weights: Dict[str, np.ndarray] = {}
    for group in m["weightsManifest"]:
        buf = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            n = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q:
                qdt = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}[q["dtype"]]
                raw = np.frombuffer(buf, qdt, n, off)
                off += raw.nbytes
                if q["dtype"] == "float16":
                    arr = raw.astype(np.float32)
                else:
                    arr = raw.astype(np.float32) * float(q["scale"]) + float(q["min"])
                arr = arr.astype(_DTYPES[q.get("original_dtype", w["dtype"])])
            else:
                dt = _DTYPES[w["dtype"]]
                arr = np.frombuffer(buf, dt, n, off).copy()
                off += arr.nbytes
            weights[w["name"]] = arr.reshape(shape)
    return m["modelTopology"]["node"], weights


def prune(nodes: Sequence[GraphNode], outputs: Iterable[str]) -> List[GraphNode]:
    """The nodes ``outputs`` depend on, in a topological order (inputs first)."""
    by_name = {n["name"]: n for n in nodes}
    order: List[GraphNode] = []
    seen = set()

    def visit(name: str) -> None:
        name = name.split(":")[0].lstrip("^")
        if name in seen:
            return
        seen.add(name)
        node = by_name[name]
        for i in node.get("input", []):
            visit(i)
        order.append(node)

    for o in outputs:
        visit(o)
    return order


def _attr(node: GraphNode, key: str, default=None):
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "list" in a:
        lst = a["list"]
        if "i" in lst:
            return [int(v) for v in lst["i"]]
        if "s" in lst:
            return [base64.b64decode(v).decode() for v in lst["s"]]
        return []
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    if "b" in a:
        return bool(a["b"])
    return a


def _same_pad(x: torch.Tensor, k: Tuple[int, int], s: Tuple[int, int], d: Tuple[int, int]) -> torch.Tensor:
    """TF "SAME" padding (the extra pixel goes after, unlike torch's symmetric padding)."""
    pads = []
    for size, kk, ss, dd in zip(x.shape[2:], k, s, d):
        eff = (kk - 1) * dd + 1
        total = max((-(-size // ss) - 1) * ss + eff - size, 0)
        pads.append((total // 2, total - total // 2))
    (t, b), (l, r) = pads
    return F.pad(x, (l, r, t, b)) if (t or b or l or r) else x


def _resize_bilinear_legacy(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """``tf.image.resize_bilinear(align_corners=False, half_pixel_centers=False)``: source
    coordinate ``i * in / out`` (no half-pixel shift), clamped at the last pixel."""
    out = x
    for dim, (n_in, n_out) in zip((2, 3), zip(x.shape[2:], size)):
        src = torch.arange(n_out, dtype=torch.float32, device=x.device) * (n_in / n_out)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        w = (src - i0.float()).to(x.dtype)
        shape = [1, 1, 1, 1]
        shape[dim] = n_out
        w = w.view(shape)
        out = out.index_select(dim, i0) * (1 - w) + out.index_select(dim, i1) * w
    return out


class TfGraph(nn.Module):
    """``forward(x (B, C, H, W)) -> {output name: (B, C', H', W') tensor}`` for a pruned graph.

    Float constants of rank >= 1 become parameters (convolution weights in torch layout),
    scalars and int constants buffers. ``resize_to`` maps a ResizeBilinear node to the node
    whose spatial size it must match (TF.js graphs bake the resize size for one input size).
    """

    def __init__(self, nodes: Sequence[GraphNode], weights: Dict[str, np.ndarray], input_name: str,
                 outputs: Sequence[str], resize_to: Dict[str, str] | None = None) -> None:
        super().__init__()
        self.nodes = prune(nodes, outputs)
        self.input_name = input_name
        self.outputs = list(outputs)
        self.resize_to = dict(resize_to or {})
        self.keys: Dict[str, str] = {}
        self.params = nn.ParameterDict()
        consumers: Dict[str, str] = {}
        for n in self.nodes:
            for i in n.get("input", []):
                consumers.setdefault(i, n["op"])
        for n in self.nodes:
            if n["op"] != "Const":
                continue
            name = n["name"]
            arr = weights[name]
            key = f"c{len(self.keys)}"
            self.keys[name] = key
            t = torch.from_numpy(np.ascontiguousarray(arr))
            op = consumers.get(name, "")
            if arr.ndim == 4 and "Depthwise" in op:  # (kh, kw, cin, mult) -> (cin * mult, 1, kh, kw)
                kh, kw, cin, mult = arr.shape
                t = t.permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
            elif arr.ndim == 4:  # HWIO -> OIHW
                t = t.permute(3, 2, 0, 1)
            self.params[key] = nn.Parameter(t.contiguous().float() if t.is_floating_point() else t.float(),
                                            requires_grad=t.is_floating_point() and arr.ndim >= 1)

    def const(self, name: str) -> torch.Tensor:
        return self.params[self.keys[name]]

    def _conv(self, n: GraphNode, x: torch.Tensor, w: torch.Tensor, depthwise: bool) -> torch.Tensor:
        s = _attr(n, "strides", [1, 1, 1, 1])[1:3]
        d = (_attr(n, "dilations", [1, 1, 1, 1]) or [1, 1, 1, 1])[1:3]
        k = tuple(w.shape[2:])
        if _attr(n, "padding", "VALID") == "SAME":
            x = _same_pad(x, k, tuple(s), tuple(d))
        return F.conv2d(x, w, stride=tuple(s), dilation=tuple(d), groups=x.shape[1] if depthwise else 1)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        vals: Dict[str, torch.Tensor] = {}
        for n in self.nodes:
            op, name = n["op"], n["name"]
            ins = [i for i in n.get("input", []) if not i.startswith("^")]

            def v(i: int) -> torch.Tensor:
                key = ins[i]
                return self.const(key) if key in self.keys else vals[key]

            if op == "Const":
                continue
            if op == "Placeholder":
                y = x
            elif op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
                y = self._conv(n, v(0), v(1), depthwise="Depthwise" in op)
                fused = _attr(n, "fused_ops", []) or []
                if "BiasAdd" in fused:
                    y = y + v(2).view(1, -1, 1, 1)
                for f in fused:
                    if f == "Relu":
                        y = F.relu(y)
                    elif f == "Relu6":
                        y = F.relu6(y)
                    elif f not in ("BiasAdd",):
                        raise NotImplementedError(f"{name}: fused op {f}")
            elif op in ("Add", "AddV2"):
                y = v(0) + v(1)
            elif op == "Sub":
                y = v(0) - v(1)
            elif op == "Mul":
                y = v(0) * v(1)
            elif op == "Relu":
                y = F.relu(v(0))
            elif op == "Relu6":
                y = F.relu6(v(0))
            elif op == "Sigmoid":
                y = torch.sigmoid(v(0))
            elif op == "Identity":
                y = v(0)
            elif op == "Mean":
                axes = [int(a) for a in np.atleast_1d(self.const(ins[1]).detach().cpu().numpy())]
                nchw = {0: 0, 1: 2, 2: 3, 3: 1}
                y = v(0).mean(dim=[nchw[a] for a in axes], keepdim=bool(_attr(n, "keep_dims", False)))
            elif op == "ConcatV2":
                axis = int(self.const(ins[-1]).item())
                y = torch.cat([v(i) for i in range(len(ins) - 1)], dim={0: 0, 1: 2, 2: 3, 3: 1, -1: 1}[axis])
            elif op == "ResizeBilinear":
                if name in self.resize_to:
                    size = tuple(vals[self.resize_to[name]].shape[2:])
                else:
                    size = tuple(int(s) for s in self.const(ins[1]).detach().cpu().numpy())
                y = _resize_bilinear_legacy(v(0), size)
            else:
                raise NotImplementedError(f"{name}: op {op}")
            vals[name] = y
        return {o: vals[o] for o in self.outputs}
