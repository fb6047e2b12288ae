"""Shared data of the region-masker tests: a small oblique grid, an atlas with a label that a
mask empties, a finer atlas grid, Gaussian maps and seeds; helpers to run nilearn on copies."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
from synthetic import oblique_affine

SHAPE = (11, 12, 9)
N_VOLUMES = 40
AFFINE = oblique_affine()
LABELS = [2, 3, 7, 9, 12]
EMPTIED = 9  # the label the "emptying" mask removes
STRATEGIES = ["mean", "median", "sum", "minimum", "maximum", "standard_deviation", "variance"]
CENTRES = [(3, 3, 3), (7, 4, 4), (5, 8, 5), (8, 9, 6)]


def _copy(img):
    """A fresh in-memory copy: nilearn may write into the arrays it is given (B3, NaN -> 0)."""
    return nib.Nifti1Image(np.array(img.dataobj), img.affine.copy())


def _nilearn(masker, img, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return masker.fit_transform(_copy(img), **kwargs)


def _close32(ours, ref):
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def _saved(data, folder, name):
    """On disk, as the interfaces use it (an in-memory image is written to: see below)."""
    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, folder / name)
    return nib.load(folder / name)


def _atlas_data():
    atlas = np.zeros(SHAPE, np.int16)
    atlas[2:6, 2:7, 2:5] = 3
    atlas[6:10, 2:7, 2:5] = 7
    atlas[2:6, 7:11, 4:8] = 2
    atlas[6:9, 7:11, 4:8] = 12
    atlas[4:8, 4:9, 5:8] = 9
    return atlas


def _fine_grid():
    """Half the voxel size, shifted by a fraction of a voxel: another grid, same space."""
    affine = AFFINE.copy()
    affine[:3, :3] /= 2
    affine[:3, 3] += [0.7, -0.4, 1.1]
    return affine, (21, 23, 17)


def _world_to_coarse(fine_affine, fine_shape):
    """Continuous voxel coordinates on the data grid of every fine-grid voxel, (3, x, y, z)."""
    ijk = np.indices(fine_shape).reshape(3, -1).astype(float)
    world = fine_affine[:3, :3] @ ijk + fine_affine[:3, 3:]
    inv = np.linalg.inv(AFFINE)
    return (inv[:3, :3] @ world + inv[:3, 3:]).reshape(3, *fine_shape)


def _gaussians(coords):
    maps = np.stack([np.exp(-((coords - np.reshape(c, (3, 1, 1, 1))) ** 2).sum(axis=0) / 4)
                     for c in CENTRES], axis=-1).astype(np.float32)
    maps[maps < 0.05] = 0
    return maps


def _maps_data():
    """Four Gaussian maps on the data grid, one per centre."""
    return _gaussians(np.indices(SHAPE).astype(float))


def _seeds():
    """World coordinates near the maps' centres, off the voxel centres."""
    ijk = np.array(CENTRES[:3], float).T + np.array([[0.3], [-0.2], [0.1]])
    return (AFFINE[:3, :3] @ ijk + AFFINE[:3, 3:]).T
