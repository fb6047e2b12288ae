"""target_affine / target_shape and the template strategies, against nilearn on the same files.

Masks identical voxel for voxel; float32 rows to float32 round-off (rtol 1e-5 of the data's
scale: the cubic spline is evaluated by the same scipy call, on one volume at a time here and on
the whole 4D array in nilearn).
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn import masking as nl_masking
from nilearn.maskers import NiftiMasker
from synthetic import make_epi

from nipype_maskers.core.spatial import masking
from nipype_maskers.core.voxels import masker as nifti_masker
from nipype_maskers.demo.data import MNI_2MM_AFFINE, template_on_grid


def _nilearn_rows(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masker = NiftiMasker(standardize=None, **kwargs)
        return masker.fit_transform(str(path)), masker


@pytest.mark.parametrize(
    "target",
    [
        {"target_affine": np.diag([4.0, 4.0, 4.0])},
        {"target_affine": np.diag([2.5, 3.0, 3.5])},
        {"target_affine": np.array([[3.0, 0, 0, -30], [0, 3.0, 0, -35], [0, 0, 3.0, -25],
                                    [0, 0, 0, 1]]), "target_shape": (16, 17, 14)},
    ],
    ids=["3x3-iso", "3x3-aniso", "4x4-shape"],
)
@pytest.mark.parametrize("fwhm", [None, 5.0])
def test_masker_on_a_target_grid_matches_nilearn(epi_file, target, fwhm):
    ours = nifti_masker.mask_volumes(epi_file, mask_strategy="epi", smoothing_fwhm=fwhm,
                                     **target)
    theirs, masker = _nilearn_rows(epi_file, mask_strategy="epi", smoothing_fwhm=fwhm, **target)
    np.testing.assert_array_equal(np.asanyarray(ours.mask.dataobj) != 0,
                                  masker.mask_img_.get_fdata() != 0)
    np.testing.assert_allclose(ours.mask.affine, masker.mask_img_.affine, atol=1e-10)
    assert ours.signals.shape == theirs.shape
    if fwhm is None:
        np.testing.assert_allclose(ours.signals, theirs, rtol=1e-5,
                                   atol=1e-5 * np.abs(theirs).max())
        return
    # nilearn's masker smooths on the grid cropped to the mask's bounding box (its FOV check
    # crops the mask, then resamples the data onto it), so near that box's faces it reflects
    # the data instead of using the true neighbours. We smooth the whole resampled volume:
    # exactly nilearn's own smooth_img(resample_img(...)), then masked.
    from nilearn.image import resample_img, smooth_img
    from nilearn.masking import apply_mask

    reference = apply_mask(
        smooth_img(resample_img(str(epi_file), interpolation="continuous", **target), fwhm),
        ours.mask,
    )
    np.testing.assert_allclose(ours.signals, reference, rtol=1e-5,
                               atol=1e-5 * np.abs(reference).max())
    inside = np.abs(ours.signals - theirs).max(axis=0) < 1e-3 * np.abs(theirs).max()
    assert inside.mean() > 0.5  # the crop only changes voxels near the mask's bounding box


def test_given_mask_on_the_target_grid(epi_file, tmp_path):
    target = np.diag([3.0, 3.0, 3.0])
    mask = masking.compute_mask(epi_file, "epi", target_affine=target)
    mask_path = tmp_path / "mask3mm.nii.gz"
    nib.save(mask, mask_path)
    ours = nifti_masker.mask_volumes(epi_file, mask_path, target_affine=target)
    theirs, _ = _nilearn_rows(epi_file, mask_img=str(mask_path), target_affine=target)
    np.testing.assert_allclose(ours.signals, theirs, rtol=1e-5, atol=1e-5 * np.abs(theirs).max())


@pytest.mark.parametrize("strategy", ["background", "epi"])
def test_compute_mask_on_a_target_grid_matches_nilearn(epi_file, strategy):
    reference = {"background": nl_masking.compute_background_mask,
                 "epi": nl_masking.compute_epi_mask}[strategy]
    for target in ({"target_affine": np.diag([3.0, 3.0, 3.0])},
                   {"target_affine": np.diag([2.0, 2.0, 2.0, 1.0]) + np.array(
                       [[0, 0, 0, -30], [0, 0, 0, -35], [0, 0, 0, -25], [0, 0, 0, 0]]),
                    "target_shape": (30, 33, 28)}):
        ours = masking.compute_mask(epi_file, strategy, **target)
        theirs = reference(str(epi_file), **target)
        np.testing.assert_array_equal(np.asanyarray(ours.dataobj) != 0, theirs.get_fdata() != 0)
        np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-10)


def test_target_shape_needs_a_4x4_affine(epi_file):
    with pytest.raises(ValueError, match="target_shape.*4x4"):
        nifti_masker.mask_volumes(epi_file, target_affine=np.eye(3), target_shape=(10, 10, 10))
    with pytest.raises(ValueError, match="target_shape.*4x4|target_affine"):
        nifti_masker.mask_volumes(epi_file, target_shape=(10, 10, 10))


@pytest.fixture(scope="module")
def mni_like_file(tmp_path_factory):
    """A small 4 mm MNI-space run whose brain is the template's, so template masks are real."""
    affine = MNI_2MM_AFFINE.copy()
    affine[:3, :3] *= 2
    shape = (49, 58, 49)
    brain = template_on_grid(shape, affine)
    data, _ = make_epi(shape=shape, n_volumes=3, seed=7)
    data = np.where(brain[..., None] > 0.2, data + 500 * brain[..., None], 0).astype(np.float32)
    path = tmp_path_factory.mktemp("mni") / "mni4mm_bold.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.mark.parametrize("mask_type", ["whole-brain", "gm", "wm"])
