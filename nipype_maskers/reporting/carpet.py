"""The carpet plot: voxels (or regions) x time, before and after cleaning.

Panels, top to bottom, sharing the time axis: framewise displacement (when known), the
confounds regressed out (one row each, z-scored), the signals before cleaning and after it.
Censored volumes are shaded red on the top panels and left blank (light red) in the cleaned
signals, which hold only the kept volumes.

Every row of a carpet is z-scored over time for display (so drifts, spikes and global
fluctuations stand out whatever the voxel's intensity), on a grey scale from -2 to 2.
:func:`summarize_bold` reads a run once, streamed, and returns its mean image and a sample of
its voxels' time series: enough for the whole report without the 4D data in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from ..core.io.images import ImageLike, load_img, mean_image, n_volumes, same_grid
from ..core.io.volumes import iter_volumes
from .figures import FIG_WIDTH, Format, check_format, new_figure, save

#: Voxels sampled for the carpet by default (rows of the image).
MAX_VOXELS = 600
_CENSOR = "#d62728"


class BoldSummary(NamedTuple):
    """What the report needs from a run, from a single streamed pass."""

    mean: nib.Nifti1Image  #: the mean over time (float32, the run's grid)
    carpet: NDArray[np.float32]  #: (n_volumes, n_sampled) time series of sampled voxels
    voxels: NDArray[np.intp]  #: flat indices (Fortran, file order) of the sampled voxels


def sample_voxels(mask: NDArray[np.bool_], max_voxels: int = MAX_VOXELS) -> NDArray[np.intp]:
    """Up to ``max_voxels`` voxels of ``mask`` evenly spread in file (slice) order.

    Returns flat indices in Fortran (file) order.

    Examples
    --------
    >>> m = np.zeros((4, 4, 4), bool); m[1:3, 1:3, 1:3] = True
    >>> sample_voxels(m, 3).tolist()
    [21, 37, 42]
    """
    if max_voxels < 1:
        raise ValueError(f"max_voxels must be >= 1, got {max_voxels}")
    flat = np.flatnonzero(mask.ravel(order="F"))
    if flat.size > max_voxels:
        flat = flat[np.unique(np.rint(np.linspace(0, flat.size - 1, max_voxels)).astype(int))]
    return flat


def summarize_bold(img: ImageLike, mask: ImageLike, *, max_voxels: int = MAX_VOXELS,
                   name: str = "in_file") -> BoldSummary:
    """The mean image and the time series of sampled mask voxels, in one streamed pass.

    ``mask`` must be on the run's grid (as every masker's output mask is).
    """
    img = load_img(img, name=name, ndim=4)
    mask_img = load_img(mask, name="mask_file", ndim=3)
    if not same_grid(img.shape[:3], img.affine, mask_img.shape[:3], mask_img.affine):
        raise ValueError(
            f"mask_file: the mask's grid {tuple(mask_img.shape[:3])} differs from the run's "
            f"{tuple(img.shape[:3])} (or their affines differ); expected the run's mask"
        )
    mask_data = np.asanyarray(mask_img.dataobj).reshape(img.shape[:3]) != 0
    voxels = sample_voxels(mask_data, max_voxels)
    total = np.zeros(img.shape[:3], dtype=np.float64, order="F")
    carpet = np.empty((n_volumes(img), voxels.size), dtype=np.float32)
    for positions, volume in iter_volumes(img, dtype=np.float32, name=name):
        total += volume
        carpet[positions] = volume.ravel(order="F")[voxels]
    mean = (total / n_volumes(img)).astype(np.float32)
    return BoldSummary(mean_image(mean, img), carpet, voxels)


def carpet_from_rows(run, mask_data: NDArray[np.bool_], max_voxels: int = MAX_VOXELS
                     ) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """The carpet's sampled voxels, from a run already read (a
    :class:`~nipype_maskers.core.voxels.masked_run.MaskedRun` in ``mask_data``, unsmoothed):
    the same voxels and values as :func:`summarize_bold` but for non-finite values, which the
    masked rows hold as 0 (the maskers' rule)."""
    voxels = sample_voxels(mask_data, max_voxels)
    rows = run.take(np.arange(run.n_volumes), run.columns(voxels, what="masked_file"))
    return rows.astype(np.float32, copy=False), voxels


def zscore_columns(matrix: NDArray) -> NDArray[np.float32]:
    """Each column robustly z-scored over its finite values: minus its median, over
    1.4826 x its median absolute deviation (its std when that is 0; 0 where constant).

    Robust, so that a few extreme volumes (non-steady state, a head jerk) saturate instead of
    flattening the rest of the carpet. NaN stays NaN.

    Examples
    --------
    >>> z = zscore_columns(np.array([[1.0], [2.0], [3.0], [100.0]]))
    >>> [round(float(v), 2) for v in z[:, 0]]
    [-1.01, -0.34, 0.34, 65.76]
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.size == 0:
        return matrix.astype(np.float32)
    finite = np.isfinite(matrix)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        masked = np.where(finite, matrix, np.nan)
        centre = np.nanmedian(masked, axis=0)
        centred = masked - centre
        scale = 1.4826 * np.nanmedian(np.abs(centred), axis=0)
        std = np.nanstd(masked, axis=0)
        scale = np.where(scale > 0, scale, std)
        scaled = np.where(scale > 0, centred / np.where(scale > 0, scale, 1.0), 0.0)
    return np.where(finite, scaled, np.nan).astype(np.float32)


def on_timeline(matrix: NDArray, n_total: int, kept: NDArray[np.intp] | None, *,
                name: str = "cleaned") -> NDArray:
    """Rows of ``matrix`` placed at their volumes: all volumes, or the kept ones (NaN else)."""
    matrix = np.atleast_2d(np.asarray(matrix, dtype=np.float64).T).T
    if matrix.shape[0] == n_total:
        return matrix
    if kept is not None and matrix.shape[0] == len(kept):
        out = np.full((n_total, matrix.shape[1]), np.nan)
        out[kept] = matrix
        return out
    expected = f"{n_total}" + (f" (all volumes) or {len(kept)} (kept)" if kept is not None
                               else "")
    raise ValueError(f"{name}: has {matrix.shape[0]} rows; expected {expected}")


def _runs(volumes: NDArray[np.intp]) -> list[tuple[int, int]]:
    """Consecutive volumes as (first, last) runs."""
    if not len(volumes):
        return []
    volumes = np.sort(volumes)
    breaks = np.flatnonzero(np.diff(volumes) > 1)
    starts = np.r_[volumes[0], volumes[breaks + 1]]
    stops = np.r_[volumes[breaks], volumes[-1]]
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def _shade(ax, runs: list[tuple[int, int]], alpha: float) -> None:
    for first, last in runs:
        ax.axvspan(first - 0.5, last + 0.5, color=_CENSOR, alpha=alpha, linewidth=0)


def _carpet_axes(ax, matrix: NDArray, n_total: int, label: str,
                 row_groups: Sequence[tuple[str, int]] = ()):
    """A carpet: rows = features, columns = volumes; NaN (censored) in light red.

    ``row_groups`` ((name, rows) in row order, e.g. a CIFTI run's structures) are separated
    by lines and named when they are tall enough to hold their name.
    """
    import matplotlib as mpl

    cmap = mpl.colormaps["gray"].with_extremes(bad="#f4c7c7")
    shown = zscore_columns(matrix).T if matrix.size else np.zeros((1, n_total))
    ax.imshow(shown, cmap=cmap, vmin=-2, vmax=2, interpolation="none", aspect="auto",
              extent=(-0.5, n_total - 0.5, shown.shape[0], 0))
    ax.set_ylabel(label, fontsize=8)
    ax.set_yticks([])
    if row_groups and sum(rows for _, rows in row_groups) == shown.shape[0]:
        panel = "groups-" + (ax.get_gid() or "").removeprefix("panel-")
        top = 0
        for number, (name, rows) in enumerate(row_groups):
            if number:
                ax.axhline(top, color="#ff7f0e", linewidth=0.4, alpha=0.8,
                           gid=f"{panel}-line-{number}")
            if rows >= 0.045 * shown.shape[0]:  # room for a label
                ax.text(n_total - 1, top + rows / 2, name, fontsize=6.5, ha="right",
                        va="center", color="#1d1f23", gid=f"{panel}-name-{number}",
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white",
                              "edgecolor": "none", "alpha": 0.8})
            top += rows


def plot_carpet(raw: NDArray, *, cleaned: Sequence[tuple[str, NDArray]] = (),
                confounds: NDArray | None = None, confound_names: Sequence[str] = (),
                sample_mask: Sequence[int] | None = None, fd: NDArray | None = None,
                fd_threshold: float | None = None, t_r: float | None = None,
                raw_label: str = "voxels", fmt: Format = "svg",
                title: str = "Signals before and after cleaning",
                row_groups: Sequence[tuple[str, int]] = ()) -> str | bytes:
    """Carpet plots before and after cleaning, with the confounds, FD and censoring.

    Parameters
    ----------
    raw : array (n_volumes, n_features)
        Signals before cleaning (sampled voxels, or region signals).
    cleaned : sequence of (label, array)
        Cleaned signals, one panel each: (n_volumes or n_kept_volumes, n_features).
    confounds : array (n_volumes, n_confounds), optional
        The confounds regressed out (NaN allowed, e.g. fMRIPrep's first derivative row).
    confound_names : sequence of str
        Their names (labelled when there are at most 40).
    sample_mask : sequence of int, optional
        Indices of the kept volumes; the others are marked as censored.
    fd : array (n_volumes,), optional
        Framewise displacement in mm.
    fd_threshold : float, optional
        Drawn as a dashed line on the FD panel.
    t_r : float, optional
        Repetition time (s), written on the time axis.
    raw_label : str
        What the raw rows are ('voxels', 'regions').
    fmt : {'svg', 'png'}
    title : str
    row_groups : sequence of (str, int)
        Groups of consecutive raw rows (name, number of rows), e.g. the structures of a CIFTI
        run: drawn as separated, named bands on the panels of the raw rows.

    Returns
    -------
    str or bytes
        SVG text or PNG bytes; one ``panel-`` group per panel (``panel-fd``,
        ``panel-confounds``, ``panel-before``, ``panel-after-<i>``).
    """
    check_format(fmt)
    raw = np.atleast_2d(np.asarray(raw, dtype=np.float32).T).T
    n_total = raw.shape[0]
    kept = None
    if sample_mask is not None:
        kept = np.unique(np.asarray(sample_mask, dtype=np.intp))
        if kept.size and (kept[0] < 0 or kept[-1] >= n_total):
            raise ValueError(f"sample_mask: indices must be in [0, {n_total - 1}], got "
                             f"{int(kept[0])}..{int(kept[-1])}")
    censored = np.setdiff1d(np.arange(n_total), kept) if kept is not None else np.array([], int)
    runs = _runs(censored)
    if fd is not None:
        fd = np.asarray(fd, dtype=np.float64).ravel()
        if fd.size != n_total:
            raise ValueError(f"fd: has {fd.size} values; expected one per volume ({n_total})")
    if confounds is not None:
        confounds = on_timeline(confounds, n_total, None, name="confounds")
    placed = [(label, on_timeline(matrix, n_total, kept, name=label))
              for label, matrix in cleaned]

    heights = []  # (name, inches)
    if fd is not None:
        heights.append(("fd", 0.9))
    if confounds is not None:
        heights.append(("confounds", min(max(0.12 * confounds.shape[1], 0.5), 2.2)))
    heights.append(("before", 2.0))
    heights += [(f"after-{i}", min(max(0.03 * m.shape[1], 1.0), 2.0))
                for i, (_, m) in enumerate(placed)]
    header = 0.75
    gap, bottom_margin = 0.1, 0.45
    total = header + sum(h for _, h in heights) + gap * len(heights) + bottom_margin
    fig = new_figure(total)
    left, right = 1.6 / FIG_WIDTH, 1 - 0.2 / FIG_WIDTH
    n_kept = n_total if kept is None else len(kept)
    fig.text(0.15 / FIG_WIDTH, 1 - 0.22 / total, title, fontsize=11, fontweight="bold",
             va="center")
    summary = (f"{n_total} volumes" + (f" (TR {t_r:g} s)" if t_r else "") + f"; "
               f"{len(censored)} censored ({len(censored) / max(n_total, 1):.0%}), {n_kept} "
               f"kept; {0 if confounds is None else confounds.shape[1]} confounds; rows "
               "z-scored over time, grey from -2 to 2")
    fig.text(0.15 / FIG_WIDTH, 1 - 0.5 / total, summary, fontsize=9, va="center",
             color=_CENSOR if len(censored) > 0.2 * n_total else "black")
    top = total - header
    axes = []
    for (name, height) in heights:
        top -= height + gap
        ax = fig.add_axes((left, top / total, right - left, height / total))
        ax.set_gid(f"panel-{name}")
        ax.set_xlim(-0.5, n_total - 0.5)
        axes.append((name, ax))
    for name, ax in axes:
        if name == "fd":
            ax.plot(np.arange(n_total), fd, color="#1f77b4", linewidth=0.8)
            if fd_threshold is not None:
                ax.axhline(fd_threshold, color=_CENSOR, linestyle="--", linewidth=0.7)
            finite = fd[np.isfinite(fd)]
            ax.set_ylabel("FD (mm)", fontsize=8)
            ax.set_title(f"framewise displacement: mean {finite.mean():.2f} mm, max "
                         f"{finite.max():.2f} mm" if finite.size else "framewise "
                         "displacement", fontsize=8, loc="left", pad=2)
            _shade(ax, runs, 0.25)
        elif name == "confounds":
            shown = zscore_columns(confounds).T
            import matplotlib as mpl

            ax.imshow(shown, cmap=mpl.colormaps["RdBu_r"].with_extremes(bad="#dddddd"),
                      vmin=-3, vmax=3, interpolation="nearest", aspect="auto",
                      extent=(-0.5, n_total - 0.5, shown.shape[0] - 0.5, -0.5))
            names = list(confound_names)
            if names and len(names) == shown.shape[0] and len(names) <= 40:
                ax.set_yticks(range(len(names)), names, fontsize=4.5)
            else:
                ax.set_yticks([])
                ax.set_ylabel("confounds", fontsize=8)
            _shade(ax, runs, 0.25)
        elif name == "before":
            _carpet_axes(ax, raw, n_total, f"before cleaning\n{raw.shape[1]} {raw_label}",
                         row_groups)
            _shade(ax, runs, 0.2)
        else:
            label, matrix = placed[int(name.split("-")[1])]
            same_rows = row_groups if matrix.shape[1] == raw.shape[1] else ()
            _carpet_axes(ax, matrix, n_total, f"{label}\n({matrix.shape[1]})", same_rows)
    for _, ax in axes[:-1]:
        ax.tick_params(labelbottom=False, labelsize=7)
    axes[-1][1].tick_params(labelsize=7)
    axes[-1][1].set_xlabel("volume" + (f" (x {t_r:g} s)" if t_r else ""), fontsize=8)
    return save(fig, fmt, title=title)


def clean_for_display(raw: NDArray, *, confounds: NDArray | None = None,
                      sample_mask: Sequence[int] | None = None) -> NDArray:
    """Raw signals with the linear trend and the confounds regressed out, censored volumes
    dropped: what the denoising does to them, without filters (shown when no cleaned
    signals are given)."""
    from ..core.signal.cleaning import clean

    return clean(raw, detrend=True, standardize="zscore_sample", confounds=confounds,
                 sample_mask=None if sample_mask is None else np.asarray(sample_mask),
                 filter=None, t_r=None, ensure_finite=True)
