"""The mask report: the mask's outline and the voxels it keeps over the mean image.

Three mosaics of slices (sagittal, coronal, axial) across the head, with the strategy, the
voxel count and the volume in mL written above them, and two numbers that make a wrong mask
obvious even before looking: the share of bright voxels (the head) the mask leaves out, and
the share of the mask's voxels that are dark (background).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..core.io.images import ImageLike, load_img, same_grid
from ..core.spatial.masking import mean_volume
from ..core.spatial.resampling import resample_img
from . import slices
from .figures import Format, Overlay, check_format, mosaic_figure, save

#: Shares (of the bright voxels left out, or of the mask's voxels that are dark) above which
#: the report's numbers are written in red.
SUSPICIOUS = 0.05


def load_background(img: ImageLike, *, name: str = "in_file"
                    ) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """The image to draw on: a 3D image, or the mean of a 4D image (streamed); and its affine."""
    img = load_img(img, name=name)
    if len(img.shape) == 4 and img.shape[3] > 1:
        data = mean_volume(img, name=name).mean
    else:
        data = np.asanyarray(img.dataobj).reshape(img.shape[:3])
    return np.asarray(data, dtype=np.float32), np.asarray(img.affine, dtype=np.float64)


def on_grid(img: ImageLike, affine: NDArray, shape, *, interpolation: str = "nearest",
            name: str = "img") -> tuple[NDArray, bool]:
    """The data of ``img`` on a grid (resampled when its grid differs) and whether it was."""
    img = load_img(img, name=name)
    if same_grid(img.shape[:3], img.affine, shape, affine):
        return np.asanyarray(img.dataobj), False
    out = resample_img(img, target_affine=affine, target_shape=shape[:3],
                       interpolation=interpolation)
    return np.asanyarray(out.dataobj), True


class MaskSummary:
    """Counts written on the report (also useful on their own)."""

    def __init__(self, mask: NDArray[np.bool_], voxel_volume: float,
                 bright: NDArray[np.bool_] | None = None, displayed: NDArray | None = None):
        self.n_voxels = int(np.count_nonzero(mask))
        self.volume_ml = self.n_voxels * voxel_volume / 1000.0
        shown = mask if displayed is None else displayed
        if bright is None or not bright.any():
            self.bright_left_out = self.dark_kept = 0.0
        else:
            self.bright_left_out = float(np.count_nonzero(bright & ~shown) / bright.sum())
            self.dark_kept = float(np.count_nonzero(shown & ~bright) / max(shown.sum(), 1))


def mask_panels(background: NDArray, mask: NDArray[np.bool_], affine: NDArray, *,
                n_slices: int = 7) -> list[tuple[slices.Mosaic, NDArray[np.uint8], list]]:
    """The three mosaics (on a RAS+ grid) with the kept voxels tinted and the outline.

    ``background`` and ``mask`` share the grid of ``affine`` and are already RAS+.
    """
    bright = slices.signal_region(background)
    box = slices.bounding_box(bright | mask, margin=2)
    vmin, vmax = slices.robust_window(background, bright if bright.any() else None)
    panels = []
    for axis in range(3):
        chosen = slices.choose_slices(*box[axis], n_slices)
        mosaic = slices.make_mosaic(background.shape, affine, axis, chosen, box)
        rgb = slices.grayscale(mosaic.tiles(background, fill=np.nan), vmin, vmax)
        kept = mosaic.tiles(mask, fill=False)
        slices.tint(rgb, kept, slices.KEPT_COLOUR, 0.3)
        rgb[~mosaic.tiles(np.ones(mask.shape, dtype=bool), fill=False)] = 1.0  # white gaps
        outline = Overlay(slices.edges(kept), slices.OUTLINE_COLOUR, 0.9,
                          f"outline-{slices.AXIS_NAMES[axis][0]}")
        panels.append((mosaic, slices.to_uint8(rgb), [outline]))
    return panels


def plot_mask(img: ImageLike, mask: ImageLike, *, strategy: str | None = None,
              n_slices: int = 7, fmt: Format = "svg", title: str | None = None) -> str | bytes:
    """Draw a mask over the mean image: outline, kept voxels, counts.

    Parameters
    ----------
    img : path or nibabel image
        The mean image (3D), or the run itself (4D, averaged one volume at a time).
    mask : path or nibabel image
        The mask (non-zero = kept). Drawn on the image's grid (nearest-neighbour resampled
        when its grid differs); the counts are the mask's own.
    strategy : str, optional
        How the mask was made (a nilearn strategy, 'fmriprep', 'given'...), written on it.
    n_slices : int
        Slices per mosaic.
    fmt : {'svg', 'png'}
        Output format.
    title : str, optional
        The first line (default 'Brain mask').

    Returns
    -------
    str or bytes
        SVG text, or PNG bytes.
    """
    check_format(fmt)
    background, affine = load_background(img)
    mask_img = load_img(mask, name="mask_file", ndim=3)
    own = np.asanyarray(mask_img.dataobj).reshape(mask_img.shape[:3]) != 0
    voxel_volume = float(abs(np.linalg.det(mask_img.affine[:3, :3])))
    shown, resampled = on_grid(mask_img, affine, background.shape, name="mask_file")
    shown = shown.reshape(background.shape) != 0
    background, ras = slices.reorient(background, affine)
    shown, _ = slices.reorient(shown, affine)
    summary = MaskSummary(own, voxel_volume, slices.signal_region(background), shown)
    zooms = slices.voxel_sizes(mask_img.affine)
    header = [
        f"{title or 'Brain mask'}" + (f": {strategy}" if strategy else ""),
        f"{summary.n_voxels:,} voxels kept = {summary.volume_ml:,.1f} mL "
        f"(voxels of {' x '.join(f'{z:.2f}' for z in zooms)} mm, grid "
        f"{' x '.join(str(s) for s in mask_img.shape[:3])})"
        + (" - mask resampled onto the image's grid for display" if resampled else ""),
        f"bright voxels left out: {summary.bright_left_out:.1%} - mask voxels in the dark "
        f"background: {summary.dark_kept:.1%}"
        + ("  (CHECK THE MASK)" if max(summary.bright_left_out, summary.dark_kept) > SUSPICIOUS
           else ""),
        "red line: the mask's outline - blue tint: the voxels it keeps - grey: the mean image",
    ]
    fig = mosaic_figure(mask_panels(background, shown, ras, n_slices=n_slices), header)
    if max(summary.bright_left_out, summary.dark_kept) > SUSPICIOUS:
        fig.texts[2].set_color(slices.OUTLINE_COLOUR)
    return save(fig, fmt, title=header[0])
