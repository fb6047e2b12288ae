"""Inverses of the region maskers (core.region_images) against nilearn 0.14.1's
``inverse_transform``, with the tolerances of test_region_maskers.py."""

from __future__ import annotations

import numpy as np
import pytest
from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker, NiftiSpheresMasker
from region_data import (
    AFFINE,
    EMPTIED,
    _atlas_data,
    _nilearn,
    _seeds,
)

from nipype_maskers.core.regions.inverse import labels_image, maps_image, spheres_image
from nipype_maskers.core.regions.maskers import labels_masker

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning:nipype_maskers")


# --------------------------------------------------------------------------- inverses


@pytest.mark.parametrize("target", ["data", "labels"])
def test_labels_inverse_on_nilearn_labels_grid(bold, fine_atlas, brain, target):
    masker = NiftiLabelsMasker(fine_atlas, mask_img=brain, resampling_target=target)
    ref = _nilearn(masker, bold)
    ours = labels_masker(bold, fine_atlas, mask=brain, resampling_target=target)
    assert ref.shape[1] == 5
    expected = masker.inverse_transform(ref)
    back = labels_image(ref, masker.labels_img_, mask=brain)
    assert back.shape == expected.shape
    np.testing.assert_allclose(back.affine, expected.affine)
    np.testing.assert_array_equal(back.get_fdata(), expected.get_fdata())
    # and our own signals painted on that grid agree within float32 tolerance
    mine = labels_image(ours.signals, masker.labels_img_, mask=brain).get_fdata()
    np.testing.assert_allclose(mine, expected.get_fdata(), rtol=1e-5,
                               atol=1e-5 * np.abs(ref).max())


def test_labels_inverse_paints_nan_for_emptied_region(bold, atlas, emptying_mask):
    ours = labels_masker(bold, atlas, mask=emptying_mask)
    back = labels_image(ours.signals, atlas).get_fdata()
    region = _atlas_data() == EMPTIED
    assert np.isnan(back[region]).all() and not np.isnan(back[~region]).any()
    masked = labels_image(ours.signals, atlas, mask=emptying_mask).get_fdata()
    assert not np.isnan(masked).any()  # masked out: 0, as nilearn


@pytest.mark.parametrize("with_mask", [False, True])
def test_maps_inverse(bold, maps, brain, with_mask):
    mask = brain if with_mask else None
    masker = NiftiMapsMasker(maps, mask_img=mask)
    ref = _nilearn(masker, bold)
    expected = masker.inverse_transform(ref).get_fdata()
    back = maps_image(ref, maps, mask=mask)
    np.testing.assert_allclose(back.affine, AFFINE)
    np.testing.assert_allclose(back.get_fdata(), expected, rtol=1e-6,
                               atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize(("radius", "overlap"), [(4.0, False), (12.0, True)])
def test_spheres_inverse(bold, brain, radius, overlap):
    seeds = _seeds()
    masker = NiftiSpheresMasker(seeds.tolist(), radius=radius, mask_img=brain,
                                allow_overlap=overlap)
    ref = _nilearn(masker, bold)
    expected = masker.inverse_transform(ref).get_fdata()
    back = spheres_image(ref, seeds, brain, radius=radius, allow_overlap=overlap)
    np.testing.assert_allclose(back.get_fdata(), expected, rtol=1e-6,
                               atol=1e-6 * np.abs(expected).max())
    with pytest.raises(ValueError, match="mask_file: painting spheres back needs the mask"):
        spheres_image(ref, seeds, None, radius=radius)


def test_spheres_inverse_single_voxel(bold, brain):
    """radius=None: nilearn's inverse_transform cannot do it (its seed-voxel lookup compares
    tuples with lists when it has no image, so every sphere is empty); ours paints each
    seed's nearest voxel."""
    seeds = _seeds()
    masker = NiftiSpheresMasker(seeds.tolist(), mask_img=brain)
    ref = _nilearn(masker, bold)
    with pytest.raises(ValueError, match="These spheres are empty"):
        masker.inverse_transform(ref)
    back = spheres_image(ref, seeds, brain).get_fdata()
    inv = np.linalg.inv(AFFINE)
    nearest = np.round(inv[:3, :3] @ seeds.T + inv[:3, 3:]).astype(int)
    np.testing.assert_array_equal(back[tuple(nearest)].T, ref)
    assert np.count_nonzero(back[..., 0]) == len(seeds)
