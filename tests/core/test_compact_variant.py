"""Variants of a trained compact encoder (core/models/compact/variant.py): the same weights with the
ImageNet tower's ConSE weight or an ensemble's member weights changed, traceable to the base file."""

import json

import numpy as np
import pytest
from safetensors.torch import load_file
from torch_threads import one_torch_thread  # noqa: F401 - autouse: one torch thread

from core.hashing import file_sha256
from core.models.compact import ImageEncoder
from core.models.compact.encoder import DEFAULT_WEIGHTS
from core.models.compact.variant import main, write_variant

V4 = DEFAULT_WEIGHTS.parent / "compact_v4.safetensors"


def test_variant_of_the_default_changes_only_the_settings(tmp_path):
    out = write_variant(DEFAULT_WEIGHTS, tmp_path / "v.safetensors", conse_weight=1.0, member_weights=[1.0, 0.5])
    base, var = ImageEncoder.from_pretrained(None, device="cpu"), ImageEncoder.from_pretrained(out, device="cpu")
    assert [m.cfg.backbone for m in var.net.members] == ["centernet", "effnet_lite2"]
    assert var.net.members[1].cfg.conse_weight == 1.0 and base.net.members[1].cfg.conse_weight == 0.0
    assert var.net.weights == (1.0, 0.5) and base.net.weights == (1.0, 1.0)
    info = json.loads(var.metadata["variant"])
    assert info == {"base": DEFAULT_WEIGHTS.name, "base_sha256": file_sha256(DEFAULT_WEIGHTS),
                    "conse_weight": 1.0, "member_weights": [1.0, 0.5]}
    assert "other_threshold" in base.metadata and "other_threshold" not in var.metadata  # recalibrate
    a, b = load_file(str(DEFAULT_WEIGHTS)), load_file(str(out))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # the weights are untouched
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (2, 64, 48, 3), dtype=np.uint8)
    masks = np.zeros((2, 64, 48), bool)
    masks[:, 10:50, 8:40] = True
    eb, ev = base.encode(crops, masks), var.encode(crops, masks)
    np.testing.assert_allclose(np.linalg.norm(ev, axis=1), 1.0, atol=1e-5)
    assert (eb * ev).sum(1).max() < 0.999  # another embedding


def test_variant_refuses_settings_the_encoder_lacks(tmp_path, capsys):
    with pytest.raises(ValueError, match="no ImageNet"):
        write_variant(V4, tmp_path / "a.safetensors", conse_weight=0.5)  # COCO tower only
    with pytest.raises(ValueError, match="member weights"):
        write_variant(V4, tmp_path / "b.safetensors", member_weights=[1, 1])  # not an ensemble
    with pytest.raises(ValueError, match="member weights"):
        write_variant(DEFAULT_WEIGHTS, tmp_path / "c.safetensors", member_weights=[1, 1, 1])
    with pytest.raises(ValueError, match="no setting"):
        write_variant(DEFAULT_WEIGHTS, tmp_path / "d.safetensors")
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit):
        main(["compact_v4.safetensors", str(tmp_path / "e.safetensors"), "--conse-weight", "1"])
    assert "no ImageNet" in capsys.readouterr().err
    assert main(["compact_v8.safetensors", str(tmp_path / "f.safetensors"), "--conse-weight", "0.5"]) == 0
    assert json.loads(ImageEncoder.from_pretrained(tmp_path / "f.safetensors", device="cpu").metadata["variant"])[
        "conse_weight"] == 0.5
