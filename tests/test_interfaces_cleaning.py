"""LoadConfounds, CleanSignals and CleanImage as Nipype interfaces, against nilearn 0.14.1.

References and tolerances:

- LoadConfounds vs ``nilearn.interfaces.fmriprep.load_confounds`` /
  ``load_confounds_strategy`` on nilearn's bundled fMRIPrep files (copied next to fake BOLD
  names): same columns in the same order, values ``rtol=1e-12`` after reading our TSV back
  with pandas, same ``sample_mask`` (every volume when nilearn returns None).
- CleanSignals vs ``nilearn.signal.clean`` with the same options: float64, ``rtol=1e-8``.
- CleanImage vs ``NiftiMasker(mask_img, ...).fit_transform`` then ``inverse_transform``
  (float32): ``rtol=1e-5``, ``atol=1e-5 * max|reference|``.
"""

from __future__ import annotations

import shutil
import tracemalloc
import warnings
from pathlib import Path

import nibabel as nib
import nilearn
import numpy as np
import pandas as pd
import pytest
from nilearn import signal as nl_signal
from nilearn.interfaces.fmriprep import load_confounds as nl_load_confounds
from nilearn.interfaces.fmriprep import load_confounds_strategy as nl_load_confounds_strategy
from nilearn.maskers import NiftiMasker as NilearnMasker
from nipype.pipeline import engine as pe
from synthetic import oblique_affine

from nipype_maskers.core.voxels import cleaning as image_cleaning
from nipype_maskers.interfaces.base import read_sample_mask
from nipype_maskers.interfaces.cleaning import CleanImage, CleanSignals, LoadConfounds

FMRIPREP_DATA = Path(nilearn.__file__).parent / "interfaces" / "fmriprep" / "data"
SUB = "sub-01_task-rest"
BOLD = f"{SUB}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
AROMA = f"{SUB}_space-MNI152NLin6Asym_desc-smoothAROMAnonaggr_bold.nii.gz"
DATASETS = {  # name -> (tsv, json, suffix of the copy)
    "v21": ("test-v21_desc-confounds_timeseries.tsv", "test-v21_desc-confounds_timeseries.json",
            "timeseries"),
    "v14": ("test_desc-confounds_regressors.tsv", "test_desc-confounds_regressors.json",
            "regressors"),
}  # fmt: skip
SHAPE = (9, 10, 11)


