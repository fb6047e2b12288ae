"""Confound loading vs nilearn 0.14.1 on nilearn's bundled fMRIPrep confounds files.

Reference: ``nilearn.interfaces.fmriprep.load_confounds`` / ``load_confounds_strategy``
run on fake BOLD names next to copies of nilearn's test data (as nilearn's own tests
do). Columns must match exactly (same order), values with ``rtol=1e-12`` and
``sample_mask`` exactly. Tables are compared with ``pandas.read_csv``.
"""

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nilearn
import numpy as np
import pandas as pd
import pytest
from nilearn.interfaces.fmriprep import load_confounds as nl_load_confounds
from nilearn.interfaces.fmriprep import load_confounds_strategy as nl_load_confounds_strategy
from nilearn.interfaces.fmriprep.load_confounds_scrub import optimize_scrub
from nilearn.interfaces.fmriprep.load_confounds_utils import _get_file_name

from nipype_maskers.core.confounds.files import (
    NA_VALUES,
    MissingConfoundsError,
    check_bold_file,
    find_confounds_file,
    find_tedana_files,
    read_confounds_table,
)
from nipype_maskers.core.confounds.strategies import (
    _scrub_flags,
    load_confounds,
    load_confounds_strategy,
)

NILEARN = Path(nilearn.__file__).parent
FMRIPREP_DATA = NILEARN / "interfaces" / "fmriprep" / "data"
SPACE = "space-MNI152NLin2009cAsym"
MODELS = ["basic", "derivatives", "power2", "full"]
COMPCOR = ["anat_combined", "anat_separated", "temporal", "temporal_anat_combined",
           "temporal_anat_separated"]  # fmt: skip

# dataset -> (tsv in nilearn's data, json, suffix of the copy)
DATASETS = {
    "v14_regressors": ("test_desc-confounds_regressors.tsv",
                       "test_desc-confounds_regressors.json", "regressors"),
    "v21_timeseries": ("test-v21_desc-confounds_timeseries.tsv",
                       "test-v21_desc-confounds_timeseries.json", "timeseries"),
    "no_nss_regressors": ("no_nonsteady_desc-confounds_regressors.tsv",
                          "test_desc-confounds_regressors.json", "regressors"),
}  # fmt: skip
ALL = list(DATASETS)
WITH_AROMA = ["v14_regressors", "no_nss_regressors"]


@pytest.fixture(scope="module")
def derivs(tmp_path_factory):
    """One fMRIPrep-like folder per dataset: confounds TSV + JSON + empty BOLD names."""
    out = {}
    for name, (tsv, sidecar, suffix) in DATASETS.items():
        folder = tmp_path_factory.mktemp(name)
        sub = f"sub-{name.split('_')[0]}_task-test"
        conf = folder / f"{sub}_desc-confounds_{suffix}.tsv"
        shutil.copy(FMRIPREP_DATA / tsv, conf)
        shutil.copy(FMRIPREP_DATA / sidecar, conf.with_suffix(".json"))
        bold = folder / f"{sub}_{SPACE}_desc-preproc_bold.nii.gz"
        aroma = folder / f"{sub}_space-MNI152NLin6Asym_desc-smoothAROMAnonaggr_bold.nii.gz"
        bold.touch()
        aroma.touch()
        out[name] = {"bold": str(bold), "aroma": str(aroma), "tsv": conf}
    folder = tmp_path_factory.mktemp("tedana")
    shutil.copy(FMRIPREP_DATA / "test_desc-ICA_mixing.tsv",
                folder / "sub-01_task-test_desc-ICA_mixing.tsv")  # fmt: skip
    shutil.copy(FMRIPREP_DATA / "test_desc-tedana_metrics.tsv",
                folder / "sub-01_task-test_desc-tedana_metrics.tsv")  # fmt: skip
    optcom = folder / f"sub-01_task-test_{SPACE}_desc-optcom_bold.nii.gz"
    optcom.touch()
    out["tedana"] = {"bold": str(optcom), "folder": folder}
    return out


