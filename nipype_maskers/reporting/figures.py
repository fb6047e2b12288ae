"""Shared matplotlib drawing: figures, mosaic panels with vector outlines, SVG/PNG output.

matplotlib is imported inside the functions, and only its object-oriented API is used
(``matplotlib.figure.Figure`` with the canvas ``savefig`` picks for the format): no pyplot,
no GUI backend, no global backend switch in the caller's process.

Every panel is an ``Axes`` whose SVG group id (``gid``) starts with ``panel-``, so a reportlet
can be checked for its panels; outlines are single ``<path>`` elements with ``outline-`` ids.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from . import require_matplotlib
from .slices import AXIS_LETTERS, AXIS_NAMES, Mosaic

Format = Literal["svg", "png"]
FORMATS = ("svg", "png")
#: Figure width in inches (about the width of the HTML report's column at 100 dpi).
FIG_WIDTH = 11.0
#: PNG resolution.
PNG_DPI = 100
#: Resolution of the rasterized parts of an SVG.
SVG_RASTER_DPI = 150
_MARGIN = 0.15  # inches, left and right
_RC = {
    "svg.fonttype": "none",  # text stays text: searchable, small, rendered by the browser
    "svg.hashsalt": "nipype-maskers",  # the same figure gives the same bytes
    "path.simplify": False,  # outlines are exact voxel edges: never merged or dropped
    "font.family": "DejaVu Sans",
    "font.size": 9,
}


class Overlay(NamedTuple):
    """Line segments drawn over a mosaic (from :func:`.slices.edges`)."""

    segments: NDArray[np.float64]
    colour: str
    linewidth: float
    gid: str
    rasterized: bool = False  #: drawn as an image in SVG (dense borders: a smaller file)


def check_format(fmt: str) -> str:
    """``fmt`` if it is 'svg' or 'png'."""
    if fmt not in FORMATS:
        raise ValueError(f"out_format: unknown format {fmt!r}; accepted: {', '.join(FORMATS)}")
    return fmt


def new_figure(height: float, width: float = FIG_WIDTH):
    """A matplotlib ``Figure`` (width and height in inches), without pyplot."""
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=PNG_DPI, facecolor="white")


def save(fig, fmt: Format = "svg", *, title: str = "") -> str | bytes:
    """The figure as SVG text or PNG bytes; the SVG's ``<title>`` is ``title``."""
    import matplotlib

    check_format(fmt)
    stream = io.BytesIO()
    metadata: dict[str, Any] = {"Title": title}
    if fmt == "svg":
        metadata["Date"] = None
    with matplotlib.rc_context(_RC):
        fig.savefig(stream, format=fmt, dpi=PNG_DPI if fmt == "png" else SVG_RASTER_DPI,
                    metadata=metadata, facecolor="white")
    data = stream.getvalue()
    return data.decode("utf-8") if fmt == "svg" else data


def segments_path(segments: NDArray[np.float64]):
    """One matplotlib ``Path`` holding every segment (move to its start, line to its end)."""
    from matplotlib.path import Path

    vertices = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    codes = np.tile([Path.MOVETO, Path.LINETO], len(segments)).astype(Path.code_type)
    return Path(vertices, codes)


def add_overlay(ax, overlay: Overlay) -> None:
    """Draw an :class:`Overlay` as one unfilled path."""
    from matplotlib.patches import PathPatch

    if not len(overlay.segments):
        return
    patch = PathPatch(segments_path(overlay.segments), fill=False, edgecolor=overlay.colour,
                      linewidth=overlay.linewidth, capstyle="projecting")
    patch.set_gid(overlay.gid)
    patch.set_rasterized(overlay.rasterized)
    ax.add_artist(patch)  # add_patch would update the data limits: slow, and not needed


def mosaic_heights(mosaics: Sequence[Mosaic], width: float = FIG_WIDTH) -> list[float]:
    """Displayed height (inches) of each mosaic drawn across the figure's width."""
    usable = width - 2 * _MARGIN
    heights = []
    for mosaic in mosaics:
        rows, cols = mosaic.shape
        heights.append(usable * rows * mosaic.pixel_aspect / max(cols, 1))
    return heights


def draw_mosaic(fig, bottom: float, height: float, mosaic: Mosaic, rgb: NDArray[np.uint8],
                overlays: Sequence[Overlay] = (), *, gid: str, label_colour: str = "white"):
    """A mosaic panel across the figure at ``bottom`` (inches), its slices labelled in mm."""
    width, fig_height = fig.get_size_inches()
    ax = fig.add_axes((_MARGIN / width, bottom / fig_height, 1 - 2 * _MARGIN / width,
                       height / fig_height))
    ax.set_gid(gid)
    rows, cols = mosaic.shape
    ax.imshow(rgb, interpolation="none", aspect="auto")
    for overlay in overlays:
        add_overlay(ax, overlay)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_autoscale_on(False)
    ax.set_axis_off()
    name, letter = AXIS_NAMES[mosaic.axis]
    tile_rows, tile_cols = mosaic.tile_shape
    for (row, col), coord in zip(mosaic.origins, mosaic.coords, strict=True):
        ax.text(col + tile_cols / 2, row + 0.5, f"{letter} = {round(float(coord)):d} mm",
                ha="center", va="top", color=label_colour, fontsize=7)
    if mosaic.origins:
        left, right, _, _ = AXIS_LETTERS[mosaic.axis]
        row, col = mosaic.origins[0]
        y = row + tile_rows / 2
        ax.text(col + 0.5, y, left, color=label_colour, fontsize=7, ha="left", va="center")
        ax.text(col + tile_cols - 1.5, y, right, color=label_colour, fontsize=7, ha="right",
                va="center")
    ax.text(-0.5, rows - 0.5, f" {name}", color=label_colour, fontsize=7, ha="left",
            va="bottom")
    return ax


def mosaic_figure(panels: Sequence[tuple[Mosaic, NDArray[np.uint8], Sequence[Overlay]]],
                  header: Sequence[str], *, gid_prefix: str = "panel-", gap: float = 0.08):
    """A figure of stacked mosaic panels under a header of text lines (first line bold)."""
    heights = mosaic_heights([panel[0] for panel in panels])
    header_height = 0.12 + 0.2 * len(header)
    total = header_height + sum(heights) + gap * (len(panels) + 1)
    fig = new_figure(total)
    for number, line in enumerate(header):
        fig.text(_MARGIN / FIG_WIDTH, 1 - (0.08 + 0.2 * (number + 0.5)) / total, line,
                 ha="left", va="center", fontsize=11 if number == 0 else 9,
                 fontweight="bold" if number == 0 else "normal")
    bottom = total - header_height
    for (mosaic, rgb, overlays), height in zip(panels, heights, strict=True):
        bottom -= height + gap
        name = AXIS_NAMES[mosaic.axis][0]
        draw_mosaic(fig, bottom, height, mosaic, rgb, overlays, gid=f"{gid_prefix}{name}")
    return fig
