"""nipype_maskers.core.spatial.resampling against nilearn.image.resample_img / resample_to_img.

Unless a test says otherwise, the comparison is **exact**: same dtype, same shape, same affine
and bit-identical values (NaN compared equal), because the same scipy calls are made in the
same way. nilearn's warnings are silenced where they are not the subject of the test.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn import image as nli
from nilearn.image.resampling import BoundingBoxError as NilearnBoundingBoxError

from nipype_maskers.core.spatial.resampling import (
    BoundingBoxError,
    resample_img,
    resample_to_img,
    resample_volume,
    resampled_dtype,
    resolve_target_grid,
)

SHAPE = (7, 8, 9)
INTERPOLATIONS = ["continuous", "linear", "nearest"]


def _oblique(angle: float, zooms, offset) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(0.1), -np.sin(0.1)],
                     [0.0, np.sin(0.1), np.cos(0.1)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ tilt @ np.diag(zooms)
    affine[:3, 3] = offset
    return affine


SOURCE_AFFINE = _oblique(0.2, (3.0, 2.5, 3.5), (-10.0, -12.0, -14.0))

#: name -> (target_affine, target_shape)
TARGETS = {
    "3x3-diag-upsample": (np.diag([1.5, 2.0, 1.75]), None),
    "3x3-oblique-downsample": (_oblique(-0.3, (4.0, 5.0, 4.5), (0, 0, 0))[:3, :3], None),
    "4x4-no-shape": (_oblique(0.5, (2.0, 2.0, 2.0), (-20.0, -25.0, -30.0)), None),
    "4x4-with-shape": (_oblique(0.5, (2.5, 2.0, 3.0), (-15.0, -15.0, -15.0)), (9, 10, 11)),
    "4x4-diag-downsample": (np.diag([5.0, 6.0, 5.5, 1.0]) + np.c_[np.zeros((4, 3)),
                                                                [-12, -15, -20, 0]], (5, 6, 7)),
}


def _data(rng, shape, dtype) -> np.ndarray:
    """Noise around 0 plus a bright and a dark block: their sharp edges make the cubic spline
    overshoot the data range at both ends, so that clipping matters."""
    values = rng.normal(0.0, 20.0, size=shape)
    values[1:5, 2:6, 3:8] += 300.0
    values[4:7, 5:8, 0:3] -= 200.0
    if np.dtype(dtype).kind == "i":
        values = np.round(values)
    return values.astype(dtype)


def _nilearn(img, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nli.resample_img(img, force_resample=True, copy_header=True, **kwargs)


def _ours(img, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return resample_img(img, **kwargs)


def _assert_same_image(ours, ref) -> None:
    """Exact: dtype, shape, affine and values (NaN == NaN)."""
    ours_data, ref_data = np.asanyarray(ours.dataobj), np.asanyarray(ref.dataobj)
    assert ours_data.dtype == ref_data.dtype
    assert ours_data.shape == ref_data.shape
    np.testing.assert_array_equal(ours.affine, ref.affine)
    np.testing.assert_array_equal(ours_data, ref_data)


# --------------------------------------------------------------------------------------------
# The output grid


@pytest.mark.parametrize("target", list(TARGETS))
def test_resolve_target_grid_matches_nilearn(target, rng):
    """Exact affine and shape, for 3x3 and 4x4 targets with and without shape."""
    target_affine, target_shape = TARGETS[target]
    img = nib.Nifti1Image(_data(rng, SHAPE, np.float32), SOURCE_AFFINE)
    ref = _nilearn(img, target_affine=target_affine, target_shape=target_shape)
    affine, shape = resolve_target_grid(SHAPE, SOURCE_AFFINE, target_affine, target_shape)
    assert shape == ref.shape
    np.testing.assert_array_equal(affine, ref.affine)


def test_resolve_target_grid_without_target_is_the_source_grid():
    affine, shape = resolve_target_grid(SHAPE, SOURCE_AFFINE)
    assert shape == SHAPE
    np.testing.assert_array_equal(affine, SOURCE_AFFINE)


def test_resolve_target_grid_3x3_is_a_tight_box():
    """The 3x3 grid starts at the first transformed voxel centre and ends at the last."""
    zooms = np.diag([2.0, 3.0, 4.0])
    affine, shape = resolve_target_grid(SHAPE, np.eye(4), zooms)
    np.testing.assert_array_equal(affine[:3, 3], [0.0, 0.0, 0.0])
    assert shape == (4, 4, 3)  # ceil(6/2)+1, ceil(7/3)+1, ceil(8/4)+1


# --------------------------------------------------------------------------------------------
# resample_img against nilearn


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("target", ["3x3-oblique-downsample", "4x4-with-shape"])
def test_resample_img_3d_matches_nilearn(dtype, interpolation, target, rng):
    """Exact, for every dtype and interpolation, oblique source and targets."""
    target_affine, target_shape = TARGETS[target]
    img = nib.Nifti1Image(_data(rng, SHAPE, dtype), SOURCE_AFFINE)
    kwargs = dict(target_affine=target_affine, target_shape=target_shape,
                  interpolation=interpolation)
    _assert_same_image(_ours(img, **kwargs), _nilearn(img, **kwargs))


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_resample_img_4d_matches_nilearn(dtype, interpolation, rng):
    """Exact on a 4D image (volume by volume, clip range of the whole 4D data)."""
    data = _data(rng, (*SHAPE, 4), dtype)
    data[..., 2] *= 3  # the 4D range differs from each volume's
    img = nib.Nifti1Image(data, SOURCE_AFFINE)
    target_affine, target_shape = TARGETS["4x4-no-shape"]
    kwargs = dict(target_affine=target_affine, target_shape=target_shape,
                  interpolation=interpolation)
    _assert_same_image(_ours(img, **kwargs), _nilearn(img, **kwargs))


@pytest.mark.parametrize("target", ["3x3-diag-upsample", "4x4-diag-downsample"])
@pytest.mark.parametrize("clip", [True, False])
def test_resample_img_clip_and_zoom_match_nilearn(target, clip, rng):
    """Exact, upsampling and downsampling, clip on and off; clipping must change something."""
    target_affine, target_shape = TARGETS[target]
    data = np.zeros((*SHAPE, 2), np.float32)
    data[2:5, 2:6, 3:7] = 100.0  # sharp edges: the cubic spline overshoots
    data += _data(rng, data.shape, np.float32) / 100
    img = nib.Nifti1Image(data, SOURCE_AFFINE)
    kwargs = dict(target_affine=target_affine, target_shape=target_shape)
    ours = _ours(img, clip=clip, **kwargs)
    _assert_same_image(ours, _nilearn(img, clip=clip, **kwargs))
    other = _ours(img, clip=not clip, **kwargs)
    assert not np.array_equal(np.asanyarray(ours.dataobj), np.asanyarray(other.dataobj))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("ndim", [3, 4])
def test_resample_img_nan_and_inf_match_nilearn(dtype, interpolation, ndim, rng):
    """Exact with NaN/inf: a blob thicker than nilearn's 2-layer extrapolation, scattered NaN
    and an inf; the output must contain NaN where the blob lands."""
    data = _data(rng, (*SHAPE, 3)[:ndim], dtype)
    data[1:6, 2:7, 2:8] = np.nan
    data[0, 7, 0] = np.inf
    data[6, 0, 8] = -np.inf
    data[(rng.random(data.shape) < 0.03)] = np.nan
    img = nib.Nifti1Image(data, SOURCE_AFFINE)
    target_affine, target_shape = TARGETS["4x4-with-shape"]
    kwargs = dict(target_affine=target_affine, target_shape=target_shape,
                  interpolation=interpolation)
    ours = _ours(img, **kwargs)
    _assert_same_image(ours, _nilearn(img, **kwargs))
    assert np.isnan(np.asanyarray(ours.dataobj)).any()


def test_resample_img_fill_value_matches_nilearn(rng):
    """Exact with a non-zero fill value outside the field of view (no clip)."""
    img = nib.Nifti1Image(_data(rng, SHAPE, np.float64), SOURCE_AFFINE)
    target_affine, _ = TARGETS["4x4-no-shape"]
    kwargs = dict(target_affine=target_affine, clip=False, fill_value=-7.5)
    ours = _ours(img, **kwargs)
    _assert_same_image(ours, _nilearn(img, **kwargs))
    assert (np.asanyarray(ours.dataobj) == -7.5).any()


def test_clip_range_includes_zero_as_nilearn(rng):
    """Exact on all-positive data: the padding zeros survive clipping as in nilearn."""
    img = nib.Nifti1Image(_data(rng, SHAPE, np.float32) + 500.0, SOURCE_AFFINE)
    kwargs = dict(target_affine=TARGETS["4x4-no-shape"][0])
    ours = _ours(img, **kwargs)
    _assert_same_image(ours, _nilearn(img, **kwargs))
    assert (np.asanyarray(ours.dataobj) == 0).any()


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_resample_img_scaled_int16_file_matches_nilearn(suffix, tmp_path, rng):
    """Exact on a 4D int16 file with read scaling, given as a path (streamed volume by volume)."""
    img = nib.Nifti1Image(_data(rng, (*SHAPE, 3), np.int16), SOURCE_AFFINE)
    img.header.set_slope_inter(0.5, 10.0)
    path = tmp_path / f"bold{suffix}"
    nib.save(img, path)
    target_affine, _ = TARGETS["3x3-oblique-downsample"]
    ours = _ours(path, target_affine=target_affine)
    _assert_same_image(ours, _nilearn(str(path), target_affine=target_affine))


def test_resample_img_does_not_modify_input(rng):
    data = _data(rng, (*SHAPE, 2), np.float32)
    data[3, 3, 3, 0] = np.nan
    img = nib.Nifti1Image(data, SOURCE_AFFINE)
    before = data.copy()
    _ours(img, target_affine=np.diag([2.0, 2.0, 2.0]))
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), before)


# --------------------------------------------------------------------------------------------
# No-op and near-no-op


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_noop_is_a_copy(dtype, rng):
    """Same grid (target_shape given, allclose affine) or no target: an exact copy, dtype kept
    (no int16 -> float32 cast), no shared memory; identical to nilearn."""
    data = _data(rng, (*SHAPE, 2), dtype)
    img = nib.Nifti1Image(data, SOURCE_AFFINE)
    near = SOURCE_AFFINE.copy()
    near[:3] += 1e-10
    for kwargs in ({}, dict(target_affine=near, target_shape=SHAPE)):
        ours = _ours(img, **kwargs)
        _assert_same_image(ours, _nilearn(img, **kwargs))
        assert np.asanyarray(ours.dataobj).dtype == dtype
        assert not np.shares_memory(np.asanyarray(ours.dataobj), data)


def test_same_4x4_affine_without_shape_is_resampled_as_nilearn(rng):
    """nilearn resamples (identity transform, int16 -> float32) when target_shape is missing."""
    img = nib.Nifti1Image(_data(rng, SHAPE, np.int16), SOURCE_AFFINE)
    ours = _ours(img, target_affine=SOURCE_AFFINE)
    _assert_same_image(ours, _nilearn(img, target_affine=SOURCE_AFFINE))
    assert np.asanyarray(ours.dataobj).dtype == np.float32


# --------------------------------------------------------------------------------------------
# resample_to_img


@pytest.mark.parametrize("clip", [None, True])
def test_resample_to_img_matches_nilearn(clip, rng):
    """Exact; the target's data and 4th dimension are ignored; default clip=False."""
    source = nib.Nifti1Image(_data(rng, (*SHAPE, 3), np.float32), SOURCE_AFFINE)
    target_affine, target_shape = TARGETS["4x4-with-shape"]
    target = nib.Nifti1Image(np.zeros((*target_shape, 5), np.int8), target_affine)
    kwargs = {} if clip is None else dict(clip=clip)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = nli.resample_to_img(source, target, force_resample=True, copy_header=True,
                                  **kwargs)
        ours = resample_to_img(source, target, **kwargs)
    _assert_same_image(ours, ref)


