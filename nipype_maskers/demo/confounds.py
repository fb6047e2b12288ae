"""fMRIPrep's confounds table, computed from a simulated run the way fMRIPrep computes it.

The columns, their order, the ``n/a`` first rows and the JSON sidecar follow fMRIPrep 21-25
(``*_desc-confounds_timeseries.tsv``), checked against the v21 file that nilearn ships for its
tests; the values come from the simulated data with fMRIPrep's (nipype's) formulas:

- ``global_signal``, ``csf``, ``white_matter``, ``csf_wm``, ``tcompcor``: mean signal in the
  brain mask / CSF / WM / CSF+WM / tCompCor masks, each with ``_derivative1`` (backward
  difference, ``n/a`` first), ``_power2`` and ``_derivative1_power2``;
- ``dvars`` and ``std_dvars``: nipype's ``compute_dvars`` (intensity-normalised to a median
  of 1000; standardised by the robust, AR(1)-predicted SD of the differences). The robust SD,
  AR(1) and median are estimated on every 4th brain voxel (they only set one scale factor);
- ``framewise_displacement``: Power's FD (50 mm radius); ``rmsd``: Jenkinson's relative RMS
  displacement (80 mm sphere);
- ``t_comp_cor_XX``, ``c_comp_cor_XX`` (CSF), ``w_comp_cor_XX`` (WM), ``a_comp_cor_XX``
  (combined): nipype's ``compute_noise_components`` on the steady-state volumes (DCT high-pass
  at 128 s, variance-normalised voxels, SVD, components up to 50% of the variance, zero on the
  non-steady-state volumes); the JSON lists the retained ones (fMRIPrep filters the dropped);
- ``cosineXX`` and ``non_steady_state_outlierXX``: the DCT basis of the steady-state volumes
  (zero-padded) and one-hot columns of the non-steady-state volumes, as nipype's pre-filter
  file (fMRIPrep's docs write ``cosine_XX``; the files have ``cosine00``);
- ``trans_x`` ... ``rot_z`` (mm, radians) with the three expansions;
- ``motion_outlierXX``: one-hot columns of the volumes with FD > 0.5 mm or std DVARS > 1.5
  (fMRIPrep's defaults).

Only numpy (and threadpoolctl, if installed, to keep BLAS single-threaded): no nipype,
nilearn or pandas.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..core.io.tables import format_table

if TYPE_CHECKING:  # pragma: no cover
    from .data import SimulatedRun

MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
_SUBSAMPLE = 4


def _single_threaded_blas() -> AbstractContextManager:
    """One BLAS thread, if threadpoolctl is installed (it comes with scikit-learn/nilearn).

    The products here are small ((t x t) Gram matrices): on a busy 2-core machine OpenBLAS's
    threads only wait for each other (measured: 2.5-3.7 s with 2 threads, 0.5 s with one).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the environment
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class ConfoundsTable(NamedTuple):
    """An fMRIPrep confounds table: column names, values (NaN = ``n/a``), JSON metadata."""

    columns: list[str]
    values: NDArray[np.float64]  #: (n_volumes, n_columns)
    metadata: dict[str, dict]


def derivative(x: NDArray) -> NDArray[np.float64]:
    """Backward difference with NaN first, as fMRIPrep's ``_derivative1`` columns."""
    out = np.empty(x.shape, dtype=np.float64)
    out[0] = np.nan
    out[1:] = np.diff(x, axis=0)
    return out


def _expanded(name: str, x: NDArray) -> list[tuple[str, NDArray]]:
    d = derivative(x)
    return [(name, x), (f"{name}_derivative1", d), (f"{name}_derivative1_power2", d**2),
            (f"{name}_power2", x**2)]  # fmt: skip


def framewise_displacement(motion: NDArray, radius: float = 50.0) -> NDArray[np.float64]:
    """Power's FD: sum of absolute differences, rotations as arc lengths at ``radius`` mm."""
    d = np.abs(derivative(motion))
    return d[:, :3].sum(axis=1) + radius * d[:, 3:].sum(axis=1)


