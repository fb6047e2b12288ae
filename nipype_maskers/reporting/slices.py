"""Slices for display: orientation, slice choice, mosaics of slices and outlines (numpy only).

Volumes are shown on their grid turned to the closest RAS+ orientation (a permutation and
flips of the voxel axes: no interpolation, so every displayed pixel is a voxel of the data).
A 2D section is shown as seen in neurological convention: the subject's left on the image's
left, superior (or anterior, for axial slices) at the top.

Outlines are the exact edges between voxels: a segment lies between a voxel inside and a voxel
outside, in pixel coordinates of the mosaic image (pixel centres on integers, edges on
half-integers, as ``imshow`` places them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from nibabel import orientations
from numpy.typing import NDArray

#: Axis index -> name of the section and of the world coordinate along it.
AXIS_NAMES = {0: ("sagittal", "x"), 1: ("coronal", "y"), 2: ("axial", "z")}
#: Orientation letters (left, right, top, bottom) of each section's image.
AXIS_LETTERS = {0: ("P", "A", "S", "I"), 1: ("L", "R", "S", "I"), 2: ("L", "R", "A", "P")}

#: Distinct colours for regions (matplotlib's tab20 without its greys and reds: red marks the
#: mask's outline everywhere and grey is the background).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)
#: The mask outline's colour and the tint of the voxels a mask keeps.
OUTLINE_COLOUR = "#ff0000"
KEPT_COLOUR = "#00a0ff"


def hex_rgb(colour: str) -> NDArray[np.float64]:
    """``'#rrggbb'`` as three floats in [0, 1].

    Examples
    --------
    >>> hex_rgb('#ff8000').tolist()
    [1.0, 0.5019607843137255, 0.0]
    """
    colour = colour.lstrip("#")
    return np.array([int(colour[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float64) / 255.0


def region_colour(position: int) -> str:
    """The colour of the region at ``position`` (0-based, in the regions table's order)."""
    return PALETTE[position % len(PALETTE)]


def reorient(data: NDArray, affine: NDArray) -> tuple[NDArray, NDArray]:
    """Data (3D or 4D) and affine turned to the closest RAS+ orientation of the voxel axes."""
    ornt = orientations.io_orientation(affine)
    out = orientations.apply_orientation(data, ornt)
    return np.ascontiguousarray(out), affine @ orientations.inv_ornt_aff(ornt, data.shape[:3])


def voxel_sizes(affine: NDArray) -> NDArray[np.float64]:
    """Voxel sizes (mm) along the three voxel axes."""
    return np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))


def robust_window(values: NDArray, where: NDArray[np.bool_] | None = None,
                  low: float = 2.0, high: float = 99.5) -> tuple[float, float]:
    """Display range: percentiles of the finite values (inside ``where``); never empty."""
    selected = values if where is None else values[where]
    selected = selected[np.isfinite(selected)]
    if selected.size == 0:
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in np.percentile(selected, [low, high]))
    if not vmax > vmin:
        vmax = vmin + (abs(vmin) or 1.0)
    return vmin, vmax


def signal_region(background: NDArray, fraction: float = 0.1) -> NDArray[np.bool_]:
    """Voxels brighter than ``fraction`` of the robust maximum: the head (or the brain)."""
    finite = np.isfinite(background)
    if not finite.any():
        return np.zeros(background.shape, dtype=bool)
    top = np.percentile(background[finite], 99.0)
    return finite & (background > fraction * top) if top > 0 else finite & (background != 0)


def bounding_box(mask: NDArray[np.bool_], margin: int = 2) -> list[tuple[int, int]]:
    """Inclusive index range of ``mask`` along each axis, widened by ``margin`` (clipped).

    The whole grid when ``mask`` is empty.

    Examples
    --------
    >>> m = np.zeros((5, 6, 7), bool); m[2, 3, 1:4] = True
    >>> bounding_box(m, margin=1)
    [(1, 3), (2, 4), (0, 4)]
    """
    if not mask.any():
        return [(0, n - 1) for n in mask.shape]
    box = []
    for axis, size in enumerate(mask.shape):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        box.append((max(int(hit[0]) - margin, 0), min(int(hit[-1]) + margin, size - 1)))
    return box