def _reference(img, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nl_load_confounds(img, **kwargs)


def _assert_same(ours, reference):
    df, mask = reference
    assert ours.columns == list(df.columns)
    assert ours.confounds.shape == (30, df.shape[1])
    assert ours.confounds.dtype == np.float64
    np.testing.assert_allclose(ours.confounds, df.to_numpy(dtype=float), rtol=1e-12)
    if mask is None:
        assert ours.sample_mask is None
    else:
        assert ours.sample_mask.dtype.kind == "i"
        np.testing.assert_array_equal(ours.sample_mask, mask)


def _compare(d, img="bold", **kwargs):
    ours = load_confounds(d["tsv"], **kwargs)
    _assert_same(ours, _reference(d[img], **kwargs))
    return ours


# --------------------------------------------------------------------------------------------
# load_confounds vs nilearn
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ALL)
@pytest.mark.parametrize("model", MODELS)
def test_expansions(derivs, dataset, model):
    """motion / wm_csf / global_signal expanded by each model."""
    ours = _compare(derivs[dataset], strategy=("motion", "wm_csf", "global_signal"),
                    motion=model, wm_csf=model, global_signal=model)  # fmt: skip
    factor = {"basic": 1, "derivatives": 2, "power2": 2, "full": 4}[model]
    assert len(ours.columns) == (6 + 2 + 1) * factor
    assert not np.isnan(ours.confounds).any()  # first-row NaN of derivatives filled


@pytest.mark.parametrize("dataset", ALL)
@pytest.mark.parametrize(
    "strategy",
    [("motion", "high_pass", "wm_csf"), ("high_pass",), ("high_pass", "motion", "global_signal",
     "wm_csf")],
)  # fmt: skip
def test_combinations(derivs, dataset, strategy):
    ours = _compare(derivs[dataset], strategy=strategy)
    if dataset != "no_nss_regressors":  # non-steady-state volumes always censored
        assert ours.sample_mask is not None and ours.sample_mask[0] > 0
    else:
        assert ours.sample_mask is None


@pytest.mark.parametrize("dataset", ALL)
def test_defaults(derivs, dataset):
    _compare(derivs[dataset])


def test_repeated_component(derivs):
    """nilearn repeats the columns of a component listed twice; we give them once."""
    d = derivs["v14_regressors"]
    df, mask = _reference(d["bold"], strategy=("wm_csf", "motion", "wm_csf"))
    ours = load_confounds(d["tsv"], strategy=("wm_csf", "motion", "wm_csf"))
    assert list(df.columns) == sorted(["csf", "white_matter", *ours.columns])
    _assert_same(ours, (df.loc[:, ~df.columns.duplicated()], mask))


@pytest.mark.parametrize("dataset", ["v14_regressors", "v21_timeseries"])
@pytest.mark.parametrize("compcor", COMPCOR)
@pytest.mark.parametrize("n_compcor", ["all", 2])
def test_compcor(derivs, dataset, compcor, n_compcor):
    ours = _compare(derivs[dataset], strategy=("high_pass", "compcor"), compcor=compcor,
                    n_compcor=n_compcor)  # fmt: skip
    assert any("comp_cor" in c for c in ours.columns)


@pytest.mark.parametrize("n_compcor", [1, 13, 60])
def test_compcor_sidecar_argument(derivs, n_compcor):
    """An explicit sidecar path or dict gives the default-sidecar result; n_compcor per mask."""
    d = derivs["v14_regressors"]  # 57 combined, 56 WM, 13 CSF, 6 temporal components
    kwargs = {"strategy": ("high_pass", "compcor"), "compcor": "temporal_anat_separated",
              "n_compcor": n_compcor}  # fmt: skip
    ref = _reference(d["bold"], **kwargs)
    sidecar = d["tsv"].with_suffix(".json")
    ours = load_confounds(d["tsv"], sidecar=sidecar, **kwargs)
    _assert_same(ours, ref)
    n = sum(min(n_compcor, k) for k in (56, 13, 6))
    assert sum("comp_cor" in c for c in ours.columns) == n
    _assert_same(load_confounds(d["tsv"], sidecar=json.loads(sidecar.read_text()), **kwargs), ref)


