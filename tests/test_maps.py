"""nipype_maskers.core.regions.maps against nilearn 0.14.1 (img_to_signals_maps, NiftiMapsMasker).

Tolerances: float64 maps and data, ``rtol=1e-8`` with ``atol=1e-8 * max|ref|`` (nilearn uses
``lstsq`` (SVD) on every call, we use a pseudo-inverse from the Gram matrix computed once: the
two agree to ~1e-14 on these well-conditioned maps). float32 maps and data: ``atol=1e-4 *
max|ref|`` (both compute in float32, with different round-off).
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
import scipy.linalg
from nilearn.maskers import NiftiMapsMasker
from nilearn.regions import img_to_signals_maps, signals_to_img_maps

from nipype_maskers.core.regions import maps as maps_mod
from nipype_maskers.core.regions.maps import (
    MapsRegions,
    maps_signals,
    prepare_maps,
    signals_to_maps_image_data,
)

SHAPE = (7, 8, 9)
N_VOL = 11


def _affine() -> np.ndarray:
    affine = np.diag([2.0, 2.5, 3.0, 1.0])
    affine[:3, 3] = [-7.0, 10.0, -13.0]
    return affine


def _gaussian_maps(rng, n_maps=5, width=1.6, floor=0.08, dtype=np.float64) -> np.ndarray:
    """Overlapping Gaussian blobs, cut below ``floor`` (so some voxels have no map)."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), axis=-1)
    centres = rng.uniform([1, 1, 1], np.array(SHAPE) - 2, size=(n_maps, 3))
    maps = np.stack(
        [np.exp(-((grid - c) ** 2).sum(-1) / (2 * width**2)) for c in centres], axis=-1
    )
    maps[maps < floor] = 0
    return np.asfortranarray(maps.astype(dtype))


def _data(rng, dtype=np.float64) -> np.ndarray:
    return np.asfortranarray((100 + 10 * rng.normal(size=(*SHAPE, N_VOL))).astype(dtype))


def _ours(data, maps, mask=None, **kwargs):
    regions = prepare_maps(maps, mask, **kwargs)
    values = data.reshape(-1, data.shape[3], order="F")[regions.voxel_index].T
    return maps_signals(values, regions), regions


def _img(array):
    return nib.Nifti1Image(array, _affine())


def _masker(maps, mask=None, **kwargs):
    return NiftiMapsMasker(
        _img(maps), mask_img=None if mask is None else _img(mask.astype(np.int8)),
        standardize=None, **kwargs,
    )


def _close(ours, ref, rel):
    np.testing.assert_allclose(ours, ref, rtol=rel, atol=rel * np.abs(ref).max())


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_no_mask_matches_img_to_signals_maps(rng):
    maps, data = _gaussian_maps(rng), _data(rng)
    ref, labels = img_to_signals_maps(_img(data), _img(maps))
    ours, regions = _ours(data, maps)
    assert labels == list(range(5))
    assert regions.kept.all()
    # the support is the union of the non-zero maps, as flat Fortran indices
    np.testing.assert_array_equal(
        regions.voxel_index, np.flatnonzero(maps.any(axis=3).ravel(order="F"))
    )
    assert ours.shape == (N_VOL, 5) and ours.dtype == np.float64
    _close(ours, ref, 1e-8)


def test_masker_with_mask_overlap_and_emptied_map(rng):
    maps, data = _gaussian_maps(rng, n_maps=6), _data(rng)
    maps[..., 3] = 0
    maps[0:2, 0:2, 0:2, 3] = 0.7  # a small map that the mask removes entirely
    mask = np.ones(SHAPE, dtype=bool)
    mask[0:3, 0:3, 0:3] = False
    mask[4:, 5:, :] = False  # cuts the other maps too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "maps ... were removed"
        ref = _masker(maps, mask).fit_transform(_img(data))
        ref_fn, labels = img_to_signals_maps(_img(data), _img(maps), mask_img=_img(mask * 1.0))
    ours, regions = _ours(data, maps, mask)
    assert labels == [0, 1, 2, 4, 5]
    np.testing.assert_array_equal(regions.kept, np.isin(np.arange(6), labels))
    assert ours.shape == (N_VOL, 6)  # stable columns (nilearn B4 drops column 3)
    assert np.isnan(ours[:, 3]).all()
    _close(ours[:, labels], ref, 1e-8)
    _close(ours[:, labels], ref_fn, 1e-8)
    # only in-mask voxels are gathered
    assert mask.ravel(order="F")[regions.voxel_index].all()


