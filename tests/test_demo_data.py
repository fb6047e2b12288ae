"""The demo dataset: fMRIPrep-like tree, confounds that nilearn and we load alike, atlases.

Small and fast: a 4 mm version of the MNI grid (49 x 58 x 49) and short runs.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn.interfaces.fmriprep import load_confounds as nl_load_confounds
from nilearn.interfaces.fmriprep import load_confounds_strategy as nl_load_confounds_strategy
from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker
from scipy.spatial.distance import pdist

from nipype_maskers import files
from nipype_maskers.core.confounds.strategies import load_confounds, load_confounds_strategy
from nipype_maskers.core.regions.label_names import read_lut
from nipype_maskers.core.regions.spheres import read_seeds
from nipype_maskers.core.spatial import masking
from nipype_maskers.demo import atlases as demo_atlases
from nipype_maskers.demo import data as demo_data
from nipype_maskers.demo import fmriprep as demo_fmriprep
from nipype_maskers.demo.atlases import DEMO_SEEDS
from nipype_maskers.demo.confounds import framewise_displacement

SHAPE = (49, 58, 49)
AFFINE = demo_data.MNI_2MM_AFFINE.copy()
AFFINE[:3, :3] *= 2
N_VOLUMES, T_R = 70, 2.0  # 68 steady-state volumes of 2 s: one cosine regressor
GRID = {"shape": SHAPE, "affine": AFFINE}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "fmriprep"
    bold_files = demo_fmriprep.write_fmriprep_dataset(root, n_volumes=N_VOLUMES, t_r=T_R, **GRID)
    return root, bold_files


@pytest.fixture(scope="module")
def atlases(tmp_path_factory):
    return demo_atlases.write_demo_atlases(tmp_path_factory.mktemp("atlases"), **GRID)


def _table(path):
    with open(path, newline="") as stream:
        rows = list(csv.reader(stream, delimiter="\t"))
    return rows[0], rows[1:]


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _snapshot(root):
    return {name: (root / name).stat().st_mtime_ns for name in _files(root)}


# --------------------------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------------------------
def test_tree_names_and_headers(dataset):
    root, bold_files = dataset
    space = "space-MNI152NLin2009cAsym"
    expected = ["dataset_description.json"]
    for sub in ("01", "02"):
        func = f"sub-{sub}/func/sub-{sub}_task-rest"
        expected += [f"{func}_desc-confounds_timeseries.json",
                     f"{func}_desc-confounds_timeseries.tsv",
                     f"{func}_{space}_desc-brain_mask.json",
                     f"{func}_{space}_desc-brain_mask.nii.gz",
                     f"{func}_{space}_desc-preproc_bold.json",
                     f"{func}_{space}_desc-preproc_bold.nii.gz"]  # fmt: skip
    assert _files(root) == sorted(expected)
    assert bold_files == [root / f for f in expected if f.endswith("preproc_bold.nii.gz")]

    description = json.loads((root / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert "fMRIPrep-like" in description["GeneratedBy"][0]["Name"]

    bold = nib.load(bold_files[0])
    assert bold.shape == (*SHAPE, N_VOLUMES)
    assert bold.get_data_dtype() == np.float32
    assert bold.header.get_zooms() == (4.0, 4.0, 4.0, T_R)
    assert bold.header.get_xyzt_units() == ("mm", "sec")
    assert int(bold.header["sform_code"]) == 4
    np.testing.assert_array_equal(bold.affine, AFFINE)
    mask = nib.load(str(bold_files[0]).replace("desc-preproc_bold", "desc-brain_mask"))
    assert mask.shape == SHAPE and mask.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(mask.affine, AFFINE)
    data = np.asanyarray(bold.dataobj)
    brain = np.asanyarray(mask.dataobj).astype(bool)
    assert np.all(data[~brain] == 0) and np.all(data[brain].min(axis=1) > 0)
    sidecar = json.loads(bold_files[0].with_name(
        bold_files[0].name.replace(".nii.gz", ".json")).read_text())  # fmt: skip
    assert sidecar["RepetitionTime"] == T_R and sidecar["TaskName"] == "rest"
    # Subjects differ; files are readable by the os (not mkstemp's private 0600).
    other = np.asanyarray(nib.load(bold_files[1]).dataobj)
    assert not np.array_equal(data, other)
    umask = os.umask(0)
    os.umask(umask)
    assert bold_files[0].stat().st_mode & 0o777 == 0o666 & ~umask


def test_epi_mask_finds_the_brain(dataset):
    _, bold_files = dataset
    truth = np.asanyarray(nib.load(str(bold_files[0]).replace(
        "desc-preproc_bold", "desc-brain_mask")).dataobj).astype(bool)  # fmt: skip
    ours = np.asanyarray(masking.compute_mask(bold_files[0], "epi").dataobj).astype(bool)
    dice = 2 * np.sum(truth & ours) / (truth.sum() + ours.sum())
    assert dice > 0.9


# --------------------------------------------------------------------------------------------
# Confounds
# --------------------------------------------------------------------------------------------
def test_confounds_columns_and_na_rows(dataset):
    root, _ = dataset
    header, rows = _table(root / "sub-01/func/sub-01_task-rest_desc-confounds_timeseries.tsv")
    assert len(rows) == N_VOLUMES and len(set(header)) == len(header)
    bases = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "csf", "white_matter",
             "global_signal"]  # fmt: skip
    for base in bases:
        for suffix in ("", "_derivative1", "_power2", "_derivative1_power2"):
            assert base + suffix in header
    for name in ("csf_wm", "tcompcor", "framewise_displacement", "rmsd", "dvars", "std_dvars",
                 "cosine00", "non_steady_state_outlier00", "non_steady_state_outlier01",
                 "motion_outlier00", "motion_outlier01"):  # fmt: skip
        assert name in header
    for prefix in ("a", "t", "c", "w"):
        assert f"{prefix}_comp_cor_00" in header
    # n/a: the first row of every derivative, FD, RMSD and DVARS column, nowhere else.
    na_first = {c for c in header if "derivative1" in c} | {
        "framewise_displacement", "rmsd", "dvars", "std_dvars"}
    assert {c for c, v in zip(header, rows[0], strict=True) if v == "n/a"} == na_first
    assert not any("n/a" in row for row in rows[1:])

    values = np.array([[np.nan if v == "n/a" else float(v) for v in row] for row in rows])
    col = {c: values[:, i] for i, c in enumerate(header)}
    # Non-steady-state volumes: one-hot; CompCor and cosines are 0 there.
    np.testing.assert_array_equal(col["non_steady_state_outlier00"], np.eye(N_VOLUMES)[0])
    np.testing.assert_array_equal(col["non_steady_state_outlier01"], np.eye(N_VOLUMES)[1])
    assert np.all(col["a_comp_cor_00"][:2] == 0) and np.all(col["cosine00"][:2] == 0)
    # Motion outliers: one-hot at FD > 0.5 or std DVARS > 1.5, in order; >= 2 for high FD.
    with np.errstate(invalid="ignore"):
        flagged = np.flatnonzero((col["framewise_displacement"] > 0.5)
                                 | (col["std_dvars"] > 1.5))  # fmt: skip
        assert np.sum(col["framewise_displacement"] > 0.5) >= 2
    outliers = [c for c in header if c.startswith("motion_outlier")]
    assert outliers == [f"motion_outlier{i:02d}" for i in range(flagged.size)]
    np.testing.assert_array_equal(np.column_stack([col[c] for c in outliers]),
                                  np.eye(N_VOLUMES)[:, flagged])  # fmt: skip
    # Consistent with the motion: derivatives, squares and Power's FD.
    motion = np.column_stack([col[b] for b in bases[:6]])
    np.testing.assert_allclose(col["rot_y_derivative1"][1:], np.diff(col["rot_y"]), rtol=1e-12)
    np.testing.assert_allclose(col["trans_z_derivative1_power2"][1:],
                               np.diff(col["trans_z"]) ** 2, rtol=1e-9)  # fmt: skip
    np.testing.assert_allclose(col["csf_power2"], col["csf"] ** 2, rtol=1e-12)
    fd = np.abs(np.diff(motion, axis=0))
    np.testing.assert_allclose(col["framewise_displacement"][1:],
                               fd[:, :3].sum(1) + 50 * fd[:, 3:].sum(1), rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(framewise_displacement(motion), col["framewise_displacement"])


def test_confounds_match_the_data(dataset):
    root, bold_files = dataset
    header, rows = _table(root / "sub-01/func/sub-01_task-rest_desc-confounds_timeseries.tsv")
    values = np.array([[np.nan if v == "n/a" else float(v) for v in row] for row in rows])
    col = {c: values[:, i] for i, c in enumerate(header)}
    data = np.asanyarray(nib.load(bold_files[0]).dataobj)
    brain = data[..., 0] != 0
    np.testing.assert_allclose(col["global_signal"], data[brain].mean(axis=0, dtype=np.float64),
                               rtol=1e-10)  # fmt: skip
    # DVARS (non-standardised) is the RMS temporal difference scaled to a median of ~1000.
    rms = np.sqrt(np.mean(np.diff(data[brain].astype(np.float64), axis=1) ** 2, axis=0))
    ratio = col["dvars"][1:] / rms
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    assert 1000 / np.median(data[brain]) == pytest.approx(ratio[0], rel=0.05)
    # The non-steady-state volumes are brighter, as in real data.
    assert col["global_signal"][0] > 1.3 * np.median(col["global_signal"])
    # CompCor: orthonormal components over the steady-state volumes, the retained ones reach
    # 50% of the variance, the sidecar describes each of them as fMRIPrep does.
    sidecar = json.loads((root / "sub-01/func/sub-01_task-rest_desc-confounds_timeseries.json"
                          ).read_text())  # fmt: skip
    for prefix, method, mask in (("a", "aCompCor", "combined"), ("c", "aCompCor", "CSF"),
                                 ("w", "aCompCor", "WM"), ("t", "tCompCor", None)):  # fmt: skip
        names = [c for c in header if c.startswith(f"{prefix}_comp_cor_")]
        assert names == [f"{prefix}_comp_cor_{i:02d}" for i in range(len(names))]
        comps = np.column_stack([col[c] for c in names])[2:]
        np.testing.assert_allclose(comps.T @ comps, np.eye(len(names)), atol=1e-8)
        cumulative = [sidecar[c]["CumulativeVarianceExplained"] for c in names]
        assert cumulative[-1] >= 0.5 and (len(names) == 1 or cumulative[-2] < 0.5)
        for name in names:
            meta = sidecar[name]
            assert meta["Method"] == method and meta["Retained"] is True
            assert meta.get("Mask") == mask
            assert 0 < meta["VarianceExplained"] <= 1 and meta["SingularValue"] > 0
    for name in ("csf", "white_matter", "global_signal", "csf_wm", "tcompcor"):
        assert sidecar[name] == {"Method": "Mean"}
    assert set(sidecar) <= set(header)


STRATEGY_CASES = [
    {"strategy": ["motion", "high_pass", "wm_csf", "global_signal"], "motion": "full",
     "wm_csf": "derivatives", "global_signal": "full"},
    {"strategy": ["motion", "high_pass", "wm_csf", "scrub"], "scrub": 0, "fd_threshold": 0.3},
    {"strategy": ["high_pass", "compcor"], "compcor": "anat_separated", "n_compcor": 2},
    {"strategy": ["high_pass", "compcor"], "compcor": "temporal_anat_combined"},
    {"strategy": ["high_pass", "compcor", "motion"], "compcor": "temporal_anat_separated",
     "motion": "power2", "demean": False},
]  # fmt: skip


def _compare(ours, ref, sample_mask):
    assert ours.columns == list(ref.columns)
    np.testing.assert_allclose(ours.confounds, ref.to_numpy(), rtol=1e-10, atol=1e-12)
    if sample_mask is None:
        assert ours.sample_mask is None
    else:
        np.testing.assert_array_equal(ours.sample_mask, sample_mask)


@pytest.mark.parametrize("subject", ["01", "02"])
@pytest.mark.parametrize("preset", ["simple", "scrubbing", "compcor"])
def test_strategies_match_nilearn(dataset, subject, preset):
    _, bold_files = dataset
    bold = bold_files[int(subject) - 1]
    confounds = bold.with_name(f"sub-{subject}_task-rest_desc-confounds_timeseries.tsv")
    ref, sample_mask = nl_load_confounds_strategy(str(bold), denoise_strategy=preset)
    ours = load_confounds_strategy(confounds, preset)
    _compare(ours, ref, sample_mask)
    assert ours.sample_mask is not None and 0 not in ours.sample_mask  # dummies censored
    if preset == "scrubbing":
        assert ours.sample_mask.size < N_VOLUMES - 2


@pytest.mark.parametrize("kwargs", STRATEGY_CASES)
def test_load_confounds_matches_nilearn(dataset, kwargs):
    _, bold_files = dataset
    confounds = bold_files[0].with_name("sub-01_task-rest_desc-confounds_timeseries.tsv")
    ref, sample_mask = nl_load_confounds(str(bold_files[0]), **kwargs)
    _compare(load_confounds(confounds, **kwargs), ref, sample_mask)


def test_ica_aroma_basic_columns(tmp_path):
    bold = demo_fmriprep.write_fmriprep_dataset(tmp_path, subjects=["03"], n_volumes=12,
                                            ica_aroma=True, **GRID)[0]  # fmt: skip
    confounds = bold.with_name("sub-03_task-rest_desc-confounds_timeseries.tsv")
    kwargs = {"strategy": ["ica_aroma", "motion"], "ica_aroma": "basic", "motion": "basic"}
    ref, sample_mask = nl_load_confounds(str(bold), **kwargs)
    ours = load_confounds(confounds, **kwargs)
    _compare(ours, ref, sample_mask)
    assert sum(c.startswith("aroma_motion_") for c in ours.columns) == 4


# --------------------------------------------------------------------------------------------
# Determinism, atomic writes, reruns
# --------------------------------------------------------------------------------------------
def test_deterministic_and_seeded(tmp_path):
    kwargs = {"subjects": ["01"], "n_volumes": 6, **GRID}
    demo_fmriprep.write_fmriprep_dataset(tmp_path / "a", **kwargs)
    demo_fmriprep.write_fmriprep_dataset(tmp_path / "b", **kwargs)
    demo_fmriprep.write_fmriprep_dataset(tmp_path / "c", seed=1, **kwargs)
    names = _files(tmp_path / "a")
    assert names == _files(tmp_path / "b") == _files(tmp_path / "c")
    for name in names:  # byte for byte, gzip streams included
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    bold = names[-1]
    assert bold.endswith("preproc_bold.nii.gz")
    assert (tmp_path / "a" / bold).read_bytes() != (tmp_path / "c" / bold).read_bytes()


def test_rerun_rewrites_nothing_then_only_what_is_missing(tmp_path):
    kwargs = {"subjects": ["01", "02"], "n_volumes": 6, **GRID}
    demo_fmriprep.write_fmriprep_dataset(tmp_path, **kwargs)
    before = _snapshot(tmp_path)
    confounds = tmp_path / "sub-02/func/sub-02_task-rest_desc-confounds_timeseries.tsv"
    content = confounds.read_bytes()
    demo_fmriprep.write_fmriprep_dataset(tmp_path, **kwargs)
    assert _snapshot(tmp_path) == before

    confounds.unlink()
    demo_fmriprep.write_fmriprep_dataset(tmp_path, **kwargs)
    after = _snapshot(tmp_path)
    assert confounds.read_bytes() == content
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {"sub-02/func/sub-02_task-rest_desc-confounds_timeseries.tsv"}

    # Other parameters: the BOLD files are rebuilt.
    demo_fmriprep.write_fmriprep_dataset(tmp_path, **{**kwargs, "n_volumes": 7})
    assert nib.load(tmp_path / "sub-01/func/sub-01_task-rest_space-MNI152NLin2009cAsym"
                    "_desc-preproc_bold.nii.gz").shape[-1] == 7  # fmt: skip
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary file left behind


def test_killed_write_leaves_nothing(tmp_path):
    path = tmp_path / "x_bold.nii.gz"
    header = demo_data.nifti_header((4, 5, 6, 3), np.eye(4), np.dtype(np.float32), 2.0)

    def chunks():
        yield np.zeros((4, 5, 6), np.float32)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        demo_fmriprep.write_nifti(path, header, chunks())
    assert list(tmp_path.iterdir()) == []
    data = np.arange(4 * 5 * 6 * 3, dtype=np.float32).reshape(4, 5, 6, 3)
    demo_fmriprep.save_image(data, np.eye(4), path, t_r=2.0)
    img = nib.load(path)
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), data)
    assert img.header.get_zooms()[3] == 2.0


def test_write_nifti_without_isal(tmp_path, monkeypatch):
    # The zlib fallback (no "fast" extra) writes the same data, also deterministically.
    data = np.arange(5 * 6 * 7 * 2, dtype=np.float32).reshape(5, 6, 7, 2) / 16
    paths = [tmp_path / "isal.nii.gz", tmp_path / "zlib1.nii.gz", tmp_path / "zlib2.nii.gz"]
    demo_fmriprep.save_image(data, AFFINE, paths[0], t_r=2.0)
    monkeypatch.setattr(files, "_gzip_module", gzip)
    for path in paths[1:]:
        demo_fmriprep.save_image(data, AFFINE, path, t_r=2.0)
    assert paths[1].read_bytes() == paths[2].read_bytes()
    for path in paths:
        img = nib.load(path)
        np.testing.assert_array_equal(np.asanyarray(img.dataobj), data)
        np.testing.assert_array_equal(img.affine, AFFINE)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="subjects"):
        demo_fmriprep.write_fmriprep_dataset(tmp_path, subjects=["01", "01"], **GRID)
    with pytest.raises(ValueError, match="subjects"):
        demo_fmriprep.write_fmriprep_dataset(tmp_path, subjects=["0-1"], **GRID)
    with pytest.raises(ValueError, match="n_volumes must be an integer >= n_dummy"):
        demo_fmriprep.write_fmriprep_dataset(tmp_path, n_volumes=4, n_dummy=2, **GRID)
    with pytest.raises(ValueError, match="n_volumes"):
        demo_data.simulate_run(1, **GRID)
    with pytest.raises(ValueError, match="axis-aligned"):
        demo_data.simulate_run(4, shape=SHAPE, affine=np.array(
            [[0, 4, 0, 0], [4, 0, 0, 0], [0, 0, 4, 0], [0, 0, 0, 1.0]]))  # fmt: skip


def test_synthetic_bold(tmp_path):
    img, motion, names = demo_data.synthetic_bold(5, seed=3, dtype=np.int16, **GRID)
    assert img.shape == (*SHAPE, 5) and img.get_data_dtype() == np.int16
    assert motion.shape == (5, 6) and names[0] == "trans_x" and names[-1] == "rot_z"
    assert img.header.get_zooms()[3] == 2.0
    again, _, _ = demo_data.synthetic_bold(5, seed=3, dtype=np.int16, **GRID)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), np.asanyarray(again.dataobj))


# --------------------------------------------------------------------------------------------
# Atlases
# --------------------------------------------------------------------------------------------
def test_atlases_files_and_regions(atlases):
    labels = nib.load(atlases.labels)
    assert labels.shape == SHAPE and labels.get_data_dtype() == np.int16
    values = np.asanyarray(labels.dataobj)
    assert set(np.unique(values)) == set(range(51))
    lut = read_lut(atlases.labels_lut)
    assert list(lut) == list(range(1, 51)) and len(set(lut.values())) == 50
    assert lut[1] == "L_parcel_01" and lut[26] == "R_parcel_01"
    # Mirrored: label k on the left is label k + 25 on the right (x -> -x about x = 0; the
    # x axis is centred, voxel i <-> 48 - i), except on the midline (x = 0: ties).
    swapped = np.where(values > 25, values - 25, np.where(values > 0, values + 25, 0))
    off_midline = np.arange(SHAPE[0]) != 24
    np.testing.assert_array_equal(values[::-1][off_midline], swapped[off_midline])

    maps = nib.load(atlases.maps)
    assert maps.shape == (*SHAPE, 16) and maps.get_data_dtype() == np.float32
    data = maps.get_fdata(dtype=np.float32)
    assert data.min() == 0 and np.allclose(data.max(axis=(0, 1, 2)), 1)
    assert len(atlases.maps_names) == 16 == len(read_lut(atlases.maps_lut))
    assert list(read_lut(atlases.maps_lut).values()) == atlases.maps_names

    coords, names = read_seeds(atlases.seeds)
    assert names == [s[0] for s in DEMO_SEEDS] and coords.shape == (20, 3)
    assert pdist(coords).min() >= 20


def test_seeds_inside_the_brain_on_the_2mm_grid():
    coords = np.array([s[1:] for s in DEMO_SEEDS], dtype=float)
    ijk = np.rint((coords - demo_data.MNI_2MM_AFFINE[:3, 3]) / 2).astype(int)
    assert np.all(demo_data.template_on_grid()[tuple(ijk.T)] > 0.2)
    assert np.all(demo_data.template_on_grid(kind="gm")[tuple(ijk.T)] > 0.3)


def test_atlases_work_with_nilearn_maskers(dataset, atlases):
    _, bold_files = dataset
    bold = nib.load(bold_files[0])
    img = nib.Nifti1Image(bold.slicer[..., :6].get_fdata(dtype=np.float32), bold.affine,
                          bold.header)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn's FutureWarnings about defaults
        labels = NiftiLabelsMasker(str(atlases.labels), lut=str(atlases.labels_lut))
        signals = labels.fit_transform(img)
        maps = NiftiMapsMasker(str(atlases.maps)).fit_transform(img)
    assert signals.shape == (6, 50) and np.all(signals[2:] > 0)
    assert list(labels.region_names_.values()) == list(read_lut(atlases.labels_lut).values())
    assert maps.shape == (6, 16) and np.all(np.isfinite(maps))


def test_atlases_rerun_rewrites_nothing(tmp_path):
    demo_atlases.write_demo_atlases(tmp_path, **GRID)
    before = _snapshot(tmp_path)
    again = demo_atlases.write_demo_atlases(tmp_path, **GRID)
    assert _snapshot(tmp_path) == before
    assert isinstance(again, demo_atlases.DemoAtlases) and len(again.maps_names) == 16
