"""Atlas reports: labels, maps or spheres over the mean image, and the regions table.

Every region has one colour, given by its index in the masker's regions table (the label
value for labels, the map's or seed's position for maps and spheres), so the colours of the
figure and of :func:`regions_table_html` match. The mask's outline is drawn in red when the
mask is given, so regions cut by the mask show at a glance.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from ..core.io.images import ImageLike, load_img, n_volumes, same_grid
from ..core.io.volumes import iter_volumes
from ..core.spatial.resampling import resample_img
from . import slices
from .figures import Format, Overlay, check_format, mosaic_figure, save
from .mask import load_background, on_grid

#: Coverage (share of a region's voxels inside the mask) under which a region is flagged.
LOW_COVERAGE = 0.5


class _Scene:
    """The background and the optional mask on one RAS+ grid, and the mosaics' extent."""

    def __init__(self, img: ImageLike, mask: ImageLike | None):
        background, self.affine = load_background(img)
        self.shape = background.shape
        self.mask = None
        if mask is not None:
            data, _ = on_grid(mask, self.affine, self.shape, name="mask_file")
            self.mask, _ = slices.reorient(data.reshape(self.shape) != 0, self.affine)
        self.background, self.ras = slices.reorient(background, self.affine)
        self.bright = slices.signal_region(self.background)
        self.window = slices.robust_window(self.background,
                                           self.bright if self.bright.any() else None)

    def box(self, regions: NDArray[np.bool_]) -> list[tuple[int, int]]:
        extent = self.bright | regions | (self.mask if self.mask is not None else False)
        return slices.bounding_box(extent, margin=2)

    def ras_data(self, data: NDArray) -> NDArray:
        return slices.reorient(data, self.affine)[0]

    def panel(self, axis: int, chosen, box, labels: NDArray, *, fill_alpha: float = 0.45,
              borders: bool = True, extra: Sequence[Overlay] = ()):
        """A mosaic with the regions of a labels volume (0 = none) tinted in their colours."""
        mosaic = slices.make_mosaic(self.shape, self.ras, axis, chosen, box)
        rgb = slices.grayscale(mosaic.tiles(self.background, fill=np.nan), *self.window)
        tiles = mosaic.tiles(labels, fill=0)
        inside = tiles != 0
        if fill_alpha and inside.any():
            values, inverse = np.unique(tiles[inside], return_inverse=True)
            colours = np.array([slices.hex_rgb(slices.region_colour(int(v) - 1))
                                for v in values], dtype=np.float32)
            rgb[inside] = (1 - fill_alpha) * rgb[inside] + fill_alpha * colours[inverse]
        rgb[~mosaic.tiles(np.ones(self.shape, dtype=bool), fill=False)] = 1.0
        name = slices.AXIS_NAMES[axis][0]
        overlays = list(extra)
        if borders:
            overlays.append(Overlay(slices.edges(tiles), "#101010", 0.35, f"borders-{name}",
                                    rasterized=True))
        if self.mask is not None:
            overlays.append(Overlay(slices.edges(mosaic.tiles(self.mask, fill=False)),
                                    slices.OUTLINE_COLOUR, 0.8, f"outline-{name}"))
        return mosaic, slices.to_uint8(rgb), overlays

    def header_mask_line(self) -> str:
        return ("red line: the mask's outline" if self.mask is not None
                else "no mask given")


def _labels_by_index(labels: NDArray, background_label: int) -> NDArray[np.int64]:
    """Labels keyed for :meth:`_Scene.panel`: value ``v`` becomes ``v + 1`` (drawn in
    ``region_colour(v)``, the regions table's colour of index ``v``), the background 0."""
    out = labels.astype(np.int64) + 1
    out[labels == background_label] = 0
    return out


def plot_labels(img: ImageLike, labels_img: ImageLike, *, mask: ImageLike | None = None,
                background_label: int = 0, n_slices: int = 7, fmt: Format = "svg",
                title: str = "Labels atlas") -> str | bytes:
    """A labels atlas over the mean image: each region filled in its colour, borders drawn.

    The atlas is drawn on the image's grid (nearest neighbour), as the masker uses it with
    ``resampling_target='data'``.
    """
    check_format(fmt)
    scene = _Scene(img, mask)
    labels, resampled = on_grid(labels_img, scene.affine, scene.shape, name="labels_file")
    labels = scene.ras_data(np.rint(labels.reshape(scene.shape)).astype(np.int64))
    keyed = _labels_by_index(labels, background_label)
    box = scene.box(keyed != 0)
    panels = [scene.panel(axis, slices.choose_slices(*box[axis], n_slices), box, keyed)
              for axis in range(3)]
    n_regions = int(np.unique(labels[labels != background_label]).size)
    header = [title, f"{n_regions} regions on the image's grid"
              + (" (atlas resampled, nearest neighbour)" if resampled else ""),
              f"regions in their table colours, black borders - {scene.header_mask_line()}"]
    return save(mosaic_figure(panels, header), fmt, title=title)


