"""Smoothing: nilearn's kernel and FWHM rules, and the exact cropped fast path."""

from __future__ import annotations

import numpy as np
import pytest
from nilearn.image import smooth_img

from nipype_maskers.core.spatial.smoothing import check_fwhm, fwhm_to_sigma, smooth_volume


@pytest.mark.parametrize("fwhm", [4.0, [3.0, 0.0, 6.0]])
def test_smooth_volume_matches_smooth_img(rng, affine, fwhm):
    import nibabel as nib

    volume = np.asfortranarray(rng.normal(size=(17, 19, 15)).astype(np.float32))
    reference = smooth_img(nib.Nifti1Image(volume, affine), fwhm).get_fdata(dtype=np.float32)
    ours = smooth_volume(volume.copy(), fwhm_to_sigma(check_fwhm(fwhm), affine))
    np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("box", [((3, 4, 2), (12, 15, 11)), ((0, 0, 0), (16, 18, 14)),
                                 ((0, 5, 7), (4, 18, 7)), ((9, 9, 9), (9, 9, 9))])
def test_cropped_smoothing_is_exact_inside_the_box(rng, box):
    volume = np.asfortranarray(rng.normal(size=(17, 19, 15)))
    sigma = np.array([1.3, 0.0, 2.1])
    whole = smooth_volume(volume.copy(), sigma)
    cropped = smooth_volume(volume.copy(), sigma, (np.array(box[0]), np.array(box[1])))
    inside = tuple(slice(a, b + 1) for a, b in zip(*box, strict=True))
    np.testing.assert_array_equal(cropped[inside], whole[inside])


def test_fwhm_checks():
    assert check_fwhm(None) is None
    with pytest.warns(UserWarning, match="no smoothing"):
        assert check_fwhm(0) is None
    with pytest.raises(ValueError, match="smoothing_fwhm: the FWHM must be finite and >= 0"):
        check_fwhm([1, -1, 1])
    with pytest.raises(ValueError, match="one FWHM in mm or three"):
        check_fwhm([1, 2])