def test_float32_matches_nilearn_float32(rng):
    maps, data = _gaussian_maps(rng, dtype=np.float32), _data(rng, np.float32)
    ref = _masker(maps).fit_transform(_img(data))
    ours, regions = _ours(data, maps)
    assert regions.pinv.dtype == np.float32 and ours.dtype == np.float32
    _close(ours, ref, 1e-4)
    # float64 data with float32 maps: computed with the float32 operator, returned as float64
    ours64, _ = _ours(data.astype(np.float64), maps)
    assert ours64.dtype == np.float64
    _close(ours64, ref, 1e-4)
    # a float64 operator on request
    ours_d, regions_d = _ours(data.astype(np.float64), maps, dtype=np.float64)
    assert regions_d.pinv.dtype == np.float64
    ref_d, _ = img_to_signals_maps(_img(data.astype(np.float64)), _img(maps))
    _close(ours_d, ref_d, 1e-8)


def test_rank_deficient_maps_share_signal_as_lstsq(rng):
    maps = _gaussian_maps(rng, n_maps=3)
    maps = np.concatenate([maps, maps[..., :1]], axis=3)  # duplicated map (nilearn #754)
    data = _data(rng)
    vox = maps.any(axis=3)
    ref = scipy.linalg.lstsq(maps[vox], data[vox])[0].T
    ours, _ = _ours(data, maps)
    _close(ours, ref, 1e-8)
    np.testing.assert_allclose(ours[:, 0], ours[:, 3], rtol=1e-10)


def test_all_zero_map_without_mask_is_zero_like_nilearn(rng):
    maps, data = _gaussian_maps(rng, n_maps=3), _data(rng)
    maps[..., 1] = 0
    ref, _ = img_to_signals_maps(_img(data), _img(maps))
    ours, regions = _ours(data, maps)
    assert regions.kept.all()
    np.testing.assert_array_equal(ours[:, 1], 0)
    _close(ours, ref, 1e-8)


def test_non_finite_maps_and_data_count_as_zero(rng):
    maps, data = _gaussian_maps(rng), _data(rng)
    maps[3, 3, 3, 1] = np.nan
    maps[2, 4, 5, 0] = np.inf
    data[3, 4, 4, 2] = np.nan
    data[maps.any(axis=3) & (rng.random(SHAPE) < 0.05), 5] = -np.inf
    maps_before, data_before = maps.copy(), data.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # copies: nilearn's safe_get_data(ensure_finite=True) zeroes the NaNs of an in-memory
        # image's array in place, i.e. it modifies the caller's arrays
        ref, _ = img_to_signals_maps(_img(data.copy()), _img(maps.copy()))
    ours, _ = _ours(data, maps)
    assert np.isfinite(ours).all()
    _close(ours, ref, 1e-8)
    np.testing.assert_array_equal(maps, maps_before)  # inputs untouched
    np.testing.assert_array_equal(data, data_before)


def test_allow_overlap_false_disjoint_maps_and_negative_weights(rng):
    """Disjoint maps pass; negative lobes are kept (nilearn B3 zeroes them in place)."""
    maps = np.zeros((*SHAPE, 3))
    maps[0:3, :, :, 0] = rng.uniform(0.2, 1, (3, *SHAPE[1:]))
    maps[4:7, 0:4, :, 1] = rng.uniform(0.2, 1, (3, 4, SHAPE[2]))
    maps[4:7, 5:8, :, 2] = rng.uniform(0.2, 1, (3, 3, SHAPE[2]))
    data = _data(rng)
    ref = _masker(maps, allow_overlap=False).fit_transform(_img(data))
    ours, _ = _ours(data, maps, allow_overlap=False)
    _close(ours, ref, 1e-8)

    maps[4:7, 0:4, 0:2, 0] = -0.5  # a negative lobe where map 1 is positive: not an overlap
    maps_before = maps.copy()
    ours, _ = _ours(data, maps, allow_overlap=False)
    np.testing.assert_array_equal(maps, maps_before)
    ref_true = _masker(maps, allow_overlap=True).fit_transform(_img(data))
    ref_false = _masker(maps, allow_overlap=False).fit_transform(_img(data))
    _close(ours, ref_true, 1e-8)
    assert not np.allclose(ours, ref_false, rtol=1e-3)  # B3: nilearn dropped the negative lobe


