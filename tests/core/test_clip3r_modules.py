"""CLIP3R modules: shapes, gradients and the properties each one is there for (tiny configs, CPU)."""

import math

import pytest
import torch

from core.models.clip3r import (
    CLIP3R,
    I2P,
    L2W,
    CLIPInjection,
    DPTHead,
    MultiViewBlock,
    RetrievalScorer,
    RoPE2D,
    ViTEncoder,
    get_config,
    top_k_frames,
)
from core.models.clip3r.config import CLIP3RConfig
from core.models.clip3r.model import count_parameters
from core.models.clip3r.point_embed import PointEmbed
from core.models.clip3r.point_head import LinearPointHead, postprocess_points
from core.models.clip3r.rope import grid_positions

# non-square on purpose: 2 x 3 patches of 16 px
TINY = dict(img_size=(32, 48), enc_dim=32, enc_depth=2, enc_heads=2, dec_dim=24, dec_depth=2, dec_heads=2,
            clip_dim=16, dpt_layer_dims=(8, 8, 16, 16), dpt_feature_dim=16, dpt_hooks=(0, 1, 1, 2),
            retrieval_depth=1)
GRID = (2, 3)
N = 6


def tiny(**kw) -> CLIP3RConfig:
    return get_config("small", **{**TINY, **kw})


def _all_grads(module, skip=()):
    return {n for n, p in module.named_parameters() if p.grad is None and not n.startswith(tuple(skip))}


# -- config ---------------------------------------------------------------------------------

def test_presets_and_validation():
    paper, small = get_config("paper"), get_config("small")
    assert (paper.enc_depth, paper.enc_dim, paper.enc_heads) == (24, 1024, 16)
    assert (paper.dec_depth, paper.dec_dim, paper.dec_heads) == (12, 768, 12)
    assert paper.img_size == (224, 224) and paper.patch_size == 16 and paper.grid == (14, 14)
    assert (paper.window_init, paper.window_incremental) == (5, 11)
    assert small.enc_depth <= 6 and small.dec_depth <= 4
    assert CLIP3RConfig.from_json(small.to_json()) == small
    assert get_config("small", clip_dim=512).clip_dim == 512
    with pytest.raises(ValueError, match="unknown CLIP3R preset"):
        get_config("huge")
    with pytest.raises(ValueError, match="multiple of the patch|multiple of patch_size"):
        get_config("small", img_size=(225, 224))
    with pytest.raises(ValueError, match="RoPE"):
        get_config("small", dec_dim=30, dec_heads=3)
    with pytest.raises(ValueError, match="unknown CLIP3R config keys"):
        CLIP3RConfig.from_dict({"enc_dim": 8, "bogus": 1})


def test_parameter_counts_on_meta_device():
    paper = CLIP3R.from_preset("paper", device="meta")
    assert next(paper.parameters()).device.type == "meta"
    counts = paper.parameter_counts()
    assert 780e6 < counts["total"] < 790e6 and 530e6 < counts["i2p"] < 536e6
    small = CLIP3R.from_preset("small", device="meta").parameter_counts()["total"]
    assert 5e6 < small < 25e6


# -- RoPE -----------------------------------------------------------------------------------

def test_rope_depends_only_on_relative_position():
    torch.manual_seed(0)
    rope = RoPE2D(100.0)
    grid = (4, 5)
    q = torch.randn(1, 1, 1, 8).expand(1, 1, 20, 8)  # the same vector at every position
    k = torch.randn(1, 1, 1, 8).expand(1, 1, 20, 8)
    rq, rk = rope(q, grid)[0, 0], rope(k, grid)[0, 0]
    dots = rq @ rk.T  # (20, 20)
    pos = grid_positions(*grid)
    # pairs with the same 2D offset give the same score
    i, j = 0 * 5 + 0, 1 * 5 + 2  # (0,0)->(1,2)
    i2, j2 = 2 * 5 + 1, 3 * 5 + 3  # (2,1)->(3,3)
    assert (pos[j] - pos[i]).tolist() == (pos[j2] - pos[i2]).tolist()
    torch.testing.assert_close(dots[i, j], dots[i2, j2])
    # position (0, 0) is not rotated; norms are preserved everywhere
    torch.testing.assert_close(rq[0], q[0, 0, 0])
    torch.testing.assert_close(rq.norm(dim=-1), q[0, 0].norm(dim=-1))
    # rows only move the first half of the channels, columns the second
    x = torch.randn(1, 1, 20, 8)
    r = rope(x, grid)[0, 0]
    torch.testing.assert_close(r[1, :4], x[0, 0, 1, :4])  # token (0, 1): row 0
    torch.testing.assert_close(r[5, 4:], x[0, 0, 5, 4:])  # token (1, 0): column 0
    with pytest.raises(ValueError):
        rope(torch.randn(1, 1, 20, 6), grid)


