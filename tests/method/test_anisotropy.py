import pytest
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_reisoseg.method.anisotropy import default_pi_levels, plan_pi_module, section_axis, stage_anisotropy
from nnunetv2_reisoseg.method.knobs import PISettings
from nnunetv2_reisoseg.method.network import pi_plan_from_configuration
from tests.fixtures import load_plans


def _config(name, configuration="3d_fullres"):
    return PlansManager(load_plans(name)).get_configuration(configuration)


@pytest.mark.parametrize("name, ratios, levels", [
    ("em_40x5x5", [8, 4, 2, 1, 1, 1, 0.5], (1, 2, 3)),
    ("em_40x5x5_resencm", [8, 4, 2, 1, 1, 1], (1, 2, 3)),
    ("em_45x6x6", [7.5, 3.75, 1.875, 1.875, 1.875, 1.875], (1, 2, 3)),
    ("iso_8x8x8", [1, 1, 1, 1, 1, 1], (1, 2, 3)),
    ("ct_3x0.8x0.8", [3.75, 1.875, 1.875, 1.875, 1.875, 0.9375], (1, 2, 3)),
    ("tiny_40x10x10", [4, 2, 1, 1], (1, 2)),
    ("cremi_40x4x4", [10, 5, 2.5, 1.25, 1.25, 1.25, 0.625], (1, 2, 3)),
    ("ac3_29x6x6", [29 / 6, 29 / 12, 29 / 24, 29 / 24, 29 / 24, 29 / 24], (1, 2, 3)),
    ("mitoem_30x8x8", [3.75, 1.875, 1.875, 1.875, 1.875, 0.9375], (1, 2, 3)),
    ("lucchi_50x5x5", [10, 5, 2.5, 1.25, 1.25, 1.25], (1, 2, 3)),
])
def test_real_plans(name, ratios, levels):
    plan = pi_plan_from_configuration(_config(name))
    assert plan.stage_ratios == pytest.approx(ratios)
    assert plan.levels == levels
    assert plan.section_axis == 0
    assert plan.ratios == pytest.approx([ratios[lv] for lv in levels])
    features = _config(name).network_arch_init_kwargs["features_per_stage"]
    assert plan.channels == tuple(features[lv] for lv in levels)


def test_transposed_plan_uses_network_space():
    # 5x5x40 data: nnU-Net transposes the 40 nm axis to the front; the arithmetic follows the plans
    plans = load_plans("em_transposed_5x5x40")
    assert plans["transpose_forward"] == [2, 0, 1]
    plan = pi_plan_from_configuration(PlansManager(plans).get_configuration("3d_fullres"))
    assert plan.section_axis == 0
    assert plan.stage_ratios[:4] == pytest.approx([8, 4, 2, 1])


def test_section_axis_not_first():
    strides = [[1, 1, 1], [2, 2, 1], [2, 2, 1], [2, 2, 2]]
    assert section_axis((5, 5, 40)) == 2
    assert stage_anisotropy((5, 5, 40), strides) == pytest.approx([8, 4, 2, 2])
    assert plan_pi_module((5, 5, 40), strides, [8, 16, 32, 64], (64, 64, 16)).section_axis == 2


@pytest.mark.parametrize("ratios, levels", [
    ([2, 1, 1, 1, 1], [1, 2, 3]),          # the reference's ratio-2 trainer
    ([4, 2, 1, 1, 1], [1, 2, 3]),          # ratio 4
    ([8, 4, 2, 1, 1], [1, 2, 3]),          # ratio 8
    ([16, 8, 4, 2, 1, 1, 1], [2, 3, 4]),   # first isotropic stage deep: window ends there
    ([8, 4, 2], [1]),                      # three stages: one PI level
    ([8, 4, 2, 1], [1, 2]),                # four stages: never the bottleneck
    ([8, 8, 8, 8, 8], [1, 2, 3]),          # never isotropic: deepest available window
])
def test_default_levels(ratios, levels):
    assert default_pi_levels(ratios) == levels


def test_too_few_stages_is_an_error():
    with pytest.raises(ValueError, match="at least 3"):
        default_pi_levels([4, 2])


def test_invalid_levels_are_errors():
    strides = [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    with pytest.raises(ValueError, match="bottleneck"):
        plan_pi_module((40, 5, 5), strides, [8] * 5, settings=PISettings(levels=[3, 4]))
    with pytest.raises(ValueError, match="consecutive"):
        plan_pi_module((40, 5, 5), strides, [8] * 5, settings=PISettings(levels=[1, 3]))


def test_size_one_section_axis_is_an_error():
    strides = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    with pytest.raises(ValueError, match="section axis of size 1"):
        plan_pi_module((40, 5, 5), strides, [8] * 4, patch_size=(4, 64, 64), settings=PISettings(levels=[1, 2]))


def test_2d_is_an_error():
    with pytest.raises(ValueError, match="3D"):
        plan_pi_module((5, 5), [[1, 1], [2, 2], [2, 2]], [8, 16, 32])


def test_pi_parameter_count_is_independent_of_anisotropy():
    from nnunetv2_reisoseg.method.pi_module import PIModule

    counts = {sum(p.numel() for p in PIModule((36, 48, 64), r, (1, 2, 3)).parameters())
              for r in [(1, 1, 1), (2, 1, 1), (4, 2, 1), (7.5, 3.75, 1.875)]}
    assert counts == {81_135}  # the reference's PI module, without its four unused layers


@pytest.mark.parametrize("name, iso_sizes, inner", [
    ("em_45x6x6", (120, 60, 30), (16, 32, 64)),      # 32 sections x 3.75 at level 1, exactly halved below
    ("cremi_40x4x4", (120, 60, 30), (16, 32, 64)),   # 24 x 5 = 120 at level 1; level 3 has 12 x 2.5 = 30
    ("ac3_29x6x6", (116, 58, 29), (16, 32, 64)),     # 48 x 29/12 = 116 at level 1
    ("tiny_40x10x10", (32, 16), (16, 32)),
])
def test_isotropic_sizes_and_channels_of_real_plans(name, iso_sizes, inner):
    plan = pi_plan_from_configuration(_config(name))
    assert plan.iso_sizes == iso_sizes and plan.inner_channels == inner
    assert all(a == 2 * b for a, b in zip(plan.iso_sizes, plan.iso_sizes[1:]))


def test_pi_levels_must_halve_the_lateral_axes_between_them():
    # a plan that stops pooling one lateral axis early: stride (1, 2, 1) into stage 3
    strides = [[1, 1, 1], [1, 2, 2], [1, 2, 2], [1, 2, 1], [2, 2, 2]]
    with pytest.raises(ValueError, match=r"stride \(1, 2, 1\) into stage 3.*halve both lateral axes"):
        plan_pi_module((40, 5, 5), strides, [8] * 5, settings=PISettings(levels=[1, 2, 3]))
    # the automatic choice keeps the window up to that transition
    assert plan_pi_module((40, 5, 5), strides, [8] * 5).levels == (1, 2)
