"""The downscaling operator: area-weighted block means, and the interpolation back to the fine
grid that conserves them, on regular and projected grids, with masks."""

import numpy as np
import pytest

from htweather.data.coarsening import Coarsening, block_mean, upsample
from htweather.data.store import cell_areas
from htweather.errors import ConfigError

RNG = np.random.default_rng(3)
LAT, LON = np.linspace(62.0, 50.0, 16), np.linspace(-12.0, 0.0, 16)


def rain(shape):
    return RNG.gamma(0.4, 2.0, shape) * (RNG.random(shape) < 0.4)


def test_block_means_are_area_weighted_means_of_the_blocks():
    areas = cell_areas(LAT, LON)
    x = RNG.normal(size=(3, 16, 16))
    c = block_mean(x, 4, areas)
    w = areas[:4, 4:8]
    assert c.shape == (3, 4, 4)
    assert c[1, 0, 1] == pytest.approx((x[1, :4, 4:8] * w).sum() / w.sum())
    # cos-latitude weights: not the plain mean on a 12-degree-tall grid
    assert not np.isclose(c[1, 0, 1], x[1, :4, 4:8].mean())


@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("bounded", [False, True])
def test_upsampled_fields_have_exactly_the_coarse_block_means(factor, bounded):
    areas = cell_areas(LAT, LON)
    x = rain((4, 16, 16)) if bounded else RNG.normal(280, 5, (4, 16, 16))
    coarse = block_mean(x, factor, areas)
    fine = upsample(coarse, factor, areas, lower_bound=0.0 if bounded else None)
    assert fine.shape == x.shape
    np.testing.assert_allclose(block_mean(fine, factor, areas), coarse, rtol=1e-12, atol=1e-12)
    if bounded:  # no negative rain, and a dry block stays dry
        assert fine.min() >= 0
        dry = np.repeat(np.repeat(coarse == 0, factor, -2), factor, -1)
        assert (fine[dry] == 0).all()


def test_masks_leave_cells_out_and_empty_blocks_missing():
    areas = cell_areas(LAT, LON)
    mask = np.ones((16, 16), bool)
    mask[:4, :4] = False          # a whole block masked
    mask[8:, 10] = False          # part of some blocks
    x = RNG.normal(size=(2, 16, 16))
    x_with_junk = np.where(mask, x, 1e6)  # masked cells must not count, whatever they hold
    coarse = block_mean(x_with_junk, 4, areas, mask)
    assert np.isnan(coarse[:, 0, 0]).all() and np.isfinite(coarse[:, 1:, 1:]).all()
    w = np.where(mask, areas, 0)[8:12, 8:12]
    assert coarse[0, 2, 2] == pytest.approx((x[0, 8:12, 8:12] * w).sum() / w.sum())
    fine = upsample(coarse, 4, areas, mask)
    assert np.isnan(fine[:, ~mask]).all()
    np.testing.assert_allclose(block_mean(fine, 4, areas, mask)[:, 1:, 1:], coarse[:, 1:, 1:], atol=1e-12)


def test_projected_grids_weight_each_cell_by_its_own_area():
    # a Lambert-like 2-D grid: latitude and longitude vary along both directions
    yy, xx = np.meshgrid(np.arange(16.0), np.arange(16.0), indexing="ij")
    lat2d, lon2d = 30 + 0.3 * yy + 0.05 * xx, -100 + 0.35 * xx - 0.04 * yy
    areas = cell_areas(lat2d, lon2d)
    assert areas.std() > 0
    x = rain((2, 16, 16))
    coarse = block_mean(x, 4, areas)
    np.testing.assert_allclose(block_mean(upsample(coarse, 4, areas, lower_bound=0.0), 4, areas), coarse, atol=1e-12)


def test_a_factor_that_does_not_divide_the_grid_is_an_error_naming_the_key():
    stats = {"grid": {"latitude": list(np.linspace(50, 55, 10)), "longitude": list(np.linspace(0, 5, 10))},
             "variables": {}, "channels": []}
    with pytest.raises(ConfigError, match="downscaling.factor: the 10 x 10 grid"):
        Coarsening(stats, 4)


def test_conserving_a_generated_field_pins_its_block_means_and_keeps_dry_cells_dry():
    from htweather.data.coarsening import conserve
    areas = cell_areas(LAT, LON)
    truth, generated = rain((3, 16, 16)), rain((3, 16, 16))
    generated[0, 2, 2] = 5000.0  # an absurd cell: its block is scaled down to the input's mean
    coarse = block_mean(truth, 4, areas)
    fixed = conserve(generated, coarse, 4, areas, lower_bound=0.0)
    np.testing.assert_allclose(block_mean(fixed, 4, areas), coarse, atol=1e-12)
    wet_block = np.repeat(np.repeat(block_mean(generated, 4, areas) > 0, 4, -2), 4, -1)
    assert (fixed[(generated == 0) & wet_block] == 0).all()
    # the absurd cell now holds at most its block's whole mass
    w = areas[:4, :4]
    assert fixed[0, 2, 2] <= coarse[0, 0, 0] * w.sum() / w[2, 2] + 1e-9
