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


def _same_pad(x: torch.Tensor, k: Tuple[int, int], s: Tuple[int, int], d: Tuple[int, int]
              ) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """TF "SAME" padding (the extra pixel goes after, unlike torch's symmetric padding) -> (input, the
    convolution's own padding): where it is symmetric (every stride-1 layer) the convolution pads,
    which spares a padded copy of the input; elsewhere the input comes back padded."""
    pads = []
    for size, kk, ss, dd in zip(x.shape[2:], k, s, d):
        eff = (kk - 1) * dd + 1
        total = max((-(-size // ss) - 1) * ss + eff - size, 0)
        pads.append((total // 2, total - total // 2))
    (t, b), (l, r) = pads
    if t == b and l == r:
        return x, (t, l)
    return F.pad(x, (l, r, t, b)), (0, 0)


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


_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}  # NHWC axis -> NCHW dim
_ELEMENTWISE = {"Add": torch.add, "AddV2": torch.add, "Sub": torch.sub, "Mul": torch.mul}
_UNARY = {"Relu": F.relu, "Relu6": F.relu6, "Sigmoid": torch.sigmoid, "Identity": lambda t: t}
_CONVS = ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")


class TfGraph(nn.Module):
    """``forward(x (B, C, H, W)) -> {output name: (B, C', H', W') tensor}`` for a pruned graph.

    Constants become (frozen) parameters, convolution weights in torch layout. Attributes and
    the integer constants that only configure an op (reduction axes, concat axis, resize size)
    are read once here, so ``forward`` only computes. ``resize_to`` maps a ResizeBilinear node
    to the node whose spatial size it must match (TF.js graphs bake the size for one input size).
    """

    def __init__(self, nodes: Sequence[GraphNode], weights: Dict[str, np.ndarray], input_name: str,
                 outputs: Sequence[str], resize_to: Dict[str, str] | None = None) -> None:
        super().__init__()
        kept = prune(nodes, outputs)
        self.input_name = input_name
        self.outputs = list(outputs)
        self.keys: Dict[str, str] = {}
        self.params = nn.ParameterDict()
        consumers: Dict[str, str] = {}
        for n in kept:
            for i in n.get("input", []):
                consumers.setdefault(i, n["op"])
        for n in kept:
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
            self.params[key] = nn.Parameter(t.contiguous().float(), requires_grad=t.is_floating_point() and arr.ndim >= 1)
        self.steps = [self._compile(n, weights, dict(resize_to or {})) for n in kept if n["op"] != "Const"]

    def _compile(self, n: GraphNode, weights: Dict[str, np.ndarray], resize_to: Dict[str, str]) -> Tuple:
        """One node -> ``(name, op, data inputs, static arguments)``."""
        op, name = n["op"], n["name"]
        ins = [i for i in n.get("input", []) if not i.startswith("^")]
        args: Dict = {}
        if op in _CONVS:
            fused = _attr(n, "fused_ops", []) or []
            unknown = [f for f in fused if f not in ("BiasAdd", "Relu", "Relu6")]
            if unknown:
                raise NotImplementedError(f"{name}: fused op {unknown[0]}")
            args = {"stride": tuple(_attr(n, "strides", [1, 1, 1, 1])[1:3]),
                    "dilation": tuple((_attr(n, "dilations", [1, 1, 1, 1]) or [1, 1, 1, 1])[1:3]),
                    "same": _attr(n, "padding", "VALID") == "SAME", "depthwise": "Depthwise" in op,
                    "bias": "BiasAdd" in fused, "act": [_UNARY[f] for f in fused if f != "BiasAdd"]}
            ins = ins[:3] if args["bias"] else ins[:2]
        elif op == "Mean":
            axes = np.atleast_1d(weights[ins[1]]).tolist()
            args = {"dims": [_NCHW_AXIS[int(a)] for a in axes], "keep": bool(_attr(n, "keep_dims", False))}
            ins = ins[:1]
        elif op == "ConcatV2":
            args = {"dim": _NCHW_AXIS[int(np.asarray(weights[ins[-1]]).item())]}
            ins = ins[:-1]
        elif op == "ResizeBilinear":
            args = {"like": resize_to.get(name), "size": tuple(int(v) for v in np.asarray(weights[ins[1]]).ravel())}
            ins = ins[:1]
        elif op not in _ELEMENTWISE and op not in _UNARY and op != "Placeholder":
            raise NotImplementedError(f"{name}: op {op}")
        return name, op, ins, args

    def const(self, name: str) -> torch.Tensor:
        return self.params[self.keys[name]]

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        vals: Dict[str, torch.Tensor] = {}

        def get(key: str) -> torch.Tensor:
            return self.const(key) if key in self.keys else vals[key]

        for name, op, ins, a in self.steps:
            if op == "Placeholder":
                y = x
            elif op in _CONVS:
                inp, w = get(ins[0]), get(ins[1])
                pad = (0, 0)
                if a["same"]:
                    inp, pad = _same_pad(inp, tuple(w.shape[2:]), a["stride"], a["dilation"])
                y = F.conv2d(inp, w, stride=a["stride"], padding=pad, dilation=a["dilation"],
                             groups=inp.shape[1] if a["depthwise"] else 1)
                if a["bias"]:
                    y = y + get(ins[2]).view(1, -1, 1, 1)
                for act in a["act"]:
                    y = act(y)
            elif op in _ELEMENTWISE:
                y = _ELEMENTWISE[op](get(ins[0]), get(ins[1]))
            elif op in _UNARY:
                y = _UNARY[op](get(ins[0]))
            elif op == "Mean":
                y = get(ins[0]).mean(dim=a["dims"], keepdim=a["keep"])
            elif op == "ConcatV2":
                y = torch.cat([get(i) for i in ins], dim=a["dim"])
            else:  # ResizeBilinear
                size = tuple(vals[a["like"]].shape[2:]) if a["like"] else a["size"]
                y = _resize_bilinear_legacy(get(ins[0]), size)
            vals[name] = y
        return {o: vals[o] for o in self.outputs}