def _bold_data(n_volumes, seed=0):
    """A float32 4D array with structure, noise, a drift and an oscillation per voxel."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_volumes)
    base = rng.uniform(300, 900, SHAPE)[..., None]
    drift = rng.normal(0, 0.5, SHAPE)[..., None] * t
    wave = rng.normal(0, 5, SHAPE)[..., None] * np.sin(2 * np.pi * 0.05 * 2.0 * t)
    data = base + drift + wave + rng.normal(0, 10, (*SHAPE, n_volumes))
    return np.asfortranarray(data.astype(np.float32))


def _save_bold(path, n_volumes, *, t_r=2.0, seed=0):
    img = nib.Nifti1Image(_bold_data(n_volumes, seed), oblique_affine())
    if t_r is not None:
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = t_r
    nib.save(img, path)
    return path


def _save_mask(path):
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij")
    mask = (grid[0] ** 2 + grid[1] ** 2 / 0.8 + grid[2] ** 2 / 0.9) < 0.8
    nib.save(nib.Nifti1Image(mask.astype(np.int8), oblique_affine()), path)
    return path


def _write_tsv(path, array, columns=None):
    frame = pd.DataFrame(array, columns=columns)
    frame.to_csv(path, sep="\t", index=False, header=columns is not None, na_rep="n/a",
                 float_format="%.17g")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def derivs(tmp_path_factory):
    """fMRIPrep-like folders: confounds TSV + JSON, a 30-volume BOLD (real), an AROMA name."""
    out = {}
    for name, (tsv, sidecar, suffix) in DATASETS.items():
        folder = tmp_path_factory.mktemp(name)
        conf = folder / f"{SUB}_desc-confounds_{suffix}.tsv"
        shutil.copy(FMRIPREP_DATA / tsv, conf)
        shutil.copy(FMRIPREP_DATA / sidecar, conf.with_suffix(".json"))
        bold = _save_bold(folder / BOLD, 30)
        (folder / AROMA).touch()
        out[name] = {"bold": str(bold), "aroma": str(folder / AROMA), "tsv": str(conf)}
    folder = tmp_path_factory.mktemp("tedana")
    shutil.copy(FMRIPREP_DATA / "test_desc-ICA_mixing.tsv", folder / f"{SUB}_desc-ICA_mixing.tsv")
    shutil.copy(FMRIPREP_DATA / "test_desc-tedana_metrics.tsv",
                folder / f"{SUB}_desc-tedana_metrics.tsv")  # fmt: skip
    optcom = folder / f"{SUB}_space-MNI152NLin2009cAsym_desc-optcom_bold.nii.gz"
    optcom.touch()
    out["tedana"] = {"bold": str(optcom)}
    return out


@pytest.fixture
def work(tmp_path):
    path = tmp_path / "work"
    path.mkdir()
    return path


def _quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def _assert_like_nilearn(outputs, reference, n_volumes=30):
    frame, mask = reference
    if frame is None or frame.shape[1] == 0:
        assert not outputs.columns
    else:
        ours = pd.read_csv(outputs.out_file, sep="\t")
        assert list(ours.columns) == list(frame.columns) == outputs.columns
        assert ours.shape == frame.shape
        np.testing.assert_allclose(ours.to_numpy(), frame.to_numpy(dtype=float), rtol=1e-12)
    expected = np.arange(n_volumes) if mask is None else mask
    np.testing.assert_array_equal(outputs.sample_mask, expected)
    assert read_sample_mask(outputs.sample_mask_file) == outputs.sample_mask


# --------------------------------------------------------------------------------------------
# LoadConfounds
# --------------------------------------------------------------------------------------------
STRATEGY_CASES = [
    ("v21", {}),
    ("v14", {"strategy": ["motion", "wm_csf", "global_signal", "high_pass"],
             "motion": "derivatives", "global_signal": "full", "demean": False}),
    ("v14", {"strategy": ["high_pass", "motion", "scrub"], "scrub": 0, "fd_threshold": 0.15,
             "std_dvars_threshold": 1.2}),
    ("v21", {"strategy": ["high_pass", "motion", "compcor"], "compcor": "temporal_anat_separated",
             "n_compcor": 2}),
]  # fmt: skip


@pytest.mark.parametrize(("dataset", "kwargs"), STRATEGY_CASES)
def test_load_confounds_from_bold_matches_nilearn(derivs, work, dataset, kwargs):
    d = derivs[dataset]
    result = LoadConfounds(in_file=d["bold"], **kwargs).run(cwd=str(work))
    _assert_like_nilearn(result.outputs, _quiet(nl_load_confounds, d["bold"], **kwargs))
    # named after the confounds file (v14: *_regressors.tsv), with BIDS' current suffix
    assert Path(result.outputs.out_file).name == f"{SUB}_desc-selected_timeseries.tsv"
    assert Path(result.outputs.sample_mask_file).name == f"{SUB}_desc-selected_samplemask.tsv"


PRESET_CASES = [
    ("v21", "simple", {}),
    ("v14", "scrubbing", {"wm_csf": "basic", "fd_threshold": 0.15, "std_dvars_threshold": 1.2}),
    ("v21", "compcor", {"n_compcor": 3, "global_signal": "basic"}),
    ("v14", "ica_aroma", {}),
]


@pytest.mark.parametrize(("dataset", "preset", "kwargs"), PRESET_CASES)
def test_load_confounds_preset_matches_nilearn(derivs, work, dataset, preset, kwargs):
    """A keyword set to load_confounds' own default (wm_csf='basic') still overrides the
    'scrubbing' preset's 'full': only the keywords the user set are passed."""
    d = derivs[dataset]
    img = d["aroma"] if preset == "ica_aroma" else d["bold"]
    reference = _quiet(nl_load_confounds_strategy, img, preset, **kwargs)
    by_file = LoadConfounds(confounds_file=d["tsv"], denoise_strategy=preset, **kwargs)
    _assert_like_nilearn(by_file.run(cwd=str(work)).outputs, reference)
    by_bold = LoadConfounds(in_file=img, denoise_strategy=preset, **kwargs).run(cwd=str(work))
    _assert_like_nilearn(by_bold.outputs, reference)
    if preset == "scrubbing":
        assert "white_matter" in by_bold.outputs.columns
        assert "white_matter_power2" not in by_bold.outputs.columns


