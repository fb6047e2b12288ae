"""BIDS in and out: finding fMRIPrep runs, naming derivatives, WriteDerivatives as a Node."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from nipype.pipeline import engine as pe

from nipype_maskers import __version__
from nipype_maskers.bids import (
    ENTITY_ORDER,
    dataset_description,
    derivative_path,
    derived_name,
    file_sha256,
    find_fmriprep_runs,
    format_name,
    parse_entities,
    source_uri,
    validate_label,
)
from nipype_maskers.interfaces.bids import WriteDerivatives, write_all

MNI = "MNI152NLin2009cAsym"
#: What WriteDerivatives writes at the top of a derivatives folder besides the runs' files.
DATASET_FILES = {"dataset_description.json", ".bidsignore", "README.md"}


def _touch(path: Path, content: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture
def fmriprep(tmp_path) -> Path:
    """A fake fMRIPrep tree: sub-01 without sessions (rest in two spaces, nback with two
    runs), sub-02 with two sessions, sub-03 with anatomy only; empty files except the BOLD
    that WriteDerivatives hashes."""
    root = tmp_path / "fmriprep"
    _touch(root / "dataset_description.json", json.dumps(
        {"Name": "fMRIPrep", "GeneratedBy": [{"Name": "fMRIPrep", "Version": "25.2.0"}]}
    ).encode())
    _touch(root / "sub-01.html")
    _touch(root / "sub-03" / "anat" / "sub-03_desc-preproc_T1w.nii.gz")
    f1 = root / "sub-01" / "func"
    _touch(f1 / f"sub-01_task-rest_space-{MNI}_res-2_desc-preproc_bold.nii.gz", b"bold-01-rest")
    _touch(f1 / f"sub-01_task-rest_space-{MNI}_res-2_desc-brain_mask.nii.gz")
    _touch(f1 / f"sub-01_task-rest_space-{MNI}_res-2_desc-preproc_bold.json")
    _touch(f1 / f"sub-01_task-rest_space-{MNI}_res-2_boldref.nii.gz")
    _touch(f1 / "sub-01_task-rest_space-T1w_desc-preproc_bold.nii.gz", b"bold-01-rest-T1w")
    _touch(f1 / "sub-01_task-rest_space-T1w_desc-brain_mask.nii.gz")
    _touch(f1 / "sub-01_task-rest_desc-confounds_timeseries.tsv")
    _touch(f1 / "sub-01_task-rest_desc-confounds_timeseries.json")
    for run in (1, 2):
        _touch(f1 / f"sub-01_task-nback_run-{run}_space-{MNI}_res-2_desc-preproc_bold.nii.gz")
    _touch(f1 / f"sub-01_task-nback_run-1_space-{MNI}_res-2_desc-brain_mask.nii.gz")
    _touch(f1 / "sub-01_task-nback_run-1_desc-confounds_timeseries.tsv")
    _touch(f1 / "sub-01_task-nback_run-1_desc-confounds_timeseries.json")
    _touch(f1 / "sub-01_task-nback_run-2_desc-confounds_regressors.tsv")  # older fMRIPrep
    for ses, spaces in (("1", (MNI, "T1w")), ("2", (MNI,))):
        func = root / "sub-02" / f"ses-{ses}" / "func"
        for space in spaces:
            _touch(func / f"sub-02_ses-{ses}_task-rest_space-{space}_desc-preproc_bold.nii.gz")
            _touch(func / f"sub-02_ses-{ses}_task-rest_space-{space}_desc-brain_mask.nii.gz")
        _touch(func / f"sub-02_ses-{ses}_task-rest_desc-confounds_timeseries.tsv")
    _touch(root / "sub-02" / "ses-2" / "func"
           / f"sub-02_ses-2_task-nback_space-{MNI}_desc-preproc_bold.nii.gz")
    return root


def _names(runs):
    return [r.bold.name for r in runs]


ALL_BOLD = [
    f"sub-01_task-nback_run-1_space-{MNI}_res-2_desc-preproc_bold.nii.gz",
    f"sub-01_task-nback_run-2_space-{MNI}_res-2_desc-preproc_bold.nii.gz",
    f"sub-01_task-rest_space-{MNI}_res-2_desc-preproc_bold.nii.gz",
    "sub-01_task-rest_space-T1w_desc-preproc_bold.nii.gz",
    f"sub-02_ses-1_task-rest_space-{MNI}_desc-preproc_bold.nii.gz",
    "sub-02_ses-1_task-rest_space-T1w_desc-preproc_bold.nii.gz",
    f"sub-02_ses-2_task-nback_space-{MNI}_desc-preproc_bold.nii.gz",
    f"sub-02_ses-2_task-rest_space-{MNI}_desc-preproc_bold.nii.gz",
]


# --- entities and labels -------------------------------------------------------------------

def test_entity_order_follows_bids_1_11():
    # BIDS 1.11 schema rules/entities.yaml: ... space, split, recording, chunk, atlas,
    # segmentation, scale, resolution, density, label, prov, description; cohort moved
    # from after tpl to after space, where fMRIPrep writes it
    tail = ["space", "cohort", "split", "recording", "chunk", "atlas", "seg", "scale", "res",
            "den", "label", "prov", "desc"]
    assert list(ENTITY_ORDER[-len(tail):]) == tail
    head = ["sub", "tpl", "ses", "sample", "task", "tracksys", "acq", "nuc", "voi", "ce",
            "trc", "stain", "rec", "dir", "run", "mod", "echo", "flip", "inv", "mt", "part",
            "proc", "hemi"]
    assert list(ENTITY_ORDER[: len(head)]) == head
    assert len(set(ENTITY_ORDER)) == len(ENTITY_ORDER) == len(head) + len(tail)
    # fMRIPrep's own names come out unchanged
    name = ("sub-01_ses-1_task-rest_acq-mb_dir-AP_run-1_echo-2_space-MNIPediatricAsym_"
            "cohort-2_res-2_desc-preproc_bold.nii.gz")
    entities = parse_entities(name)
    assert format_name({k: entities[k] for k in list(entities)[:-2]}, suffix="bold",
                       extension=".nii.gz") == name


def test_parse_entities():
    name = f"sub-01_ses-2_task-rest_run-03_space-{MNI}_res-2_desc-preproc_bold.nii.gz"
    assert parse_entities(Path("/x/sub-01/ses-2/func") / name) == {
        "sub": "01", "ses": "2", "task": "rest", "run": "03", "space": MNI, "res": "2",
        "desc": "preproc", "suffix": "bold", "extension": ".nii.gz",
    }
    assert parse_entities("sub-01_task-rest_desc-confounds_timeseries.tsv")["extension"] == ".tsv"
    assert list(parse_entities("sub-01_bold.nii"))[-2:] == ["suffix", "extension"]


@pytest.mark.parametrize("name", [
    "bold.nii.gz", "sub-01.nii.gz", "sub-01_task_bold.nii", "sub-01_sub-02_bold.nii",
    "sub-01_task-_bold.nii", "sub-01_task-rest_desc-x.nii", ".nii.gz", "sub-01__bold.nii",
])
def test_parse_entities_rejects_non_bids_names(name):
    with pytest.raises(ValueError, match=r"BIDS|pair|twice"):
        parse_entities(name)


@pytest.mark.parametrize("value", ["Schaefer400", "01", "a", "MNI152NLin2009cAsym"])
def test_validate_label_accepts_alphanumerics(value):
    assert validate_label(value, "atlas") == value


@pytest.mark.parametrize("value", [
    "..", "/", "a/b", "a_b", "a-b", "/etc", "", "a b", "a.b", "x\n", "é", "a\\b", "~",
])
def test_validate_label_rejects_everything_else(value):
    with pytest.raises(ValueError, match=r"atlas: .* not a valid BIDS label"):
        validate_label(value, "atlas")


def test_validate_label_types_and_indices():
    assert validate_label(3, "run") == "3"
    with pytest.raises(ValueError, match="run: expected a non-negative index, got -1"):
        validate_label(-1, "run")
    for bad in (None, 1.5, True, Path("a")):
        with pytest.raises(TypeError, match="atlas: expected a string label"):
            validate_label(bad, "atlas")


# --- find_fmriprep_runs --------------------------------------------------------------------

def test_find_all_runs_sorted_with_companions(fmriprep):
    runs = find_fmriprep_runs(fmriprep)
    assert _names(runs) == ALL_BOLD
    assert [str(r.bold) for r in runs] == sorted(str(r.bold) for r in runs)
    by_name = {r.bold.name: r for r in runs}
    rest = by_name[ALL_BOLD[2]]
    func = fmriprep / "sub-01" / "func"
    assert rest.mask == func / f"sub-01_task-rest_space-{MNI}_res-2_desc-brain_mask.nii.gz"
    # one confounds file for every space of the run
    assert rest.confounds == func / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    assert rest.confounds_json == func / "sub-01_task-rest_desc-confounds_timeseries.json"
    assert by_name[ALL_BOLD[3]].confounds == rest.confounds
    assert rest.entities == parse_entities(rest.bold)
    run2 = by_name[ALL_BOLD[1]]
    assert run2.mask is None
    assert run2.confounds == func / "sub-01_task-nback_run-2_desc-confounds_regressors.tsv"
    assert run2.confounds_json is None
    nback = by_name[ALL_BOLD[6]]
    assert (nback.mask, nback.confounds, nback.confounds_json) == (None, None, None)


@pytest.mark.parametrize(("filters", "expected"), [
    ({"participant_label": ["01"]}, ALL_BOLD[:4]),
    ({"participant_label": ["sub-02"]}, ALL_BOLD[4:]),
    ({"participant_label": ["01", "sub-02"]}, ALL_BOLD),
    ({"participant_label": "02", "session": "2"}, ALL_BOLD[6:]),
    ({"session": ["ses-1"]}, ALL_BOLD[4:6]),
    ({"task": "nback"}, [ALL_BOLD[0], ALL_BOLD[1], ALL_BOLD[6]]),
    ({"task": "task-nback", "run": 2}, [ALL_BOLD[1]]),
    ({"run": "01"}, [ALL_BOLD[0]]),
    ({"run": ["run-1", "2"]}, ALL_BOLD[:2]),
    ({"space": "T1w"}, [ALL_BOLD[3], ALL_BOLD[5]]),
    ({"space": f"{MNI}:res-2"}, ALL_BOLD[:3]),
    ({"space": [f"{MNI}:res-2", "T1w"], "task": "rest"}, [*ALL_BOLD[2:4], ALL_BOLD[5]]),
    ({"space": MNI, "participant_label": "01", "task": "rest"}, [ALL_BOLD[2]]),
    ({"participant_label": ["02"], "space": MNI, "task": "rest"}, [ALL_BOLD[4], ALL_BOLD[7]]),
])
def test_find_runs_filters_exactly(fmriprep, filters, expected):
    assert _names(find_fmriprep_runs(fmriprep, **filters)) == expected


def test_find_runs_per_echo_bold_uses_the_runs_confounds(tmp_path):
    func = tmp_path / "ds" / "sub-01" / "func"
    echo = _touch(func / "sub-01_task-rest_echo-2_space-T1w_desc-preproc_bold.nii.gz")
    confounds = _touch(func / "sub-01_task-rest_desc-confounds_timeseries.tsv")
    (run,) = find_fmriprep_runs(tmp_path / "ds")
    assert (run.bold, run.confounds, run.mask) == (echo, confounds, None)


def test_find_runs_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="fmriprep_dir: no such folder"):
        find_fmriprep_runs(tmp_path / "nope")
    _touch(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_fmriprep_runs(tmp_path / "file")


def test_find_runs_folder_without_bold(fmriprep, tmp_path):
    empty = tmp_path / "anat_only"
    (empty / "sub-03" / "anat").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no 'sub-\*/\[ses-\*/\]func/\*_desc-preproc_bold"
                       r"\.nii\.gz' under .*subjects found: \['03'\]"):
        find_fmriprep_runs(empty)


def test_find_runs_unknown_participant_lists_available(fmriprep):
    with pytest.raises(ValueError, match=r"participant_label: \['04'\] not found .*available: "
                       r"\['01', '02', '03'\]"):
        find_fmriprep_runs(fmriprep, participant_label=["01", "sub-04"])


def test_find_runs_no_match_says_what_exists(fmriprep):
    with pytest.raises(ValueError) as info:
        find_fmriprep_runs(fmriprep, task="motor", space="T1w")
    message = str(info.value)
    assert "task='motor'" in message and "space='T1w'" in message
    assert "desc-preproc_bold.nii.gz" in message
    assert "tasks ['nback', 'rest']" in message
    assert f"spaces ['{MNI}', 'T1w']" in message
    assert "subjects ['01', '02']" in message
    # a subject without BOLD (sub-03 has anatomy only): the subjects with BOLD are listed
    with pytest.raises(ValueError,
                       match=r"participant_label=\['03'\].*subjects \['01', '02'\]"):
        find_fmriprep_runs(fmriprep, participant_label=["03"])


@pytest.mark.parametrize(("filters", "match"), [
    ({"participant_label": ["../01"]}, "participant_label: '../01' is not a valid"),
    ({"task": "re_st"}, "task: 're_st' is not a valid"),
    ({"space": "MNI:res"}, "space: 'MNI:res'; expected"),
    ({"space": "MNI:foo-2"}, "space: 'MNI:foo-2'; expected"),
    ({"space": "MNI:res-../"}, "res: '../' is not a valid"),
])
def test_find_runs_rejects_bad_filters(fmriprep, filters, match):
    with pytest.raises(ValueError, match=match):
        find_fmriprep_runs(fmriprep, **filters)


# --- derivative_path -----------------------------------------------------------------------

SOURCE = parse_entities(f"sub-01_task-rest_space-{MNI}_desc-preproc_bold.nii.gz")


def test_derivative_path_names(tmp_path):
    out = tmp_path / "out"
    path = derivative_path(out, SOURCE, atlas="Schaefer400", suffix="timeseries",
                           extension=".tsv")
    assert path == out / "sub-01" / "func" / (
        f"sub-01_task-rest_space-{MNI}_atlas-Schaefer400_timeseries.tsv")
    path = derivative_path(out, SOURCE, desc="denoised", suffix="bold", extension=".nii.gz")
    assert path.name == f"sub-01_task-rest_space-{MNI}_desc-denoised_bold.nii.gz"
    # sessions make a folder; atlas/seg go before res (BIDS 1.11 order), desc last
    source = parse_entities(
        f"sub-02_ses-1_task-rest_run-2_space-{MNI}_res-2_desc-preproc_bold.nii.gz")
    path = derivative_path(out, source, atlas="Schaefer2018", seg="400Parcels7Networks",
                           desc="coverage", suffix="timeseries", extension=".tsv")
    assert path == out / "sub-02" / "ses-1" / "func" / (
        f"sub-02_ses-1_task-rest_run-2_space-{MNI}_atlas-Schaefer2018_seg-400Parcels7Networks"
        "_res-2_desc-coverage_timeseries.tsv")
    # drop=() keeps the source's desc unless one is given
    assert derivative_path(out, SOURCE, suffix="mask", extension=".nii.gz", drop=()).name == (
        f"sub-01_task-rest_space-{MNI}_desc-preproc_mask.nii.gz")
    assert derivative_path(out, SOURCE, suffix="x", extension=".npy", drop=("desc", "space")
                           ).name == "sub-01_task-rest_x.npy"
    assert not out.exists()  # naming never writes


def test_format_name_orders_entities_and_places_unknown_before_desc():
    assert format_name({"desc": "d", "stat": "mean", "atlas": "A", "sub": "1", "task": "t"},
                       suffix="timeseries", extension=".tsv") == (
        "sub-1_task-t_atlas-A_stat-mean_desc-d_timeseries.tsv")
    with pytest.raises(ValueError, match="'Bad' is not a valid BIDS entity key"):
        format_name({"sub": "1", "Bad": "x"}, suffix="bold", extension=".nii")
    with pytest.raises(ValueError, match=r"extension: '\.tsv/\.\.' is not a valid extension"):
        format_name({"sub": "1"}, suffix="bold", extension=".tsv/..")


@pytest.mark.parametrize("changes, expected", [
    ({"desc": "labels", "suffix": "timeseries", "extension": ".tsv"},
     f"sub-01_task-rest_space-{MNI}_desc-labels_timeseries.tsv"),
    ({"suffix": "mask", "extension": ".nii.gz"},
     f"sub-01_task-rest_space-{MNI}_desc-preproc_mask.nii.gz"),
    ({"desc": None, "suffix": "report", "extension": ".html"},
     f"sub-01_task-rest_space-{MNI}_report.html"),
    ({"atlas": "Toy", "desc": "clean"},
     f"sub-01_task-rest_space-{MNI}_atlas-Toy_desc-clean_bold.nii.gz"),
    ({"run": 2, "res": "2"}, f"sub-01_task-rest_run-2_space-{MNI}_res-2_desc-preproc_bold.nii.gz"),
])
def test_derived_name_replaces_an_entity_instead_of_adding_one(changes, expected):
    source = f"/data/sub-01_task-rest_space-{MNI}_desc-preproc_bold.nii.gz"
    assert derived_name(source, **changes) == expected
    entities = parse_entities(expected)  # a valid BIDS name: each entity once, BIDS order
    assert list(entities)[:-2] == sorted(list(entities)[:-2], key=ENTITY_ORDER.index)


def test_derived_name_of_names_that_are_not_bids():
    assert derived_name("signals.npy", desc="clean") == "signals_desc-clean.npy"
    assert derived_name("mean.nii.gz", atlas="Toy", desc="labels", suffix="report",
                        extension=".svg") == "mean_atlas-Toy_desc-labels_report.svg"
    # a name that already holds an entity twice comes out with it once (the last value)
    assert derived_name("sub-01_desc-preproc_desc-labels_timeseries.tsv", desc="clean") == (
        "sub-01_desc-clean_timeseries.tsv")
    with pytest.raises(ValueError, match="desc: 'a_b' is not a valid BIDS label"):
        derived_name("sub-01_bold.nii.gz", desc="a_b")
    with pytest.raises(ValueError, match="extension: 'tsv' is not a valid extension"):
        derived_name("sub-01_bold.nii.gz", extension="tsv")


def _snapshot(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


@pytest.mark.parametrize("kwargs", [
    {"atlas": ".."}, {"atlas": "../../evil"}, {"atlas": "/tmp/evil"}, {"desc": "a/b"},
    {"seg": "x_y"}, {"suffix": "../timeseries"}, {"suffix": "/abs"}, {"extension": "/.tsv"},
    {"extension": "tsv"}, {"atlas": ""},
])
def test_derivative_path_refuses_unsafe_labels(tmp_path, kwargs):
    before = _snapshot(tmp_path)
    args = {"suffix": "timeseries", "extension": ".tsv", **kwargs}
    with pytest.raises(ValueError, match="not a valid"):
        derivative_path(tmp_path / "out", SOURCE, **args)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("entities", [
    {"sub": "..", "task": "rest"}, {"sub": "/etc"}, {"sub": "01", "ses": "../.."},
    {"sub": "01", "task": "a/../../b"},
])
def test_derivative_path_refuses_unsafe_source_entities(tmp_path, entities):
    with pytest.raises(ValueError, match="not a valid BIDS label"):
        derivative_path(tmp_path / "out", entities, suffix="bold", extension=".nii.gz")
    with pytest.raises(ValueError, match="'sub' is required"):
        derivative_path(tmp_path / "out", {"task": "rest"}, suffix="bold", extension=".nii")


def test_derivative_path_refuses_a_symlink_out_of_output_dir(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", out / "sub-01")
    with pytest.raises(ValueError, match="is outside output_dir"):
        derivative_path(out, SOURCE, suffix="bold", extension=".nii.gz")


# --- dataset description, hashes, URIs -----------------------------------------------------

def test_dataset_description(fmriprep):
    plain = dataset_description()
    assert plain == {
        "Name": "nipype-maskers", "BIDSVersion": "1.11.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "nipype-maskers", "Version": __version__}],
    }
    full = dataset_description("mine", fmriprep, code_url="https://example.org/code")
    assert full["Name"] == "mine"
    assert full["GeneratedBy"][0]["CodeURL"] == "https://example.org/code"
    assert full["SourceDatasets"] == [{"URL": fmriprep.as_uri(), "Version": "fMRIPrep 25.2.0"}]
    assert full["DatasetLinks"] == {"fmriprep": fmriprep.as_uri()}
    json.dumps(full)


def test_file_sha256_streams_in_chunks(tmp_path):
    data = np.random.default_rng(0).bytes(int(2.5 * 2**20))  # spans three 1 MiB chunks
    path = _touch(tmp_path / "blob", data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_sha256(_touch(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()


def test_source_uri(fmriprep, tmp_path):
    bold = fmriprep / "sub-02" / "ses-1" / "func" / ALL_BOLD[4]
    assert source_uri(bold) == f"bids:fmriprep:sub-02/ses-1/func/{ALL_BOLD[4]}"
    loose = _touch(tmp_path / "data" / "sub-01_task-rest_bold.nii.gz")
    assert source_uri(loose, relative_to=tmp_path / "out") == (
        "../data/sub-01_task-rest_bold.nii.gz")


# --- WriteDerivatives ----------------------------------------------------------------------

def _write(tmp_path, name, **inputs):
    node = pe.Node(WriteDerivatives(**inputs), name=name, base_dir=str(tmp_path / "work"))
    return node.run().outputs


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_write_derivatives_names_sidecars_and_stale_files(fmriprep, tmp_path):
    out = tmp_path / "out"
    bold = fmriprep / "sub-01" / "func" / ALL_BOLD[2]
    ins = {name: _touch(tmp_path / "in" / name, name.encode() * 3)
           for name in ("a.tsv", "b.tsv", "clean.nii.gz")}
    provenance = {"Parameters": {"strategy": "mean", "fwhm": np.float32(6.0)},
                  "Missing": np.nan, "Index": np.arange(3)}
    mask_uri = "bids:fmriprep:sub-01/func/" + ALL_BOLD[2].replace("preproc_bold", "brain_mask")
    result = _write(
        tmp_path, "first", base_directory=str(out), source_file=str(bold),
        in_files=[str(ins["a.tsv"]), str(ins["b.tsv"]), str(ins["clean.nii.gz"])],
        entities=[{"atlas": "Schaefer400", "suffix": "timeseries"},
                  {"atlas": "DiFuMo64", "suffix": "timeseries", "extension": ".tsv"},
                  {"desc": "denoised", "suffix": "bold"}],
        metadata=[{"SamplingFrequency": 0.5, "Parameters": "per-file wins"},
                  {"Sources": [mask_uri]}, {}],
        provenance=provenance,
    )
    stem = f"sub-01/func/sub-01_task-rest_space-{MNI}"
    expected = [f"{stem}_atlas-Schaefer400_res-2_timeseries.tsv",
                f"{stem}_atlas-DiFuMo64_res-2_timeseries.tsv",
                f"{stem}_res-2_desc-denoised_bold.nii.gz"]
    assert result.out_files == [str(out / e) for e in expected]
    sidecars = [e.split(".")[0] + ".json" for e in expected]
    assert result.out_sidecars == [str(out / s) for s in sidecars]
    assert _files(out) == {*expected, *sidecars, *DATASET_FILES}
    for name, path in zip(ins, result.out_files, strict=True):
        assert Path(path).read_bytes() == ins[name].read_bytes()

    uri = f"bids:fmriprep:sub-01/func/{ALL_BOLD[2]}"
    meta = [json.loads(Path(s).read_text()) for s in result.out_sidecars]
    assert meta[0]["SamplingFrequency"] == 0.5
    assert meta[0]["Parameters"] == "per-file wins"
    assert meta[1]["Parameters"] == {"strategy": "mean", "fwhm": 6.0}
    assert meta[1]["Missing"] is None and meta[1]["Index"] == [0, 1, 2]
    assert meta[0]["Sources"] == meta[2]["Sources"] == [uri]
    assert meta[1]["Sources"] == [uri, mask_uri]
    sha = hashlib.sha256(b"bold-01-rest").hexdigest()
    assert all(m["SourceSHA256"] == sha for m in meta)
    assert set(meta[0]["Software"]) == {"nipype_maskers", "nipype", "numpy", "scipy",
                                        "nibabel", "python"}
    assert meta[0]["Software"]["nipype_maskers"] == __version__
    assert meta[2]["SpatialReference"] == (  # the image only; res-2: TemplateFlow's res-02
        f"https://templateflow.s3.amazonaws.com/tpl-{MNI}/tpl-{MNI}_res-02_T1w.nii.gz")
    assert "SpatialReference" not in meta[0]
    umask = os.umask(0)
    os.umask(umask)
    for path in (*result.out_files, *result.out_sidecars, out / "dataset_description.json"):
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["DatasetLinks"] == {"fmriprep": fmriprep.as_uri()}

    # other runs' outputs, another pipeline's file of the same run, killed-run leftovers
    other = _write(
        tmp_path, "other", base_directory=str(out),
        source_file=str(fmriprep / "sub-01" / "func" / ALL_BOLD[3]),
        in_files=[str(ins["b.tsv"])], entities=[{"atlas": "DiFuMo64", "suffix": "timeseries"}],
    ).out_files
    foreign = _touch(out / f"{stem}_res-2_desc-other_bold.nii.gz", b"not ours")
    foreign_json = _touch(out / f"{stem}_res-2_desc-other_bold.json", b"{}")
    leftover = _touch(out / f"{Path(expected[0]).parent}/.{Path(expected[0]).name}.0123abcd.part")
    other_leftover = _touch(out / "sub-01/func/.sub-01_task-nback_run-1_x.tsv.0123abcd.part")
    unrelated_leftover = _touch(
        out / f"sub-01/func/.sub-01_task-rest_space-{MNI}_res-2_x.tsv.0123abcd.part")

    # second run with fewer outputs: it replaces the Schaefer400 outputs only (and their
    # leftovers); the other atlas and the denoised image are other configurations: kept
    new = _touch(tmp_path / "in" / "a2.tsv", b"new values")
    second = _write(
        tmp_path, "second", base_directory=str(out), source_file=str(bold),
        in_files=[str(new)], entities=[{"atlas": "Schaefer400", "suffix": "timeseries"}],
        source_hashes=False,
    )
    assert second.out_files == [str(out / expected[0])]
    assert Path(second.out_files[0]).read_bytes() == b"new values"
    assert "SourceSHA256" not in json.loads(Path(second.out_sidecars[0]).read_text())
    assert not leftover.exists()
    kept = {*expected, *sidecars, *DATASET_FILES,
            *(Path(p).relative_to(out).as_posix() for p in other),
            *(p.split(".")[0] + ".json" for p in (Path(o).relative_to(out).as_posix()
                                                  for o in other)),
            foreign.relative_to(out).as_posix(), foreign_json.relative_to(out).as_posix(),
            other_leftover.relative_to(out).as_posix(),
            unrelated_leftover.relative_to(out).as_posix()}
    assert _files(out) == kept
    assert not [p for p in out.rglob(".*")
                if p not in (other_leftover, unrelated_leftover, out / ".bidsignore")]


def test_write_all_is_all_or_nothing(tmp_path):
    first = _touch(tmp_path / "in" / "first.tsv", b"new")
    target = _touch(tmp_path / "out" / "a.tsv", b"old")
    with pytest.raises(FileNotFoundError):
        write_all([(first, target), (tmp_path / "missing.tsv", tmp_path / "out" / "b.tsv")],
                  [("{}", tmp_path / "out" / "a.json")])
    assert target.read_bytes() == b"old"
    assert _files(tmp_path / "out") == {"a.tsv"}


def test_write_all_links_on_one_file_system_and_copies_across(tmp_path, monkeypatch):
    source = _touch(tmp_path / "work" / "node" / "bold.nii.gz", b"volumes")
    linked = tmp_path / "out" / "linked.nii.gz"
    write_all([(source, linked)], [])
    assert linked.read_bytes() == b"volumes"
    assert linked.stat().st_ino == source.stat().st_ino  # not written a second time

    def cross_device(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    copied = tmp_path / "out" / "copied.nii.gz"
    write_all([(source, copied)], [])
    assert copied.read_bytes() == b"volumes"
    assert copied.stat().st_ino != source.stat().st_ino
    assert _files(tmp_path / "out") == {"linked.nii.gz", "copied.nii.gz"}


def _inputs(fmriprep, tmp_path, **changes):
    bold = fmriprep / "sub-01" / "func" / ALL_BOLD[2]
    ts = _touch(tmp_path / "in" / "ts.tsv", b"1\n")
    inputs = {"base_directory": str(tmp_path / "out"), "source_file": str(bold),
              "in_files": [str(ts)], "entities": [{"atlas": "A", "suffix": "timeseries"}]}
    inputs.update(changes)
    return inputs


@pytest.mark.parametrize(("changes", "match"), [
    ({"entities": [{"atlas": "../../evil", "suffix": "timeseries"}]}, "atlas: '../../evil'"),
    ({"entities": [{"atlas": "/tmp/evil", "suffix": "timeseries"}]}, "atlas: '/tmp/evil'"),
    ({"entities": [{"atlas": "A", "suffix": ".."}]}, "suffix: '..'"),
    ({"entities": [{"atlas": "A"}]}, "'suffix' is required"),
    ({"entities": [{"atlas": "A", "suffix": "timeseries", "space": "x"}]},
     r"unknown key\(s\) \['space'\].*accepted"),
    ({"entities": [{"atlas": "A", "suffix": "timeseries", "extension": ".npy"}]},
     "copied, not converted"),
    ({"entities": [{"suffix": "t"}, {"suffix": "t"}]}, "1 in_files"),
    ({"metadata": [{}, {}]}, "metadata: 2 dicts for 1 in_files"),
    ({"base_directory": "relative/out"}, "is relative"),
])
def test_write_derivatives_errors_write_nothing(fmriprep, tmp_path, changes, match):
    inputs = _inputs(fmriprep, tmp_path, **changes)
    before = _snapshot(fmriprep)
    with pytest.raises(Exception, match=match):
        _write(tmp_path, "bad", **inputs)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "work" / "bad" / "relative").exists()
    assert _snapshot(fmriprep) == before
    assert not [p for p in tmp_path.rglob("*.part")]


def test_write_derivatives_refuses_collisions_and_the_source_dataset(fmriprep, tmp_path):
    inputs = _inputs(fmriprep, tmp_path)
    two = [inputs["in_files"][0], str(_touch(tmp_path / "in" / "ts2.tsv"))]
    with pytest.raises(Exception, match="would both be written to"):
        _write(tmp_path, "dup", **{**inputs, "in_files": two,
                                   "entities": [{"atlas": "A", "suffix": "timeseries"}] * 2})
    before = _snapshot(fmriprep)
    with pytest.raises(Exception, match="is the dataset source_file comes from"):
        _write(tmp_path, "into_source", **{**inputs, "base_directory": str(fmriprep)})
    assert _snapshot(fmriprep) == before
    assert not (tmp_path / "out").exists()
