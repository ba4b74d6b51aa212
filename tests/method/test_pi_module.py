"""The PI module: resampling, permutation, the PI Net's wiring and sizes, the random draw."""
import itertools

import pytest
import torch
import torch.nn.functional as F
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_reisoseg.method.anisotropy import isotropic_sizes
from nnunetv2_reisoseg.method.network import pi_plan_from_configuration
from nnunetv2_reisoseg.method.pi_module import PIModule, downsample_index, upsample_index
from tests.fixtures import load_plans

REAL_EM_PLANS = ["cremi_40x4x4", "ac3_29x6x6", "mitoem_30x8x8", "lucchi_50x5x5", "em_45x6x6",
                 "em_transposed_5x5x40", "em_40x5x5", "ct_3x0.8x0.8"]


@pytest.mark.parametrize("n, r", [(4, 2), (5, 4), (16, 8), (3, 1)])
def test_integer_ratio_matches_nearest_interpolation(n, r):
    x = torch.randn(1, 2, n, 3, 3)
    up = x.index_select(2, upsample_index(n, n * r))
    assert torch.equal(up, F.interpolate(x, size=(n * r, 3, 3), mode="nearest"))
    y = torch.randn(1, 2, n * r, 3, 3)
    assert torch.equal(y.index_select(2, downsample_index(n, n * r)), F.interpolate(y, size=(n, 3, 3), mode="nearest"))


@pytest.mark.parametrize("n, m", [(20, 75), (20, 38), (20, 37), (7, 18), (1, 3), (9, 9), (5, 36)])
def test_up_then_down_is_identity(n, m):
    x = torch.randn(1, 1, n, 2, 2)
    up = x.index_select(2, upsample_index(n, m))
    assert torch.equal(up.index_select(2, downsample_index(n, m)), x)


@pytest.mark.parametrize("sizes, ratios, expected", [
    ((20, 20, 10), (7.5, 3.75, 3.75), (152, 76, 38)),   # 45x6x6-like: alone 150, 75, 38 and 75 != 2 * 38
    ((20, 20, 20), (3.75, 1.875, 0.9375), (80, 40, 20)),  # a ratio below 1 is left alone at the deepest level
    ((16, 16, 16), (4, 2, 1), (64, 32, 16)),             # integer ratios: exactly n * r at every level
    ((8, 4), (1, 1), (8, 4)),                            # isotropic data: permutation only
])
def test_isotropic_sizes_from_the_deepest_level(sizes, ratios, expected):
    assert isotropic_sizes(sizes, ratios) == expected


def test_isotropic_sizes_refuse_levels_that_cannot_meet():
    with pytest.raises(ValueError, match="at most halve the section axis"):
        isotropic_sizes((40, 10), (1, 1))  # the section axis quartered between two PI levels


@pytest.mark.parametrize("name", REAL_EM_PLANS)
def test_real_plans_need_no_resampling_inside_the_pi_net(name):
    """The PI module at each real plan's full training patch, on the meta device (shapes only): every
    strided and transposed conv of the PI Net meets its partner for every draw, and the sizes on the
    isotropic grid are within one slice per halving of each level's own section size x ratio."""
    cm = PlansManager(load_plans(name)).get_configuration("3d_fullres")
    plan = pi_plan_from_configuration(cm)
    for lvl, (n_iso, r) in enumerate(zip(plan.iso_sizes, plan.ratios)):
        n = plan.stage_shapes[plan.levels[lvl]][plan.section_axis]
        assert abs(n_iso - n * max(r, 1.0)) <= 2 ** (len(plan.levels) - 1 - lvl) / 2 + 1e-9
    pi = PIModule(plan.channels, plan.ratios, plan.levels, plan.section_axis).to("meta")
    skips = [torch.empty(2, c, *shape, device="meta") for c, shape in
             zip(cm.network_arch_init_kwargs["features_per_stage"], plan.stage_shapes)]
    with torch.no_grad():
        for swap, lateral in itertools.product(range(4), (None, *pi.lateral_axes)):
            out = pi.apply_transform(skips, swap, lateral)
            assert [o.shape for o in out] == [s.shape for s in skips]
            iso = pi.transform([skips[lv][:, :1] for lv in pi.levels], swap, lateral)
            for x, lv, n_iso in zip(iso, pi.levels, plan.iso_sizes):
                shape = list(plan.stage_shapes[lv])
                shape[plan.section_axis] = n_iso
                assert sorted(x.shape[2:]) == sorted(shape)


def test_pi_net_refuses_sizes_that_do_not_meet():
    pi = PIModule((8, 12), (2.0, 1.0), (1, 2))
    skips = [torch.randn(1, 4, 8, 32, 32), torch.randn(1, 8, 8, 16, 16), torch.randn(1, 12, 8, 9, 8),
             torch.randn(1, 16, 4, 4, 4)]  # level 2 has 9 rows where the plan halves 16 into 8
    with pytest.raises(RuntimeError, match="strided conv of PI level 0 gives"):
        pi.apply_transform(skips, 3, None)