def relative_rms(motion: NDArray, radius: float = 80.0) -> NDArray[np.float64]:
    """Jenkinson's relative RMS displacement over a sphere (small-angle approximation)."""
    d = derivative(motion)
    return np.sqrt(np.sum(d[:, :3] ** 2, axis=1) + 0.2 * radius**2 * np.sum(d[:, 3:] ** 2, axis=1))


def dvars(signals: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """nipype's ``compute_dvars``: (standardised, non-standardised) DVARS, NaN first."""
    sample = signals[:, ::_SUBSAMPLE].astype(np.float64)
    scale = 1000.0 / np.median(sample)
    sample *= scale
    low, high = np.percentile(sample, [25, 75], axis=0, method="lower")
    func_sd = (high - low) / 1.349
    centred = sample - sample.mean(axis=0)
    power = np.einsum("ij,ij->j", centred, centred)
    lag1 = np.einsum("ij,ij->j", centred[1:], centred[:-1])
    ar1 = np.divide(lag1, power, out=np.zeros_like(power), where=power > 0)
    diff_sd_mean = np.mean(np.sqrt(2.0 * (1.0 - ar1)) * func_sd)
    nstd = np.full(signals.shape[0], np.nan)
    for t in range(1, signals.shape[0]):
        diff = signals[t].astype(np.float64) - signals[t - 1]
        nstd[t] = math.sqrt(float(diff @ diff) / diff.size) * scale
    return nstd / diff_sd_mean, nstd


def cosine_basis(n_volumes: int, t_r: float, period_cut: float = 128.0) -> NDArray[np.float64]:
    """nipype's ``_cosine_drift`` without its constant: the DCT regressors below 1/period_cut."""
    order = max(int(np.floor(2 * n_volumes * t_r / period_cut)), 1)
    k = np.arange(1, order)
    times = np.arange(n_volumes)[:, None] + 0.5
    return np.sqrt(2.0 / n_volumes) * np.cos(np.pi / n_volumes * times * k)


def noise_components(data: NDArray, basis: NDArray, threshold: float = 0.5
                     ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """nipype's ``compute_noise_components`` for one mask.

    ``data`` is (n_volumes, n_voxels); the ``basis`` columns and a constant are regressed out,
    voxels are scaled to unit SD, and the left singular vectors up to ``threshold`` of the
    variance are returned with their singular values and explained variances. Each component's
    sign is chosen so that its largest entry is positive (numpy's SVD sign is arbitrary).
    """
    design = np.column_stack([basis, np.ones(data.shape[0])])
    q, _ = np.linalg.qr(design)
    m = data.astype(np.float64)
    m -= q @ (q.T @ m)
    sd = m.std(axis=0)
    sd[~(sd > 0)] = 1.0
    m /= sd
    eigval, eigvec = np.linalg.eigh(m @ m.T)  # the (t x t) Gram matrix: cheaper than the SVD
    order = np.argsort(eigval)[::-1]
    singular = np.sqrt(np.clip(eigval[order], 0.0, None))
    u = eigvec[:, order]
    total = np.sum(singular**2)
    if not total > 0:  # constant voxels (or one volume): no component, as nipype's "NaN" mode
        return np.zeros((data.shape[0], 0)), np.zeros(0), np.zeros(0)
    variance = singular**2 / total
    n_kept = int(np.searchsorted(np.cumsum(variance), threshold) + 1)
    u = u[:, :n_kept]
    u *= np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(n_kept)])
    return u, singular[:n_kept], variance


def fmriprep_confounds(run: SimulatedRun, *, ica_aroma: bool = False,
                       fd_threshold: float = 0.5, dvars_threshold: float = 1.5,
                       period_cut: float = 128.0) -> ConfoundsTable:
    """The confounds table fMRIPrep would write for a simulated run (see the module doc).

    Parameters
    ----------
    run : nipype_maskers.demo.data.SimulatedRun
        The simulated run (signals of the brain voxels, motion, masks).
    ica_aroma : bool
        Add ``aroma_motion_XX`` columns (noise components of fMRIPrep < 23.1 ``--use-aroma``):
        here the standardised absolute motion derivatives.
    fd_threshold, dvars_threshold : float
        Thresholds of the ``motion_outlierXX`` spike columns (fMRIPrep's defaults).
    period_cut : float
        Cut-off period (s) of the DCT high-pass before CompCor.

    Returns
    -------
    ConfoundsTable
    """
    with _single_threaded_blas():
        return _fmriprep_confounds(run, ica_aroma, fd_threshold, dvars_threshold, period_cut)


