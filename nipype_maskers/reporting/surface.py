"""Reports of surface and CIFTI runs: the grayordinates' carpet and the structures table.

No mesh is drawn: a surface run is summarised by its time series. :func:`summarize_surface_run`
reads a ``.dtseries.nii`` (blocks of grayordinates; CIFTI stores each one's series
contiguously) or a GIFTI pair (streamed one volume at a time, as the maskers read it) in two
passes, never whole (which grayordinates are empty, then the sampled ones' series), and
returns a sample of the grayordinates' series in a meaningful order (structure by structure,
left cortex, right cortex, then the subcortical structures; within a structure, parcel by
parcel when an atlas is given) with the structures' sizes and how many of their grayordinates
are empty (series all zero or not finite: what the region maskers leave out, XCP-D's rule).
:func:`plot_surface_carpet` draws it with :func:`.carpet.plot_carpet` (structures separated
and named on the carpet); :func:`structures_table_html` is the table.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..core.io.tables import read_table
from ..core.surface import cifti as cifti_files
from ..core.surface.gifti import load_gifti
from ..core.surface.gifti_series import read_series_pair
from .carpet import MAX_VOXELS, sample_voxels

_COLUMN_BLOCK = 4096  # grayordinates read at a time from a dtseries


class SurfaceSummary(NamedTuple):
    """What the report needs from a surface run, from one streamed pass."""

    carpet: NDArray[np.float32]  #: (n_volumes, n_sampled) series of sampled grayordinates
    rows: NDArray[np.intp]  #: the sampled grayordinates (indices in the file), carpet order
    row_groups: list[tuple[str, int]]  #: (structure, number of carpet rows), carpet order
    structures: list[tuple[str, int, int]]  #: (structure, grayordinates, empty ones)
    t_r: float | None  #: from the file (SeriesAxis step, GIFTI TimeStep), None if unknown
    kind: str  #: 'CIFTI' or 'GIFTI'


def structure_label(name: str) -> str:
    """A short name for a CIFTI structure or a hemisphere.

    Examples
    --------
    >>> structure_label('CIFTI_STRUCTURE_CORTEX_LEFT')
    'cortex L'
    >>> structure_label('CIFTI_STRUCTURE_BRAIN_STEM')
    'brain stem'
    """
    words, side = cifti_files.structure_parts(name)
    return " ".join(words) + (f" {side}" if side else "")


def _is_cifti(paths: Sequence[str | Path]) -> bool:
    return len(paths) == 1 and str(paths[0]).endswith(".nii")


def _check_paths(paths: Sequence[str | Path], name: str) -> list[Path]:
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if _is_cifti(paths) or (len(paths) == 2 and all(str(p).endswith(".gii") for p in paths)):
        return paths
    raise ValueError(f"{name}: got {[p.name for p in paths]}; expected one CIFTI file "
                     "(.dtseries.nii / .dlabel.nii) or a pair of GIFTI files (hemi-L, hemi-R)")


def cifti_labels_on(axis, labels_path: Path) -> NDArray[np.int64]:
    """The parcel of each grayordinate of ``axis`` from a ``.dlabel.nii`` (its first label
    map; 0: none), matched by structure and vertex/voxel as the maskers match them
    (:func:`~nipype_maskers.core.surface.cifti.grayordinate_index`); grayordinates the atlas
    cannot place get 0 (the report only orders its rows by parcel)."""
    atlas = cifti_files.load_cifti(labels_path, "dlabel", name="labels_file")
    values = np.rint(np.asarray(atlas.dataobj[0])).astype(np.int64)
    index = cifti_files.grayordinate_index(axis, atlas.axes[1], partial=True)
    return np.where(index >= 0, values[index], 0)


def _order(structure: NDArray[np.intp], parcels: NDArray | None) -> NDArray[np.intp]:
    """Grayordinates sorted by structure, then parcel, then position in the file."""
    keys = [np.arange(structure.size), structure]
    if parcels is not None:
        keys.insert(1, parcels)
    return np.lexsort(keys)


def summarize_surface_run(in_file: Sequence[str | Path], *, labels_file: Sequence[str | Path]
                          | None = None, max_rows: int = MAX_VOXELS) -> SurfaceSummary:
    """Read a surface run (two streamed passes): a sample of its grayordinates' series, in
    carpet order.

    Parameters
    ----------
    in_file : one ``.dtseries.nii``, or [hemi-L ``.func.gii``, hemi-R ``.func.gii``]
    labels_file : optional; a ``.dlabel.nii`` or a pair of GIFTI label files
        Orders the rows parcel by parcel within each structure.
    max_rows : int
        Grayordinates sampled (evenly, in carpet order, among the non-empty ones).

    Returns
    -------
    SurfaceSummary
    """
    paths = _check_paths(in_file, "in_file")
    label_paths = None if labels_file is None else _check_paths(labels_file, "labels_file")
    if _is_cifti(paths):
        img = cifti_files.load_cifti(paths[0], "dtseries", name="in_file")
        axis = img.axes[1]
        names = [name for name, _, _ in axis.iter_structures()]
        number = {name: position for position, name in enumerate(names)}
        structure = np.array([number[name] for name in axis.name.tolist()], dtype=np.intp)
        n_volumes, n_total = img.shape
        empty = np.zeros(n_total, dtype=bool)
        for start in range(0, n_total, _COLUMN_BLOCK):
            block = np.asanyarray(img.dataobj[:, start:start + _COLUMN_BLOCK])
            empty[start:start + block.shape[1]] = ~(np.isfinite(block).all(axis=0)
                                                    & (block != 0).any(axis=0))
        parcels = (cifti_labels_on(axis, label_paths[0])
                   if label_paths and _is_cifti(label_paths) else None)
        t_r, kind = cifti_files.series_t_r(img), "CIFTI"
    else:
        names = ["CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT"]
        # streamed twice (which vertices are empty, then the sampled ones' series), as the
        # maskers read a pair: one volume decoded at a time, never the whole files
        with read_series_pair(paths, name="in_file") as pair:
            sizes, n_volumes, n_total = list(pair.sizes), pair.n_volumes, pair.n_vertices
            t_r, kind = pair.t_r, "GIFTI"  # the maskers' TimeStep rule
            finite, nonzero = np.ones(n_total, bool), np.zeros(n_total, bool)
            for block in pair.blocks(np.arange(n_volumes), np.arange(n_total)):
                finite &= np.isfinite(block).all(axis=0)
                nonzero |= (block != 0).any(axis=0)
        structure = np.repeat([0, 1], sizes)
        empty = ~(finite & nonzero)
        parcels = None
        if label_paths and not _is_cifti(label_paths):
            parts = [np.asarray(load_gifti(p, name="labels_file").darrays[0].data).ravel()
                     for p in label_paths]
            if [part.size for part in parts] == sizes:
                parcels = np.rint(np.concatenate(parts)).astype(np.int64)
    order = _order(structure, parcels)
    kept = order[~empty[order]]
    chosen = kept[sample_voxels(np.ones(kept.size, dtype=bool), max_rows)] if kept.size else kept
    if _is_cifti(paths):
        carpet = np.empty((n_volumes, chosen.size), dtype=np.float32)
        by_file = np.argsort(chosen)
        sorted_rows = chosen[by_file]
        for start in range(0, n_total, _COLUMN_BLOCK):
            inside = (sorted_rows >= start) & (sorted_rows < start + _COLUMN_BLOCK)
            if inside.any():
                block = np.asanyarray(img.dataobj[:, start:start + _COLUMN_BLOCK])
                carpet[:, by_file[inside]] = block[:, sorted_rows[inside] - start]
    else:
        carpet = np.zeros((n_volumes, chosen.size), dtype=np.float32)
        with read_series_pair(paths, name="in_file") as pair:
            done = 0
            for block in pair.blocks(np.arange(n_volumes), chosen, dtype=np.float32):
                carpet[done:done + block.shape[0]] = block
                done += block.shape[0]
    counts = np.bincount(structure, minlength=len(names))
    empties = np.bincount(structure[empty], minlength=len(names))
    in_carpet = np.bincount(structure[chosen], minlength=len(names))
    present = sorted(set(structure[chosen].tolist()), key=lambda s: int(np.flatnonzero(
        structure[chosen] == s)[0]))  # structures in carpet order
    return SurfaceSummary(carpet, chosen, [(names[s], int(in_carpet[s])) for s in present],
                          [(names[s], int(counts[s]), int(empties[s]))
                           for s in range(len(names))], t_r, kind)


def plot_surface_carpet(summary: SurfaceSummary, **carpet_options) -> str | bytes:
    """The carpet of a surface run (:func:`.carpet.plot_carpet`), structures separated and
    named; ``carpet_options`` are plot_carpet's (cleaned, confounds, sample_mask, fd...)."""
    from .carpet import plot_carpet

    groups = [(structure_label(name), rows) for name, rows in summary.row_groups]
    carpet_options.setdefault("raw_label", "grayordinates (sampled)" if summary.kind == "CIFTI"
                              else "vertices (sampled)")
    carpet_options.setdefault("title", f"Signals ({summary.kind}: "
                              + ("grayordinates" if summary.kind == "CIFTI" else "vertices")
                              + " by structure) before and after cleaning")
    return plot_carpet(summary.carpet, row_groups=groups, t_r=summary.t_r, **carpet_options)


