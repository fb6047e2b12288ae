"""Digital Butterworth filters as second-order sections, and zero-phase filtering.

The two pieces of :mod:`scipy.signal` that nilearn's band-pass uses,
``butter(N, Wn, btype, output="sos", fs=fs)`` and ``sosfiltfilt(sos, x, axis=0, ...)``, ported
step for step from scipy 1.17 so that the coefficients and the filtered series are the same
floating-point numbers (tested against scipy). Why not call scipy: importing
:mod:`scipy.signal` costs 0.7-0.9 s (it imports scipy.stats, scipy.interpolate and
scipy.optimize), paid by every process that filters (the command line, every cluster job),
longer than filtering a 300-volume run takes.
"""

# The functions below are adapted from SciPy (scipy/signal/_filter_design.py,
# _signaltools.py, _arraytools.py, _sosfilt.pyx), whose licence they keep:
#
# Copyright (c) 2001-2002 Enthought, Inc. 2003, SciPy Developers.
# All rights reserved.
#
# Redistribution and use in source and binary forms, with or without
# modification, are permitted provided that the following conditions
# are met:
#
# 1. Redistributions of source code must retain the above copyright
#    notice, this list of conditions and the following disclaimer.
#
# 2. Redistributions in binary form must reproduce the above
#    copyright notice, this list of conditions and the following
#    disclaimer in the documentation and/or other materials provided
#    with the distribution.
#
# 3. Neither the name of the copyright holder nor the names of its
#    contributors may be used to endorse or promote products derived
#    from this software without specific prior written permission.
#
# THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
# "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
# LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR
# A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
# OWNER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
# SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
# LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
# DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
# THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
# (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
# OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["butter_sos", "sosfilt_zi", "sosfiltfilt"]

BTYPES = ("lowpass", "highpass", "bandpass")


def _relative_degree(z: NDArray, p: NDArray) -> int:
    return p.shape[0] - z.shape[0]


def butter_sos(order: int, critical: float | tuple[float, float], btype: str, fs: float
               ) -> NDArray[np.float64]:
    """Second-order sections of a digital Butterworth filter (``scipy.signal.butter``).

    Parameters
    ----------
    order : int
        Filter order ``N`` (positive).
    critical : float or (float, float)
        Cutoff(s) in Hz: one for ``'lowpass'`` / ``'highpass'``, ``(low, high)`` for
        ``'bandpass'``; each strictly between 0 and ``fs / 2``.
    btype : {'lowpass', 'highpass', 'bandpass'}
        Filter type.
    fs : float
        Sampling rate in Hz.

    Returns
    -------
    sos : ndarray of shape (n_sections, 6)
        ``[b0, b1, b2, 1, a1, a2]`` per section, as scipy orders and pairs them
        (``zpk2sos`` with ``pairing='nearest'``).
    """
    if btype not in BTYPES:
        raise ValueError(f"btype must be one of {BTYPES}, not {btype!r}.")
    if int(order) != order or order < 1:
        raise ValueError(f"The filter order must be a positive integer, not {order!r}.")
    wn = np.asarray(critical, dtype=np.float64) / (fs / 2)
    if wn.size != (2 if btype == "bandpass" else 1):
        raise ValueError(f"A {btype} filter takes {2 if btype == 'bandpass' else 1} "
                         f"cutoff(s), not {critical!r}.")
    if np.any(wn <= 0) or np.any(wn >= 1):
        raise ValueError(f"Cutoffs must be 0 < cutoff < fs/2 = {fs / 2}, not {critical!r}.")
    if wn.size == 2 and not wn[0] < wn[1]:
        raise ValueError(f"The band's low cutoff must be below its high one, not {critical!r}.")

    # analog prototype: poles on the left half of the unit circle, the middle one exactly -1
    m = np.arange(-order + 1, order, 2, dtype=np.float64)
    p = -np.exp(1j * np.pi * m / (2 * order))
    z = np.asarray([], dtype=np.float64)
    k = 1.0
    fs_warp = 2.0  # the bilinear transform works on the normalised frequency
    warped = 2 * fs_warp * np.tan(np.pi * wn / fs_warp)
    degree = _relative_degree(z, p)
    if btype == "lowpass":
        wo = float(warped)
        z, p, k = wo * z, wo * p, k * wo**degree
    elif btype == "highpass":
        wo = float(warped)
        k = k * np.real(np.prod(-z) / np.prod(-p))
        z, p = np.concatenate((wo / z, np.zeros(degree))), wo / p
    else:
        bw = float(warped[1] - warped[0])
        wo = float(np.sqrt(warped[0] * warped[1]))
        z_lp = (z * bw / 2).astype(np.complex128)  # scipy promotes the zeros with the poles
        p_lp = (p * bw / 2).astype(np.complex128)
        z = np.concatenate((z_lp + np.sqrt(z_lp**2 - wo**2), z_lp - np.sqrt(z_lp**2 - wo**2)))
        p = np.concatenate((p_lp + np.sqrt(p_lp**2 - wo**2), p_lp - np.sqrt(p_lp**2 - wo**2)))
        z = np.concatenate((z, np.zeros(degree)))
        k = k * bw**degree
    # bilinear transform
    degree = _relative_degree(z, p)
    fs2 = 2.0 * fs_warp
    k = k * np.real(np.prod(fs2 - z) / np.prod(fs2 - p))
    z = np.concatenate(((fs2 + z) / (fs2 - z), -np.ones(degree)))
    p = (fs2 + p) / (fs2 - p)
    return _zpk2sos(z, p, k)