def _fmriprep_confounds(run: SimulatedRun, ica_aroma: bool, fd_threshold: float,
                        dvars_threshold: float, period_cut: float) -> ConfoundsTable:
    signals, anat, n_dummy = run.signals, run.anatomy, run.n_dummy
    n_volumes = signals.shape[0]
    steady = signals[n_dummy:]
    wm, csf = anat.wm_mask, anat.csf_mask
    combined = wm | csf
    sd = steady.std(axis=0)
    t_mask = sd >= np.quantile(sd, 0.98)  # the 2% most variable brain voxels

    def mean(mask=None):
        values = signals if mask is None else signals[:, mask]
        return values.mean(axis=1, dtype=np.float64)

    columns: list[tuple[str, NDArray]] = []
    for name, mask in (("global_signal", None), ("csf", csf), ("white_matter", wm)):
        columns += _expanded(name, mean(mask))
    columns += [("csf_wm", mean(combined)), ("tcompcor", mean(t_mask))]
    std_dvars, dvars_nstd = dvars(signals)
    fd = framewise_displacement(run.motion)
    columns += [("std_dvars", std_dvars), ("dvars", dvars_nstd),
                ("framewise_displacement", fd), ("rmsd", relative_rms(run.motion))]  # fmt: skip

    basis = cosine_basis(n_volumes - n_dummy, run.t_r, period_cut)
    metadata: dict[str, dict] = {name: {"Method": "Mean"} for name in
                                 ("global_signal", "csf", "white_matter", "csf_wm", "tcompcor")}
    for prefix, mask, mask_name in (("t", t_mask, None), ("c", csf, "CSF"), ("w", wm, "WM"),
                                    ("a", combined, "combined")):  # fmt: skip
        comps, singular, variance = noise_components(steady[:, mask], basis)
        cumulative = np.cumsum(variance)
        for i in range(comps.shape[1]):
            name = f"{prefix}_comp_cor_{i:02d}"
            columns.append((name, np.concatenate([np.zeros(n_dummy), comps[:, i]])))
            meta = {"CumulativeVarianceExplained": float(cumulative[i]),
                    "Method": "tCompCor" if prefix == "t" else "aCompCor", "Retained": True,
                    "SingularValue": float(singular[i]),
                    "VarianceExplained": float(variance[i])}  # fmt: skip
            if mask_name:
                meta["Mask"] = mask_name
            metadata[name] = meta
    for i in range(basis.shape[1]):
        columns.append((f"cosine{i:02d}", np.concatenate([np.zeros(n_dummy), basis[:, i]])))
    for i in range(n_dummy):
        columns.append((f"non_steady_state_outlier{i:02d}", np.eye(n_volumes)[i]))
    for k, name in enumerate(MOTION):
        columns += _expanded(name, run.motion[:, k])
    if ica_aroma:
        d = np.abs(np.nan_to_num(derivative(run.motion)))
        d = (d - d.mean(axis=0)) / np.maximum(d.std(axis=0), 1e-12)
        for i, k in zip((1, 3, 4, 7), (0, 1, 2, 3), strict=True):
            columns.append((f"aroma_motion_{i:02d}", d[:, k]))
    with np.errstate(invalid="ignore"):
        outliers = np.flatnonzero((fd > fd_threshold) | (std_dvars > dvars_threshold))
    for i, t in enumerate(outliers):
        columns.append((f"motion_outlier{i:02d}", np.eye(n_volumes)[t]))
    names = [name for name, _ in columns]
    values = np.column_stack([np.asarray(v, dtype=np.float64) for _, v in columns])
    return ConfoundsTable(names, values, metadata)


def format_confounds(table: ConfoundsTable) -> str:
    """The table as fMRIPrep's TSV: a header, shortest round-trip floats, ``n/a`` for NaN."""
    return format_table(table.columns, table.values, name="confounds")


def confounds_sidecar(table: ConfoundsTable) -> dict[str, dict]:
    """The ``*_desc-confounds_timeseries.json`` sidecar (entries in column order)."""
    return {name: table.metadata[name] for name in table.columns if name in table.metadata}
