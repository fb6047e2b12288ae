"""Column-wise temporal operations used by :func:`nipype_maskers.core.signal.cleaning.clean`.

Every function works on ``(n_volumes, n_columns)`` float64 arrays, one column per
signal, and matches the corresponding step of ``nilearn.signal`` (0.14.1) to round-off.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray

from .butterworth import butter_sos

__all__ = [
    "butterworth_sos",
    "cosine_drift",
    "detrend_columns",
    "filtfilt_padding",
    "spline_weights",
    "standardize_columns",
]

_EPS32 = float(np.finfo(np.float32).eps)
_EPS64 = float(np.finfo(np.float64).eps)
PADTYPES = ("odd", "even", "constant", None)


def _clamp_to_nyquist(kind: str, freq: float, nyq: float) -> float:
    """Lower a cutoff at or above Nyquist to ``nyq * (1 - 10 * eps32)``, as nilearn does."""
    if freq < nyq:
        return freq
    clamped = nyq - nyq * 10 * _EPS32
    warnings.warn(
        f"The {kind} cutoff ({freq} Hz) is at or above the Nyquist frequency "
        f"({nyq} Hz = 0.5 / t_r); it has been lowered to {clamped} Hz.",
        UserWarning,
        stacklevel=3,
    )
    return clamped


def butterworth_sos(
    t_r: float,
    *,
    low_pass: float | None = None,
    high_pass: float | None = None,
    order: int = 5,
) -> NDArray[np.float64] | None:
    """Design nilearn's Butterworth filter as second-order sections.

    Parameters
    ----------
    t_r : float
        Repetition time in seconds (the sampling rate is ``1 / t_r``).
    low_pass, high_pass : float or None
        Cutoffs in Hz (positive; validated by the caller). ``low_pass`` alone gives a
        low-pass filter, ``high_pass`` alone a high-pass filter, both a band-pass filter.
    order : int
        Filter order (``N`` of :func:`scipy.signal.butter`).

    Returns
    -------
    sos : ndarray of shape (n_sections, 6) or None
        None when both cutoffs are None (no filtering).

    Raises
    ------
    ValueError
        If ``high_pass >= low_pass``, or if a band-pass is asked with ``high_pass`` at or
        above Nyquist (nilearn then clamps both cutoffs to the same value and silently
        returns the signals unfiltered; we refuse instead).

    Notes
    -----
    A single cutoff at or above Nyquist is clamped to ``nyq * (1 - 10 * eps32)`` with a
    warning, exactly as ``nilearn.signal._check_wn``.
    """
    if low_pass is None and high_pass is None:
        return None
    if low_pass is not None and high_pass is not None and high_pass >= low_pass:
        raise ValueError(
            f"high_pass ({high_pass} Hz) must be lower than low_pass ({low_pass} Hz) "
            "for a band-pass filter."
        )
    sampling_rate = 1.0 / t_r
    nyq = sampling_rate * 0.5
    if low_pass is not None and high_pass is not None and high_pass >= nyq:
        raise ValueError(
            f"high_pass ({high_pass} Hz) is at or above the Nyquist frequency ({nyq} Hz "
            f"= 0.5 / t_r with t_r={t_r}): no band-pass filter can be built. "
            "Lower high_pass or increase t_r."
        )
    critical: list[float] = []
    btype = "bandpass"
    if high_pass is not None:
        critical.append(_clamp_to_nyquist("high_pass", float(high_pass), nyq))
        btype = "highpass"
    if low_pass is not None:
        critical.append(_clamp_to_nyquist("low_pass", float(low_pass), nyq))
        btype = "lowpass"
    if len(critical) == 2:
        btype = "bandpass"
    wn = (critical[0], critical[1]) if len(critical) == 2 else critical[0]
    return butter_sos(order, wn, btype, sampling_rate)


def filtfilt_padding(sos: NDArray, padtype: str | None, padlen: int | None) -> int:
    """Number of samples :func:`scipy.signal.sosfiltfilt` pads at each end.

    The filtered series must be strictly longer than this.
    """
    if padtype is None:
        return 0
    if padlen is not None:
        return int(padlen)
    ntaps = 2 * sos.shape[0] + 1
    ntaps -= min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * ntaps


def cosine_drift(high_pass: float, n_volumes: int, t_r: float) -> NDArray[np.float64]:
    """DCT-II drift regressors of nilearn's ``create_cosine_drift`` without the constant.

    Parameters
    ----------
    high_pass : float
        Cutoff in Hz.
    n_volumes : int
        Number of volumes.
    t_r : float
        Repetition time in seconds.

    Returns
    -------
    drift : ndarray of shape (n_volumes, order)
        Column ``k - 1`` is ``sqrt(2 / n) * cos(pi / n * (t + 0.5) * k)`` with
        ``order = min(n - 1, floor(2 * n * high_pass * dt))``. ``order`` may be 0.

    Examples
    --------
    >>> cosine_drift(0.01, 100, 2.0).shape
    (100, 4)
    """
    if n_volumes < 2:
        return np.zeros((n_volumes, 0))
    frame_times = np.arange(n_volumes) * t_r
    dt = (frame_times[-1] - frame_times[0]) / (n_volumes - 1)
    if high_pass * dt >= 0.5:
        warnings.warn(
            "High-pass filter will span all accessible frequencies and saturate the "
            f"design matrix. You may want to reduce the high_pass value ({high_pass} Hz).",
            UserWarning,
            stacklevel=3,
        )
    order = min(n_volumes - 1, int(np.floor(2 * n_volumes * high_pass * dt)))
    times = np.arange(n_volumes)[:, None] + 0.5
    k = np.arange(1, order + 1)[None, :]
    return np.sqrt(2.0 / n_volumes) * np.cos((np.pi / n_volumes) * times * k)


def spline_weights(
    known: NDArray[np.integer], query: NDArray[np.integer], *, extrapolate: bool
) -> NDArray[np.float64]:
    """Linear weights of a not-a-knot cubic spline through the ``known`` volumes.

    ``weights @ x[known]`` equals ``CubicSpline(t[known], x[known])(t[query])`` to
    round-off for any ``x`` (the spline is linear in the data), so censored volumes of a
    whole block of columns are interpolated with one matrix product.

    Parameters
    ----------
    known, query : 1D int arrays
        Volume indices (the time grid is uniform, so ``t_r`` does not matter).
    extrapolate : bool
        Passed to :class:`scipy.interpolate.CubicSpline`; queries outside
        ``[known[0], known[-1]]`` give NaN when False.

    Returns
    -------
    weights : ndarray of shape (len(query), len(known))
    """
    if known.size < 2:
        raise ValueError(
            f"Interpolating censored volumes needs at least 2 kept volumes; sample_mask "
            f"keeps {known.size}."
        )
    # imported here: scipy.interpolate costs 0.2 s to import, and only censoring with
    # interpolation needs it
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(
        known.astype(np.float64), np.eye(known.size), extrapolate=extrapolate
    )
    return spline(query.astype(np.float64))


def detrend_columns(y: NDArray[np.float64]) -> None:
    """Remove the mean and the linear trend of each column, in place.

    Same arithmetic as ``nilearn.signal._detrend``: demean, then subtract the projection
    on the centred, unit-norm ramp ``0, 1, ..., n - 1``.

    Examples
    --------
    >>> y = np.arange(6.0)[:, None] * [1.0, -2.0] + 3.0
    >>> detrend_columns(y)
    >>> bool(np.allclose(y, 0))
    True
    """
    y -= y.mean(axis=0)
    ramp = np.arange(y.shape[0], dtype=np.float64)
    ramp -= ramp.mean()
    norm = np.sqrt((ramp**2).sum())
    if not norm < _EPS64:
        ramp /= norm
    y -= np.outer(ramp, ramp @ y)


def standardize_columns(y: NDArray[np.float64], ddof: int) -> None:
    """Z-score each column in place; a std below float64 eps is treated as 1 (nilearn).

    Examples
    --------
    >>> y = np.array([[1.0, 5.0], [3.0, 5.0]])
    >>> standardize_columns(y, ddof=1)
    >>> y.tolist()
    [[-0.7071067811865475, 0.0], [0.7071067811865475, 0.0]]
    """
    y -= y.mean(axis=0)
    std = np.sqrt(np.einsum("ij,ij->j", y, y) / (y.shape[0] - ddof))
    std[std < _EPS64] = 1.0
    y /= std