def _cplxreal(z: NDArray) -> tuple[NDArray, NDArray]:
    """One of each complex-conjugate pair and the real values, sorted as scipy does."""
    z = np.atleast_1d(z)
    if z.size == 0:
        return z, z
    tol = 100 * np.finfo((1.0 * z).dtype).eps
    z = z[np.lexsort((abs(z.imag), z.real))]
    real_indices = abs(z.imag) <= tol * abs(z)
    zr = z[real_indices].real
    if len(zr) == len(z):
        return np.array([]), zr
    z = z[~real_indices]
    zp = z[z.imag > 0]
    zn = z[z.imag < 0]
    if len(zp) != len(zn):  # not reachable from butter_sos: its poles come in pairs
        raise ValueError("Array contains complex value with no matching conjugate.")
    same_real = np.diff(zp.real) <= tol * abs(zp[:-1])
    diffs = np.diff(np.concatenate(([0], same_real, [0])))
    run_starts = np.nonzero(diffs > 0)[0]
    run_stops = np.nonzero(diffs < 0)[0]
    for start, stop in zip(run_starts, run_stops + 1, strict=True):
        for chunk in (zp[start:stop], zn[start:stop]):
            chunk[...] = chunk[np.lexsort([abs(chunk.imag)])]
    return (zp + zn.conj()) / 2, zr


def _nearest_idx(values: NDArray, to: complex, which: str) -> int:
    """Index of the value nearest ``to`` among the real ones, the complex ones or any."""
    order = np.argsort(np.abs(values - to))
    if which == "any":
        return int(order[0])
    mask = np.isreal(values[order])
    if which == "complex":
        mask = ~mask
    return int(order[np.nonzero(mask)[0][0]])


def _poly(roots: list) -> NDArray:
    """scipy's ``_polyutils.poly``: the monic polynomial with these roots."""
    roots = np.atleast_1d(np.asarray(roots))
    if roots.shape[0] == 0:
        return np.asarray(1.0, dtype=np.real(roots).dtype)
    a = np.ones((1,), dtype=roots.dtype)
    one = np.ones_like(roots[0])
    for root in roots:
        a = np.convolve(a, np.stack((one, -root)), mode="full")
    if np.iscomplexobj(a):
        as_complex = np.asarray(roots, dtype=np.complex128)
        if np.all(np.sort(np.imag(as_complex)) == np.sort(np.imag(np.conj(as_complex)))):
            a = np.real(a).copy()
    return a


