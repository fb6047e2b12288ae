"""The run shared by the report tests (built once per test module)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from report_data import AFFINE, SHAPE
from synthetic import make_epi


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 4D run (bright ellipsoid 'brain', background 0), its mean, a mask cut on 3 sides."""
    root = tmp_path_factory.mktemp("reports")
    data, brain = make_epi(SHAPE, n_volumes=16)
    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    bold = root / "sub-01_task-rest_desc-preproc_bold.nii.gz"
    nib.save(img, bold)
    mean = root / "mean.nii.gz"
    nib.save(nib.Nifti1Image(data.mean(axis=3), AFFINE), mean)
    mask = brain.copy()
    mask[:, 20:, :] = False  # the front of the 'brain' is left out, and (so that no
    mask[:6, :, :] = False  # flip of any axis can go unnoticed) its left side and bottom
    mask[:, :, :4] = False
    mask_file = root / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), AFFINE), mask_file)
    return {"root": root, "bold": bold, "mean": mean, "data": data, "brain": brain,
            "mask": mask, "mask_file": mask_file}