def test_load_confounds_tedana(derivs, work):
    bold = derivs["tedana"]["bold"]
    result = LoadConfounds(in_file=bold, strategy=["tedana"], tedana="non-aggressive").run(
        cwd=str(work))
    reference = _quiet(nl_load_confounds, bold, strategy=("tedana",), tedana="non-aggressive")
    _assert_like_nilearn(result.outputs, reference)


def test_load_confounds_scrub_only_gives_a_sample_mask_and_no_table(derivs, work):
    d = derivs["v14"]
    result = LoadConfounds(confounds_file=d["tsv"], strategy=["scrub"], fd_threshold=0.15,
                           std_dvars_threshold=1.2).run(cwd=str(work))  # fmt: skip
    _, reference = _quiet(nl_load_confounds, d["bold"], strategy=("scrub",), fd_threshold=0.15,
                          std_dvars_threshold=1.2)  # fmt: skip
    assert result.outputs.columns == []
    assert not isinstance(result.outputs.out_file, str)  # Undefined
    assert 0 < len(reference) < 30
    np.testing.assert_array_equal(result.outputs.sample_mask, reference)


def _assert_fails_cleanly(interface, work, error, match):
    with pytest.raises(error, match=match):
        interface.run(cwd=str(work))
    assert not list(work.iterdir())


def test_load_confounds_errors(derivs, work, tmp_path):
    d = derivs["v21"]
    _assert_fails_cleanly(LoadConfounds(in_file=d["bold"], confounds_file=d["tsv"]), work,
                          ValueError, "in_file and confounds_file: give exactly one of them, "
                          "got both")  # fmt: skip
    _assert_fails_cleanly(LoadConfounds(), work, ValueError, "got neither")
    _assert_fails_cleanly(LoadConfounds(in_file=d["bold"], strategy=["motion"],
                                        denoise_strategy="simple"), work, ValueError,
                          "strategy and denoise_strategy: give one or the other")  # fmt: skip
    # no confounds file next to the BOLD file
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / BOLD).touch()
    _assert_fails_cleanly(LoadConfounds(in_file=str(lonely / BOLD)), work, FileNotFoundError,
                          "no fMRIPrep confounds file found")  # fmt: skip
    # two candidates: ambiguous
    twice = tmp_path / "twice"
    twice.mkdir()
    (twice / BOLD).touch()
    for suffix in ("timeseries", "regressors"):
        shutil.copy(d["tsv"], twice / f"{SUB}_desc-confounds_{suffix}.tsv")
    _assert_fails_cleanly(LoadConfounds(in_file=str(twice / BOLD)), work, ValueError,
                          "found 2 confounds files")  # fmt: skip
    # a BOLD name nilearn refuses for the strategy
    _assert_fails_cleanly(LoadConfounds(in_file=d["bold"], denoise_strategy="ica_aroma"), work,
                          ValueError, "smoothAROMAnonaggr")  # fmt: skip
    # the strategy needs columns the file lacks (the list of missing columns is given)
    partial = tmp_path / f"{SUB}_desc-confounds_timeseries.tsv"
    _write_tsv(partial, np.ones((30, 3)), ["trans_x", "rot_x", "csf"])
    _assert_fails_cleanly(LoadConfounds(confounds_file=str(partial), strategy=["motion"]),
                          work, ValueError, r"missing columns \[.*'trans_y'.*'rot_z'")  # fmt: skip


# --------------------------------------------------------------------------------------------
# CleanSignals
# --------------------------------------------------------------------------------------------
@pytest.fixture
def tables(tmp_path, rng):
    """80 volumes x 5 signals (TSV with a header and .npy) and a 4-column confounds TSV."""
    n = 80
    t = np.arange(n)
    confounds = rng.normal(size=(n, 4)) + np.linspace(0, 3, n)[:, None]
    signals = (rng.normal(size=(n, 5)) * [1, 2, 3, 4, 5] + 100
               + confounds[:, :2] @ rng.normal(size=(2, 5)) + 0.1 * t[:, None])  # fmt: skip
    names = [f"region_{i}" for i in range(5)]
    npy = tmp_path / f"{SUB}_signals.npy"
    np.save(npy, signals)
    return {
        "signals": signals, "names": names, "confounds": confounds, "npy": str(npy),
        "tsv": str(_write_tsv(tmp_path / f"{SUB}_atlas-X_timeseries.tsv", signals, names)),
        "conf": str(_write_tsv(tmp_path / "conf.tsv", confounds, ["a", "b", "c", "d"])),
    }  # fmt: skip


