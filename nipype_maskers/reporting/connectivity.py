"""Connectivity and denoising QC in the run's report: matrix heatmaps and the QC table.

- :func:`plot_matrix`: one connectivity matrix as a heatmap (a diverging colour map centred
  on 0, ``n/a`` regions in grey), SVG text or PNG bytes;
- :func:`qc_table_html`: a run's DenoisingQC figures as an HTML table, with their units;
- :func:`connectivity_section`: both gathered in one HTML fragment (SVGs inlined, their ids
  prefixed so that several matrices can share a page).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .figures import Format, check_format, new_figure, save
from .html import inline_svg

#: Above this many regions the axes show no region names (they would overlap).
MAX_NAMED_REGIONS = 40


def plot_matrix(matrix: NDArray[np.float64], names: Sequence[str], *, title: str,
                fmt: Format = "svg") -> str | bytes:
    """A square connectivity matrix as a heatmap.

    Values share one symmetric colour scale around 0 up to the largest absolute
    off-diagonal value (the diagonal, 1 for correlations, would otherwise flatten the
    rest), so that a matrix's signs read at a glance; ``n/a`` rows and columns (regions the
    mask emptied) are grey.

    Parameters
    ----------
    matrix : ndarray, shape (n_regions, n_regions)
        The matrix (NaN for ``n/a``).
    names : sequence of str
        The region names, in the matrix's order.
    title : str
        The figure's title (also the SVG's ``<title>``).
    fmt : {'svg', 'png'}
        Output format.

    Returns
    -------
    str or bytes
        SVG text or PNG bytes.
    """
    check_format(fmt)
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(names):
        raise ValueError(f"matrix of shape {matrix.shape} for {len(names)} region names; "
                         "expected a square matrix with one row per region")
    off_diagonal = matrix[~np.eye(matrix.shape[0], dtype=bool)]
    finite = off_diagonal[np.isfinite(off_diagonal)]
    limit = float(np.max(np.abs(finite))) if finite.size else 1.0
    limit = limit if limit > 0 else 1.0
    fig = new_figure(3.6, 4.4)
    ax = fig.add_axes((0.14, 0.14, 0.66, 0.8), gid="panel-matrix")
    shown = np.ma.masked_invalid(matrix)
    import matplotlib

    colours = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#bbbbbb")
    image = ax.imshow(shown, cmap=colours, vmin=-limit, vmax=limit, interpolation="nearest")
    n_regions = len(names)
    if n_regions <= MAX_NAMED_REGIONS:
        ax.set_xticks(range(n_regions), [str(n) for n in names], rotation=90, fontsize=6)
        ax.set_yticks(range(n_regions), [str(n) for n in names], fontsize=6)
    else:
        ax.set_xlabel(f"{n_regions} regions")
    # the caption above the figure says what it is: the title stays the SVG's <title> only
    bar = fig.add_axes((0.84, 0.14, 0.03, 0.8), gid="panel-colourbar")
    fig.colorbar(image, cax=bar)
    bar.tick_params(labelsize=7)
    return save(fig, fmt, title=title)


def _format_figure(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def qc_table_html(figures: Mapping[str, Any],
                  descriptions: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The DenoisingQC figures as an HTML table: figure, value, unit, description.

    ``figures`` is one row of a ``desc-qc_bold.tsv`` (``n/a`` as None or NaN);
    ``descriptions`` its sidecar's column entries (``Description``, ``Units``).
    """
    descriptions = descriptions or {}
    rows = []
    for name, value in figures.items():
        entry = descriptions.get(name, {})
        entry = entry if isinstance(entry, Mapping) else {}
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td class=\"value\">"
            f"{html.escape(_format_figure(value))}</td>"
            f"<td>{html.escape(str(entry.get('Units', '')))}</td>"
            f"<td>{html.escape(str(entry.get('Description', '')))}</td></tr>")
    return ("<table class=\"qc\"><thead><tr><th>figure</th><th>value</th><th>unit</th>"
            "<th>description</th></tr></thead><tbody>\n" + "\n".join(rows)
            + "\n</tbody></table>")


def connectivity_section(matrices: Sequence[tuple[str, str]],
                         qc: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
                         *, title: str = "Connectivity and denoising QC") -> str:
    """One HTML fragment: the QC table (when given), then each matrix's heatmap.

    Parameters
    ----------
    matrices : sequence of (caption, svg)
        Each heatmap's SVG text (from :func:`plot_matrix`) with a caption.
    qc : (figures, descriptions), optional
        The QC row and its sidecar's column descriptions (see :func:`qc_table_html`).
    title : str
        The section's heading (the report's table of contents shows it).
    """
    parts = [f"<h3>{html.escape(title)}</h3>"]
    if qc is not None:
        parts.append("<h4>Denoising QC</h4>")
        parts.append(qc_table_html(*qc))
    # the heatmaps side by side at a readable size (the report's CSS stretches a lone SVG to
    # the column's width)
    figures = [f'<figure style="flex: 0 1 440px; margin: 0">'
               f"<figcaption><b>{html.escape(caption)}</b></figcaption>"
               f'<div class="reportlet">{inline_svg(svg, f"m{number}-")}</div></figure>'
               for number, (caption, svg) in enumerate(matrices, start=1)]
    if figures:
        parts.append('<div style="display: flex; flex-wrap: wrap; gap: 1em">'
                     + "\n".join(figures) + "</div>")
    if not matrices:
        parts.append("<p>No connectivity matrix (no --connectivity kind given).</p>")
    return "\n".join(parts) + "\n"