def structures_table_html(summary: SurfaceSummary, *, title: str = "Structures") -> str:
    """The structures table: grayordinates, empty ones (left out of the parcels), rows shown."""
    shown = dict(summary.row_groups)
    empty_total = sum(e for _, _, e in summary.structures)
    total = sum(n for _, n, _ in summary.structures)
    lines = [f'<div class="regions"><h4>{html.escape(title)}</h4>',
             f"<p>{len(summary.structures)} structures, {total:,} "
             f"{'grayordinates' if summary.kind == 'CIFTI' else 'vertices'}; "
             f'<span class="{"warn" if empty_total else "ok"}">{empty_total:,} empty (series '
             "all zero or not finite: left out of their parcels)</span></p>",
             "<table><thead><tr><th>structure</th><th>grayordinates</th><th>empty</th>"
             "<th>rows in the carpet</th></tr></thead><tbody>"]
    for name, count, empty in summary.structures:
        flag = "bad" if count and empty == count else "warn" if empty else ""
        lines.append(f'<tr class="{flag}"><td>{html.escape(structure_label(name))}</td>'
                     f"<td>{count:,}</td><td>{empty:,}</td><td>{shown.get(name, 0)}</td></tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def dlabel_colours(labels_path: str | Path) -> dict[int, tuple[str, str]]:
    """A ``.dlabel.nii``'s label table (first map) as key -> (name, '#rrggbb')."""
    atlas = cifti_files.load_cifti(labels_path, "dlabel", name="labels_file")
    table = atlas.axes[0].label[0]
    return {int(key): (name, "#" + "".join(f"{round(255 * float(c)):02x}" for c in rgba[:3]))
            for key, (name, rgba) in table.items()}


#: A region's count, by preference: the regions table's own total (``voxel_count``, as the
#: volume maskers' and CiftiLabelsMasker's), else the sum of the per-kind counts.
_TOTAL_COLUMNS = ("voxel_count", "grayordinate_count")
_PART_COLUMNS = ("vertex_count", "subcortical_voxel_count")


def read_surface_regions_table(path: str, *, name: str = "regions_files"
                               ) -> list[tuple[int, str, int, float]]:  # fmt: skip
    """A surface/CIFTI region masker's regions TSV as (index, name, count, coverage) rows.

    The count is the table's ``voxel_count`` (or ``grayordinate_count``) column, else the sum
    of its ``vertex_count`` and ``subcortical_voxel_count`` columns.
    """
    table = read_table(path, name=name, header=True, delimiter="\t", numeric=False)
    totals = [c for c in _TOTAL_COLUMNS if c in table.columns][:1]
    counts = totals or [c for c in _PART_COLUMNS if c in table.columns]
    missing = [c for c in ("index", "name", "coverage") if c not in table.columns]
    if missing or not counts:
        raise ValueError(f"{table.source}: columns {table.columns}; expected index, name, "
                         f"coverage and a count ({', '.join(_TOTAL_COLUMNS + _PART_COLUMNS)}):"
                         " a region masker's regions table")
    numbers = table.numbers(["index", *counts])
    bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        column = ["index", *counts][col]
        raise ValueError(f"{table.source}: line {table.lines[row]}: {column} "
                         f"{table.text(column)[row]!r} is not an integer; expected integer "
                         "indices and counts")
    coverage = table.numbers(["coverage"])[:, 0]
    return [(int(row[0]), region, int(row[1:].sum()), float(c)) for row, region, c
            in zip(numbers, table.text("name"), coverage.tolist(), strict=True)]