def test_clean_signals_tsv_matches_nilearn(tables, work):
    options = dict(detrend=True, standardize="zscore_sample", low_pass=0.1, high_pass=0.01,
                   t_r=2.0)  # fmt: skip
    result = CleanSignals(in_file=tables["tsv"], confounds_file=[tables["conf"]],
                          confounds_columns=["b", "d"], **options).run(cwd=str(work))
    assert Path(result.outputs.out_file).name == f"{SUB}_atlas-X_desc-clean_timeseries.tsv"
    ours = pd.read_csv(result.outputs.out_file, sep="\t")
    reference = nl_signal.clean(tables["signals"], confounds=tables["confounds"][:, [1, 3]],
                                **options)  # fmt: skip
    assert list(ours.columns) == tables["names"]
    np.testing.assert_allclose(ours.to_numpy(), reference, rtol=1e-8, atol=1e-10)


def test_clean_signals_npy_with_sample_mask_file_matches_nilearn(tables, work, tmp_path):
    keep = np.setdiff1d(np.arange(80), [0, 1, 17, 18, 40, 79])
    mask_file = tmp_path / "mask.tsv"
    mask_file.write_text("sample_mask\n" + "\n".join(map(str, keep)) + "\n")
    options = dict(detrend=True, standardize="psc")
    result = CleanSignals(in_file=tables["npy"], confounds_file=[tables["conf"]],
                          sample_mask_file=str(mask_file), **options).run(cwd=str(work))
    assert Path(result.outputs.out_file).name == f"{SUB}_desc-clean_signals.npy"
    ours = np.load(result.outputs.out_file)
    reference = nl_signal.clean(tables["signals"], confounds=tables["confounds"],
                                sample_mask=keep, **options)  # fmt: skip
    assert ours.dtype == np.float64 and ours.shape == (keep.size, 5)
    np.testing.assert_allclose(ours, reference, rtol=1e-8)


def test_clean_signals_without_steps_copies_the_input(tables, work, tmp_path):
    with_nan = tables["signals"].copy()
    with_nan[3, 2] = np.nan
    tsv = _write_tsv(tmp_path / "nan.tsv", with_nan, tables["names"])
    out = CleanSignals(in_file=str(tsv)).run(cwd=str(work)).outputs.out_file
    assert Path(out).read_bytes() == tsv.read_bytes()
    npy = tmp_path / "f32.npy"
    np.save(npy, tables["signals"].astype(np.float32))
    copy = np.load(CleanSignals(in_file=str(npy)).run(cwd=str(work)).outputs.out_file)
    assert copy.dtype == np.float32
    np.testing.assert_array_equal(copy, tables["signals"].astype(np.float32))