@pytest.mark.parametrize("dataset", WITH_AROMA)
def test_ica_aroma(derivs, dataset):
    d = derivs[dataset]
    ours = _compare(d, strategy=("ica_aroma",), ica_aroma="basic")
    assert all(c.startswith("aroma_motion_") for c in ours.columns) and len(ours.columns) == 13
    _compare(d, img="aroma", strategy=("high_pass", "wm_csf", "ica_aroma"), ica_aroma="full")
    ours = load_confounds(d["tsv"], strategy=("ica_aroma",))
    df, mask = _reference(d["aroma"], strategy=("ica_aroma",))
    assert ours.confounds.shape == (30, 0) and ours.columns == [] and df.shape[1] == 0
    assert (mask is None) == (ours.sample_mask is None)


@pytest.mark.parametrize(
    ("dataset", "fd", "dvars"),
    [("v14_regressors", 0.15, 1.2), ("v14_regressors", 0.18, 1.11),
     ("v14_regressors", 0.12, 1.09), ("no_nss_regressors", 0.15, 1.2),
     ("no_nss_regressors", 0.05, 10.0),
     ("v21_timeseries", 3.0, 3.0), ("v21_timeseries", 5.0, 4.5), ("v21_timeseries", 4.0, 9.0)],
)  # fmt: skip
@pytest.mark.parametrize("scrub", [0, 2, 5, 8])
def test_scrub(derivs, dataset, fd, dvars, scrub):
    strategy = ("motion", "high_pass", "wm_csf", "scrub")
    demean = scrub != 2
    kwargs = {"strategy": strategy, "scrub": scrub, "fd_threshold": fd,
              "std_dvars_threshold": dvars, "demean": demean}  # fmt: skip
    ref = _reference(derivs[dataset]["bold"], **kwargs)
    if ref[1] is not None and ref[1].size == 0:
        with pytest.raises(ValueError, match="every one of the 30 volumes is censored"):
            load_confounds(derivs[dataset]["tsv"], **kwargs)
    else:
        _assert_same(load_confounds(derivs[dataset]["tsv"], **kwargs), ref)


@pytest.mark.parametrize("dataset", ALL)
@pytest.mark.parametrize(
    "strategy", [("motion", "wm_csf", "global_signal"), ("high_pass", "compcor")]
)
def test_demean_off(derivs, dataset, strategy):
    ours = _compare(derivs[dataset], strategy=strategy, demean=False, motion="full",
                    wm_csf="full", global_signal="full")  # fmt: skip
    raw = read_confounds_table(derivs[dataset]["tsv"], columns=ours.columns)
    np.testing.assert_array_equal(ours.confounds[1:], raw.data[1:])  # untouched but row 0


def test_demean_large_values_without_censoring(tmp_path):
    """Without censoring nilearn demeans with sklearn's scale, which re-centres columns whose
    residual mean is not ~0 (here the ~1e8 power2 terms): same values."""
    df = pd.read_csv(FMRIPREP_DATA / DATASETS["v21_timeseries"][0], sep="\t")
    df = df.loc[:, ~df.columns.str.startswith("non_steady_state")]
    tsv = tmp_path / "sub-01_task-t_desc-confounds_timeseries.tsv"
    df.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    (tmp_path / f"sub-01_task-t_{SPACE}_desc-preproc_bold.nii.gz").touch()
    d = {"tsv": tsv, "bold": str(tmp_path / f"sub-01_task-t_{SPACE}_desc-preproc_bold.nii.gz")}
    kwargs = {"strategy": ("wm_csf", "global_signal"), "wm_csf": "full", "global_signal": "full"}
    ours = _compare(d, **kwargs)
    assert ours.sample_mask is None
    # the re-centring shifts values by ~1e-8 only, below rtol=1e-12: check it bit for bit
    # (same numpy pairwise sums on both sides)
    np.testing.assert_array_equal(ours.confounds, _reference(d["bold"], **kwargs)[0].to_numpy())


