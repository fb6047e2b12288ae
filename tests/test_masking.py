"""Mask computation, loading and unmasking against nilearn 0.14 on the same files.

Masks must be identical voxel for voxel; means bit-identical for float32 data.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn import masking as nl_masking
from synthetic import make_epi, oblique_affine

from nipype_maskers.core.io.images import ImageError
from nipype_maskers.core.spatial import masking


def _same_mask(ours, theirs):
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj) != 0, theirs.get_fdata() != 0)
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-10)


@pytest.fixture(params=["float32_gz", "int16_scaled_nii", "float64_nan"])
def data_file(request, tmp_path):
    if request.param == "float32_gz":
        data, _ = make_epi(seed=3)
        img = nib.Nifti1Image(data, oblique_affine())
        path = tmp_path / "f32.nii.gz"
    elif request.param == "int16_scaled_nii":
        data, _ = make_epi(dtype=np.int16, seed=4)
        img = nib.Nifti1Image(data, oblique_affine())
        img.header.set_slope_inter(0.5, 10.0)
        path = tmp_path / "i16.nii"
    else:
        data, _ = make_epi(dtype=np.float64, seed=5)
        data[0, 0, 0, :] = np.nan  # SPM-style NaN background voxel on the border
        data[8, 9, 7, 2] = np.nan
        img = nib.Nifti1Image(data, oblique_affine())
        path = tmp_path / "f64.nii.gz"
    nib.save(img, path)
    return path


def test_mean_volume_is_bit_identical_to_nilearn(data_file):
    from nilearn.image.image import compute_mean

    ours = masking.mean_volume(data_file).mean
    theirs, _ = compute_mean(str(data_file))
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"border_size": 1},
        {"connected": True},
        {"opening": 1},
        {"opening": 2, "connected": True, "border_size": 3},
    ],
)
def test_background_mask_matches_nilearn(data_file, args):
    ours = masking.compute_mask(data_file, "background", mask_args=args)
    theirs = nl_masking.compute_background_mask(str(data_file), **args)
    _same_mask(ours, theirs)


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"lower_cutoff": 0.1, "upper_cutoff": 0.9},
        {"connected": False},
        {"opening": False},
        {"opening": 1},
        {"exclude_zeros": True},
        {"ensure_finite": False, "opening": 0},
    ],
)
def test_epi_mask_matches_nilearn(data_file, args):
    ours = masking.compute_mask(data_file, "epi", mask_args=args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = nl_masking.compute_epi_mask(str(data_file), **args)
    _same_mask(ours, theirs)
    assert 0 < np.asanyarray(ours.dataobj).sum() < np.prod(ours.shape)


def test_epi_mask_finds_the_brain(epi_file):
    _, brain = make_epi()
    mask = np.asanyarray(masking.compute_mask(epi_file, "epi").dataobj) != 0
    overlap = (mask & brain).sum() / (mask | brain).sum()
    assert overlap > 0.9


def test_mask_on_a_volume_selection(epi_file):
    from nilearn.image import index_img

    ours = masking.compute_mask(epi_file, "epi", volumes=np.arange(3, 9))
    theirs = nl_masking.compute_epi_mask(index_img(str(epi_file), slice(3, 9)))
    _same_mask(ours, theirs)


def test_multi_run_masks_match_nilearn(tmp_path):
    paths = []
    for seed in range(3):
        data, _ = make_epi(seed=10 + seed, n_volumes=5)
        data[..., :] *= 1 + 0.1 * seed
        path = tmp_path / f"run{seed}.nii.gz"
        nib.save(nib.Nifti1Image(data, oblique_affine()), path)
        paths.append(path)
    for strategy, reference, args in [
        ("background", nl_masking.compute_multi_background_mask, {}),
        ("background", nl_masking.compute_multi_background_mask, {"threshold": 1.0}),
        ("epi", nl_masking.compute_multi_epi_mask, {"threshold": 0.2, "opening": 1}),
        ("epi", nl_masking.compute_multi_epi_mask, {"connected": False}),
    ]:
        ours = masking.compute_multi_mask(paths, strategy, mask_args=args)
        theirs = reference([str(p) for p in paths], **args)
        _same_mask(ours, theirs)


def test_intersect_masks_matches_nilearn(rng, affine):
    masks = [nib.Nifti1Image((rng.random((7, 8, 9)) > 0.4).astype(np.int8), affine)
             for _ in range(4)]
    for threshold in (0.0, 0.25, 0.5, 1.0):
        for connected in (True, False):
            ours = masking.intersect_masks(masks, threshold=threshold, connected=connected)
            theirs = nl_masking.intersect_masks(masks, threshold=threshold, connected=connected)
            _same_mask(ours, theirs)


def test_unknown_strategy_lists_the_accepted_ones(epi_file):
    with pytest.raises(ValueError, match="mask_strategy: unknown 'otsu'; accepted: background, "
                                         "epi, whole-brain-template, gm-template, wm-template"):
        masking.compute_mask(epi_file, "otsu")


def test_unknown_mask_arg_is_refused(epi_file):
    with pytest.raises(ValueError, match="lower_cutoff not used by mask_strategy='background'"):
        masking.compute_mask(epi_file, "background", mask_args={"lower_cutoff": 0.3})


def test_empty_computed_mask_is_an_error(tmp_path):
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.full((7, 8, 9, 3), 5.0, np.float32), oblique_affine()), path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(masking.MaskError, match="computed an empty mask"):
            masking.compute_mask(path, "background")


def test_load_mask_rules(tmp_path, affine):
    data = np.zeros((7, 8, 9), np.float32)
    data[2:5, 3:6, 4:7] = 3.0
    good = nib.Nifti1Image(data, affine)
    binary, out_affine = masking.load_mask(good)
    assert binary.sum() == 27 and binary.dtype == bool
    np.testing.assert_array_equal(out_affine, affine)
    three = data.copy()
    three[0, 0, 0] = 1.0
    with pytest.raises(masking.MaskError, match="must be binary.*3 distinct values"):
        masking.load_mask(nib.Nifti1Image(three, affine))
    with pytest.raises(masking.MaskError, match="the mask is empty"):
        masking.load_mask(nib.Nifti1Image(np.zeros((7, 8, 9), np.int8), affine))
    no_zero = np.where(data > 0, 2.0, 1.0).astype(np.float32)
    with pytest.raises(masking.MaskError, match="must be binary"):
        masking.load_mask(nib.Nifti1Image(no_zero, affine))
    with pytest.raises(ImageError, match="expected a 3D image"):
        masking.load_mask(nib.Nifti1Image(np.ones((7, 8, 9, 2), np.int8), affine))


def test_unmask_round_trip_and_nilearn(rng, affine):
    mask_data = np.zeros((7, 8, 9), np.int8)
    mask_data[1:6, 2:7, 3:8] = rng.random((5, 5, 5)) > 0.3
    mask_img = nib.Nifti1Image(mask_data, affine)
    n = int(mask_data.sum())
    signals = rng.normal(size=(4, n)).astype(np.float32)
    ours = masking.unmask(signals, mask_img)
    theirs = nl_masking.unmask(signals, mask_img)
    assert ours.shape == (7, 8, 9, 4) and ours.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), theirs.get_fdata())
    np.testing.assert_array_equal(nl_masking.apply_mask(ours, mask_img), signals)
    one = masking.unmask(signals[0], mask_img)
    assert one.shape == (7, 8, 9)
    np.testing.assert_array_equal(np.asanyarray(one.dataobj)[mask_data != 0], signals[0])
    with pytest.raises(ValueError, match=f"expected {n} values per row"):
        masking.unmask(signals[:, :-1], mask_img)


def test_flat_indices_give_nilearn_voxel_order(rng):
    mask = rng.random((7, 8, 9)) > 0.5
    volume = np.asfortranarray(rng.normal(size=(7, 8, 9)))
    np.testing.assert_array_equal(
        volume.reshape(-1, order="F").take(masking.flat_indices(mask)), volume[mask]
    )
