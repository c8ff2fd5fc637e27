"""Centring of the compact encoder's descriptors (core/models/compact/centering.py): the calibration mean
is taken out of final descriptors only, travels in the weights file, and the stage records it."""

import json
from copy import deepcopy

import numpy as np
import pytest
import torch
from ovs_tiny import ColourEncoder
from semantics_synthetic import box_scene, render_instances
from torch_threads import one_torch_thread  # noqa: F401 - autouse: one torch thread

from core.jobs import JobContext
from core.models.compact import CompactConfig, CompactImageNet, ImageEncoder, save_weights
from core.models.compact.centering import MEAN_KEY, calibration_mean, centre, write_centred
from core.semantics.stage import SemanticsSettings, run_semantics

SMALL = CompactConfig(size=32, stem=(8, 8), widths=(8, 16), blocks=(1, 1), head_hidden=32, dim=384)


def test_centre_takes_the_shared_part_out_and_keeps_rows_unit():
    rng = np.random.default_rng(0)
    common = rng.normal(size=8)
    d = rng.normal(size=(50, 8)) * 0.3 + common  # every row leans the same way
    mu = calibration_mean([d[:20], d[20:], np.zeros((0, 8))])
    u = d / np.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(mu, u.mean(0), atol=1e-6)
    c = centre(d, mu, 1.0)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    # rows that were nearly parallel through the shared part are far less alike after
    assert (u @ u.T).mean() > 0.8 and (c @ c.T)[~np.eye(50, dtype=bool)].mean() < 0.1
    np.testing.assert_allclose(centre(d, mu, 0.0), u, atol=1e-6)  # alpha 0: only normalised
    np.testing.assert_allclose(centre(d, None, 1.0), u, atol=1e-6)
    assert not centre(np.zeros((2, 8)), mu, 1.0).any()  # a zero (no-descriptor) row stays zero
    with pytest.raises(ValueError):
        calibration_mean([np.zeros((0, 8))])


def test_centred_file_round_trip(tmp_path):
    torch.manual_seed(1)
    net = CompactImageNet(SMALL)
    src = save_weights(net, tmp_path / "w.safetensors", 12.0, -9.0, half=False,
                       extra={"other_threshold": "0.5", "other_threshold_calibration": "{}"})
    mu = np.random.default_rng(1).normal(size=384).astype(np.float32) * 0.01
    out = write_centred(src, tmp_path / "w_c.safetensors", mu, 0.75, "unit test")
    plain, cent = ImageEncoder.from_pretrained(src, device="cpu"), ImageEncoder.from_pretrained(out, device="cpu")
    assert plain.centre_mean is None and cent.centre_alpha == 0.75
    np.testing.assert_allclose(cent.centre_mean, mu, atol=1e-7)
    info = json.loads(cent.metadata["centering"])
    assert info["base"] == "w.safetensors" and info["source"] == "unit test" and len(info["base_sha256"]) == 64
    # the old threshold belonged to the uncentred descriptors
    assert "other_threshold" not in cent.metadata and "other_threshold_calibration" not in cent.metadata
    crops = np.random.default_rng(0).integers(0, 255, (3, 24, 30, 3), dtype=np.uint8)
    e = cent.encode(crops)
    np.testing.assert_allclose(e, plain.encode(crops), atol=1e-6)  # the network is untouched
    np.testing.assert_allclose(cent.centre(e), centre(e, mu, 0.75), atol=1e-6)
    np.testing.assert_allclose(plain.centre(e), e, atol=1e-6)
    with pytest.raises(ValueError, match="dimension"):
        write_centred(src, tmp_path / "bad.safetensors", mu[:10], 1.0, "x")
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        assert MEAN_KEY in f.keys()


class CentredColourEncoder(ColourEncoder):
    def __init__(self, mean, alpha):
        super().__init__()
        self.centre_mean, self.centre_alpha = mean, alpha

    def centre(self, emb):
        return centre(emb, self.centre_mean, self.centre_alpha)


def test_stage_centres_final_descriptors_not_the_lifting():
    """Same segments with and without a calibration mean (the lifting sees raw embeddings); the
    segments' descriptors are the centred plain ones, and the metadata says so."""
    scene, _ = box_scene(n_cams=4, size=(128, 96), step=0.03)
    images = [scene.colors[render_instances(scene, np.arange(len(scene)), f)] for f in range(len(scene.cameras))]
    st = SemanticsSettings(descriptor="mean")
    a, b = deepcopy(scene), deepcopy(scene)
    run_semantics(a, images, JobContext(), st, encoder=ColourEncoder())
    mu = calibration_mean([a.segments.descriptor])
    enc = CentredColourEncoder(mu, 1.0)
    run_semantics(b, images, JobContext(), st, encoder=enc)
    assert len(a.segments) >= 3
    np.testing.assert_array_equal(a.segment_id, b.segment_id)
    np.testing.assert_allclose(b.segments.descriptor, centre(a.segments.descriptor, mu, 1.0), atol=1e-5)
    assert b.metadata["models"]["descriptor"]["centring"]["alpha"] == 1.0
    assert "centring" not in a.metadata["models"]["descriptor"]