def test_lateral_degradation_matches_reference_for_integer_ratio():
    pi = PIModule((8,), (4,), (1,))
    x = torch.randn(1, 8, 4, 16, 16)
    out = pi.to_isotropic(x, 16, 4.0, lateral=1)
    # the reference: nearest down along the lateral axis, then nearest up of section and lateral axes
    ref = F.interpolate(F.interpolate(x, size=(4, 4, 16), mode="nearest"), size=(16, 16, 16), mode="nearest")
    assert torch.equal(out, ref)


def _module(section_axis=0):
    return PIModule((8, 12, 16), (3.75, 1.875, 1.875), (1, 2, 3), section_axis=section_axis)


def _skips(section_axis=0, batch=2):
    # nnU-Net-like strides (1,2,2) then (2,2,2) between PI levels, a non-integer ratio, odd sizes
    shapes = [(10, 48, 40), (10, 24, 20), (10, 12, 10), (5, 6, 5), (3, 3, 3)]
    chans = [4, 8, 12, 16, 20]
    out = []
    for c, s in zip(chans, shapes):
        s = list(s)
        s.insert(section_axis, s.pop(0))
        out.append(torch.randn(batch, c, *s))
    return out


@pytest.mark.parametrize("section_axis", [0, 2])
@pytest.mark.parametrize("swap", range(4))
@pytest.mark.parametrize("lateral", ["none", 0, 1])
def test_shapes_and_inverse(section_axis, swap, lateral):
    pi = _module(section_axis)
    lat = None if lateral == "none" else pi.lateral_axes[lateral]
    skips = _skips(section_axis)
    out = pi.apply_transform(skips, swap, lat)
    assert [o.shape for o in out] == [s.shape for s in skips]
    assert out[0] is skips[0] and out[4] is skips[4]  # full resolution and bottleneck pass through
    feats = [skips[lv][:, :4] for lv in pi.levels]
    iso = pi.transform(feats, swap, None)
    sizes = [f.shape[2 + section_axis] for f in feats]
    assert [torch.equal(a, b) for a, b in zip(pi.inverse_transform(iso, swap, sizes), feats)] == [True] * 3


def test_isotropic_grid_is_isotropic():
    pi = _module()
    feats = [torch.zeros(1, 1, 16, 64, 64), torch.zeros(1, 1, 16, 32, 32), torch.zeros(1, 1, 8, 16, 16)]
    pi.ratios = (4.0, 2.0, 2.0)
    assert [tuple(f.shape[2:]) for f in pi.transform(feats, 3, None)] == [(64, 64, 64), (32, 32, 32), (16, 16, 16)]
    feats = [torch.zeros(1, 1, 10, 64, 64), torch.zeros(1, 1, 10, 32, 32), torch.zeros(1, 1, 10, 16, 16)]
    pi.ratios = (6.4, 3.2, 1.6)
    # swap (section, lateral 2) moves the isotropic section axis last
    assert [tuple(f.shape[2:]) for f in pi.transform(feats, 0, None)] == [(64, 64, 64), (32, 32, 32), (16, 16, 16)]


def _randomise(module):
    """Weights that make every part matter (layer scale 1e-6 and zero biases would hide wiring errors)."""
    torch.manual_seed(7)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3 + (0.5 if p.ndim == 1 else 0.0))


def _reference_pi_net(net, f):
    """The PI Net as METHOD.md describes it (and the reference wires it), level by level."""
    d1 = net.down_blocks[0](torch.cat((f[1], net.down[0](f[0])), 1))  # concat(level 1, strided conv of level 0 input)
    d2 = net.down_blocks[1](torch.cat((f[2], net.down[1](d1)), 1))    # concat(level 2, strided conv of level 1 result)
    s0, s1, s2 = net.stages[0](f[0]), net.stages[1](d1), net.stages[2](d2)
    u1 = net.up_blocks[1](torch.cat((net.up[1](s2), s1), 1))          # concat(transposed conv of below, this stage)
    u0 = net.up_blocks[0](torch.cat((net.up[0](u1), s0), 1))
    return [u0, u1, s2]


def test_pi_net_wiring_is_the_papers():
    pi = _module()
    _randomise(pi)
    feats = [torch.randn(1, c, s, s, s) for c, s in zip((2, 3, 4), (16, 8, 4))]
    with torch.no_grad():
        ours, ref = pi.pi_net(feats), _reference_pi_net(pi.pi_net, feats)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours, ref))