def test_allow_overlap_false_names_first_pair(rng):
    maps = np.zeros((*SHAPE, 4))
    maps[0:2, ..., 0] = 1
    maps[2:4, ..., 1] = 1
    maps[4:7, ..., 3] = 1
    maps[5, 6, 7, 1] = 0.3  # maps 1 and 3 overlap at voxel (5, 6, 7)
    maps[6, 7, 8, 0] = 0.3  # maps 0 and 3 overlap later in Fortran order
    with pytest.raises(ValueError, match=r"maps 1 and 3 overlap at voxel \(5, 6, 7\)"):
        prepare_maps(maps, allow_overlap=False)
    with pytest.raises(ValueError, match="Overlap detected"):
        _masker(maps, allow_overlap=False).fit_transform(_img(_data(rng)))
    prepare_maps(maps, allow_overlap=True)  # fine


def test_overlap_below_eps_is_ignored_like_nilearn(rng, monkeypatch):
    maps = np.zeros((*SHAPE, 2), dtype=np.float32)
    maps[0:3, ..., 0] = 1
    maps[3:7, ..., 1] = 1
    maps[1, 1, 1, 1] = 5e-8  # below float32 eps (1.19e-7): not present
    data = _data(rng, np.float32)
    ref = _masker(maps, allow_overlap=False).fit_transform(_img(data))
    monkeypatch.setattr(maps_mod, "_CHUNK_ELEMENTS", 40)  # many slabs
    ours, _ = _ours(data, maps, allow_overlap=False)
    _close(ours, ref, 1e-4)
    maps[1, 1, 1, 1] = 2e-7
    with pytest.raises(ValueError, match=r"maps 0 and 1 overlap at voxel \(1, 1, 1\)"):
        prepare_maps(maps, allow_overlap=False)


def test_small_chunks_and_streaming_give_same_signals(rng, monkeypatch):
    maps, data = _gaussian_maps(rng), _data(rng)
    mask = rng.random(SHAPE) > 0.2
    full, regions = _ours(data, maps, mask)
    monkeypatch.setattr(maps_mod, "_CHUNK_ELEMENTS", 7)
    chunked, regions_c = _ours(data, maps, mask)
    np.testing.assert_array_equal(regions.voxel_index, regions_c.voxel_index)
    np.testing.assert_allclose(chunked, full, rtol=1e-12, atol=1e-12 * np.abs(full).max())
    values = data.reshape(-1, N_VOL, order="F")[regions.voxel_index].T
    streamed = np.vstack([maps_signals(values[t : t + 3], regions) for t in range(0, N_VOL, 3)])
    np.testing.assert_allclose(streamed, full, rtol=1e-12, atol=1e-12 * np.abs(full).max())


def test_c_ordered_maps_and_integer_data(rng):
    maps, data = _gaussian_maps(rng), _data(rng)
    ours_f, _ = _ours(data, maps)
    ours_c, _ = _ours(np.ascontiguousarray(data), np.ascontiguousarray(maps))
    np.testing.assert_allclose(ours_c, ours_f, rtol=1e-12)
    data_i = np.round(data).astype(np.int16)
    ref_i, _ = img_to_signals_maps(_img(data_i), _img(maps))
    ours_i, _ = _ours(data_i, maps)
    assert ours_i.dtype == np.float64
    _close(ours_i, ref_i, 1e-8)


# -- inverse -------------------------------------------------------------------------------