def test_scrub_flags_match_optimize_scrub():
    """The vectorised segment rule equals nilearn's optimize_scrub on random outlier sets."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 60))
        fd = rng.random(n) * rng.choice([0.3, 1.0, 3.0])
        scrub = int(rng.integers(0, 9))
        flags = _scrub_flags(fd, np.zeros(n), scrub, 0.5, 1.5)
        outliers = np.flatnonzero(fd > 0.5)
        if scrub > 0 and outliers.size:
            outliers = optimize_scrub(outliers, n, scrub)
        np.testing.assert_array_equal(np.flatnonzero(flags), outliers)


@pytest.mark.parametrize("tedana", ["aggressive", "non-aggressive"])
@pytest.mark.parametrize("demean", [True, False])
def test_tedana(derivs, tedana, demean):
    d = derivs["tedana"]
    ref = _reference(d["bold"], strategy=("tedana",), tedana=tedana, demean=demean)
    for where in (d["bold"], d["folder"] / "sub-01_task-test_desc-ICA_mixing.tsv"):
        ours = load_confounds(where, strategy=("tedana",), tedana=tedana, demean=demean)
        _assert_same(ours, ref)
    assert all(c.startswith(("rejected_ICA_", "accepted_ICA_")) for c in ours.columns)
    with pytest.warns(UserWarning, match="other components are ignored"):
        other = load_confounds(d["bold"], strategy=("tedana", "motion"), tedana=tedana,
                               demean=demean)  # fmt: skip
    _assert_same(other, ref)


# --------------------------------------------------------------------------------------------
# load_confounds_strategy vs nilearn
# --------------------------------------------------------------------------------------------
PRESET_CASES = [
    ("simple", {}), ("simple", {"motion": "basic", "wm_csf": "full", "global_signal": "full"}),
    ("simple", {"demean": False}),
    ("scrubbing", {}), ("scrubbing", {"fd_threshold": 0.15, "std_dvars_threshold": 1.2}),
    ("scrubbing", {"scrub": 0, "fd_threshold": 0.18, "std_dvars_threshold": 1.11,
                   "global_signal": "derivatives", "motion": "power2"}),
    ("compcor", {}), ("compcor", {"n_compcor": 2, "compcor": "temporal_anat_separated"}),
    ("compcor", {"global_signal": "basic", "motion": None}),
    ("ica_aroma", {}), ("ica_aroma", {"wm_csf": "power2", "global_signal": "basic"}),
]  # fmt: skip


@pytest.mark.parametrize("dataset", ALL)
@pytest.mark.parametrize(("preset", "kwargs"), PRESET_CASES)
def test_presets(derivs, dataset, preset, kwargs):
    d = derivs[dataset]
    img = d["aroma"] if preset == "ica_aroma" else d["bold"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = nl_load_confounds_strategy(img, preset, **kwargs)
    if ref[1] is not None and ref[1].size == 0:  # v21 scrubbing: nilearn returns all-NaN
        assert np.isnan(ref[0].to_numpy()).all()
        with pytest.raises(ValueError, match="censored"):
            load_confounds_strategy(d["tsv"], preset, **kwargs)
    else:
        _assert_same(load_confounds_strategy(d["tsv"], preset, **kwargs), ref)


def test_preset_ignores_unneeded_kwargs(derivs):
    """nilearn warns about (and ignores) keywords the preset does not take."""
    d = derivs["v14_regressors"]
    kwargs = {"scrub": 1, "ica_aroma": "basic", "fd_threshold": 0.01}
    with pytest.warns(UserWarning, match="not needed"):
        ref = nl_load_confounds_strategy(d["bold"], "simple", **kwargs)
    with pytest.warns(UserWarning, match=r"\['fd_threshold', 'ica_aroma', 'scrub'\].*accepted"):
        ours = load_confounds_strategy(d["tsv"], "simple", **kwargs)
    _assert_same(ours, ref)


def test_preset_unknown(derivs):
    with pytest.raises(ValueError, match=r"denoise_strategy='bad'.*'simple', 'scrubbing'"):
        load_confounds_strategy(derivs["v14_regressors"]["tsv"], "bad")


# --------------------------------------------------------------------------------------------
# File location
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bold_name",
    [f"sub-01_ses-2_task-rest_run-1_{SPACE}_desc-preproc_bold.nii.gz",
     f"sub-01_task-rest_{SPACE}_res-2_desc-preproc_bold.nii.gz",
     f"sub-01_task-rest_part-mag_{SPACE}_desc-preproc_bold.nii.gz",
     "sub-01_task-rest_desc-preproc_bold.nii.gz",
     "sub-01_task-rest_space-fsLR_den-91k_bold.dtseries.nii",
     "sub-01_task-rest_hemi-L_space-fsaverage5_bold.func.gii"],
)  # fmt: skip
@pytest.mark.parametrize("suffix", ["timeseries", "regressors"])
def test_find_confounds_file(tmp_path, bold_name, suffix):
    bold = tmp_path / bold_name
    bold.touch()
    stem = "_".join(p for p in bold_name.split("_")[:-1]
                    if p.split("-")[0] in ("sub", "ses", "task", "run", "part"))  # fmt: skip
    conf = tmp_path / f"{stem}_desc-confounds_{suffix}.tsv"
    conf.touch()
    assert find_confounds_file(bold) == (conf, None)
    assert str(conf) == _get_file_name(str(bold))
    conf.with_suffix(".json").touch()
    assert find_confounds_file(str(bold)) == (conf, conf.with_suffix(".json"))


def test_find_confounds_file_errors(tmp_path):
    bold = tmp_path / f"sub-01_task-rest_{SPACE}_desc-preproc_bold.nii.gz"
    bold.touch()
    with pytest.raises(FileNotFoundError, match=r"searched .*sub-01_task-rest_desc-confounds_"):
        find_confounds_file(bold)
    for suffix in ("timeseries", "regressors"):
        (tmp_path / f"sub-01_task-rest_desc-confounds_{suffix}.tsv").touch()
    with pytest.raises(ValueError, match="found 2 confounds files"):
        find_confounds_file(bold)
    with pytest.raises(ValueError, match="more than one"):  # nilearn agrees
        _get_file_name(str(bold))
    with pytest.raises(TypeError, match="bold_file must be a path"):
        find_confounds_file(3)


def test_find_tedana_files(derivs, tmp_path):
    d = derivs["tedana"]
    mixing, metrics = find_tedana_files(d["bold"])
    assert mixing.name == "sub-01_task-test_desc-ICA_mixing.tsv"
    assert metrics.name == "sub-01_task-test_desc-tedana_metrics.tsv"
    with pytest.raises(FileNotFoundError, match=r"no tedana '\*_mixing\.tsv' file"):
        find_tedana_files(tmp_path / "sub-01_task-test_desc-optcom_bold.nii.gz")
    with pytest.raises(FileNotFoundError, match="no tedana"):
        load_confounds(tmp_path / "sub-01_desc-optcom_bold.nii.gz", strategy=("tedana",))


def test_check_bold_file():
    check_bold_file(f"sub-01_{SPACE}_desc-preproc_bold.nii.gz")
    check_bold_file("sub-01_desc-smoothAROMAnonaggr_bold.nii.gz", ica_aroma_full=True)
    check_bold_file("sub-01_desc-optcom_bold.nii.gz", tedana=True, ica_aroma_full=True)
    check_bold_file(["s_hemi-L_bold.func.gii", "s_hemi-R_bold.func.gii"])
    with pytest.raises(ValueError, match="smoothAROMAnonaggr"):
        check_bold_file(f"sub-01_{SPACE}_desc-preproc_bold.nii.gz", ica_aroma_full=True)
    with pytest.raises(ValueError, match="optcom"):
        check_bold_file(f"sub-01_{SPACE}_desc-preproc_bold.nii.gz", tedana=True)
    with pytest.raises(ValueError, match="desc-preproc_bold"):
        check_bold_file("sub-01_desc-optcom_bold.nii.gz")
    with pytest.raises(ValueError, match="unsupported extension"):
        check_bold_file("sub-01_desc-preproc_bold.mgz")


# --------------------------------------------------------------------------------------------
# read_confounds_table vs pandas
# --------------------------------------------------------------------------------------------
def test_read_table_with_header():
    path = NILEARN / "datasets" / "data" / "confounds_with_header.csv"
    ref = pd.read_csv(path, sep="\t")
    table = read_confounds_table(path)
    assert table.columns == list(ref.columns)
    np.testing.assert_allclose(table.data, ref.to_numpy(dtype=float), rtol=1e-12)
    sub = read_confounds_table(path, columns=["wm", "csf"])
    assert sub.columns == ["wm", "csf"]
    np.testing.assert_allclose(sub.data, ref[["wm", "csf"]].to_numpy(), rtol=1e-12)


def test_read_table_without_header():
    path = NILEARN / "datasets" / "data" / "spm_confounds.txt"
    ref = pd.read_csv(path, sep=r"\s+", header=None)
    table = read_confounds_table(path)
    assert table.columns == [f"confound_{i}" for i in range(6)]
    assert table.data.shape == ref.shape == (20, 6)
    np.testing.assert_allclose(table.data, ref.to_numpy(dtype=float), rtol=1e-12)
    assert read_confounds_table(path, columns=["confound_4"]).data.shape == (20, 1)


@pytest.mark.parametrize("name", [v[0] for v in DATASETS.values()])
def test_read_table_fmriprep(name):
    """Real fMRIPrep files with 'n/a' cells read as pandas reads them."""
    ref = pd.read_csv(FMRIPREP_DATA / name, sep="\t")
    table = read_confounds_table(FMRIPREP_DATA / name)
    assert table.columns == list(ref.columns)
    np.testing.assert_allclose(table.data, ref.to_numpy(dtype=float), rtol=1e-12)
    assert np.isnan(table.data[0]).any()


def test_read_table_missing_values_and_delimiters(tmp_path):
    markers = sorted(NA_VALUES - {""})
    header = "\t".join(f"c{i}" for i in range(len(markers)))
    path = tmp_path / "na.tsv"
    path.write_text(f"{header}\n" + "\t".join(markers) + "\n" + "\t".join(["1.5"] * len(markers))
                    + "\n\n")  # fmt: skip
    ref = pd.read_csv(path, sep="\t")
    table = read_confounds_table(path)
    np.testing.assert_array_equal(table.data, ref.to_numpy(dtype=float))
    assert np.isnan(table.data[0]).all() and (table.data[1] == 1.5).all()
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("a,b,a\n1,,3\nn/a,5,6\n")
    ref = pd.read_csv(csv_path)
    table = read_confounds_table(csv_path)
    assert table.columns == list(ref.columns) == ["a", "b", "a.1"]
    np.testing.assert_array_equal(table.data, ref.to_numpy(dtype=float))
    no_header = tmp_path / "nh.txt"  # a leading 'n/a' does not make a header
    no_header.write_text("n/a 1\n2 3\n")
    table = read_confounds_table(no_header)
    assert table.columns == ["confound_0", "confound_1"] and table.data.shape == (2, 2)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
def test_error_unknown_strategy(derivs):
    tsv = derivs["v14_regressors"]["tsv"]
    with pytest.raises(ValueError, match=r"'motions' is not supported; accepted: \['motion'"):
        load_confounds(tsv, strategy=("motions",))
    with pytest.raises(TypeError, match="strategy must be a tuple or list"):
        load_confounds(tsv, strategy="motion")
    with pytest.raises(ValueError, match=r"motion='quadratic'.*accepted: \['basic'"):
        load_confounds(tsv, strategy=("motion",), motion="quadratic")
    with pytest.raises(ValueError, match="n_compcor must be 'all' or an integer"):
        load_confounds(tsv, strategy=("high_pass", "compcor"), n_compcor=0)
    with pytest.raises(ValueError, match=r"tedana='soft'.*accepted"):
        load_confounds(tsv, strategy=("tedana",), tedana="soft")


def test_error_missing_columns(derivs, tmp_path):
    d = derivs["v21_timeseries"]
    with pytest.raises(ValueError):  # nilearn agrees the file has no AROMA regressors
        _reference(d["bold"], strategy=("ica_aroma",), ica_aroma="basic")
    with pytest.raises(MissingConfoundsError, match=r"components \['ica_aroma'\]") as err:
        load_confounds(d["tsv"], strategy=("ica_aroma",), ica_aroma="basic")
    assert err.value.components == ["ica_aroma"]
    partial = tmp_path / "sub-01_desc-confounds_timeseries.tsv"
    table = read_confounds_table(d["tsv"], columns=["trans_x", "rot_z", "csf", "std_dvars"])
    partial.write_text("\t".join(table.columns) + "\n"
                       + "\n".join("\t".join(map(str, r)) for r in table.data))  # fmt: skip
    with pytest.raises(MissingConfoundsError, match=r"'trans_y'.*'white_matter'.*\['global"):
        load_confounds(partial, strategy=("motion", "wm_csf", "global_signal"), motion="basic")
    with pytest.raises(MissingConfoundsError, match=r"\['framewise_displacement'\]"):
        load_confounds(partial, strategy=("scrub",))


def test_error_camel_case(tmp_path):
    path = tmp_path / "sub-01_desc-confounds_regressors.tsv"
    path.write_text("WhiteMatter\tGlobalSignal\tX\n1\t2\t3\n4\t5\t6\n")
    with pytest.raises(ValueError, match=r"camel-case column names \['WhiteMatter', 'Global"):
        load_confounds(path)


def test_error_compcor_without_high_pass_or_sidecar(derivs, tmp_path):
    d = derivs["v14_regressors"]
    with pytest.raises(ValueError, match="'compcor' requires 'high_pass'"):
        load_confounds(d["tsv"], strategy=("compcor",))
    lone = tmp_path / d["tsv"].name
    shutil.copy(d["tsv"], lone)
    with pytest.raises(ValueError, match="compcor needs the confounds JSON sidecar"):
        load_confounds(lone, strategy=("high_pass", "compcor"))
    with pytest.raises(FileNotFoundError, match="sidecar"):
        load_confounds(lone, strategy=("high_pass", "compcor"), sidecar=tmp_path / "no.json")


def test_error_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_confounds(tmp_path / "missing_desc-confounds_timeseries.tsv")
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("a\tb\n1\t2\n3\t4\t5\n")
    with pytest.raises(ValueError, match=r"ragged.tsv': line 3 has 3 cells, the header has 2"):
        read_confounds_table(ragged)
    no_header = tmp_path / "sub-01_desc-confounds_timeseries.tsv"
    shutil.copy(NILEARN / "datasets" / "data" / "spm_confounds.txt", no_header)
    with pytest.raises(ValueError, match="has no header row"):
        load_confounds(no_header, strategy=("motion",))
    text = tmp_path / "text.tsv"
    text.write_text("a\tb\n1\tlow\n")
    with pytest.raises(ValueError, match=r"line 2: 'low' in column 'b' is not a number"):
        read_confounds_table(text)
    with pytest.raises(ValueError, match=r"\['c'\] not found.*available columns: \['a', 'b'\]"):
        read_confounds_table(text, columns=["a", "c"])
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="is empty"):
        read_confounds_table(empty)


def test_error_all_volumes_censored(derivs):
    """nilearn warns and returns all-NaN regressors (issue #4557); we raise."""
    d = derivs["v21_timeseries"]
    with pytest.warns(RuntimeWarning, match="All volumes were marked"):
        df, mask = nl_load_confounds(d["bold"], strategy=("motion", "scrub"))
    assert mask.size == 0 and np.isnan(df.to_numpy()).all()
    with pytest.raises(ValueError, match="every one of the 30 volumes is censored"):
        load_confounds(d["tsv"], strategy=("motion", "scrub"))


def test_core_imports_no_pandas():
    code = (
        "import sys, nipype_maskers.core.confounds as c; c.load_confounds; "
        "print(sorted({'pandas', 'nilearn', 'sklearn', 'nipype'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"