def choose_slices(low: int, high: int, n: int) -> NDArray[np.intp]:
    """``n`` evenly spaced slices strictly inside ``[low, high]`` (fewer if it is narrow).

    Examples
    --------
    >>> choose_slices(0, 80, 3).tolist()
    [20, 40, 60]
    """
    if n < 1:
        raise ValueError(f"n_slices must be >= 1, got {n}")
    positions = np.linspace(low, high, n + 2)[1:-1]
    return np.unique(np.rint(positions).astype(np.intp))


def section(volume: NDArray, axis: int, index: int) -> NDArray:
    """The 2D section of a RAS+ volume at ``index`` along ``axis``, as displayed.

    Rows run from top to bottom (superior first; anterior first for axial sections), columns
    from the image's left (the subject's left; posterior for sagittal sections).
    """
    plane = np.take(volume, index, axis=axis)
    return plane.T[::-1]


def displayed_box(box: Sequence[tuple[int, int]], axis: int, shape: Sequence[int]
                  ) -> tuple[slice, slice]:
    """Row and column slices of a :func:`section` that a 3D bounding box covers."""
    col_axis, row_axis = [a for a in range(3) if a != axis]
    rows = box[row_axis]
    top, bottom = shape[row_axis] - 1 - rows[1], shape[row_axis] - 1 - rows[0]
    return slice(top, bottom + 1), slice(box[col_axis][0], box[col_axis][1] + 1)


class Mosaic(NamedTuple):
    """One row of sections along an axis, side by side, as a single image."""

    axis: int  #: 0 sagittal, 1 coronal, 2 axial
    slices: NDArray[np.intp]  #: index of each section along ``axis`` (RAS+ grid)
    coords: NDArray[np.float64]  #: world coordinate (mm) of each section along ``axis``
    origins: list[tuple[int, int]]  #: (row, column) of each tile's top-left pixel
    tile_shape: tuple[int, int]  #: (rows, columns) of a tile
    pixel_aspect: float  #: displayed height / width of one pixel (voxel sizes)
    crop: tuple[slice, slice]  #: the part of each section shown in a tile

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the mosaic image."""
        rows, cols = self.tile_shape
        if not self.origins:
            return rows, 0
        return rows, self.origins[-1][1] + cols

    def tiles(self, volume: NDArray, fill: float | bool = 0) -> NDArray:
        """``volume`` (3D, or 4D with channels last) cut into this mosaic's tiles."""
        rows, cols = self.shape
        out = np.full((rows, cols, *volume.shape[3:]), fill, dtype=volume.dtype)
        for (row, col), index in zip(self.origins, self.slices, strict=True):
            tile = section(volume, self.axis, int(index))[self.crop]
            out[row:row + tile.shape[0], col:col + tile.shape[1]] = tile
        return out


def make_mosaic(shape: Sequence[int], affine: NDArray, axis: int, slices: Sequence[int],
                box: Sequence[tuple[int, int]], gap: int = 2) -> Mosaic:
    """The layout of a mosaic of ``slices`` along ``axis`` on a RAS+ grid, cropped to ``box``."""
    crop = displayed_box(box, axis, shape)
    tile_shape = (crop[0].stop - crop[0].start, crop[1].stop - crop[1].start)
    origins = [(0, i * (tile_shape[1] + gap)) for i in range(len(slices))]
    col_axis, row_axis = [a for a in range(3) if a != axis]
    zooms = voxel_sizes(affine)
    centre = (np.asarray(shape[:3], dtype=np.float64) - 1) / 2
    coords = []
    for index in slices:
        ijk = centre.copy()
        ijk[axis] = index
        coords.append(float((affine[:3, :3] @ ijk + affine[:3, 3])[axis]))
    return Mosaic(axis, np.asarray(slices, dtype=np.intp), np.array(coords), origins,
                  tile_shape, float(zooms[row_axis] / zooms[col_axis]), crop)


