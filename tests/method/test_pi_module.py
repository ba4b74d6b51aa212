import pytest
import torch
import torch.nn.functional as F

from nnunetv2_reisoseg.method.pi_module import PIModule, downsample_index, isotropic_size, upsample_index


@pytest.mark.parametrize("n, r", [(4, 2), (5, 4), (16, 8), (3, 1)])
def test_integer_ratio_matches_nearest_interpolation(n, r):
    x = torch.randn(1, 2, n, 3, 3)
    up = x.index_select(2, upsample_index(n, n * r))
    assert torch.equal(up, F.interpolate(x, size=(n * r, 3, 3), mode="nearest"))
    y = torch.randn(1, 2, n * r, 3, 3)
    assert torch.equal(y.index_select(2, downsample_index(n, n * r)), F.interpolate(y, size=(n, 3, 3), mode="nearest"))


@pytest.mark.parametrize("n, ratio", [(20, 7.5), (20, 3.75), (20, 1.875), (7, 2.5), (1, 3.0), (9, 1.0)])
def test_up_then_down_is_identity(n, ratio):
    m = isotropic_size(n, ratio)
    assert m == max(n, round(n * ratio))
    x = torch.randn(1, 1, n, 2, 2)
    up = x.index_select(2, upsample_index(n, m))
    assert torch.equal(up.index_select(2, downsample_index(n, m)), x)


def test_lateral_degradation_matches_reference_for_integer_ratio():
    pi = PIModule((8,), (4,), (1,))
    x = torch.randn(1, 8, 4, 16, 16)
    out = pi.to_isotropic(x, 4.0, lateral=1)
    # the reference: nearest down along the lateral axis, then nearest up of section and lateral axes
    ref = F.interpolate(F.interpolate(x, size=(4, 4, 16), mode="nearest"), size=(16, 16, 16), mode="nearest")
    assert torch.equal(out, ref)


def _module(section_axis=0):
    return PIModule((8, 12, 16), (3.75, 1.875, 1.0), (1, 2, 3), section_axis=section_axis)


def _skips(section_axis=0, batch=2):
    # odd sizes and a non-integer ratio: 7.5 sections per isotropic step at level 1
    shapes = [(10, 22, 26), (10, 11, 13), (10, 6, 7), (5, 3, 4), (3, 2, 2)]
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
    feats = [torch.zeros(1, 1, 20, 64, 64), torch.zeros(1, 1, 20, 32, 32), torch.zeros(1, 1, 10, 16, 16)]
    pi.ratios = (4.0, 2.0, 1.6)
    assert [tuple(f.shape[2:]) for f in pi.transform(feats, 3, None)] == [(80, 64, 64), (40, 32, 32), (16, 16, 16)]
    # swap (section, lateral 2) moves the isotropic section axis last
    assert tuple(pi.transform(feats, 0, None)[0].shape[2:]) == (64, 64, 80)


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


def test_forward_uses_one_draw_for_all_levels(monkeypatch):
    pi = _module()
    calls = []
    monkeypatch.setattr(pi, "apply_transform", lambda skips, swap, lat: calls.append((swap, lat)) or skips)
    pi(_skips())
    assert len(calls) == 1


def test_bf16_autocast_is_finite():
    pi = _module()
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for swap in range(4):
            out = pi.apply_transform(_skips(batch=1), swap, pi.lateral_axes[0])
            assert all(torch.isfinite(o.float()).all() for o in out)
