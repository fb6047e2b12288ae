"""Reports of surface and CIFTI runs: the grayordinates' carpet and the structures table.

No mesh is drawn: a surface run is summarised by its time series. :func:`summarize_surface_run`
reads a ``.dtseries.nii`` (blocks of grayordinates; CIFTI stores each one's series
contiguously) or a GIFTI pair (one volume at a time) once, and returns a sample of the
grayordinates' series in a meaningful order (structure by structure, left cortex, right
cortex, then the subcortical structures; within a structure, parcel by parcel when an atlas
is given) with the structures' sizes and how many of their grayordinates are empty (series
all zero or not finite: what the region maskers leave out, XCP-D's rule).
:func:`plot_surface_carpet` draws it with :func:`.carpet.plot_carpet` (structures separated
and named on the carpet); :func:`structures_table_html` is the table.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from ..core.io.tables import read_table
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
    words = name.removeprefix("CIFTI_STRUCTURE_").lower().split("_")
    side = {"left": " L", "right": " R"}.get(words[-1])
    return " ".join(words[:-1] if side else words) + (side or "")


def _is_cifti(paths: Sequence[str | Path]) -> bool:
    return len(paths) == 1 and str(paths[0]).endswith(".nii")


def _check_paths(paths: Sequence[str | Path], name: str) -> list[Path]:
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if _is_cifti(paths) or (len(paths) == 2 and all(str(p).endswith(".gii") for p in paths)):
        return paths
    raise ValueError(f"{name}: got {[p.name for p in paths]}; expected one CIFTI file "
                     "(.dtseries.nii / .dlabel.nii) or a pair of GIFTI files (hemi-L, hemi-R)")


def _cifti_t_r(axis) -> float | None:
    scale = {"SECOND": 1.0, "MILLISECOND": 1e-3}.get(getattr(axis, "unit", ""), None)
    return float(axis.step) * scale if scale and axis.step > 0 else None


def _gifti_t_r(img) -> float | None:
    """The ``TimeStep`` meta data of the first data array (fMRIPrep writes seconds; values
    over 100 are read as milliseconds)."""
    try:
        value = float(img.darrays[0].meta["TimeStep"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return value / 1000.0 if value >= 100 else value if value > 0 else None


def _keys(axis) -> tuple[NDArray[np.int64], dict[str, int]]:
    """One integer per grayordinate of a BrainModelAxis (its structure's number, times 2**40,
    plus its vertex or flat voxel index), and the structures' numbers."""
    names = np.asarray(axis.name)
    codes = {name: number for number, name in enumerate(sorted(set(names.tolist())))}
    code = np.array([codes[n] for n in names], dtype=np.int64)
    position = np.where(axis.surface_mask, axis.vertex, 0).astype(np.int64)
    if axis.volume_mask.any():
        voxels = np.ravel_multi_index(axis.voxel[axis.volume_mask].T, axis.volume_shape)
        position[axis.volume_mask] = voxels
    return code * (1 << 40) + position, codes


def cifti_labels_on(axis, labels_path: Path) -> NDArray[np.int64]:
    """The parcel of each grayordinate of ``axis`` from a ``.dlabel.nii`` (0: none), matched
    by structure and vertex/voxel (the dlabel may hold more grayordinates)."""
    img = nib.load(labels_path)
    label_axis = img.header.get_axis(1)
    values = np.asanyarray(img.dataobj)[0]
    if label_axis == axis:
        return np.rint(values).astype(np.int64)
    run_keys, run_codes = _keys(axis)
    atlas_keys, atlas_codes = _keys(label_axis)
    # re-code the atlas's structures with the run's numbers (absent ones: -1, never matched)
    recode = np.array([run_codes.get(n, -1) for n in sorted(atlas_codes, key=atlas_codes.get)],
                      dtype=np.int64)
    atlas_keys = recode[atlas_keys >> 40] * (1 << 40) + (atlas_keys & ((1 << 40) - 1))
    order = np.argsort(atlas_keys)
    found = np.searchsorted(atlas_keys[order], run_keys).clip(0, len(order) - 1)
    hit = atlas_keys[order][found] == run_keys
    out = np.zeros(len(run_keys), dtype=np.int64)
    out[hit] = np.rint(values[order][found[hit]]).astype(np.int64)
    return out


def _order(structure: NDArray[np.intp], parcels: NDArray | None) -> NDArray[np.intp]:
    """Grayordinates sorted by structure, then parcel, then position in the file."""
    keys = [np.arange(structure.size), structure]
    if parcels is not None:
        keys.insert(1, parcels)
    return np.lexsort(keys)


def summarize_surface_run(in_file: Sequence[str | Path], *, labels_file: Sequence[str | Path]
                          | None = None, max_rows: int = MAX_VOXELS) -> SurfaceSummary:
    """Read a surface run once: a sample of its grayordinates' series, in carpet order.

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
        img = nib.load(paths[0])
        series_axis, axis = (img.header.get_axis(i) for i in range(2))
        if not isinstance(axis, nib.cifti2.BrainModelAxis) or not isinstance(
                series_axis, nib.cifti2.SeriesAxis):
            raise ValueError(f"in_file: '{paths[0].name}' is not a dense time series "
                             "(.dtseries.nii: a SeriesAxis by a BrainModelAxis)")
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
        t_r, kind = _cifti_t_r(series_axis), "CIFTI"
    else:
        hemispheres = [nib.load(p) for p in paths]
        names = ["CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT"]
        sizes = [h.darrays[0].data.size for h in hemispheres]
        lengths = {len(h.darrays) for h in hemispheres}
        if len(lengths) != 1:
            raise ValueError(f"in_file: the hemispheres have {sorted(lengths)} volumes; "
                             "expected the same number")
        n_volumes, n_total = lengths.pop(), sum(sizes)
        structure = np.repeat([0, 1], sizes)
        finite, nonzero = np.ones(n_total, bool), np.zeros(n_total, bool)
        for t in range(n_volumes):
            volume = np.concatenate([h.darrays[t].data.ravel() for h in hemispheres])
            finite &= np.isfinite(volume)
            nonzero |= volume != 0
        empty = ~(finite & nonzero)
        parcels = None
        if label_paths and not _is_cifti(label_paths):
            parts = [np.asarray(nib.load(p).darrays[0].data).ravel() for p in label_paths]
            if [part.size for part in parts] == sizes:
                parcels = np.rint(np.concatenate(parts)).astype(np.int64)
        t_r, kind = _gifti_t_r(hemispheres[0]), "GIFTI"
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
        carpet = np.stack([np.concatenate([h.darrays[t].data.ravel() for h in hemispheres]
                                          )[chosen] for t in range(n_volumes)]
                          ).astype(np.float32) if n_volumes else np.zeros((0, chosen.size))
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
    img = nib.load(labels_path)
    table = img.header.get_axis(0).label[0]
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