def test_pi_module_is_the_papers_transformation_for_integer_ratios():
    """The whole module for one draw, written with F.interpolate and permute as the reference does."""
    pi = PIModule((8, 12, 16), (4.0, 2.0, 1.0), (1, 2, 3))
    _randomise(pi)
    skips = [torch.randn(1, 4, 8, 64, 64), torch.randn(1, 8, 8, 32, 32), torch.randn(1, 12, 8, 16, 16),
             torch.randn(1, 16, 8, 8, 8), torch.randn(1, 20, 4, 4, 4)]
    perms = {0: (0, 1, 4, 3, 2), 1: (0, 1, 3, 2, 4), 2: (0, 1, 2, 4, 3), 3: (0, 1, 2, 3, 4)}
    for swap, lateral in ((0, None), (1, 2), (2, 1), (3, None)):
        feats = []
        for i, r in enumerate((4, 2, 1)):
            x = pi.reduce[i](skips[i + 1])
            d, h, w = x.shape[2:]
            if lateral is not None and r > 1:
                small = (d, h // r, w) if lateral == 1 else (d, h, w // r)
                x = F.interpolate(x, size=small, mode="nearest")
            x = F.interpolate(x, size=(d * r, h, w), mode="nearest")
            feats.append(x.permute(*perms[swap]))
        out = _reference_pi_net(pi.pi_net, feats)
        expected = []
        for i, (x, r) in enumerate(zip(out, (4, 2, 1))):
            x = x.permute(*perms[swap])
            x = F.interpolate(x, size=(x.shape[2] // r, *x.shape[3:]), mode="nearest")
            expected.append(pi.restore[i](x))
        with torch.no_grad():
            ours = pi.apply_transform(skips, swap, lateral)
        for lv, e in zip((1, 2, 3), expected):
            assert torch.allclose(ours[lv], e, atol=1e-4), (swap, lateral, lv)


def test_draws_come_from_torch_rng_with_the_paper_probabilities():
    pi = _module()
    torch.manual_seed(0)
    draws = [pi.draw() for _ in range(4000)]
    torch.manual_seed(0)
    assert [pi.draw() for _ in range(4000)] == draws
    swaps = torch.bincount(torch.tensor([d[0] for d in draws]), minlength=4).float() / len(draws)
    assert torch.all((swaps - 0.25).abs() < 0.03), swaps
    degraded = [d[1] for d in draws if d[1] is not None]
    assert abs(len(degraded) / len(draws) - 0.2) < 0.03
    assert set(degraded) == set(pi.lateral_axes)
    assert abs(degraded.count(pi.lateral_axes[0]) / len(degraded) - 0.5) < 0.06


def test_forward_applies_one_draw_to_every_level():
    """forward() == apply_transform() with the draw the same RNG state gives, for many draws: every level
    sees the same permutation and the same degraded axis."""
    pi = _module()
    _randomise(pi)
    skips = _skips(batch=1)
    seen = set()
    with torch.no_grad():
        for seed in range(12):
            torch.manual_seed(seed)
            draw = pi.draw()
            torch.manual_seed(seed)
            out = pi(skips)
            seen.add(draw)
            expected = pi.apply_transform(skips, *draw)
            assert all(torch.equal(a, b) for a, b in zip(out, expected)), draw
            if draw[0] != 3:  # a real permutation: another one gives other features
                other = pi.apply_transform(skips, (draw[0] + 1) % 3, draw[1])
                assert not torch.allclose(out[1], other[1])
    assert len({d[0] for d in seen}) > 1


def test_bf16_autocast_stays_close_to_float32():
    """bf16 autocast against float32 on the reference's channels (36/48/64; with 2-channel LayerNorms the
    gradients are ill-conditioned even in float32): outputs within a few percent, gradients pointing the
    same way. A wrong cast or a missed op in either precision fails by far more."""
    torch.manual_seed(0)
    pi = PIModule((36, 48, 64), (3.75, 1.875, 1.875), (1, 2, 3))
    with torch.no_grad():
        for name, p in pi.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)  # layer scale 1e-6 would hide the ConvNeXt blocks
    shapes = [(10, 48, 40), (10, 24, 20), (10, 12, 10), (5, 6, 5), (3, 3, 3)]
    skips = [torch.randn(1, c, *s) for c, s in zip((16, 36, 48, 64, 80), shapes)]
    for swap, lateral in ((0, pi.lateral_axes[0]), (2, None)):
        outs, grads = [], []
        for ctx in (torch.autocast("cpu", dtype=torch.bfloat16), torch.autocast("cpu", enabled=False)):
            pi.zero_grad()
            with ctx:
                out = pi.apply_transform(skips, swap, lateral)
            sum(out[lv].float().square().mean() for lv in pi.levels).backward()
            outs.append(out)
            grads.append(torch.cat([p.grad.flatten() for p in pi.parameters()]))
        assert outs[0][1].dtype == torch.bfloat16 and outs[1][1].dtype == torch.float32
        for lv in pi.levels:
            err = (outs[0][lv].float() - outs[1][lv]).norm() / outs[1][lv].norm()
            assert err < 0.05, (swap, lv, float(err))  # measured about 0.02: bf16 keeps 8 bits of mantissa
        assert F.cosine_similarity(grads[0], grads[1], 0) > 0.97  # measured 0.99
        assert (grads[0] - grads[1]).norm() / grads[1].norm() < 0.25  # measured 0.11-0.14