def _single_section(z: list, p: list) -> NDArray[np.float64]:
    sos = np.zeros(6)
    zeros = np.asarray(z)
    gain = np.asarray(1, dtype=np.result_type(np.real(zeros), np.real(np.asarray(p)), 1))
    if np.issubdtype(gain.dtype, np.integer):
        gain = gain.astype(np.float64)
    b = np.multiply(np.atleast_1d(gain), _poly(z))
    a = np.atleast_1d(_poly(p))
    sos[3 - len(b):3] = b
    sos[6 - len(a):6] = a
    return sos


def _zpk2sos(z: NDArray, p: NDArray, k: float) -> NDArray[np.float64]:
    """scipy's ``zpk2sos`` for a digital filter, ``pairing='nearest'``."""
    p = np.concatenate((p, np.zeros(max(len(z) - len(p), 0))))
    z = np.concatenate((z, np.zeros(max(len(p) - len(z), 0))))
    n_sections = (max(len(p), len(z)) + 1) // 2
    if len(p) % 2 == 1:
        p = np.concatenate((p, [0.0]))
        z = np.concatenate((z, [0.0]))
    z = np.concatenate(_cplxreal(z))
    p = np.concatenate(_cplxreal(p))
    k = np.asarray(k).real

    def idx_worst(poles: NDArray) -> int:  # the pole closest to the unit circle
        return int(np.argmin(np.abs(1 - np.abs(poles))))

    sos = np.zeros((n_sections, 6))
    for si in range(n_sections - 1, -1, -1):
        p1_idx = idx_worst(p)
        p1 = p[p1_idx]
        p = np.delete(p, p1_idx)
        if np.isreal(p1) and np.isreal(p).sum() == 0:
            z1_idx = _nearest_idx(z, p1, "real")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _single_section([z1, 0], [p1, 0])
        elif (len(p) + 1 == len(z) and not np.isreal(p1)
              and np.isreal(p).sum() == 1 and np.isreal(z).sum() == 1):
            z1_idx = _nearest_idx(z, p1, "complex")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _single_section([z1, z1.conj()], [p1, p1.conj()])
        else:
            if np.isreal(p1):
                real_idx = np.flatnonzero(np.isreal(p))
                p2_idx = real_idx[idx_worst(p[real_idx])]
                p2 = p[p2_idx]
                p = np.delete(p, p2_idx)
            else:
                p2 = p1.conj()
            if len(z) > 0:
                z1_idx = _nearest_idx(z, p1, "any")
                z1 = z[z1_idx]
                z = np.delete(z, z1_idx)
                if not np.isreal(z1):
                    sos[si] = _single_section([z1, z1.conj()], [p1, p2])
                elif len(z) > 0:
                    z2_idx = _nearest_idx(z, p1, "real")
                    z2 = z[z2_idx]
                    z = np.delete(z, z2_idx)
                    sos[si] = _single_section([z1, z2], [p1, p2])
                else:
                    sos[si] = _single_section([z1], [p1, p2])
            else:
                sos[si] = _single_section([], [p1, p2])
    sos[0][:3] *= k
    return sos


def sosfilt_zi(sos: NDArray[np.float64]) -> NDArray[np.float64]:
    """Initial state of each section for a step response's steady state (scipy's)."""
    zi = np.empty((sos.shape[0], 2))
    scale = 1.0
    for section in range(sos.shape[0]):
        b, a = sos[section, :3], sos[section, 3:]
        if a[0] != 1.0:
            b, a = b / a[0], a / a[0]
        # lfilter_zi: solve zi = A zi + B, A the companion matrix's transpose
        companion = np.array([[-a[1], -a[2]], [1.0, 0.0]])
        zi[section] = scale * np.linalg.solve(np.eye(2) - companion.T, b[1:] - a[1:] * b[0])
        scale *= np.sum(b) / np.sum(a)
    return zi


