"""Module-scoped images shared by the region-masker tests (built once per test module)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from region_data import (
    AFFINE,
    EMPTIED,
    N_VOLUMES,
    SHAPE,
    _atlas_data,
    _fine_grid,
    _gaussians,
    _maps_data,
    _saved,
    _world_to_coarse,
)
from synthetic import make_epi


@pytest.fixture(scope="module")
def bold(tmp_path_factory):
    data, _ = make_epi(SHAPE, N_VOLUMES)
    return _saved(data, tmp_path_factory.mktemp("bold"), "bold.nii")


@pytest.fixture(scope="module")
def bold64(tmp_path_factory):
    data, _ = make_epi(SHAPE, N_VOLUMES)
    return _saved(data.astype(np.float64), tmp_path_factory.mktemp("bold64"), "bold64.nii")


@pytest.fixture(scope="module")
def brain():
    return nib.Nifti1Image(make_epi(SHAPE, 1)[1].astype(np.uint8), AFFINE)


@pytest.fixture(scope="module")
def atlas():
    return nib.Nifti1Image(_atlas_data(), AFFINE)


@pytest.fixture(scope="module")
def emptying_mask(brain):
    """The brain minus every voxel of label 9."""
    mask = np.asarray(brain.dataobj).copy()
    mask[_atlas_data() == EMPTIED] = 0
    return nib.Nifti1Image(mask, AFFINE)


@pytest.fixture(scope="module")
def fine_atlas():
    affine, shape = _fine_grid()
    coarse = np.round(_world_to_coarse(affine, shape)).astype(int)
    inside = ((coarse >= 0) & (coarse < np.reshape(SHAPE, (3, 1, 1, 1)))).all(axis=0)
    data = np.zeros(shape, np.int16)
    data[inside] = _atlas_data()[tuple(c[inside] for c in coarse)]
    return nib.Nifti1Image(data, affine)


@pytest.fixture(scope="module")
def maps():
    return nib.Nifti1Image(_maps_data(), AFFINE)


@pytest.fixture(scope="module")
def fine_maps():
    affine, shape = _fine_grid()
    return nib.Nifti1Image(_gaussians(_world_to_coarse(affine, shape)), affine)