def _runs(flags: NDArray[np.bool_]) -> tuple[NDArray, NDArray, NDArray]:
    """Runs of True along each row: (row, start, stop) with stop exclusive."""
    padded = np.zeros((flags.shape[0], flags.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = flags
    step = np.diff(padded, axis=1)
    rows, starts = np.nonzero(step == 1)
    _, stops = np.nonzero(step == -1)
    return rows, starts, stops


def edges(values: NDArray, outside: float | bool = 0) -> NDArray[np.float64]:
    """Segments between neighbouring pixels of different values, merged into straight runs.

    Parameters
    ----------
    values : 2D array
        A mask (its outline) or labels (the borders between regions and the background).
    outside : scalar
        The value assumed beyond the image's edges (a mask reaching the edge is outlined).

    Returns
    -------
    array of shape (n, 2, 2)
        ``[[x0, y0], [x1, y1]]`` per segment, x the column and y the row, on pixel edges.

    Examples
    --------
    >>> for segment in edges(np.array([[True]])).tolist():  # one pixel: its four sides
    ...     print(segment)
    [[-0.5, -0.5], [-0.5, 0.5]]
    [[0.5, -0.5], [0.5, 0.5]]
    [[-0.5, -0.5], [0.5, -0.5]]
    [[-0.5, 0.5], [0.5, 0.5]]
    """
    padded = np.pad(values, 1, constant_values=outside)
    vertical = (padded[1:-1, 1:] != padded[1:-1, :-1]).T  # (columns + 1, rows): x = c - 0.5
    horizontal = padded[1:, 1:-1] != padded[:-1, 1:-1]  # (rows + 1, columns): y = r - 0.5
    segments = []
    column, start, stop = _runs(vertical)
    x = column - 0.5
    segments.append(np.stack([np.column_stack([x, start - 0.5]),
                              np.column_stack([x, stop - 0.5])], axis=1))
    row, start, stop = _runs(horizontal)
    y = row - 0.5
    segments.append(np.stack([np.column_stack([start - 0.5, y]),
                              np.column_stack([stop - 0.5, y])], axis=1))
    return np.concatenate(segments).astype(np.float64)


def grayscale(values: NDArray, vmin: float, vmax: float) -> NDArray[np.float32]:
    """Values as grey RGB in [0, 1] (NaN black), clipped to ``[vmin, vmax]``."""
    scaled = (np.nan_to_num(values.astype(np.float32), nan=vmin) - vmin) / (vmax - vmin)
    grey = np.clip(scaled, 0.0, 1.0)
    return np.repeat(grey[..., None], 3, axis=-1)


def tint(rgb: NDArray, where: NDArray[np.bool_], colour: str | NDArray, alpha: float) -> None:
    """Blend ``colour`` into the pixels ``where``, in place."""
    colour = hex_rgb(colour) if isinstance(colour, str) else np.asarray(colour)
    rgb[where] = (1.0 - alpha) * rgb[where] + alpha * colour.astype(rgb.dtype)


def to_uint8(rgb: NDArray) -> NDArray[np.uint8]:
    """[0, 1] floats to 8-bit RGB."""
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def slices_through(positions: NDArray, n: int, low: int, high: int) -> NDArray[np.intp]:
    """At most ``n`` slices through the given voxel positions (seeds, peaks) along an axis.

    Every position when there are at most ``n`` distinct ones, else the positions nearest
    to ``n`` evenly spaced quantiles; evenly spaced slices in ``[low, high]`` when there is
    no position.

    Examples
    --------
    >>> slices_through(np.array([10.2, 30.0, 10.4]), 5, 0, 50).tolist()
    [10, 30]
    """
    positions = np.unique(np.rint(np.asarray(positions, dtype=np.float64)).astype(np.intp))
    positions = positions[(positions >= low) & (positions <= high)]
    if positions.size == 0:
        return choose_slices(low, high, n)
    if positions.size <= n:
        return positions
    quantiles = np.quantile(positions, np.linspace(0, 1, n + 2)[1:-1])
    nearest = positions[np.abs(positions[None, :] - quantiles[:, None]).argmin(axis=1)]
    return np.unique(nearest)


def to_pixels(mosaic: Mosaic, tile: int, ijk: NDArray, shape: Sequence[int]
              ) -> tuple[NDArray, NDArray]:
    """(column, row) pixel coordinates in ``mosaic`` of voxel coordinates ``ijk`` (n, 3) on
    tile number ``tile`` (the coordinate along the mosaic's axis is ignored)."""
    ijk = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
    col_axis, row_axis = [a for a in range(3) if a != mosaic.axis]
    origin_row, origin_col = mosaic.origins[tile]
    cols = ijk[:, col_axis] - mosaic.crop[1].start + origin_col
    rows = (shape[row_axis] - 1 - ijk[:, row_axis]) - mosaic.crop[0].start + origin_row
    return cols, rows
