"""Text queries and labels, the query / label CLI, object-level descriptors, the open_clip
loader and the semantics stage (stand-in encoders; the real MiniLM text encoder once)."""

import json

import numpy as np
import pytest
from ov3r.core.scene import load_scene, save_scene
from ov3r.core.semantics.lifting import lift_into_scene
from ov3r.core.semantics.query import OTHER, SpaceMismatch, label_scene, point_scores, query, segment_scores
from semantics_synthetic import StubText, box_scene, gt_masks, instance_descriptors, render_instances


def lifted_scene():
    """Box scene lifted with GT masks and one-hot descriptors: segment of floor/sofa/table/chair."""
    scene, inst = box_scene()
    fm, fd = [], []
    for f in range(len(scene.cameras)):
        lab = render_instances(scene, inst, f)
        ms = gt_masks(scene, inst, f)
        fm.append(ms)
        fd.append(instance_descriptors(ms, lab))
    lift_into_scene(scene, fm, fd, StubText.space_id)
    seg_of = {i: int(np.bincount(scene.segment_id[(inst == i) & (scene.segment_id >= 0)]).argmax()) for i in range(4)}
    return scene, inst, seg_of


def test_query_scores_order_segments_and_points():
    scene, inst, seg_of = lifted_scene()
    enc = StubText()
    for word, i in [("sofa", 1), ("table", 2), ("chair", 3), ("couch", 1)]:
        res = query(scene, word, enc)
        assert res.order[0] == seg_of[i]
        assert res.segment.shape == (len(scene.segments),) and res.point.shape == (len(scene),)
        sel = res.point > 0.5
        truth = inst == i
        assert (sel & truth).sum() / sel.sum() > 0.9 and (sel & truth).sum() / truth.sum() > 0.9
    both = segment_scores(scene, enc.encode(["a sofa", "a chair"]))
    assert both.shape == (2, len(scene.segments))
    assert point_scores(scene, np.arange(len(scene.segments), dtype=np.float32), fill=-1)[scene.segment_id < 0].min() == -1


def test_label_with_other_and_metadata():
    scene, _, seg_of = lifted_scene()
    label_scene(scene, ["sofa", "chair", "lamp"], threshold=0.5, encoder=StubText())
    lab = scene.segments.label
    assert lab[seg_of[1]] == "sofa" and lab[seg_of[3]] == "chair"
    assert lab[seg_of[0]] == OTHER and lab[seg_of[2]] == OTHER  # floor and table are not in the vocabulary
    assert scene.segments.score[seg_of[1]] > 0.5 > scene.segments.score[seg_of[2]]
    assert scene.metadata["labels"] == {"vocabulary": ["sofa", "chair", "lamp"], "threshold": 0.5}
    scene.validate()


def test_space_mismatch_is_a_clear_error():
    scene, _, _ = lifted_scene()
    scene.metadata["text_space"] = "all-MiniLM-L6-v2"
    with pytest.raises(SpaceMismatch, match="stub"):
        query(scene, "sofa", StubText())