def _strongest_maps(maps_img, n_maps: int) -> NDArray[np.intp]:
    """The ``n_maps`` maps of largest total positive weight, streamed one map at a time."""
    weights = np.zeros(n_volumes(maps_img))
    for positions, volume in iter_volumes(maps_img, dtype=np.float32, name="maps_file"):
        weights[positions] = float(np.nansum(np.clip(volume, 0, None), dtype=np.float64))
    order = np.argsort(-weights, kind="stable")[:n_maps]
    return np.sort(order)


def plot_maps(img: ImageLike, maps_img: ImageLike, *, mask: ImageLike | None = None,
              n_maps: int = 12, threshold: float = 0.5, n_slices: int = 7,
              fmt: Format = "svg", title: str = "Maps atlas") -> str | bytes:
    """The strongest maps of a 4D atlas as contours over the mean image.

    Each shown map is outlined where it reaches ``threshold`` times its maximum, in its
    colour; the slices pass through the maps' peaks. Maps are read one at a time and
    resampled (linear) onto the image's grid when theirs differs.
    """
    check_format(fmt)
    if not 0 < threshold < 1:
        raise ValueError(f"threshold: expected a fraction in (0, 1), got {threshold!r}")
    scene = _Scene(img, mask)
    maps_img = load_img(maps_img, name="maps_file")
    chosen = _strongest_maps(maps_img, n_maps)
    regions, peaks = [], []
    for _, volume in iter_volumes(maps_img, chosen, dtype=np.float32, name="maps_file"):
        volume = np.array(volume)
        if not same_grid(maps_img.shape[:3], maps_img.affine, scene.shape, scene.affine):
            volume = np.asanyarray(resample_img(
                nib.Nifti1Image(volume, maps_img.affine), target_affine=scene.affine,
                target_shape=scene.shape, interpolation="linear").dataobj)
        volume = scene.ras_data(np.nan_to_num(volume))
        top = volume.max()
        regions.append(volume >= threshold * top if top > 0 else np.zeros_like(volume, bool))
        peaks.append(np.unravel_index(int(volume.argmax()), volume.shape))
    union = np.logical_or.reduce(regions) if regions else np.zeros(scene.shape, dtype=bool)
    box = scene.box(union)
    panels = []
    for axis in range(3):
        where = slices.slices_through(np.array([p[axis] for p in peaks]), n_slices, *box[axis])
        mosaic = slices.make_mosaic(scene.shape, scene.ras, axis, where, box)
        name = slices.AXIS_NAMES[axis][0]
        contours = [Overlay(slices.edges(mosaic.tiles(region, fill=False)),
                            slices.region_colour(int(index)), 1.2, f"map-{index}-{name}")
                    for index, region in zip(chosen, regions, strict=True)]
        panels.append(scene.panel(axis, where, box, np.zeros(scene.shape, np.int8),
                                  fill_alpha=0, borders=False, extra=contours))
    header = [title, f"the {len(chosen)} strongest of {n_volumes(maps_img)} maps (largest "
              f"total weight), outlined at {threshold:.0%} of each map's maximum",
              f"slices through the maps' peaks - {scene.header_mask_line()}"]
    return save(mosaic_figure(panels, header), fmt, title=title)


