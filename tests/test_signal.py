"""Tests of core.signal.clean against nilearn.signal.clean (0.14.1), plus its bug fixes.

Tolerances: float64 ``rtol=1e-10`` with ``atol=1e-10 * max|ref|``; float32 ``rtol=1e-5`` with
``atol=1e-5 * max|ref|`` (nilearn computes float32 input partly in float32, we in float64).
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn import signal as nsignal
from scipy.interpolate import CubicSpline

from nipype_maskers.core.signal import cleaning as core_signal
from nipype_maskers.core.signal.cleaning import AllVolumesRemovedError, clean

N = 97  # volumes
T_R = 2.0


def _nilearn(x, **kwargs):
    """nilearn.signal.clean with our option names, its warnings silenced."""
    for key in ("order", "padtype", "padlen"):
        if f"butterworth_{key}" in kwargs:
            kwargs[f"butterworth__{key}"] = kwargs.pop(f"butterworth_{key}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nsignal.clean(np.array(x, copy=True), **kwargs)


def _ours(x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return clean(x, **kwargs)


def assert_close(ours, ref, rtol=1e-10):
    assert ours.shape == ref.shape
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * scale)


def _signals(n_features, n=N, seed=0, dtype=np.float64):
    """BOLD-like columns: mean ~100, a drift, slow oscillations and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    x = 100 + rng.uniform(-20, 20, n_features)
    x = x + 0.05 * t * rng.standard_normal(n_features)
    x = x + 3 * np.sin(2 * np.pi * t * T_R * rng.uniform(0.005, 0.2, n_features))
    return (x + rng.standard_normal((n, n_features))).astype(dtype)


@pytest.fixture
def x64():
    return _signals(13)


@pytest.fixture
def conf():
    return np.random.default_rng(1).standard_normal((N, 4)) + np.linspace(0, 2, N)[:, None]


# Censored volumes whose mirror positions n-1-i are kept: nilearn's B1 does not bite.
SAFE_KEEP = np.setdiff1d(np.arange(N), [5, 6, 20, 21, 22, 40])

CASES = {
    "detrend": dict(detrend=True, standardize=None),
    "zscore_sample": dict(detrend=False, standardize="zscore_sample"),
    "psc_addback": dict(detrend=True, standardize="psc"),
    "psc_plain": dict(detrend=False, standardize="psc"),
    "confounds": dict(confounds="conf"),
    "confounds_nostd": dict(confounds="conf", standardize_confounds=False),
    "confounds_nodetrend": dict(confounds="conf", detrend=False),
    "low_pass": dict(low_pass=0.1, t_r=T_R),
    "high_pass": dict(high_pass=0.02, t_r=T_R, standardize=None),
    "band_pass_all": dict(low_pass=0.1, high_pass=0.02, t_r=T_R, confounds="conf"),
    "band_psc": dict(low_pass=0.1, high_pass=0.02, t_r=T_R, standardize="psc"),
    "lowpass_psc_nodetrend": dict(low_pass=0.1, t_r=T_R, standardize="psc", detrend=False),
    "butterworth_options": dict(
        low_pass=0.1, t_r=T_R, butterworth_order=3, butterworth_padtype="even",
        butterworth_padlen=10,
    ),
    "cosine": dict(filter="cosine", high_pass=0.01, t_r=T_R, confounds="conf"),
    "cosine_only": dict(filter="cosine", high_pass=0.02, t_r=T_R, standardize="psc"),
    "mask_nofilter": dict(sample_mask=SAFE_KEEP, confounds="conf"),
    "mask_bool": dict(sample_mask=np.isin(np.arange(N), SAFE_KEEP), detrend=False),
    "mask_cosine": dict(sample_mask=SAFE_KEEP, filter="cosine", high_pass=0.01, t_r=T_R,
                        confounds="conf"),
    "mask_band": dict(sample_mask=SAFE_KEEP, low_pass=0.1, high_pass=0.02, t_r=T_R,
                      confounds="conf"),
    "mask_lead_trail_low": dict(sample_mask=np.arange(3, N), low_pass=0.1, t_r=T_R),
    "mask_trailing_psc": dict(sample_mask=np.arange(0, N - 4), high_pass=0.02, t_r=T_R,
                              standardize="psc", confounds="conf"),
    "mask_extrapolate": dict(sample_mask=np.arange(2, N), low_pass=0.1, t_r=T_R,
                             extrapolate=True, confounds="conf"),
    "nyquist_clamp": dict(low_pass=0.3, t_r=T_R),
}  # fmt: skip