@pytest.mark.parametrize("use_mask", [False, True])
def test_inverse_matches_signals_to_img_maps(rng, use_mask):
    maps = _gaussian_maps(rng)
    maps[2, 2, 2, 0] = np.nan
    mask = (rng.random(SHAPE) > 0.3) if use_mask else None
    signals = rng.normal(size=(4, 5))
    mask_img = _img(mask.astype(np.int8)) if use_mask else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Non-finite values detected"
        ref = signals_to_img_maps(signals, _img(maps.copy()), mask_img=mask_img).get_fdata()
        ref1 = signals_to_img_maps(signals[1], _img(maps.copy()), mask_img=mask_img)
    ours = signals_to_maps_image_data(signals, maps, mask_data=mask)
    assert ours.shape == (*SHAPE, 4)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    ref1 = ref1.get_fdata()
    ours1 = signals_to_maps_image_data(signals[1], maps, mask_data=mask)
    assert ours1.shape == SHAPE
    np.testing.assert_allclose(ours1, ref1, rtol=1e-12, atol=1e-12)


def test_inverse_accepts_our_output_with_emptied_maps(rng):
    """nilearn B4: inverse_transform(transform(x)) breaks when the mask removes a map."""
    maps, data = _gaussian_maps(rng, n_maps=4), _data(rng)
    maps[..., 2] = 0
    maps[0, 0, 0, 2] = 1.0
    mask = np.ones(SHAPE, dtype=bool)
    mask[0, 0, 0] = False
    ours, regions = _ours(data, maps, mask)
    assert not regions.kept[2]
    image = signals_to_maps_image_data(ours, maps, mask_data=mask)
    assert np.isfinite(image).all()
    zeroed = np.nan_to_num(ours, nan=0.0)
    ref = signals_to_img_maps(zeroed, _img(maps), mask_img=_img(mask.astype(np.int8)))
    np.testing.assert_allclose(image, ref.get_fdata(), rtol=1e-12, atol=1e-9)

    masker = _masker(maps, mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        signals = masker.fit_transform(_img(data))
    assert signals.shape[1] == 3
    with pytest.raises(ValueError):
        masker.inverse_transform(signals)


# -- errors --------------------------------------------------------------------------------


def test_errors(rng):
    maps = _gaussian_maps(rng)
    with pytest.raises(ValueError, match="maps_img must be 4D.*3D"):
        prepare_maps(maps[..., 0])
    with pytest.raises(TypeError, match="maps_img must hold real numbers"):
        prepare_maps(maps.astype(complex))
    with pytest.raises(ValueError, match=r"mask_img has shape \(7, 8\)"):
        prepare_maps(maps, np.ones(SHAPE[:2]))
    with pytest.raises(ValueError, match="dtype must be float32, float64"):
        prepare_maps(maps, dtype=np.int32)
    far_mask = np.zeros(SHAPE, dtype=bool)
    far_mask[0, 0, 0] = True
    with pytest.raises(ValueError, match="No map left after applying mask_img"):
        prepare_maps(np.where(far_mask[..., None], 0.0, maps), far_mask)
    regions = prepare_maps(maps)
    assert isinstance(regions, MapsRegions) and regions.n_maps == 5
    with pytest.raises(ValueError, match=r"values must be 2D \(n_samples, \d+\)"):
        maps_signals(np.zeros((3, regions.voxel_index.size + 1)), regions)
    with pytest.raises(ValueError, match="values must be 2D"):
        maps_signals(np.zeros(regions.voxel_index.size), regions)
    with pytest.raises(TypeError, match="regions must be a MapsRegions"):
        maps_signals(np.zeros((1, 3)), object())
    with pytest.raises(ValueError, match=r"region_signals must have shape \(5,\)"):
        signals_to_maps_image_data(np.zeros((2, 4)), maps)
    with pytest.raises(ValueError, match="maps_img must be 4D"):
        signals_to_maps_image_data(np.zeros(5), maps[..., 0])
    with pytest.raises(ValueError, match="mask_img has shape"):
        signals_to_maps_image_data(np.zeros(5), maps, mask_data=np.ones((7, 8, 8)))
