"""The fused descriptor in the semantics stage: with OVS weights the segments'
descriptors come from the fusion and the metadata says so; without (or with a mean setting, or an
encoder in another space) the stage averages and records why. Tiny fusion, synthetic boxes; ~10 s."""

import numpy as np
import pytest
import torch
from ovs_tiny import TINY, ColourEncoder, D
from semantics_synthetic import box_scene, render_instances
from torch_threads import one_torch_thread  # noqa: F401 - autouse: one torch thread

from core.hashing import file_sha256
from core.jobs import JobContext
from core.models.ovs import OvsFusion
from core.semantics.fused_descriptor import FusedDescriber
from core.semantics.stage import SemanticsSettings, run_semantics


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    m = OvsFusion(TINY)
    with torch.no_grad():  # away from the near-identity init: the fusion visibly changes descriptors
        m.gamma.fill_(1.0)
    p = tmp_path_factory.mktemp("ovs") / "ovs_tiny.safetensors"
    m.save(p, extra={"trained_paths": ["clip_inst", "clip_scene", "points"], "logit_scale": 10.0,
                     "logit_bias": -4.0}, half=True)
    return p


@pytest.fixture(scope="module")
def boxes():
    scene, inst = box_scene(n_cams=4, size=(128, 96), step=0.03)
    images = [scene.colors[render_instances(scene, np.arange(len(scene)), f)] for f in range(len(scene.cameras))]
    return scene, inst, images


def _run(boxes, encoder=None, **settings):
    from copy import deepcopy

    scene, _, images = boxes
    sc = deepcopy(scene)
    cap, stages = {}, []
    st = SemanticsSettings(**settings)
    run_semantics(sc, images, JobContext(lambda s, d, t: stages.append(s)), st, encoder=encoder or ColourEncoder(),
                  capture=cap)
    return sc, cap, stages


def test_stage_with_fused_descriptors_records_them(boxes, weights):
    sc, cap, stages = _run(boxes, ovs_weights=str(weights))
    d = sc.metadata["models"]["descriptor"]
    assert d["kind"] == "ovs_fusion" and d["weights"] == "ovs_tiny.safetensors"
    assert d["sha256"] == file_sha256(weights) and d["paths"] == ["clip_inst", "clip_scene", "points"]
    assert d["dino"].startswith("absent") and d["threshold"] == pytest.approx(0.4)
    assert sc.metadata["models"]["image_encoder"]["kind"] == "compact"  # the existing keys stay
    # weights without a recorded crop were trained on masked crops: the stage cuts those for them
    assert d["crop"] == "masked" and sc.metadata["models"]["image_encoder"]["crop"] == "masked"
    assert "other_threshold" not in d  # not calibrated
    assert sc.metadata["text_space"] == "all-MiniLM-L6-v2" and "semantics.descriptor" in sc.metadata["timings"]
    assert "semantics: descriptors" in stages
    S = len(sc.segments)
    assert S >= 3 and sc.segments.descriptor.shape == (S, D)
    assert np.allclose(np.linalg.norm(sc.segments.descriptor, axis=1), 1, atol=1e-5)
    assert not np.allclose(sc.segments.descriptor, cap["mean_descriptor"], atol=1e-3)  # the fusion ran
    inp = cap["segment_inputs"]
    assert inp.clip_scene.shape == (S, D) and inp.dino is None and len(inp.points) == S
    assert [len(p) for p in inp.points] == list(sc.segments.point_count)
    # the full-frame descriptors of the frames where a segment has a mask, averaged
    ff = np.stack([f["scene"] for f in cap["frame_features"]])
    frames0 = [f for f, ms in enumerate(cap["lift"].mask_segment) if 0 in ms]
    want = ff[frames0].mean(0)
    assert np.allclose(inp.clip_scene[0], want / np.linalg.norm(want), atol=1e-5)
    # the ablation variants run on the same inputs; deterministic
    fd = cap["describer"]
    assert np.allclose(fd.describe(inp), sc.segments.descriptor, atol=1e-6)
    no3d = fd.describe(inp, use_points=False)
    assert no3d.shape == (S, D) and not np.allclose(no3d, sc.segments.descriptor, atol=1e-4)
    sc.validate()