def _resolve(kwargs, conf):
    return {k: (conf if isinstance(v, str) and v == "conf" else v) for k, v in kwargs.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_nilearn_float64(case, x64, conf):
    kwargs = _resolve(CASES[case], conf)
    ours, ref = _ours(x64, **kwargs), _nilearn(x64, **kwargs)
    assert ours.dtype == np.float64
    assert_close(ours, ref)


@pytest.mark.parametrize("case", [c for c in CASES if "t_r" in CASES[c] and "cos" not in c])
def test_matches_nilearn_one_matrix_path(case, conf, monkeypatch):
    """With >= 2 n columns, Butterworth cases run as one precomputed matrix."""
    used = []
    block = core_signal._clean_block

    def spy(plan, *args):
        used.append(plan.operator is not None)
        return block(plan, *args)

    monkeypatch.setattr(core_signal, "_clean_block", spy)
    x = _signals(2 * N + 3, seed=2)
    kwargs = _resolve(CASES[case], conf)
    some = slice(None, None, 15)  # columns are cleaned independently; nilearn is slow
    assert_close(_ours(x, **kwargs)[:, some], _nilearn(x[:, some], **kwargs))
    assert used and all(used)


@pytest.mark.parametrize("case", ["band_pass_all", "psc_addback", "mask_band", "cosine"])
def test_matches_nilearn_float32(case, conf):
    x = _signals(29, dtype=np.float32)
    kwargs = _resolve(CASES[case], conf)
    ours, ref = _ours(x, **kwargs), _nilearn(x, **kwargs)
    assert ours.dtype == ref.dtype == np.float32
    assert_close(ours, ref, rtol=1e-5)


def test_small_blocks_give_the_same_result(monkeypatch, conf):
    x = _signals(23)
    kwargs = dict(low_pass=0.1, high_pass=0.02, t_r=T_R, confounds=conf, standardize="psc",
                  sample_mask=SAFE_KEEP, runs=np.repeat([0, 1], [50, N - 50]))  # fmt: skip
    whole = _ours(x, **kwargs)
    monkeypatch.setattr(core_signal, "_BLOCK_BYTES", 8 * N * 4)  # 4 columns per block
    assert_close(_ours(x, **kwargs), whole, rtol=1e-12)  # BLAS kernels differ by width


def test_zscore_ddof0_and_bool_standardize(x64):
    sample = _nilearn(x64, standardize="zscore_sample")
    assert_close(_ours(x64, standardize="zscore"), sample * np.sqrt(N / (N - 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # True/False are accepted silently
        np.testing.assert_array_equal(clean(x64, standardize=True), clean(x64))
        np.testing.assert_array_equal(
            clean(x64, standardize=False), clean(x64, standardize=None)
        )


def test_nyquist_clamp_warns():
    with pytest.warns(UserWarning, match="Nyquist"):
        clean(_signals(3), low_pass=0.3, t_r=T_R)


def test_ensure_finite_matches_nilearn():
    x = _signals(13)
    x[[3, 50], [2, 7]] = [np.nan, np.inf]
    assert_close(_ours(x, ensure_finite=True), _nilearn(x, ensure_finite=True))
    assert np.isnan(x[3, 2])  # the caller's array is untouched


def test_cosine_already_in_confounds(conf):
    x = _signals(13)
    drift = np.sqrt(2 / N) * np.cos(np.pi / N * (np.arange(N) + 0.5))
    user = np.column_stack([conf, drift + 1e-3 * conf[:, 0]])
    kwargs = dict(filter="cosine", high_pass=0.01, t_r=T_R, confounds=user)
    with pytest.warns(UserWarning, match="Cosine filter"):
        ours = clean(x, **kwargs)
    assert_close(ours, _nilearn(x, **kwargs))


# ---------------------------------------------------------------------------------- runs
RUNS = np.repeat([3, 1], [50, N - 50])  # unsorted labels: run 3 comes first


def test_runs_match_nilearn_per_run_with_all_options(conf):
    """B5: every option reaches each run, and rows keep the input order."""
    x = _signals(17)
    kwargs = dict(low_pass=0.1, high_pass=0.02, t_r=T_R, standardize_confounds=False,
                  butterworth_order=3, butterworth_padtype="even", ensure_finite=True)  # fmt: skip
    ours = _ours(x, runs=RUNS, confounds=conf, **kwargs)
    for label in (3, 1):
        rows = RUNS == label
        assert_close(ours[rows], _nilearn(x[rows], confounds=conf[rows], **kwargs))
    # nilearn drops the options in its per-run calls and stacks run 1 before run 3
    theirs = _nilearn(x, runs=RUNS, confounds=conf, **kwargs)
    assert not np.allclose(theirs[: N - 50], ours[50:], atol=1e-3)


def test_runs_interleaved_keep_input_order(conf):
    x = _signals(7)
    runs = np.arange(N) % 2
    ours = _ours(x, runs=runs, confounds=conf, low_pass=0.1, t_r=T_R)
    for label in (0, 1):
        rows = runs == label
        assert_close(
            ours[rows], _nilearn(x[rows], confounds=conf[rows], low_pass=0.1, t_r=T_R)
        )


def test_runs_sample_mask_global_or_per_run(conf):
    x = _signals(11)
    keep = np.setdiff1d(np.arange(N), [0, 1, 30, 31, 60, 61, 96])
    local = [np.flatnonzero(np.isin(np.flatnonzero(RUNS == lab), keep)) for lab in (1, 3)]
    kwargs = dict(runs=RUNS, confounds=conf, high_pass=0.02, t_r=T_R, extrapolate=True)
    glob = _ours(x, sample_mask=keep, **kwargs)
    np.testing.assert_array_equal(_ours(x, sample_mask=local, **kwargs), glob)
    assert glob.shape == (keep.size, 11)
    first = RUNS[keep] == 3
    rows = np.flatnonzero(RUNS == 3)
    ref = _nilearn(x[rows], confounds=conf[rows], sample_mask=local[1],
                   high_pass=0.02, t_r=T_R, extrapolate=True)  # fmt: skip
    assert_close(glob[first], ref)


def test_runs_length_mismatch():
    with pytest.raises(ValueError, match="runs must hold one label per volume"):
        clean(_signals(3), runs=np.zeros(N - 1))


# ---------------------------------------------------------------------------------- B1
def test_b1_first_and_last_censored_not_shifted():
    """nilearn returns volumes 0..57 when asked to keep 1..58; we return 1..58."""
    n = 60
    x = _signals(5, n=n)
    keep = np.arange(1, n - 1)
    opts = dict(low_pass=0.45, t_r=1.0, detrend=False, standardize=None)
    theirs = _nilearn(x, sample_mask=keep, **opts)
    np.testing.assert_allclose(theirs, _nilearn(x, **opts)[:-2], atol=1e-8)  # shifted
    assert_close(_ours(x, sample_mask=keep, **opts), _nilearn(x[1:-1], **opts))
    full = dict(low_pass=0.45, t_r=1.0)  # with detrend and zscore too
    assert_close(_ours(x, sample_mask=keep, **full), _nilearn(x[1:-1], **full))


def test_b1_censored_volumes_are_interpolated():
    """Censoring a mirror pair (15, 24 of 40): nilearn leaves the raw values in place."""
    n = 40
    x = _signals(6, n=n)
    x[[15, 24]] += 50  # motion spikes, censored
    keep = np.setdiff1d(np.arange(n), [15, 24])
    opts = dict(low_pass=0.1, t_r=T_R, standardize=None)
    filled = x.copy()
    filled[[15, 24]] = CubicSpline(keep, x[keep])(np.array([15, 24]))
    expected = _nilearn(filled, **opts)[keep]
    assert_close(_ours(x, sample_mask=keep, **opts), expected)
    theirs = _nilearn(x, sample_mask=keep, **opts)
    assert np.abs(theirs - expected).max() > 1.0  # the spikes leaked into the filter


# ---------------------------------------------------------------------------------- B2
def test_b2_integer_input_gives_float(rng):
    x = np.round(_signals(9) * 10).astype(np.int16)
    confounds = rng.standard_normal((N, 2))
    ours = clean(x, confounds=confounds)
    assert ours.dtype == np.float32
    assert_close(ours, _nilearn(x.astype(np.float64), confounds=confounds), rtol=1e-5)
    # nilearn's maskers cast the cleaned output back to the input's integer dtype
    from nilearn.maskers import NiftiMasker

    data = np.round(rng.standard_normal((7, 8, 9, 12)) * 100 + 1000).astype(np.int16)
    img = nib.Nifti1Image(data, np.diag([2.0, 3.0, 2.5, 1.0]))
    mask = nib.Nifti1Image(np.ones((7, 8, 9), np.int8), img.affine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masker = NiftiMasker(mask, standardize="zscore_sample", dtype="auto", reports=False)
        theirs = masker.fit_transform(img)
    assert theirs.dtype.kind == "i"
    ours = clean(data.reshape(-1, 12).T, detrend=False)
    assert ours.dtype == np.float32 and np.allclose(ours.std(axis=0, ddof=1), 1, atol=1e-5)


def test_dtypes_and_copy():
    x32 = _signals(5, dtype=np.float32)
    before = x32.copy()
    assert clean(x32).dtype == np.float32
    np.testing.assert_array_equal(x32, before)
    assert clean(x32.astype(np.float64)).dtype == np.float64
    assert clean(x32.astype(np.float16)).dtype == np.float32
    expected = clean(x32, sample_mask=np.arange(2, N))
    inplace = clean(x32, sample_mask=np.arange(2, N), copy=False)
    assert np.shares_memory(inplace, x32)
    np.testing.assert_array_equal(inplace, expected)


def test_1d_signal():
    x = _signals(1)
    out = clean(x[:, 0], low_pass=0.1, t_r=T_R)
    assert out.shape == (N,)
    np.testing.assert_array_equal(out, clean(x, low_pass=0.1, t_r=T_R)[:, 0])


# ---------------------------------------------------------------------- NaN in confounds
def test_leading_nan_confounds_filled_with_warning(conf):
    x = _signals(7)
    bad = conf.copy()
    bad[0, [1, 3]] = np.nan
    with pytest.raises(ValueError, match="infs or NaNs"):
        _nilearn(x, confounds=bad)
    with pytest.warns(UserWarning, match=r"columns \[1, 3\] start with NaN in rows \[0\]"):
        ours = clean(x, confounds=bad)
    filled = bad.copy()
    filled[0, [1, 3]] = bad[1, [1, 3]]
    assert_close(ours, _nilearn(x, confounds=filled))


def test_leading_nan_per_run(conf):
    bad = conf.copy()
    bad[[0, 50], 2] = np.nan  # the first row of each run
    with pytest.warns(UserWarning) as record:
        clean(_signals(3), confounds=bad, runs=RUNS)
    messages = {str(w.message)[:40] for w in record}
    assert messages == {"confounds columns [2] start with NaN in rows [0]"[:40],
                        "confounds columns [2] start with NaN in rows [50]"[:40]}  # fmt: skip


@pytest.mark.parametrize("filt", [{}, dict(low_pass=0.1, t_r=T_R)], ids=["none", "butter"])
def test_nan_in_censored_rows_ignored(conf, filt):
    x = _signals(7)
    bad = conf.copy()
    bad[[5, 21], 0] = np.nan
    bad[40, 2] = np.inf
    finite = np.where(np.isfinite(bad), bad, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = clean(x, confounds=bad, sample_mask=SAFE_KEEP, **filt)
    assert_close(ours, _nilearn(x, confounds=finite, sample_mask=SAFE_KEEP, **filt))


def test_other_nonfinite_confounds_raise(conf):
    bad = conf.copy()
    bad[10, 2] = np.nan
    bad[0, 0] = np.inf  # not NaN: not filled
    with pytest.raises(ValueError, match=r"columns \[0, 2\].*rows \[0, 10\]"):
        clean(_signals(3), confounds=bad)


# -------------------------------------------------------------------------- hand-computed
def test_hand_computed():
    ramp = np.arange(N, dtype=np.float64)[:, None] * [1.0, -3.0] + [5.0, 100.0]
    np.testing.assert_allclose(clean(ramp, standardize=None), 0, atol=1e-12)
    z = clean(_signals(4), detrend=False)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0, ddof=1), 1, rtol=1e-12)
    # psc without detrend: (x - mean) / |mean| * 100
    step = np.array([[90.0], [110.0], [90.0], [110.0]])
    np.testing.assert_allclose(
        clean(step, detrend=False, standardize="psc", t_r=None), [[-10.0], [10], [-10], [10]]
    )
    # regressing out a confound equal to a column's fluctuation leaves zeros in it
    x = _signals(2)
    out = clean(x, detrend=False, standardize=None, confounds=x[:, 0] - x[:, 0].mean())
    np.testing.assert_allclose(out[:, 0], x[:, 0].mean(), rtol=1e-12)


def test_unsorted_sample_mask_is_sorted():
    x = _signals(3)
    keep = np.array([50, 3, 7, 20, 96, 60])
    sorted_ = clean(x, sample_mask=np.sort(keep), detrend=False)
    np.testing.assert_array_equal(clean(x, sample_mask=keep, detrend=False), sorted_)


# --------------------------------------------------------------------------------- errors
ERRORS = [
    (dict(confounds=np.zeros((N - 1, 2))), ValueError, "confounds has 96 rows"),
    (dict(confounds="conf.tsv"), TypeError, "load the file first"),
    (dict(low_pass=0.1, t_r=None), ValueError, "needs the repetition time t_r"),
    (dict(low_pass=0.05, high_pass=0.1), ValueError, "high_pass .* must be lower than low_pass"),
    (dict(low_pass=0.3, high_pass=0.25, t_r=T_R), ValueError, "Nyquist"),
    (dict(standardize="zscore_population"), ValueError, r"Accepted: \['zscore_sample'"),
    (dict(filter="fir"), ValueError, "Unknown filter 'fir'. Accepted"),
    (dict(high_pass=-0.01), ValueError, "high_pass must be a positive frequency"),
    (dict(t_r=0), ValueError, "t_r must be a positive number"),
    (dict(filter="cosine", low_pass=0.1), ValueError, "needs t_r and high_pass"),
    (dict(sample_mask=[]), AllVolumesRemovedError, "sample_mask is empty"),
    (dict(sample_mask=np.zeros(N, bool)), ValueError, "sample_mask is empty"),
    (dict(sample_mask=[0, 5, N]), ValueError, r"sample_mask has indices out of range \[97\]"),
    (dict(sample_mask=[0, 5, 5]), ValueError, r"duplicated indices \[5\]"),
    (dict(sample_mask=np.ones(N - 1, bool)), ValueError, "boolean array of length 96"),
    (dict(sample_mask=[np.arange(3), np.arange(4)]), ValueError, "one per run"),
    (dict(low_pass=0.1, butterworth_padlen=N), ValueError, "butterworth_padlen"),
    (dict(butterworth_padtype="zero"), ValueError, "Unknown butterworth_padtype"),
    (dict(t_r="2"), TypeError, "t_r must be a number of seconds"),
    (dict(sample_mask=np.array([1.0, 2.0])), TypeError, "integer indices or booleans"),
    (dict(sample_mask=[5], low_pass=0.1, extrapolate=True), ValueError, "at least 2 kept"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "match"), ERRORS)
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        clean(_signals(3), **kwargs)


def test_large_jobs_filter_with_scipy_and_give_the_same_bits(monkeypatch, conf):
    """Above _SCIPY_FILTER_WORK the recursive filter is scipy's; the port gives equal bits."""
    x = _signals(23)
    kwargs = dict(low_pass=0.1, high_pass=0.02, t_r=T_R, confounds=conf,
                  standardize="zscore_sample", sample_mask=SAFE_KEEP)  # fmt: skip
    flags = []
    make_plan = core_signal._make_plan

    def spy(*args, **kw):
        plan = make_plan(*args, **kw)
        flags.append(plan.scipy_filter)
        return plan

    monkeypatch.setattr(core_signal, "_make_plan", spy)
    ported = _ours(x, **kwargs)
    monkeypatch.setattr(core_signal, "_SCIPY_FILTER_WORK", 0)
    with_scipy = _ours(x, **kwargs)
    assert flags == [False, True]
    assert np.array_equal(ported, with_scipy)
    assert_close(with_scipy, _nilearn(x, **kwargs))
