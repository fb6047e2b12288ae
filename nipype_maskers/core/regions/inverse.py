"""Region signals back to images: the ``inverse_transform`` of the three region maskers.

Each takes the signals with one column per atlas region (what :mod:`.maskers` returns
with stable columns) and paints them on the atlas's grid, as nilearn does: labels and maps on
their own grid, spheres on the mask's grid.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from numpy.typing import ArrayLike

from ..io.images import ImageError, ImageLike, load_img, new_img_like
from ..spatial.masking import load_mask
from .labels import prepare_labels, signals_to_labels_image_data
from .maps import signals_to_maps_image_data
from .maskers import mask_on_grid
from .spheres import prepare_spheres, signals_to_spheres_image_data


def _columns(signals: ArrayLike, n_regions: int, what: str) -> np.ndarray:
    signals = np.asarray(signals)
    if signals.ndim not in (1, 2) or signals.shape[-1] != n_regions:
        raise ValueError(
            f"in_file: {signals.shape[-1] if signals.ndim else 0} columns for the {n_regions} "
            f"{what}; expected one column per {what[:-1]} (as the region maskers write them)"
        )
    if signals.dtype.kind != "f":
        signals = signals.astype(np.float64)
    return signals


def labels_image(signals: ArrayLike, labels_img: ImageLike, *, mask: ImageLike | None = None,
                 background_label: int = 0) -> nib.Nifti1Image:
    """Each voxel of label k gets column k (``signals_to_img_labels``), on the atlas's grid.

    Background and voxels outside the mask are 0; a NaN column paints NaN.
    """
    atlas = load_img(labels_img, name="labels_file")
    if len(atlas.shape) == 4 and atlas.shape[3] > 1:
        raise ImageError("labels_file: a 4D image; expected a 3D integer atlas")
    data = np.asanyarray(atlas.dataobj).reshape(atlas.shape[:3])
    labels = prepare_labels(data, background_label=background_label).labels
    signals = _columns(signals, labels.size, "labels")
    mask_data = mask_on_grid(mask, atlas.affine, data.shape[:3], allow_empty=True)
    painted = signals_to_labels_image_data(signals, data, labels, mask_data=mask_data,
                                           background_label=background_label)
    return new_img_like(None, painted, atlas.affine)


def maps_image(signals: ArrayLike, maps_img: ImageLike, *, mask: ImageLike | None = None
               ) -> nib.Nifti1Image:
    """``signals @ maps.T`` on the maps' grid (``signals_to_img_maps``); NaN columns skipped."""
    maps = load_img(maps_img, name="maps_file")
    if len(maps.shape) == 3:
        raise ImageError("maps_file: a 3D image; expected 4D maps, one map per volume")
    maps_data = np.asanyarray(maps.dataobj)
    signals = _columns(signals, maps_data.shape[3], "maps")
    mask_data = mask_on_grid(mask, maps.affine, maps_data.shape[:3], allow_empty=True)
    painted = signals_to_maps_image_data(signals, maps_data, mask_data=mask_data)
    return new_img_like(None, painted, maps.affine)


def spheres_image(signals: ArrayLike, seeds: ArrayLike, mask: ImageLike, *,
                  radius: float | None = None, allow_overlap: bool = False
                  ) -> nib.Nifti1Image:
    """Each voxel gets the mean signal of the spheres covering it, on the mask's grid.

    nilearn's ``NiftiSpheresMasker.inverse_transform``, which needs the mask too.
    """
    if mask is None:
        raise ValueError("mask_file: painting spheres back needs the mask (its grid)")
    binary, affine = load_mask(mask, name="mask_file")
    regions = prepare_spheres(seeds, radius, affine, binary.shape, mask_data=binary,
                              allow_overlap=allow_overlap)
    signals = _columns(signals, regions.n_seeds, "seeds")
    return new_img_like(
        None, signals_to_spheres_image_data(np.nan_to_num(signals), regions), affine)