@pytest.mark.parametrize("args", [{}, {"threshold": 0.3, "opening": 1}, {"connected": False}])
def test_template_masks_match_nilearn(mni_like_file, mask_type, args):
    ours = masking.compute_mask(mni_like_file, f"{mask_type}-template", mask_args=args)
    theirs = nl_masking.compute_brain_mask(str(mni_like_file), mask_type=mask_type, **args)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj) != 0, theirs.get_fdata() != 0)
    assert np.asanyarray(ours.dataobj).sum() > 100


def test_template_mask_of_several_runs_uses_the_first(mni_like_file):
    ours = masking.compute_multi_mask([mni_like_file, mni_like_file], "gm-template",
                                      mask_args={"threshold": 0.4})
    theirs = nl_masking.compute_multi_brain_mask([str(mni_like_file)] * 2, mask_type="gm",
                                                 threshold=0.4)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj) != 0, theirs.get_fdata() != 0)


def test_template_masker_reads_no_data(mni_like_file, monkeypatch):
    from nipype_maskers.core.io import volumes

    opened = []
    real_open = volumes._open_stream
    monkeypatch.setattr(volumes, "_open_stream", lambda f: opened.append(f) or real_open(f))
    result = nifti_masker.mask_volumes(mni_like_file, mask_strategy="whole-brain-template")
    theirs, _ = _nilearn_rows(mni_like_file, mask_strategy="whole-brain-template")
    np.testing.assert_array_equal(result.signals, theirs)
    assert len(opened) == 1  # the rows' pass only: the mask needs the grid, not the data


@pytest.mark.parametrize("shape_b, affine_b", [
    ((7, 8, 9), np.diag([2.0, 2.0, 2.0, 1.0])),               # same grid
    ((7, 8, 9, 30), np.diag([2.0, 2.0, 2.0, 1.0]) + 1e-9),    # 4D, round-off in the affine
    ((7, 8, 10), np.diag([2.0, 2.0, 2.0, 1.0])),              # another shape
    ((7, 8, 9), np.diag([2.0, 2.0, 2.1, 1.0])),               # another affine
])
def test_same_grid_is_nilearns_check_same_fov(shape_b, affine_b):
    """The one grid comparison (core.io.images.same_grid) answers as nilearn's."""
    from nilearn.image.image import check_same_fov

    from nipype_maskers.core.io.images import same_grid

    affine_a = np.diag([2.0, 2.0, 2.0, 1.0])
    a = nib.Nifti1Image(np.zeros((7, 8, 9), np.int8), affine_a)
    b = nib.Nifti1Image(np.zeros(shape_b, np.int8), affine_b)
    assert same_grid(a.shape, a.affine, b.shape, b.affine) == check_same_fov(a, b)
    assert same_grid(b.shape, b.affine, a.shape, a.affine) == check_same_fov(b, a)