def test_the_stage_cuts_the_crops_its_fusion_was_trained_on(boxes, weights, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from core.bench.other_threshold import write_threshold
    from core.semantics.query import default_threshold

    ctx = tmp_path / "ovs_context.safetensors"
    with safe_open(str(weights), "pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(ctx), metadata={**meta, "crop": "context"})
    write_threshold(ctx, 0.61, {"rooms": 0})
    sc, cap, _ = _run(boxes, ovs_weights=str(ctx))
    assert sc.metadata["models"]["image_encoder"]["crop"] == "context"
    assert sc.metadata["models"]["descriptor"]["other_threshold"] == pytest.approx(0.61)
    assert default_threshold(sc) == pytest.approx(0.61)  # label_scene's default for this scene
    _, cap_masked, _ = _run(boxes, ovs_weights=str(weights))
    assert not np.allclose(cap["mean_descriptor"], cap_masked["mean_descriptor"])  # other crops, other descriptors
    # an explicit setting wins over the fusion's crop; without a fusion the default is "context"
    assert _run(boxes, ovs_weights=str(ctx), crop="masked")[0].metadata["models"]["image_encoder"]["crop"] == "masked"
    assert _run(boxes, descriptor="mean")[0].metadata["models"]["image_encoder"]["crop"] == "context"
    with pytest.raises(ValueError, match="unknown crop"):
        _run(boxes, crop="square")


def test_missing_weights_fall_back_to_the_mean(boxes, tmp_path, monkeypatch):
    monkeypatch.delenv("OV3R_OVS_WEIGHTS", raising=False)
    sc, cap, stages = _run(boxes, ovs_weights=str(tmp_path / "nope.safetensors"))
    d = sc.metadata["models"]["descriptor"]
    assert d["kind"] == "mean" and "nope.safetensors not found" in d["reason"]
    assert cap["describer"] is None and "semantics: descriptors" not in stages
    assert np.array_equal(sc.segments.descriptor, cap["mean_descriptor"])


def test_mean_setting_and_foreign_encoder_space(boxes, weights):
    sc, cap, _ = _run(boxes, ovs_weights=str(weights), descriptor="mean")
    assert sc.metadata["models"]["descriptor"] == {"kind": "mean", "reason": "settings: descriptor = mean"}
    assert np.array_equal(sc.segments.descriptor, cap["mean_descriptor"])

    scene, _, images = boxes

    class Rgb(ColourEncoder):
        space_id, dim = "rgb", 3

        def encode(self, crops, masks=None):
            return np.stack([np.asarray(c, np.float32).reshape(-1, 3).mean(0) + 1 for c in crops])

    from copy import deepcopy

    sc2 = deepcopy(scene)
    run_semantics(sc2, images, JobContext(), SemanticsSettings(ovs_weights=str(weights)), encoder=Rgb())
    d = sc2.metadata["models"]["descriptor"]
    assert d["kind"] == "mean" and "space" in d["reason"]
    with pytest.raises(ValueError, match="unknown descriptor"):
        run_semantics(deepcopy(scene), images, JobContext(), SemanticsSettings(descriptor="max"),
                      encoder=ColourEncoder())


def test_settings_from_env_and_dino_not_fed_to_weights_trained_without_it(weights, monkeypatch, tmp_path):
    monkeypatch.setenv("OV3R_DESCRIPTOR", "mean")
    monkeypatch.setenv("OV3R_OVS_WEIGHTS", str(weights))
    monkeypatch.setenv("OV3R_DINO_CHECKPOINT", str(tmp_path / "dinov2.pth"))
    st = SemanticsSettings.from_env("compact")
    assert (st.descriptor, st.ovs_weights, st.dino_checkpoint) == ("mean", str(weights), str(tmp_path / "dinov2.pth"))
    fd = FusedDescriber(weights, st.dino_checkpoint)  # the file is never read: these weights have no DINO path
    assert fd.dino is None and fd.dino_status.startswith("not used")
    assert fd.metadata()["paths"] == ["clip_inst", "clip_scene", "points"]


def test_shipped_fusion_fits_only_compact_v4_and_the_default_encoder_gets_the_mean():
    """ovs_v6 (the shipped fusion) was trained on compact_v4's descriptors and fits only them; the
    default encoder compact_v8 (compact_v4 + compact_v7 averaged) has no shipped fusion, so the
    stage's default for it is the mean, and it says why."""
    from core.models.compact import ImageEncoder
    from core.models.compact.encoder import DEFAULT_WEIGHTS
    from core.semantics.fused_descriptor import DEFAULT_OVS_WEIGHTS, ovs_weights_path
    from core.semantics.stage import make_fused_describer

    assert ovs_weights_path() == DEFAULT_OVS_WEIGHTS and DEFAULT_OVS_WEIGHTS.stat().st_size < 10 * 2**20
    fd = FusedDescriber(DEFAULT_OVS_WEIGHTS, device="cpu")
    v4 = DEFAULT_WEIGHTS.with_name("compact_v4.safetensors")
    assert not fd.dino_trained and fd.encoder_sha256 == file_sha256(v4)
    assert fd.compatible(ImageEncoder.from_pretrained(v4, device="cpu")) is None
    assert fd.crop == "context" and 0.5 < fd.metadata()["other_threshold"] < 0.95  # calibrated, recorded
    assert DEFAULT_WEIGHTS.name == "compact_v8.safetensors"
    enc = ImageEncoder.from_pretrained(DEFAULT_WEIGHTS, device="cpu")
    assert enc.size == 256 and enc.net.cfg.backbone == "ensemble"
    assert "not the ones" in fd.compatible(enc)  # same text space, other weights: not its inputs
    assert 0.3 < float(enc.metadata["other_threshold"]) < 0.7  # calibrated for its mean
    used, why = make_fused_describer(SemanticsSettings(), enc)
    assert used is None and "not the ones" in why and "ovs_v6" in why


def test_mean_scenes_record_the_encoders_calibrated_threshold(boxes, weights):
    """An image encoder whose weights carry a calibrated ``other_threshold`` (for its plain averaged
    descriptors) has it recorded for mean scenes, and label_scene uses it by default."""
    from core.semantics.query import default_threshold

    enc = ColourEncoder()
    enc.metadata = {"other_threshold": "0.66"}
    sc, _, _ = _run(boxes, ovs_weights=str(weights), descriptor="mean", encoder=enc)
    assert sc.metadata["models"]["descriptor"]["other_threshold"] == pytest.approx(0.66)
    assert default_threshold(sc) == pytest.approx(0.66)


def test_encoder_precision_setting_reaches_the_encoder(monkeypatch):
    """The stage's compact encoder runs at SemanticsSettings.precision ("auto" unless
    OV3R_ENCODER_PRECISION says otherwise); an unsupported one is a clear error."""
    from core.jobs import JobError
    from core.semantics.stage import make_image_encoder

    assert SemanticsSettings().precision == "auto"
    monkeypatch.setenv("OV3R_ENCODER_PRECISION", "fp32")
    st = SemanticsSettings.from_env("compact")
    assert st.precision == "fp32" and make_image_encoder(st).precision == "fp32"
    monkeypatch.setenv("OV3R_ENCODER_PRECISION", "bf16")
    assert make_image_encoder(SemanticsSettings.from_env("compact")).autocast_dtype == torch.bfloat16
    monkeypatch.setenv("OV3R_ENCODER_PRECISION", "fp16")
    with pytest.raises(JobError, match="image encoder precision 'fp16'"):
        make_image_encoder(SemanticsSettings.from_env("compact"))