def _sosfilt_inplace(sos: NDArray[np.float64], x: NDArray[np.float64],
                     zi: NDArray[np.float64]) -> None:
    """Filter the rows of ``x`` (time along axis 0) in place, from the state ``zi``.

    The transposed direct form II of scipy's ``_sosfilt``, with the same operations in the
    same order, section by section over the whole series (a section's output at step n
    depends only on its input up to n, so the order of the loops does not change a bit).
    The products with the ``b`` coefficients are taken for the whole series at once; only
    the feedback is done row by row. ``zi`` is ``(n_sections, 2, n_columns)``, updated.
    """
    b1x, b2x = np.empty_like(x), np.empty_like(x)
    scratch = np.empty(x.shape[1])
    for s, (b0, b1, b2, _, a1, a2) in enumerate(sos):
        z0, z1 = zi[s]
        np.multiply(b1, x, out=b1x)
        np.multiply(b2, x, out=b2x)
        np.multiply(b0, x, out=x)
        for row, b1x_row, b2x_row in zip(x, b1x, b2x, strict=True):
            np.add(row, z0, out=row)  # y = b0 x + z0
            np.multiply(a1, row, out=scratch)
            np.subtract(b1x_row, scratch, out=z0)
            np.add(z0, z1, out=z0)  # z0 = b1 x - a1 y + z1
            np.multiply(a2, row, out=scratch)
            np.subtract(b2x_row, scratch, out=z1)  # z1 = b2 x - a2 y


def sosfiltfilt(sos: NDArray[np.float64], x: NDArray, padtype: str | None = "odd",
                padlen: int | None = None) -> NDArray[np.float64]:
    """Forward-backward filtering along axis 0 (``scipy.signal.sosfiltfilt(..., axis=0)``).

    Parameters
    ----------
    sos : ndarray of shape (n_sections, 6)
        Second-order sections with ``sos[:, 3] == 1``.
    x : ndarray of shape (n_samples,) or (n_samples, n_columns)
        Series in columns; not modified.
    padtype : {'odd', 'even', 'constant', None}
        Extension at both ends before filtering.
    padlen : int or None
        Samples of extension at each end; None: ``3 * ntaps``.

    Returns
    -------
    y : ndarray of float64, the shape of ``x``
    """
    if padtype not in ("odd", "even", "constant", None):
        raise ValueError(f"padtype must be 'odd', 'even', 'constant' or None, not {padtype!r}.")
    x = np.asarray(x, dtype=np.float64)
    one_dim = x.ndim == 1
    if one_dim:
        x = x[:, None]
    ntaps = 2 * sos.shape[0] + 1
    ntaps -= min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    edge = 0 if padtype is None else (3 * ntaps if padlen is None else int(padlen))
    if x.shape[0] <= edge:
        raise ValueError(f"The length of the input vector x must be greater than padlen, "
                         f"which is {edge}.")
    if padtype is not None and edge > 0:
        left, right = x[edge:0:-1], x[-2:-(edge + 2):-1]
        if padtype == "odd":
            left, right = 2 * x[:1] - left, 2 * x[-1:] - right
        elif padtype == "constant":
            left = np.repeat(x[:1], edge, axis=0)
            right = np.repeat(x[-1:], edge, axis=0)
        y = np.concatenate((left, x, right))
    else:
        y = x.copy()
    zi = sosfilt_zi(sos)[:, :, None]
    _sosfilt_inplace(sos, y, zi * y[0])
    y = np.ascontiguousarray(y[::-1])
    _sosfilt_inplace(sos, y, zi * y[0])
    y = y[::-1]
    if edge > 0:
        y = y[edge:-edge]
    y = np.ascontiguousarray(y)
    return y[:, 0] if one_dim else y