def sphere_labels(seeds: NDArray, radius: float | None, affine: NDArray, shape
                  ) -> NDArray[np.int64]:
    """Seed ``k`` as the value ``k + 1`` on the voxels of its sphere (the first seed wins);
    without a radius, the seed's nearest voxel."""
    out = np.zeros(shape, dtype=np.int64)
    inverse = np.linalg.inv(affine)
    ijk = seeds @ inverse[:3, :3].T + inverse[:3, 3]
    zooms = slices.voxel_sizes(affine)
    for k in range(len(seeds) - 1, -1, -1):  # reversed: earlier seeds overwrite later ones
        if not radius:
            voxel = np.rint(ijk[k]).astype(int)
            if np.all((voxel >= 0) & (voxel < shape)):
                out[tuple(voxel)] = k + 1
            continue
        reach = np.ceil(radius / zooms.min()) + 1
        low = np.maximum(np.floor(ijk[k] - reach), 0).astype(int)
        high = np.minimum(np.ceil(ijk[k] + reach) + 1, shape).astype(int)
        if np.any(high <= low):
            continue
        grid = np.stack(np.meshgrid(*[np.arange(lo, hi) for lo, hi in zip(low, high, strict=True)],
                                    indexing="ij"), axis=-1)
        world = grid @ affine[:3, :3].T + affine[:3, 3]
        inside = np.sum((world - seeds[k]) ** 2, axis=-1) <= radius**2
        block = out[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
        block[inside] = k + 1
    return out


def plot_spheres(img: ImageLike, seeds: NDArray, radius: float | None = None, *,
                 mask: ImageLike | None = None, n_slices: int = 7, fmt: Format = "svg",
                 title: str = "Spheres") -> str | bytes:
    """Seeds and their spheres over the mean image: the sphere's voxels tinted, its true
    radius drawn as a circle on each slice it crosses, and the slices through the seeds."""
    from matplotlib.patches import Ellipse

    check_format(fmt)
    seeds = np.atleast_2d(np.asarray(seeds, dtype=np.float64))
    if seeds.ndim != 2 or seeds.shape[1] != 3:
        raise ValueError(f"seeds: expected an (n, 3) array of x, y, z in mm, got shape "
                         f"{seeds.shape}")
    scene = _Scene(img, mask)
    labels = sphere_labels(seeds, radius, scene.ras, scene.shape)
    inverse = np.linalg.inv(scene.ras)
    ijk = seeds @ inverse[:3, :3].T + inverse[:3, 3]
    box = scene.box(labels != 0)
    zooms = slices.voxel_sizes(scene.ras)
    shown = radius or 1.5 * float(zooms.max())  # a single voxel: a ring around it
    panels, circles = [], []
    for axis in range(3):
        where = slices.slices_through(ijk[:, axis], n_slices, *box[axis])
        panel = scene.panel(axis, where, box, labels)
        panels.append(panel)
        mosaic = panel[0]
        col_axis, row_axis = [a for a in range(3) if a != axis]
        for tile, index in enumerate(mosaic.slices):
            distance = np.abs(ijk[:, axis] - index) * zooms[axis]
            near = np.flatnonzero(distance <= shown)
            cols, rows = slices.to_pixels(mosaic, tile, ijk[near], scene.shape)
            for seed, col, row in zip(near, cols, rows, strict=True):
                ring = np.sqrt(max(shown**2 - distance[seed] ** 2, 0.0))
                circles.append((axis, Ellipse((col, row), 2 * ring / zooms[col_axis],
                                              2 * ring / zooms[row_axis], fill=False,
                                              edgecolor=slices.region_colour(int(seed)),
                                              linewidth=1.2, gid=f"sphere-{seed}")))
    header = [title, f"{len(seeds)} seeds, radius "
              + (f"{radius:g} mm" if radius else "none (the nearest voxel; ring of "
                 f"{shown:.1f} mm drawn)"),
              f"the sphere's voxels tinted, its radius as a circle - "
              f"{scene.header_mask_line()}"]
    fig = mosaic_figure(panels, header)
    axes = [ax for ax in fig.axes if (ax.get_gid() or "").startswith("panel-")]
    for axis, circle in circles:
        axes[axis].add_patch(circle)
    return save(fig, fmt, title=title)


def regions_table_html(rows: Sequence[tuple[int, str, int, float]], *, title: str,
                       low_coverage: float = LOW_COVERAGE, unit: str = "voxels",
                       covered: str = "in the mask",
                       colours: Mapping[int, str] | None = None) -> str:
    """The regions table as an HTML fragment: colour, index, name, voxels, coverage.

    ``rows`` are (index, name, voxel_count, coverage) as in a masker's regions TSV. Empty
    regions and regions with a coverage under ``low_coverage`` are flagged. ``unit`` names
    the counted elements ('grayordinates' for CIFTI) and ``covered`` what coverage counts;
    ``colours`` (index -> '#rrggbb', e.g. a CIFTI label table's) replace the palette's.
    """
    empty = sum(1 for _, _, count, _ in rows if count == 0)
    low = sum(1 for _, _, count, cover in rows if count and cover < low_coverage)
    lines = [f'<div class="regions"><h3>{html.escape(title)}</h3>',
             f'<p>{len(rows)} regions; <span class="{"bad" if empty else "ok"}">{empty} '
             f'empty</span>; <span class="{"warn" if low else "ok"}">{low} with less than '
             f'{low_coverage:.0%} of their {unit} {covered}</span></p>',
             "<table><thead><tr><th></th><th>index</th><th>name</th>"
             f"<th>{html.escape(unit)}</th>"
             "<th>coverage</th></tr></thead><tbody>"]
    for index, name, count, cover in rows:
        flag = "bad" if count == 0 else "warn" if cover < low_coverage else ""
        coverage = "n/a" if not np.isfinite(cover) else f"{cover:.1%}"
        lines.append(
            f'<tr class="{flag}"><td><span class="swatch" style="background:'
            f'{(colours or {}).get(int(index)) or slices.region_colour(int(index))}">'
            f"</span></td><td>{int(index)}</td>"
            f"<td>{html.escape(str(name))}</td><td>{int(count):,}</td><td>{coverage}</td></tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)