def test_clean_signals_reads_a_labels_masker_tsv_with_numeric_names(tmp_path, work):
    """Without a LUT a labels masker names its columns by label value (24, 27, 32). CleanSignals
    took that header row for data: no header out and one extra row of wrong numbers."""
    from nilearn.maskers import NiftiLabelsMasker as NilearnLabelsMasker

    from nipype_maskers.core.io.tables import read_table
    from nipype_maskers.interfaces.regions import NiftiLabelsMasker

    bold = _save_bold(tmp_path / BOLD, 24)
    atlas = np.zeros(SHAPE, np.int16)
    atlas[1:4, 2:8, 2:9], atlas[4:7, 2:8, 2:9], atlas[7:9, 1:9, 1:10] = 24, 27, 32
    atlas_file = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(atlas, oblique_affine()), atlas_file)
    masker = NiftiLabelsMasker(in_file=str(bold), labels_file=str(atlas_file)).run(cwd=str(work))
    options = dict(detrend=True, standardize="zscore_sample", low_pass=0.1, t_r=2.0)
    result = CleanSignals(in_file=masker.outputs.out_file, **options).run(cwd=str(work))

    ours = read_table(result.outputs.out_file, name="out_file", header=True, delimiter="\t")
    assert ours.columns == ["24", "27", "32"]
    assert ours.values.shape == (24, 3)
    assert list(pd.read_csv(result.outputs.out_file, sep="\t").columns) == ours.columns
    # the masker's values, read by pandas (header=0 whatever the names), cleaned by nilearn
    raw = pd.read_csv(masker.outputs.out_file, sep="\t").to_numpy(dtype=np.float64)
    expected = _quiet(NilearnLabelsMasker(labels_img=str(atlas_file)).fit_transform, str(bold))
    np.testing.assert_allclose(raw, expected, rtol=1e-6)  # float32 round-off
    reference = nl_signal.clean(raw, **options)
    np.testing.assert_allclose(ours.values, reference, rtol=1e-8, atol=1e-10)


def test_clean_signals_clamps_a_cutoff_above_nyquist_with_a_warning(tables, work):
    with pytest.warns(UserWarning, match="Nyquist"):
        result = CleanSignals(in_file=tables["tsv"], low_pass=0.3, t_r=2.0,
                              standardize=None).run(cwd=str(work))  # fmt: skip
    with pytest.warns(UserWarning):
        reference = nl_signal.clean(tables["signals"], low_pass=0.3, t_r=2.0, detrend=False,
                                    standardize=None)  # fmt: skip
    ours = pd.read_csv(result.outputs.out_file, sep="\t").to_numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-8)
    assert not np.allclose(ours, tables["signals"], rtol=1e-6)  # it did filter


def test_clean_signals_errors(tables, work, tmp_path):
    tsv, conf = tables["tsv"], tables["conf"]
    short = _write_tsv(tmp_path / "short.tsv", tables["confounds"][:79], list("abcd"))
    _assert_fails_cleanly(CleanSignals(in_file=tsv, confounds_file=[str(short)]), work,
                          ValueError, "confounds_file: the confounds have 79 rows but in_file "
                          "has 80 volumes")  # fmt: skip
    _assert_fails_cleanly(CleanSignals(in_file=tsv, confounds_file=[conf],
                                       confounds_columns=["a", "nope"]), work, ValueError,
                          r"\['nope'\] not found.*available columns: \['a', 'b', 'c', 'd'\]")
    _assert_fails_cleanly(CleanSignals(in_file=tsv, low_pass=0.1), work, ValueError,
                          "t_r: filtering .* needs the repetition time.*no header")
    _assert_fails_cleanly(CleanSignals(in_file=tsv, low_pass=0.05, high_pass=0.1, t_r=2.0),
                          work, ValueError, r"high_pass \(0.1 Hz\) must be lower than "
                          r"low_pass \(0.05 Hz\)")  # fmt: skip


@pytest.mark.parametrize(("mask", "match"), [
    ([0, 5, 80], r"sample_mask: indices \[80\] are out of range; in_file has 80 volumes, "
                 r"expected kept-volume indices in \[0, 79\]"),
    ([-1, 3], r"sample_mask: indices \[-1\] are out of range"),
    ([1, 2, 2, 3], r"sample_mask: indices \[2\] are repeated"),
    ([], "sample_mask: it is empty, so every one of the 80 volumes of in_file would be removed"),
])  # fmt: skip
def test_clean_signals_bad_sample_mask(tables, work, mask, match):
    _assert_fails_cleanly(CleanSignals(in_file=tables["npy"], sample_mask=mask), work,
                          ValueError, match)  # fmt: skip


def test_clean_signals_bad_sample_mask_file_is_named(tables, work, tmp_path):
    path = tmp_path / "sm.txt"
    path.write_text("sample_mask\n3\n99\n")
    _assert_fails_cleanly(CleanSignals(in_file=tables["npy"], sample_mask_file=str(path)),
                          work, ValueError, r"sample_mask_file: indices \[99\]")  # fmt: skip


