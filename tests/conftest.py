"""Shared fixtures: small synthetic NIfTI data with odd shapes and non-identity affines."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from synthetic import make_epi, oblique_affine


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def affine():
    return oblique_affine()


@pytest.fixture
def epi_file(tmp_path):
    """A float32 4D .nii.gz on disk (12 volumes) and its true brain."""
    data, _ = make_epi()
    img = nib.Nifti1Image(data, oblique_affine())
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    path = tmp_path / "sub-01_task-rest_bold.nii.gz"
    nib.save(img, path)
    return path


@pytest.fixture
def epi_int16_file(tmp_path):
    """An int16 4D .nii (uncompressed) with read scaling in the header."""
    data, _ = make_epi(dtype=np.int16, seed=1)
    img = nib.Nifti1Image(data, oblique_affine())
    img.header.set_slope_inter(0.5, 10.0)
    path = tmp_path / "sub-02_task-rest_bold.nii"
    nib.save(img, path)
    return path