# --------------------------------------------------------------------------------------------
# resample_volume: the streaming building block


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
@pytest.mark.parametrize("interpolation", ["continuous", "nearest"])
def test_resample_volume_per_volume_equals_resample_img_4d(dtype, interpolation, rng):
    """Exact: each volume into a slice of a preallocated 4D output, clipped with the range of
    the whole 4D data, equals resample_img on the 4D image (and nilearn's)."""
    data = _data(rng, (*SHAPE, 3), dtype)
    data[..., 1] *= 4
    if dtype == np.float32:
        data[2, 3, 4, 0] = np.nan
    img = nib.Nifti1Image(data, SOURCE_AFFINE)
    target_affine, _ = TARGETS["3x3-diag-upsample"]
    expected = _ours(img, target_affine=target_affine, interpolation=interpolation)
    grid_affine, grid_shape = resolve_target_grid(SHAPE, SOURCE_AFFINE, target_affine)
    out = np.empty((*grid_shape, 3), dtype=resampled_dtype(dtype, interpolation), order="F")
    data_range = (np.nanmin(data), np.nanmax(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(3):
            returned = resample_volume(data[..., t], SOURCE_AFFINE, grid_affine, grid_shape,
                                       interpolation=interpolation, clip=data_range,
                                       out=out[..., t])
            assert np.shares_memory(returned, out)
    np.testing.assert_array_equal(grid_affine, expected.affine)
    np.testing.assert_array_equal(out, np.asanyarray(expected.dataobj))
    _assert_same_image(expected, _nilearn(img, target_affine=target_affine,
                                          interpolation=interpolation))


def test_resample_volume_clip_true_uses_the_volume_range(rng):
    """Exact: clip=True on one volume equals resample_img on that 3D volume."""
    data = _data(rng, SHAPE, np.float64)
    zooms = TARGETS["3x3-diag-upsample"][0]
    grid_affine, grid_shape = resolve_target_grid(SHAPE, SOURCE_AFFINE, zooms)
    ours = resample_volume(data, SOURCE_AFFINE, grid_affine, grid_shape)
    ref = _nilearn(nib.Nifti1Image(data, SOURCE_AFFINE), target_affine=zooms)
    assert ours.dtype == np.float64
    np.testing.assert_array_equal(ours, np.asanyarray(ref.dataobj))
    unclipped = resample_volume(data, SOURCE_AFFINE, grid_affine, grid_shape, clip=False)
    assert unclipped.max() > ours.max()
    assert unclipped.min() < ours.min()


def test_resample_img_all_nan_volume_matches_nilearn(rng):
    """Exact: an all-NaN first volume (the 4D clip range ignores it, as np.nanmin does)."""
    data = _data(rng, (*SHAPE, 3), np.float32)
    data[..., 0] = np.nan
    img = nib.Nifti1Image(data, SOURCE_AFFINE)
    kwargs = dict(target_affine=TARGETS["3x3-diag-upsample"][0])
    ours = _ours(img, **kwargs)
    _assert_same_image(ours, _nilearn(img, **kwargs))
    assert np.isfinite(np.asanyarray(ours.dataobj)[..., 1:]).all()


def test_resampled_dtype_matches_nilearn_rule():
    assert resampled_dtype(np.int8, "continuous") == np.float32
    assert resampled_dtype(np.int32, "continuous") == np.float32
    assert resampled_dtype(np.int64, "continuous") == np.float64
    assert resampled_dtype(np.uint8, "continuous") == np.uint8
    assert resampled_dtype(np.int16, "linear") == np.int16
    assert resampled_dtype(np.dtype(">f4"), "nearest") == np.dtype("<f4")


# --------------------------------------------------------------------------------------------
# Warnings and headers


def test_integer_cast_warns(rng):
    img = nib.Nifti1Image(_data(rng, SHAPE, np.int16), SOURCE_AFFINE)
    with pytest.warns(UserWarning, match="Continuous interpolation of int16 data.*float32"):
        resample_img(img, target_affine=np.diag([2.0, 2, 2]))


def test_binary_data_with_linear_warns_and_nearest_does_not(rng):
    data = (rng.random(SHAPE) > 0.5).astype(np.float32)
    img = nib.Nifti1Image(data, SOURCE_AFFINE)
    with pytest.warns(UserWarning, match="Resampling binary images"):
        resample_img(img, target_affine=np.diag([2.0, 2, 2]), interpolation="linear")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resample_img(img, target_affine=np.diag([2.0, 2, 2]), interpolation="nearest")


def test_non_finite_warns(rng):
    data = _data(rng, SHAPE, np.float32)
    data[1, 1, 1] = np.nan
    with pytest.warns(RuntimeWarning, match="NaNs or infinite values"):
        resample_img(nib.Nifti1Image(data, SOURCE_AFFINE), target_affine=np.diag([2.0, 2, 2]))


def test_header_is_copied_with_the_data_dtype(rng):
    """Deliberate difference: nilearn keeps the int16 header dtype on float32 data."""
    img = nib.Nifti1Image(_data(rng, SHAPE, np.int16), SOURCE_AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    ours = _ours(img, target_affine=np.diag([2.0, 2, 2]))
    assert ours.get_data_dtype() == np.float32
    assert _nilearn(img, target_affine=np.diag([2.0, 2, 2])).get_data_dtype() == np.int16
    assert ours.header.get_xyzt_units() == ("mm", "sec")
    assert ours.header["cal_max"] == np.asanyarray(ours.dataobj).max()


# --------------------------------------------------------------------------------------------
# Errors


def _img(rng):
    return nib.Nifti1Image(_data(rng, SHAPE, np.float32), SOURCE_AFFINE)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(interpolation="cubic"), ValueError, "'continuous', 'linear', 'nearest'"),
        (dict(target_shape=(4, 4, 4)), ValueError, "pass a 4x4 target_affine"),
        (dict(target_affine=np.eye(3), target_shape=(4, 4, 4)), ValueError,
         "pass a 4x4 target_affine"),
        (dict(target_affine=np.eye(4), target_shape=(4, 4)), ValueError, "3 positive integers"),
        (dict(target_affine=np.eye(4), target_shape=(4, 0, 4)), ValueError,
         "3 positive integers"),
        (dict(target_affine=np.eye(4), target_shape=(4, 4.5, 4)), TypeError,
         "3 positive integers"),
        (dict(target_affine=np.eye(2)), ValueError, "expected shape 3x3 or 4x4"),
        (dict(target_affine=np.full((4, 4), np.nan)), ValueError, "NaN or infinite"),
        (dict(target_affine=np.diag([1.0, 0.0, 1.0, 1.0])), ValueError, "singular"),
        (dict(target_affine="eye"), TypeError, "numeric array"),
        (dict(target_affine=np.eye(4), clip="yes"), TypeError, "clip"),
        (dict(target_affine=np.eye(4), fill_value="zero"), TypeError, "fill_value"),
    ],
)
def test_resample_img_errors(kwargs, exc, match, rng):
    with pytest.raises(exc, match=match):
        resample_img(_img(rng), **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(interpolation="cubic"),
        dict(target_shape=(4, 4, 4)),
        dict(target_affine=np.eye(3), target_shape=(4, 4, 4)),
        dict(target_affine=np.eye(4), target_shape=(4, 4)),
    ],
)
def test_errors_nilearn_also_raises(kwargs, rng):
    """The ValueErrors we share with nilearn (ours have clearer messages)."""
    with pytest.raises(ValueError):
        _nilearn(_img(rng), **kwargs)
    with pytest.raises(ValueError):
        resample_img(_img(rng), **kwargs)