# --------------------------------------------------------------------------------------------
# CleanImage
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image(tmp_path_factory):
    folder = tmp_path_factory.mktemp("image")
    return {"bold": str(_save_bold(folder / BOLD, 64)),
            "mask": str(_save_mask(folder / "mask.nii.gz")),
            "no_tr": str(_save_bold(folder / "no_tr_bold.nii.gz", 64, t_r=None))}


def _nilearn_clean_img(bold, mask, **options):
    masker = NilearnMasker(mask_img=mask, **options)
    signals = _quiet(masker.fit_transform, bold)
    return masker.inverse_transform(signals).get_fdata(dtype=np.float32), signals


def test_clean_image_matches_nilearn_with_t_r_from_header(image, work):
    options = dict(detrend=True, standardize="zscore_sample", low_pass=0.1, high_pass=0.01)
    result = CleanImage(in_file=image["bold"], mask_file=image["mask"], **options).run(
        cwd=str(work))
    assert result.outputs.t_r == 2.0 and result.outputs.t_r_source == "NIfTI header"
    assert Path(result.outputs.out_file).name == (
        f"{SUB}_space-MNI152NLin2009cAsym_desc-clean_bold.nii.gz")
    ours = nib.load(result.outputs.out_file)
    reference, _ = _nilearn_clean_img(image["bold"], image["mask"], t_r=2.0, **options)
    assert ours.get_data_dtype() == np.float32 and ours.shape == (*SHAPE, 64)
    data = ours.get_fdata(dtype=np.float32)
    np.testing.assert_allclose(data, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())
    mask = np.asanyarray(nib.load(image["mask"]).dataobj) != 0
    assert not data[~mask].any() and np.abs(data[mask]).min() > 0
    np.testing.assert_allclose(ours.affine, oblique_affine())
    assert ours.header.get_zooms()[3] == 2.0 and ours.header.get_xyzt_units()[1] == "sec"
    # the streamed file holds exactly what the in-memory core function returns
    dense = image_cleaning.clean_img(image["bold"], image["mask"],
                                     clean_args=_clean_args(t_r=2.0, **options))
    np.testing.assert_array_equal(data, dense.get_fdata(dtype=np.float32))


def _clean_args(**options):
    args = dict(detrend=False, standardize=None, standardize_confounds=True, low_pass=None,
                high_pass=None, filter="butterworth", butterworth_order=5, extrapolate=False,
                ensure_finite=False, t_r=None)  # fmt: skip
    args.update(options)
    return args


def test_clean_image_float64_with_given_t_r_and_censoring(image, work):
    """t_r given on a header without TR; sample_mask drops volumes; no filter (nilearn's B1
    would interpolate the wrong volumes)."""
    keep = np.setdiff1d(np.arange(64), [0, 1, 2, 30, 31])
    result = CleanImage(in_file=image["no_tr"], mask_file=image["mask"], t_r=1.5,
                        detrend=True, standardize="zscore_sample", sample_mask=keep.tolist(),
                        dtype="float64").run(cwd=str(work))  # fmt: skip
    assert result.outputs.t_r == 1.5 and result.outputs.t_r_source == "input t_r"
    ours = nib.load(result.outputs.out_file)
    assert ours.get_data_dtype() == np.float64 and ours.shape == (*SHAPE, keep.size)
    assert ours.header.get_zooms()[3] == 1.5
    masker = NilearnMasker(mask_img=image["mask"], detrend=True, standardize="zscore_sample",
                           t_r=1.5)  # fmt: skip
    signals = _quiet(masker.fit_transform, image["no_tr"], sample_mask=keep)
    reference = masker.inverse_transform(signals).get_fdata()
    np.testing.assert_allclose(ours.get_fdata(), reference, rtol=1e-5,
                               atol=1e-5 * np.abs(reference).max())  # fmt: skip


def test_clean_image_without_steps_is_the_masked_input(image, work):
    result = CleanImage(in_file=image["no_tr"], mask_file=image["mask"]).run(cwd=str(work))
    assert result.outputs.t_r_source == "none"
    mask = np.asanyarray(nib.load(image["mask"]).dataobj) != 0
    expected = nib.load(image["no_tr"]).get_fdata(dtype=np.float32) * mask[..., None]
    np.testing.assert_array_equal(nib.load(result.outputs.out_file).get_fdata(dtype=np.float32),
                                  expected)  # fmt: skip