def test_cli_query_and_label(tmp_path, monkeypatch, capsys):
    import ov3r.core.semantics.query as q
    from ov3r.core.cli import main

    scene, _, seg_of = lifted_scene()
    path = save_scene(scene, tmp_path / "boxes.ov3r.npz")
    monkeypatch.setattr(q, "text_encoder_for", lambda scene, oc=None: StubText())
    assert main(["query", str(path), "couch", "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].split()[:3] == ["rank", "segment", "score"]
    rank1 = lines[1].split()
    assert int(rank1[1]) == seg_of[1] and int(rank1[3]) == scene.segments.point_count[seg_of[1]]
    out = tmp_path / "labelled.ov3r.npz"
    assert main(["label", str(path), "--vocab", "sofa,table,chair", "--threshold", "0.5", "-o", str(out)]) == 0
    back = load_scene(out)
    assert back.segments.label[seg_of[2]] == "table" and back.segments.label[seg_of[0]] == OTHER
    empty = save_scene(box_scene(n_cams=2)[0], tmp_path / "plain.ov3r.npz")
    with pytest.raises(SystemExit, match="no segments"):
        main(["query", str(empty), "sofa"])


def test_real_text_encoder_synonym_ranks_the_same_segment():
    """Descriptors = MiniLM embeddings of class prompts (+ noise): couch finds the sofa."""
    from ov3r.core.semantics.text_encoder import SPACE_ID, TextEncoder, prompt

    scene, _, seg_of = lifted_scene()
    enc = TextEncoder()
    names = ["floor", "sofa", "table", "chair"]
    emb = enc.encode([prompt(n) for n in names])
    d = np.zeros_like(emb)
    for i in range(4):
        d[seg_of[i]] = emb[i]
    rng = np.random.default_rng(0)
    d += rng.normal(0, 0.02, d.shape).astype(np.float32)
    scene.segments.descriptor = d / np.linalg.norm(d, axis=1, keepdims=True)
    scene.metadata["text_space"] = SPACE_ID
    assert query(scene, "sofa", enc).order[0] == query(scene, "couch", enc).order[0] == seg_of[1]
    assert query(scene, "desk", enc).order[0] == seg_of[2]
    label_scene(scene, ["sofa", "chair", "table", "floor"], 0.8, enc)
    assert [scene.segments.label[seg_of[i]] for i in range(4)] == names


# ----------------------------------------------------------------------------- descriptors


def test_mask_crops_are_object_level():
    from ov3r.core.semantics.descriptors import GREY, mask_crops, mask_descriptors

    img = np.zeros((60, 80, 3), np.uint8)
    img[10:30, 50:70] = [255, 0, 0]
    m = np.zeros((60, 80), bool)
    m[10:30, 50:70] = True
    edge = np.zeros((60, 80), bool)
    edge[:5, :5] = True  # at the image corner: the crop extends past the border
    crops, cm = mask_crops(img, [m, edge], size=32, margin=0.25)
    assert crops.shape == (2, 32, 32, 3) and cm.shape == (2, 32, 32)
    assert 0.3 < cm[0].mean() < 0.5  # (1 / 1.5)^2 of the crop is the object
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(cm[0], iterations=2)  # away from the interpolated edge
    assert (crops[0][inner] == [255, 0, 0]).all() and (crops[0][~cm[0]] == GREY).all()
    assert cm[1].any() and (crops[1][~cm[1]] == GREY).all()

    class MeanColour:
        space_id, dim = "rgb", 3

        def encode(self, crops, masks):
            return np.stack([c[m].mean(0) if m.any() else np.ones(3) for c, m in zip(crops, masks)])

    d = mask_descriptors(img, [m, ~m], MeanColour())
    assert d.shape == (2, 3) and np.allclose(d[0], [1, 0, 0], atol=1e-3)  # only the object's pixels count

    class MeanCrop:  # sees the whole crop: the surroundings count when the crop keeps them
        space_id, dim = "rgb", 3

        def encode(self, crops, masks):
            return crops.reshape(len(crops), -1, 3).mean(1) + 1e-3

    img[30:40, 40:80] = [0, 255, 0]  # green just below the red object
    masked = mask_descriptors(img, [m], MeanCrop(), size=32, crop="masked")
    context = mask_descriptors(img, [m], MeanCrop(), size=32, crop="context")
    both = mask_descriptors(img, [m], MeanCrop(), size=32, crop="both")
    assert context[0, 1] > masked[0, 1] + 0.05  # grey outside the mask vs the green surroundings kept
    s = masked + context
    np.testing.assert_allclose(both, s / np.linalg.norm(s, axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(ValueError, match="unknown crop"):
        mask_descriptors(img, [m], MeanCrop(), crop="square")


def test_recorded_threshold_prefers_the_calibrated_fusion():
    from ov3r.core.semantics.query import DEFAULT_THRESHOLD, default_threshold, recorded_threshold

    scene, _, _ = lifted_scene()
    scene.metadata["models"] = {"image_encoder": {"threshold": 0.27}, "descriptor": {"kind": "mean"}}
    assert recorded_threshold(scene.metadata) == 0.27 and default_threshold(scene) == 0.27
    scene.metadata["models"]["descriptor"] = {"kind": "ovs_fusion", "threshold": 0.1, "other_threshold": 0.61}
    assert default_threshold(scene) == 0.61
    scene.metadata["models"] = {}
    assert recorded_threshold(scene.metadata) is None and default_threshold(scene) == DEFAULT_THRESHOLD


# ----------------------------------------------------------------------------- open_clip


def tiny_openclip(tmp_path):
    import open_clip
    import torch

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                                           "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    cfg_path = tmp_path / "ov3r-tiny-clip.json"
    cfg_path.write_text(json.dumps(cfg))
    open_clip.add_model_config(cfg_path)
    torch.manual_seed(0)
    ref = open_clip.create_model("ov3r-tiny-clip", pretrained=None)
    ckpt = tmp_path / "tiny_clip.pt"
    torch.save(ref.state_dict(), ckpt)
    return ref, ckpt, cfg_path


def test_openclip_loads_local_checkpoint(tmp_path):
    import torch
    from ov3r.core.semantics.openclip_encoder import load_openclip

    ref, ckpt, cfg = tiny_openclip(tmp_path)
    img_enc, txt_enc = load_openclip("ov3r-tiny-clip", checkpoint=str(ckpt), model_config=str(cfg), device="cpu")
    assert img_enc.space_id == txt_enc.space_id and img_enc.space_id.startswith("open_clip:ov3r-tiny-clip:")
    assert img_enc.dim == txt_enc.dim == 32
    crops = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    e = img_enc.encode(crops, np.ones((3, 48, 48), bool))
    t = txt_enc.encode(["This is a photo of a sofa", "This is a photo of a chair"])
    assert e.shape == (3, 32) and t.shape == (2, 32)
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5) and np.allclose(np.linalg.norm(t, axis=1), 1)
    import open_clip

    with torch.no_grad():  # same weights as the saved model
        want = ref.encode_text(open_clip.get_tokenizer("ov3r-tiny-clip")(["This is a photo of a sofa"]))
    assert np.allclose(t[0], torch.nn.functional.normalize(want, dim=-1)[0].numpy(), atol=1e-5)
    with pytest.raises(PermissionError, match="consent"):
        load_openclip("ViT-B-32", pretrained="openai")
    with pytest.raises(FileNotFoundError):
        load_openclip("ov3r-tiny-clip", checkpoint=str(tmp_path / "nope.pt"))


# ----------------------------------------------------------------------------- pipeline stage


def test_semantics_stage_on_rendered_boxes():
    """Classical segmenter on point renders of the box scene + a colour stand-in encoder."""
    from ov3r.core.jobs import JobContext
    from ov3r.core.semantics.stage import run_semantics

    scene, inst = box_scene(size=(128, 96), step=0.02)
    images = []
    for f in range(len(scene.cameras)):  # "photos": the points' colours, z-buffered
        lab = render_instances(scene, np.arange(len(scene)), f)
        images.append(scene.colors[lab])

    class ColourEncoder:
        space_id, dim = "rgb", 3

        def encode(self, crops, masks):
            return np.stack([c[m].mean(0) + 1 if m.any() else np.ones(3) for c, m in zip(crops, masks)])

    stages = []
    run_semantics(scene, images, JobContext(lambda s, d, t: stages.append(s)), encoder=ColourEncoder())
    assert "semantics: segments" in stages and "semantics: lifting" in stages
    assert scene.metadata["text_space"] == "rgb" and scene.metadata["models"]["segmenter"] == "classical"
    for i in (1, 2, 3):
        s, c = np.unique(scene.segment_id[inst == i], return_counts=True)
        assert s[np.argmax(c)] >= 0 and c.max() / c.sum() > 0.6
    scene.validate()


def test_semantics_stage_cancels_and_reports_segmenter_errors():
    """The next keyframe's masks are made in a second thread: a cancel between keyframes still stops the
    stage, the segmenter runs on no keyframe past it, and the segmenter's own error reaches the caller."""
    from ov3r.core.jobs import JobCancelled, JobContext
    from ov3r.core.semantics.segment_classical import ClassicalSegmenter
    from ov3r.core.semantics.stage import run_semantics

    scene, _ = box_scene(size=(128, 96), step=0.02)
    images = [scene.colors[render_instances(scene, np.arange(len(scene)), f)] for f in range(len(scene.cameras))]
    assert len(images) >= 4

    class Counting(ClassicalSegmenter):
        calls = 0

        def segment(self, *args):
            Counting.calls += 1
            return super().segment(*args)

    ctx = JobContext(lambda s, d, t: ctx.cancel_event.set() if (s, d) == ("semantics: segments", 1) else None)
    with pytest.raises(JobCancelled):
        run_semantics(scene, images, ctx, describe=lambda f, img, masks: np.ones((len(masks), 3)),
                      segmenter=Counting())
    assert Counting.calls <= 2  # keyframe 0, and at most the one made ahead

    class Broken(ClassicalSegmenter):
        def segment(self, img, depth, K):
            raise ValueError("segmenter broke")

    with pytest.raises(ValueError, match="segmenter broke"):
        run_semantics(scene, images, JobContext(), describe=lambda f, img, masks: np.ones((len(masks), 3)),
                      segmenter=Broken())


def test_select_points_takes_every_close_segment():
    from ov3r.core.semantics.query import select_points

    scene, inst, seg_of = lifted_scene()
    res = query(scene, "sofa", StubText())
    res.segment[seg_of[2]] = res.segment[seg_of[1]] - 0.01  # a second "sofa"
    sel = select_points(scene, res, margin=0.05)
    assert sel[inst == 1].mean() > 0.9 and sel[inst == 2].mean() > 0.9 and sel[inst == 3].mean() < 0.1
    assert not select_points(scene, res, margin=0.05, min_score=2.0).any()


def test_stage_with_the_compact_encoder_interface(tmp_path):
    """The compact ImageEncoder (random weights here) plugs into the stage; its space is MiniLM's."""
    from ov3r.core.jobs import JobContext
    from ov3r.core.models.compact import CompactConfig, CompactImageNet, ImageEncoder, save_weights
    from ov3r.core.semantics.stage import run_semantics
    from ov3r.core.semantics.text_encoder import SPACE_ID

    path = save_weights(CompactImageNet(CompactConfig(widths=(8, 16, 16, 16), blocks=(1, 1, 1, 1), head_hidden=32)),
                        tmp_path / "compact_test.safetensors", 10.0, -5.0)
    enc = ImageEncoder.from_pretrained(path, device="cpu")
    scene, _ = box_scene(n_cams=3)
    images = [scene.colors[render_instances(scene, np.arange(len(scene)), f)] for f in range(3)]
    run_semantics(scene, images, JobContext(), encoder=enc)
    assert scene.metadata["text_space"] == SPACE_ID and scene.segments.descriptor.shape[1] == 384
    assert scene.metadata["models"]["image_encoder"]["threshold"] == pytest.approx(0.5)
    assert np.allclose(np.linalg.norm(scene.segments.descriptor, axis=1), 1, atol=1e-4)
