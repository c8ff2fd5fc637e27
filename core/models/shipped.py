"""Which weight files ship with the project, and which shipped once and left the tree.

No torch here: the pipeline asks "is the default encoder there?" before it imports any model.

Retired files keep their model cards (results, training command) and live on in git history; a
setting or scene that asks for one gets :class:`RetiredWeightsError` naming how to get it back,
never a silent fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

MODELS = Path(__file__).resolve().parent

#: the default image encoder: compact_v4 + compact_v7 averaged (both members inside the file)
COMPACT_DEFAULT = MODELS / "compact" / "weights" / "compact_v8.safetensors"
#: the documented alternative image encoder: the one the shipped fusion was trained on
COMPACT_FOR_FUSION = MODELS / "compact" / "weights" / "compact_v4.safetensors"
#: the 2D-3D OVS fusion (fits COMPACT_FOR_FUSION's descriptors only)
OVS_DEFAULT = MODELS / "ovs" / "weights" / "ovs_v6.safetensors"
#: the object cue's height prior: where each class stands in a room (``core.train.class_heights``)
CLASS_HEIGHTS = MODELS / "priors" / "class_heights.json"
#: the frozen COCO detector backbone under compact_v4 (and so under compact_v8's first member)
CENTERNET_BACKBONE = MODELS / "pretrained" / "weights" / "mb3_centernet_coco.safetensors"

#: the last commit whose tree holds the retired files
RETIRED_IN = "3594e22"


class Retired(NamedTuple):
    card: str  # model card (repository path) with its results and recipe
    sha256: str
    retrain: str  # the command that made it (from its model card)


_COMPACT = "core/models/compact/MODEL_CARD.md"
_OVS = "core/models/ovs/MODEL_CARD.md"
_TRAIN = ("python -m core.train.compact --out core/models/compact/weights --threads 2 --batch 128 --steps 50 "
          "--scene-frac 0.5 ")

RETIRED: dict[str, Retired] = {
    "compact_v1.safetensors": Retired(
        _COMPACT, "1359ce7c5a12037db444fb3f0b30553991832d5a60ea437269b942a7bb050137",
        "python -m core.train.compact --out /tmp/stage1 --work-dir ~/.cache/ov3r/compact_runs/v1 --time-budget-min 55 "
        "--steps 100 --batch 128 --threads 2 --seed 0 && python -m core.train.compact --out core/models/compact/weights "
        "--work-dir ~/.cache/ov3r/compact_runs/v1_stage2 --init ~/.cache/ov3r/compact_runs/v1/checkpoint.pt "
        "--time-budget-min 6.5 --lr 6e-4 --warmup 20 --steps 50 --batch 128 --threads 2 --seed 1"),
    "compact_v2.safetensors": Retired(
        _COMPACT, "e73025ff8f7d8863a71ace5f294498aeae6197997ee6b09a6032203e6a4fe536",
        _TRAIN + "--name compact_v2.safetensors --work-dir ~/.cache/ov3r/compact_runs/v2 --init "
        "~/.cache/ov3r/compact_runs/v1_stage2/checkpoint.pt --time-budget-min 22 --lr 1e-3 --warmup 20 --seed 2 "
        "--scene-rooms 6"),
    "compact_v3.safetensors": Retired(
        _COMPACT, "b921bb0c90f3edcf9548f48fb2308ae80634eeb7df5762ad9a239f1c4256825c",
        _TRAIN + "--name compact_v3.safetensors --work-dir ~/.cache/ov3r/compact_runs/v3 --init "
        "~/.cache/ov3r/compact_runs/v2/checkpoint.pt --time-budget-min 24 --lr 1e-3 --warmup 20 --seed 3 "
        "--scene-rooms 30"),
    "compact_v6.safetensors": Retired(
        _COMPACT, "8023d40f71db889d1b9efff55b055946d2da82eb62f0fd2fd0307add5e0e881e",
        _TRAIN + "--name compact_v6.safetensors --work-dir ~/.cache/ov3r/compact_runs/v5 --init "
        "~/.cache/ov3r/compact_runs/v4/checkpoint.pt --time-budget-min 35 --lr 1e-3 --warmup 20 --seed 5 --size 256 "
        "--backbone centernet --scene-rooms 30"),
    "compact_v7.safetensors": Retired(
        _COMPACT, "54c1f7f8402ac1f8ca69fe576cf402bf3c51433d9ff7de5223a090741baa52b7",
        _TRAIN + "--name compact_v7.safetensors --work-dir ~/.cache/ov3r/compact_runs/v7 --time-budget-min 45 "
        "--lr 2e-3 --warmup 20 --seed 7 --size 256 --backbone effnet_lite2 --scene-rooms 30"),
    "ovs_v3.safetensors": Retired(
        _OVS, "0bc0f188574ff0a4c5e271be2f0462a98eededdbe938c57fa2d4d82f02f8235f",
        "ov3r train ovs --crop masked --compact-weights compact_v3.safetensors --work-dir ~/.cache/ov3r/ovs_runs/v4 "
        "--init-point-encoder ~/.cache/ov3r/ovs_runs/v1/point_encoder_stage_a.safetensors --steps-a 0 --steps-b 1500 "
        "--batch-b 256 --eval-every 50 --log-every 50 --val-frac 0.2 --val-size 256 --keep-best --threads 2 --seed 0 "
        "--name ovs_v3.safetensors (stage A first: the model card's Recipe)"),
    "ovs_v4.safetensors": Retired(
        _OVS, "dcb540a016f9be1d8cafee2dc7f9d475d2b7f234db3e0c909f7b62a83d3e308a",
        "ov3r train ovs --crop masked --compact-weights core/models/compact/weights/compact_v4.safetensors "
        "--work-dir ~/.cache/ov3r/ovs_runs/v5 --init-point-encoder "
        "~/.cache/ov3r/ovs_runs/v1/point_encoder_stage_a.safetensors --steps-a 0 --steps-b 1500 --batch-b 256 "
        "--eval-every 50 --log-every 50 --val-frac 0.2 --val-size 256 --keep-best --threads 2 --seed 0 "
        "--out core/models/ovs/weights --name ovs_v4.safetensors"),
}


class RetiredWeightsError(FileNotFoundError):
    """A setting or scene asks for weights that no longer ship."""


def retired_message(name: str) -> str:
    r = RETIRED[name]
    folder = "core/models/ovs/weights" if name.startswith("ovs_") else "core/models/compact/weights"
    return (f"{name} no longer ships (an earlier experiment; its results are in {r.card}). Retrain it with: "
            f"{r.retrain}; or restore the committed file: git show {RETIRED_IN}:{folder}/{name} > {folder}/{name} "
            f"(SHA-256 {r.sha256[:12]}...).")


def check_not_retired(path: str | Path) -> None:
    """Raise :class:`RetiredWeightsError` when ``path`` is missing and names a retired file."""
    p = Path(path)
    if p.name in RETIRED and not p.is_file():
        raise RetiredWeightsError(retired_message(p.name))


def retired_by_hash(sha256_prefix: str) -> str | None:
    """The retired file whose SHA-256 starts with ``sha256_prefix`` (what a trained model records), else None."""
    if not sha256_prefix:
        return None
    return next((n for n, r in RETIRED.items() if r.sha256.startswith(sha256_prefix)), None)