def test_clean_image_errors(image, work, tmp_path):
    bold, mask = image["bold"], image["mask"]
    _assert_fails_cleanly(CleanImage(in_file=image["no_tr"], mask_file=mask, high_pass=0.01),
                          work, ValueError, "t_r: filtering .* none was given and in_file's "
                          "header has no usable TR")  # fmt: skip
    conf = _write_tsv(tmp_path / "conf.tsv", np.ones((60, 2)), ["a", "b"])
    _assert_fails_cleanly(CleanImage(in_file=bold, mask_file=mask, confounds_file=[str(conf)]),
                          work, ValueError, "confounds_file: the confounds have 60 rows but "
                          "in_file has 64 volumes")  # fmt: skip
    _assert_fails_cleanly(CleanImage(in_file=bold, mask_file=mask, sample_mask=[]), work,
                          ValueError, "sample_mask: it is empty")  # fmt: skip
    _assert_fails_cleanly(CleanImage(in_file=bold, mask_file=mask, low_pass=0.01,
                                     high_pass=0.01), work, ValueError,
                          "must be lower than low_pass")  # fmt: skip


def test_clean_image_streaming_saves_the_4d_array(tmp_path, work, rng):
    """The streamed write never holds the dense 4D output; the in-memory path does.

    A large grid with a small mask, so the 4D output dominates everything else.
    """
    shape = (36, 40, 32, 40)
    bold = tmp_path / "big_bold.nii"
    nib.save(nib.Nifti1Image(rng.normal(500, 10, shape).astype(np.float32), np.eye(4)), bold)
    mask = np.zeros(shape[:3], np.int8)
    mask[10:15, 10:15, 10:15] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "small_mask.nii")
    dense_bytes = int(np.prod(shape)) * 4
    args = dict(in_file=str(bold), mask_file=str(tmp_path / "small_mask.nii"), detrend=True)
    tracemalloc.start()
    try:
        result = CleanImage(**args).run(cwd=str(work))
        _, streamed = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        dense = image_cleaning.clean_img(bold, args["mask_file"],
                                         clean_args=_clean_args(detrend=True))
        _, in_memory = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert streamed < 0.25 * dense_bytes < dense_bytes < in_memory
    np.testing.assert_array_equal(nib.load(result.outputs.out_file).get_fdata(dtype=np.float32),
                                  dense.get_fdata(dtype=np.float32))


# --------------------------------------------------------------------------------------------
# As a Nipype workflow: LoadConfounds -> CleanImage
# --------------------------------------------------------------------------------------------
def test_workflow_load_confounds_then_clean_image(derivs, tmp_path):
    d = derivs["v21"]
    mask = str(_save_mask(tmp_path / "mask.nii.gz"))
    # motion='basic': 9 regressors for 27 kept volumes (the default 27 would leave nothing)
    load = pe.Node(LoadConfounds(in_file=d["bold"], motion="basic"), name="load_confounds")
    clean_node = pe.Node(CleanImage(in_file=d["bold"], mask_file=mask, detrend=True,
                                    standardize="zscore_sample"), name="clean_image")
    workflow = pe.Workflow(name="denoise", base_dir=str(tmp_path / "work"))
    workflow.connect([(load, clean_node, [("out_file", "confounds_file"),
                                          ("sample_mask", "sample_mask")])])
    workflow.run()
    out = tmp_path / "work" / "denoise" / "clean_image" / (
        f"{SUB}_space-MNI152NLin2009cAsym_desc-clean_bold.nii.gz")
    ours = nib.load(out)
    confounds, sample_mask = _quiet(nl_load_confounds, d["bold"], motion="basic")
    assert sample_mask is not None and ours.shape == (*SHAPE, sample_mask.size)
    masker = NilearnMasker(mask_img=mask, detrend=True, standardize="zscore_sample", t_r=2.0)
    signals = _quiet(masker.fit_transform, d["bold"], confounds=confounds,
                     sample_mask=sample_mask)  # fmt: skip
    reference = masker.inverse_transform(signals).get_fdata(dtype=np.float32)
    np.testing.assert_allclose(ours.get_fdata(dtype=np.float32), reference, rtol=1e-5,
                               atol=1e-5 * np.abs(reference).max())  # fmt: skip