def test_bounding_box_error_as_nilearn(rng):
    """The source lies entirely at negative indices of the target grid: both raise."""
    far = np.eye(4)
    far[:3, 3] = 500.0
    with pytest.raises(NilearnBoundingBoxError):
        _nilearn(_img(rng), target_affine=far)
    with pytest.raises(BoundingBoxError, match="contains none of the source data"):
        resample_img(_img(rng), target_affine=far)
    assert issubclass(BoundingBoxError, ValueError)
    with pytest.raises(BoundingBoxError):
        resolve_target_grid(SHAPE, SOURCE_AFFINE, far, (3, 3, 3))


def test_bad_image_inputs(rng):
    with pytest.raises(TypeError):
        resample_img(np.zeros(SHAPE), target_affine=np.eye(4))
    with pytest.raises(ValueError, match="no such file"):
        resample_img("/nonexistent/bold.nii.gz", target_affine=np.eye(4))
    with pytest.raises(ValueError, match="source_affine.*singular"):
        resolve_target_grid(SHAPE, np.diag([1.0, 1.0, 0.0, 1.0]), np.eye(3))
    with pytest.raises(ValueError, match="source_shape3d"):
        resolve_target_grid((7, 8), SOURCE_AFFINE, np.eye(3))


def test_resample_volume_errors(rng):
    data = _data(rng, SHAPE, np.float32)
    grid_affine, grid_shape = resolve_target_grid(SHAPE, SOURCE_AFFINE, np.diag([2.0, 2, 2]))
    with pytest.raises(ValueError, match="resolve_target_grid"):
        resample_volume(data, SOURCE_AFFINE, np.eye(3), grid_shape)
    with pytest.raises(ValueError, match="3D volume"):
        resample_volume(data[..., None], SOURCE_AFFINE, grid_affine, grid_shape)
    with pytest.raises(ValueError, match="out: expected an array of shape"):
        resample_volume(data, SOURCE_AFFINE, grid_affine, grid_shape,
                        out=np.empty(grid_shape, np.float64))
    with pytest.raises(ValueError, match="out: expected an array of shape"):
        resample_volume(data, SOURCE_AFFINE, grid_affine, grid_shape,
                        out=np.empty((2, 2, 2), np.float32))
    with pytest.raises(TypeError, match="complex64 is not supported"):
        resample_volume(data.astype(np.complex64), SOURCE_AFFINE, grid_affine, grid_shape)
    with pytest.raises(ValueError, match="last row"):
        resample_volume(data, SOURCE_AFFINE, np.ones((4, 4)), grid_shape)
    with pytest.raises(ValueError, match="interpolation"):
        resample_volume(data, SOURCE_AFFINE, grid_affine, grid_shape, interpolation="spline")