# -- encoder and blocks ---------------------------------------------------------------------

def test_vit_encoder_shapes_and_gradients():
    torch.manual_seed(0)
    enc = ViTEncoder(16, 32, 2, 2, 4.0, RoPE2D())
    x = torch.randn(2, 3, 3, 32, 48, requires_grad=True)
    tok, grid = enc(x)
    assert tok.shape == (2, 3, N, 32) and grid == GRID
    tok.square().mean().backward()
    assert x.grad is not None and not _all_grads(enc)
    # frames are independent: encoding a frame alone gives the same tokens
    torch.testing.assert_close(enc(x[:1, 1])[0], tok[:1, 1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_multiview_block_pooling_is_order_free(pool):
    torch.manual_seed(0)
    blk = MultiViewBlock(24, 2, 4.0, RoPE2D(), pool)
    x = torch.randn(2, 1, N, 24, requires_grad=True)
    mem = torch.randn(2, 4, N, 24, requires_grad=True)
    y = blk(x, mem, GRID)
    assert y.shape == x.shape
    torch.testing.assert_close(blk(x, mem[:, [2, 0, 3, 1]], GRID), y, atol=1e-5, rtol=1e-5)
    y.sum().backward()
    assert x.grad is not None and mem.grad is not None and not _all_grads(blk)


def test_multiview_block_matches_per_view_reference():
    # several query views reading several memory views == each (query, memory) pair done
    # with the plain cross-attention, then pooled
    torch.manual_seed(1)
    blk = MultiViewBlock(24, 2, 4.0, RoPE2D(), "max").eval()
    x, mem = torch.randn(1, 3, N, 24), torch.randn(1, 2, N, 24)
    with torch.no_grad():
        got = blk.read_views(x, mem, GRID)
        ref = torch.stack([torch.stack([blk.cross_attn(blk.norm2(x[:, i]), blk.norm_y(mem[:, j]), GRID)
                                        for j in range(2)]).amax(0) for i in range(3)], dim=1)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


# -- CLIP injection -------------------------------------------------------------------------

def test_clip_injection_formula_mask_and_zero_init():
    torch.manual_seed(0)
    inj = CLIPInjection(32, 16)
    tokens, clip = torch.randn(2, N, 32), torch.randn(2, N, 16)
    fused, delta = inj(tokens, clip)
    assert torch.equal(fused, tokens) and not delta.any()  # untrained: exact no-op
    with torch.no_grad():
        inj.proj.weight.normal_()
        inj.proj.bias.normal_()
    fused, delta = inj(tokens, clip)
    f = inj.proj(inj.norm(clip))
    ref = tokens + torch.softmax(tokens @ f.transpose(1, 2) / math.sqrt(32), dim=-1) @ f
    torch.testing.assert_close(fused, ref)
    # invalid patches are not read: changing their features changes nothing
    valid = torch.ones(2, N, dtype=torch.bool)
    valid[:, :2] = False
    clip2 = clip.clone()
    clip2[:, :2] = 100.0
    torch.testing.assert_close(inj(tokens, clip, valid)[0], inj(tokens, clip2, valid)[0])
    # a frame without any segment gets no delta, and no NaN in the backward pass
    valid[1] = False
    t = tokens.clone().requires_grad_()
    fused, delta = inj(t, clip, valid)
    assert not delta[1].detach().any()
    fused.sum().backward()
    assert torch.isfinite(t.grad).all() and inj.proj.weight.grad is not None and inj.norm.weight.grad is not None


def test_clip_injection_trains_from_zero_init():
    torch.manual_seed(0)
    inj = CLIPInjection(32, 16)
    _, delta = inj(torch.randn(2, N, 32), torch.randn(2, N, 16))
    delta.sum().backward()
    assert float(inj.proj.weight.grad.abs().sum()) > 0  # the zero init does not block learning


# -- heads ------------------------------------------------------------------------------------

def test_point_postprocess_and_linear_head():
    raw = torch.zeros(1, 4, 1, 2)
    raw[0, :3, 0, 0] = torch.tensor([0.0, 0.0, math.log(3.0)])  # |xyz| = ln 3 -> distance e^ln3 - 1 = 2
    raw[0, 3, 0, 0] = math.log(4.0)  # conf 1 + 4
    pts, conf = postprocess_points(raw)
    torch.testing.assert_close(pts[0, 0, 0], torch.tensor([0.0, 0.0, 2.0]))
    torch.testing.assert_close(pts[0, 0, 1], torch.zeros(3))
    torch.testing.assert_close(conf[0, 0], torch.tensor([5.0, 2.0]))
    head = LinearPointHead(24, 16)
    t = torch.randn(3, N, 24, requires_grad=True)
    p, c = head([t], GRID)
    assert p.shape == (3, 32, 48, 3) and c.shape == (3, 32, 48) and bool((c > 1).all())
    (p.sum() + c.sum()).backward()
    assert t.grad is not None
    # a token only predicts its own patch
    t2 = t.detach().clone()
    t2[0, 0] += 1.0
    p2, _ = head([t2], GRID)
    changed = (p2 - p.detach()).abs().sum(-1)[0] > 0
    assert bool(changed[:16, :16].all()) and not bool(changed[16:].any()) and not bool(changed[:, 16:].any())


def test_dpt_head_shapes_and_gradients():
    torch.manual_seed(0)
    head = DPTHead(24, 16, hooks=(0, 1, 1, 2), layer_dims=(8, 8, 16, 16), feature_dim=16)
    layers = [torch.randn(2, N, 24, requires_grad=True) for _ in range(3)]
    out = head(layers, GRID, (32, 48))
    assert out.shape == (2, 16, 32, 48)
    out.square().mean().backward()
    assert all(t.grad is not None for t in layers) and not _all_grads(head)
    # odd grids work too (7 x 5 patches: strided and transposed resampling round sizes)
    out = head([torch.randn(1, 35, 24)] * 3, (7, 5), (112, 80))
    assert out.shape == (1, 16, 112, 80)


def test_point_embed_void_token():
    pe = PointEmbed(16, 24)
    pts = torch.randn(2, 32, 48, 3)
    void = torch.zeros(2, N, dtype=torch.bool)
    void[1, 2] = True
    x = pe(pts, void)
    assert x.shape == (2, N, 24)
    torch.testing.assert_close(x[1, 2], pe.void_token[0, 0])
    torch.testing.assert_close(x[0], pe(pts)[0])


# -- I2P, L2W, retrieval ----------------------------------------------------------------------

def test_i2p_shapes_gradients_and_keyframe_order():
    torch.manual_seed(0)
    cfg = tiny()
    i2p = I2P(cfg)
    with torch.no_grad():  # a trained injection, so the CLIP path is exercised
        i2p.clip_injection.proj.weight.normal_(std=0.1)
    B, V = 2, 3
    img = torch.randn(B, V, 3, 32, 48, requires_grad=True)
    clip = torch.randn(B, V, N, 16)
    out = i2p(img, clip)
    assert out.keyframe == 1
    assert out.points.shape == (B, V, 32, 48, 3) and out.conf.shape == (B, V, 32, 48)
    assert out.tokens.shape == (B, V, N, 32) and out.delta.shape == (B, V, N, 32)
    assert bool((out.conf > 1).all())
    (out.points.square().mean() + out.conf.mean()).backward()
    assert img.grad is not None
    assert not _all_grads(i2p, skip=("retrieval.",))  # retrieval has its own forward
    # support views are interchangeable: permuting them permutes the outputs
    with torch.no_grad():
        perm = [2, 1, 0]  # keyframe (index 1) stays in the middle
        a = i2p(img, clip)
        b = i2p(img[:, perm], clip[:, perm])
    torch.testing.assert_close(b.points, a.points[:, perm], atol=1e-4, rtol=1e-4)
    # keyframe argument: the keyframe's own slot comes from the keyframe head
    with torch.no_grad():
        c = i2p(img, clip, keyframe=0)
    assert c.keyframe == 0 and c.points.shape == (B, V, 32, 48, 3)
    with pytest.raises(ValueError, match="at least 2"):
        i2p(img[:, :1])


def test_i2p_without_clip_injection_is_the_ablation():
    cfg = tiny(clip_injection=False)
    i2p = I2P(cfg)
    assert i2p.clip_injection is None
    out = i2p(torch.randn(1, 2, 3, 32, 48), torch.randn(1, 2, N, 16))
    assert out.delta is None


def test_l2w_shapes_features_and_gradients():
    torch.manual_seed(0)
    l2w = L2W(tiny())
    B, V, R = 2, 4, 3
    tokens = torch.randn(B, V, N, 32, requires_grad=True)
    pts = torch.randn(B, V, 32, 48, 3, requires_grad=True)
    sem = torch.randn(B, V, N, 32)
    void = torch.zeros(B, V, N, dtype=torch.bool)
    void[:, -1, 0] = True
    out = l2w(tokens, pts, R, semantic=sem, void=void)
    assert out.points.shape == (B, V, 32, 48, 3) and out.conf.shape == (B, V, 32, 48)
    assert out.features.shape == (B, V, 16, 32, 48)
    (out.points.mean() + out.conf.mean() + out.features.square().mean()).backward()
    assert tokens.grad is not None and pts.grad is not None and not _all_grads(l2w)
    with torch.no_grad():
        reg = l2w(tokens, pts, R, semantic=sem, void=void, features="register")
        none = l2w(tokens, pts, R, semantic=sem, void=void, features="none")
    assert reg.features.shape == (B, V - R, 16, 32, 48) and none.features is None
    # the feature head works per view: the keyframes' features do not depend on the choice
    torch.testing.assert_close(reg.features, out.features[:, R:].detach(), atol=1e-5, rtol=1e-5)
    # streaming: only the keyframes' outputs, exactly those of the full pass; features at a pooled size
    with torch.no_grad():
        kf = l2w(tokens, pts, R, semantic=sem, void=void, features="register", scene_outputs=False,
                 feature_size=(8, 12))
    assert kf.points.shape == (B, V - R, 32, 48, 3) and kf.conf.shape == (B, V - R, 32, 48)
    torch.testing.assert_close(kf.points, out.points[:, R:].detach(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(kf.conf, out.conf[:, R:].detach(), atol=1e-6, rtol=1e-6)
    assert kf.features.shape == (B, V - R, 16, 8, 12)
    with pytest.raises(ValueError, match="num_scene"):
        l2w(tokens, pts, V)


def test_retrieval_scores_and_top_k():
    torch.manual_seed(0)
    model = CLIP3R(tiny())
    frames = model.encode_frames(torch.randn(1, 5, 3, 32, 48), torch.randn(1, 5, N, 16))
    scores = model.i2p.retrieval_scores(frames.fused[:, 0], frames.fused[:, 1:], frames.grid)
    assert scores.shape == (1, 4) and bool(((scores >= 0) & (scores < 1)).all())
    scores.sum().backward()
    assert model.i2p.retrieval.mlp.fc2.weight.grad is not None
    scorer = RetrievalScorer(24)
    assert scorer(torch.randn(2, 3, N, 24)).shape == (2, 3)
    s = torch.tensor([0.2, 0.9, 0.5, 0.9, 0.1])
    assert top_k_frames(s, 3).tolist() == [1, 3, 2]  # ties: lower index first
    assert top_k_frames(s, 3, exclude=[1]).tolist() == [3, 2, 0]
    assert top_k_frames(s, 10).tolist() == [1, 3, 2, 0, 4]
    assert top_k_frames(s[None].repeat(2, 1), 2).shape == (2, 2)


def test_end_to_end_window_then_registration():
    # frames encoded once; a window through I2P; its points registered by L2W with the
    # frames' raw tokens and CLIP deltas reused (no re-encoding)
    torch.manual_seed(0)
    model = CLIP3R(tiny())
    imgs = torch.randn(1, 5, 3, 32, 48)
    frames = model.encode_frames(imgs, torch.randn(1, 5, N, 16))
    pts, conf = model.i2p.decode(frames.fused[:, :3], frames.grid, keyframe=1)
    assert conf.shape == (1, 3, 32, 48)
    assert pts.shape == (1, 3, 32, 48, 3)
    out = model.l2w(frames.tokens[:, :3], pts, num_scene=2, semantic=frames.delta[:, :3])
    assert out.points.shape == (1, 3, 32, 48, 3) and out.features.shape == (1, 3, 16, 32, 48)
    assert count_parameters(model) == sum(model.parameter_counts()[k] for k in ("i2p", "l2w"))


def test_l2w_can_start_from_the_trained_i2p():
    from core.train.clip3r import init_l2w_from_i2p

    torch.manual_seed(0)
    model = CLIP3R(tiny())
    init_l2w_from_i2p(model)
    pairs = ((model.l2w.scene_decoder, model.i2p.keyframe_decoder), (model.l2w.register_decoder, model.i2p.support_decoder),
             (model.l2w.register_head, model.i2p.support_head), (model.l2w.decoder_embed, model.i2p.decoder_embed))
    for dst, src in pairs:
        for (kd, vd), (ks, vs) in zip(dst.state_dict().items(), src.state_dict().items()):
            assert kd == ks and torch.equal(vd, vs)
    # copies, not shared modules: training L2W leaves I2P alone
    with torch.no_grad():
        next(model.l2w.register_decoder.parameters()).add_(1.0)
    assert not torch.equal(next(model.l2w.register_decoder.parameters()), next(model.i2p.support_decoder.parameters()))
