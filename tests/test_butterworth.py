"""core.butterworth against scipy.signal 1.17: the same coefficients and the same filtered
series, bit for bit (``np.array_equal``, no tolerance): the port does scipy's operations in
scipy's order."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from nipype_maskers.core.signal.butterworth import butter_sos, sosfilt_zi, sosfiltfilt

SAMPLING_RATES = (0.5, 1 / 0.72, 1 / 2.5, 1.0, 10.0)


def _designs():
    for order in range(1, 9):
        for fs in SAMPLING_RATES:
            nyq = fs / 2
            for low in (0.008, 0.01, 0.1 * nyq, 0.5 * nyq, 0.99 * nyq):
                yield order, low, "lowpass", fs
                yield order, low, "highpass", fs
                if low < 0.9 * nyq:
                    yield order, (low, min(3 * low, 0.999 * nyq)), "bandpass", fs


def test_design_matches_scipy_bit_for_bit():
    designs = list(_designs())
    assert len(designs) == 560
    for order, critical, btype, fs in designs:
        ours = butter_sos(order, critical, btype, fs)
        ref = signal.butter(order, critical, btype=btype, output="sos", fs=fs)
        assert np.array_equal(ours, ref), (order, critical, btype, fs)


def test_initial_state_matches_scipy():
    sos = signal.butter(5, (0.01, 0.1), btype="bandpass", output="sos", fs=0.5)
    assert np.array_equal(sosfilt_zi(sos), signal.sosfilt_zi(sos))


@pytest.mark.parametrize("padtype", ["odd", "even", "constant", None])
@pytest.mark.parametrize("padlen", [None, 0, 1, 40])
@pytest.mark.parametrize("btype, critical", [("bandpass", (0.01, 0.1)), ("lowpass", 0.08),
                                             ("highpass", 0.01)])
def test_filtfilt_matches_scipy_bit_for_bit(padtype, padlen, btype, critical, rng):
    sos = signal.butter(5, critical, btype=btype, output="sos", fs=0.5)
    x = rng.standard_normal((97, 6)).cumsum(axis=0) + 100
    before = x.copy()
    ours = sosfiltfilt(sos, x, padtype=padtype, padlen=padlen)
    ref = signal.sosfiltfilt(sos, x, axis=0, padtype=padtype, padlen=padlen)
    assert ours.shape == x.shape and ours.flags.c_contiguous
    assert np.array_equal(ours, ref)
    assert np.array_equal(x, before)  # input untouched


def test_filtfilt_one_dimensional_and_float32(rng):
    sos = signal.butter(3, 0.1, btype="lowpass", output="sos", fs=1.0)
    x = rng.standard_normal(60)
    assert np.array_equal(sosfiltfilt(sos, x), signal.sosfiltfilt(sos, x))
    x32 = x.astype(np.float32)
    ours = sosfiltfilt(sos, x32)
    assert ours.dtype == np.float64  # computed in float64, as clean() wants
    assert np.array_equal(ours, signal.sosfiltfilt(sos, x32.astype(np.float64)))


def test_filtfilt_hand_computed_constant_passes_unchanged():
    """A low-pass of a constant is the constant (the initial state is the step's steady
    state), to round-off."""
    sos = butter_sos(5, 0.1, "lowpass", 0.5)
    y = sosfiltfilt(sos, np.full((50, 2), 3.0))
    np.testing.assert_allclose(y, 3.0, rtol=1e-12)


def test_errors():
    sos = butter_sos(5, (0.01, 0.1), "bandpass", 0.5)
    with pytest.raises(ValueError, match="greater than padlen, which is 33"):
        sosfiltfilt(sos, np.zeros((33, 2)))
    with pytest.raises(ValueError, match="padtype must be"):
        sosfiltfilt(sos, np.zeros((50, 2)), padtype="reflect")
    with pytest.raises(ValueError, match="btype must be one of"):
        butter_sos(5, 0.1, "band", 0.5)
    with pytest.raises(ValueError, match="positive integer"):
        butter_sos(0, 0.1, "lowpass", 0.5)
    with pytest.raises(ValueError, match=r"0 < cutoff < fs/2 = 0.25"):
        butter_sos(5, 0.25, "lowpass", 0.5)
    with pytest.raises(ValueError, match="takes 2 cutoff"):
        butter_sos(5, 0.1, "bandpass", 0.5)
    with pytest.raises(ValueError, match="low cutoff must be below"):
        butter_sos(5, (0.1, 0.05), "bandpass", 0.5)


def test_cleaning_with_a_filter_does_not_import_scipy_signal(tmp_path):
    """The point of the port: a band-passed clean() (and the whole package's import) leaves
    scipy.signal, scipy.stats and scipy.interpolate unimported (0.9 s per process)."""
    code = (
        "import sys, numpy as np\n"
        "import nipype_maskers.workflows, nipype_maskers.cli\n"
        "from nipype_maskers.core.signal.cleaning import clean\n"
        "x = np.random.default_rng(0).standard_normal((80, 500))\n"
        "clean(x, t_r=2.0, low_pass=0.1, high_pass=0.01, standardize='zscore_sample')\n"
        "clean(x[:, :20], t_r=2.0, low_pass=0.1, detrend=True)\n"
        "print(sorted(m for m in ('scipy.signal', 'scipy.stats', 'scipy.interpolate')"
        " if m in sys.modules))\n"
    )
    # run elsewhere than the checkout: the installed package has nipype_maskers.workflows
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    assert out.stdout.strip() == "[]"
