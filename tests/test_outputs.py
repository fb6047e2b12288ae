"""The derivatives a run writes: scoped replacement, the denoised BOLD's standardization,
censored volumes dropped or kept as NaN, and the BOLD's hash taken while it is streamed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nipype.pipeline import engine as pe
from synthetic import make_epi, oblique_affine, write_fmriprep_tree

from nipype_maskers.cli import main
from nipype_maskers.cli.parser import build_parsers, processing_options
from nipype_maskers.core.io import hashing, images, volumes
from nipype_maskers.core.signal.censoring import (
    kept_positions,
    reinsert_censored,
    with_censored,
)
from nipype_maskers.interfaces import bids as bids_interfaces
from nipype_maskers.interfaces.bids import WriteDerivatives, output_configuration
from nipype_maskers.interfaces.cleaning import CleanImage
from nipype_maskers.interfaces.regions import NiftiLabelsMasker

MNI = "MNI152NLin2009cAsym"
STEM = f"sub-01_task-rest_space-{MNI}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


# --------------------------------------------------------------------------------------------
# 6. A rerun replaces the outputs of the same run and the same configuration, nothing else
# --------------------------------------------------------------------------------------------
@pytest.fixture
def bold(tmp_path) -> Path:
    path = tmp_path / "fmriprep" / "sub-01" / "func" / f"{STEM}_desc-preproc_bold.nii.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"bold")
    return path


def _write(tmp_path: Path, name: str, bold: Path, outputs: dict[str, dict]):
    """One WriteDerivatives run: {content: entities} for one source run."""
    files = []
    for index, content in enumerate(outputs):
        extension = outputs[content].get("extension", ".tsv")
        path = tmp_path / "in" / name / f"file{index}{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        files.append(str(path))
    node = pe.Node(WriteDerivatives(base_directory=str(tmp_path / "out"), source_file=str(bold),
                                    in_files=files, entities=list(outputs.values())),
                   name=name, base_dir=str(tmp_path / "work"))
    return node.run().outputs


def test_output_configuration_is_the_atlas_or_the_desc_and_suffix():
    assert output_configuration(f"{STEM}_atlas-A_timeseries.tsv") == ("atlas", "A", "")
    assert output_configuration(f"{STEM}_atlas-A_regions.json") == ("atlas", "A", "")
    assert output_configuration(f"{STEM}_atlas-A_desc-x_timeseries.tsv") == ("atlas", "A", "")
    assert output_configuration(f"{STEM}_desc-denoised_bold.nii.gz") == (
        "output", "denoised", "bold")
    assert output_configuration(f"{STEM}_desc-denoised_bold.json") == (
        "output", "denoised", "bold")
    assert output_configuration(f"{STEM}_desc-confounds_timeseries.tsv") == (
        "output", "confounds", "timeseries")
    assert output_configuration(f"{STEM}_report.html") == ("output", "", "report")
    assert output_configuration("README.md") is None


def test_another_atlas_into_the_same_folder_leaves_the_first_untouched(tmp_path, bold):
    out = tmp_path / "out"
    func = out / "sub-01" / "func"
    atlas_a = {f"{STEM}_atlas-A_timeseries.tsv", f"{STEM}_atlas-A_timeseries.json",
               f"{STEM}_atlas-A_regions.tsv", f"{STEM}_atlas-A_regions.json"}
    _write(tmp_path, "first", bold, {
        "a signals\n": {"atlas": "A", "suffix": "timeseries"},
        "a regions\n": {"atlas": "A", "suffix": "regions"},
        "confounds 1\n": {"desc": "confounds", "suffix": "timeseries"},
        "denoised 1\n": {"desc": "denoised", "suffix": "bold", "extension": ".nii.gz"},
    })
    first = {name: (func / name).read_bytes() for name in atlas_a}
    inodes = {name: (func / name).stat().st_ino for name in atlas_a}
    # a killed writer of atlas A left a temporary file; another invocation may be writing
    # atlas C right now
    leftover_a = func / f".{STEM}_atlas-A_timeseries.tsv.0123abcd.part"
    writing_c = func / f".{STEM}_atlas-C_timeseries.tsv.89abcdef.part"
    leftover_a.touch()
    writing_c.touch()

    # another invocation, atlas B (and the denoised BOLD and confounds, rewritten)
    _write(tmp_path, "second", bold, {
        "b signals\n": {"atlas": "B", "suffix": "timeseries"},
        "b regions\n": {"atlas": "B", "suffix": "regions"},
        "confounds 2\n": {"desc": "confounds", "suffix": "timeseries"},
        "denoised 2\n": {"desc": "denoised", "suffix": "bold", "extension": ".nii.gz"},
    })
    assert {name: (func / name).read_bytes() for name in atlas_a} == first
    assert {name: (func / name).stat().st_ino for name in atlas_a} == inodes
    assert (func / f"{STEM}_atlas-B_timeseries.tsv").read_text() == "b signals\n"
    assert (func / f"{STEM}_desc-denoised_bold.nii.gz").read_text() == "denoised 2\n"
    assert (func / f"{STEM}_desc-confounds_timeseries.tsv").read_text() == "confounds 2\n"
    assert leftover_a.exists() and writing_c.exists()  # neither is atlas B's

    # a rerun with atlas A after a change (it no longer has a regions table): A's outputs are
    # replaced as a whole, B's and the denoised BOLD are not touched
    others = {name: data for name, data in _files(out).items() if "atlas-A" not in name}
    _write(tmp_path, "third", bold, {"a signals, new\n": {"atlas": "A", "suffix": "timeseries"}})
    assert (func / f"{STEM}_atlas-A_timeseries.tsv").read_text() == "a signals, new\n"
    assert not (func / f"{STEM}_atlas-A_regions.tsv").exists()
    assert not (func / f"{STEM}_atlas-A_regions.json").exists()
    assert not leftover_a.exists()
    now = _files(out)
    assert {name: data for name, data in now.items() if "atlas-A" not in name} == others
    assert writing_c.exists()


# --------------------------------------------------------------------------------------------
# 8. The denoised BOLD is standardized only when asked; censored volumes dropped or NaN
# --------------------------------------------------------------------------------------------
def _options(*extra: str, tmp_path: Path) -> dict:
    atlas = tmp_path / "atlas-Toy_dseg.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.int16), np.eye(4)), atlas)
    args = build_parsers()["participant"].parse_args(
        ["in", "out", "participant", "--atlas", str(atlas), "--no-reports", *extra])
    return processing_options(args)


def test_denoised_bold_is_not_standardized_unless_asked(tmp_path):
    from nipype_maskers.workflows.base import init_maskers_wf

    options = _options(tmp_path=tmp_path)
    assert options["clean_args"]["standardize"] == "zscore_sample"  # the region signals'
    assert options["standardize_bold"] is None and options["censored"] == "drop"
    workflow = init_maskers_wf(output_dir=tmp_path / "out", bold_shape=(5, 5, 5, 40), **options)
    assert workflow.get_node("clean_image").inputs.standardize is None
    labels = workflow.get_node("timeseries_wf").get_node("labels_Toy")
    assert labels.inputs.standardize == "zscore_sample"

    options = _options("--standardize-bold", "psc", "--standardize", "none",
                       "--censored", "nan", tmp_path=tmp_path)
    workflow = init_maskers_wf(output_dir=tmp_path / "out", bold_shape=(5, 5, 5, 40), **options)
    clean_image = workflow.get_node("clean_image")
    assert clean_image.inputs.standardize == "psc" and clean_image.inputs.censored == "nan"
    labels = workflow.get_node("timeseries_wf").get_node("labels_Toy")
    assert labels.inputs.standardize is None and labels.inputs.censored == "nan"


def test_init_denoise_wf_has_its_own_standardize_bold():
    from nipype_maskers.workflows.denoise import init_denoise_wf

    clean_image = init_denoise_wf().get_node("clean_image")
    assert clean_image.inputs.standardize is None and clean_image.inputs.censored == "drop"
    clean_image = init_denoise_wf(standardize_bold="zscore", censored="nan",
                                  clean_args={"detrend": True}).get_node("clean_image")
    assert clean_image.inputs.standardize == "zscore" and clean_image.inputs.detrend
    assert clean_image.inputs.censored == "nan"
    with pytest.raises(ValueError, match="clean_args has standardize='zscore_sample'.*"
                                         "standardize_bold"):
        init_denoise_wf(clean_args={"standardize": "zscore_sample"})


def test_help_describes_standardize_bold_and_censored(capsys):
    with pytest.raises(SystemExit):
        build_parsers()["participant"].parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--standardize-bold {zscore_sample,zscore,psc,none}" in text
    assert "--censored {drop,nan}" in text
    assert "NaN volumes in the denoised BOLD" in text


def test_reinsert_censored_puts_kept_rows_back_at_their_positions():
    kept = np.array([[1.0, 10.0], [3.0, 30.0], [4.0, 40.0]], dtype=np.float32)
    out = reinsert_censored(kept, [1, 3, 4], 6)
    assert out.dtype == np.float32 and out.shape == (6, 2)
    np.testing.assert_array_equal(out[[1, 3, 4]], kept)
    assert np.isnan(out[[0, 2, 5]]).all()
    assert kept_positions([1, 3, 4], np.arange(6)).tolist() == [1, 3, 4]
    # a volume selection: output rows are the selected volumes (one selected twice)
    assert kept_positions([7, 9, 7], [7, 8, 9, 7]).tolist() == [0, 2, 3]
    assert list(with_censored(iter("ab"), [0, 2], 3, "-")) == ["a", "-", "b"]
    with pytest.raises(ValueError, match="positions: 2 positions for 3 kept rows"):
        reinsert_censored(kept, [1, 3], 6)
    with pytest.raises(ValueError, match=r"increasing positions in \[0, 5\]"):
        reinsert_censored(kept, [1, 3, 6], 6)
    with pytest.raises(ValueError, match="not, in order, the kept ones"):
        kept_positions([4, 1], np.arange(6))


@pytest.fixture
def run(tmp_path):
    data, brain = make_epi(n_volumes=24, seed=3)
    img = nib.Nifti1Image(data, oblique_affine())
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    bold = tmp_path / f"{STEM}_desc-preproc_bold.nii.gz"
    nib.save(img, bold)
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), oblique_affine()), mask)
    labels = np.zeros(brain.shape, np.int16)
    labels[2:8, 3:10, 2:8], labels[8:14, 3:10, 2:8] = 1, 5
    atlas = tmp_path / "atlas-Toy_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, oblique_affine()), atlas)
    return {"bold": bold, "mask": mask, "atlas": atlas, "brain": brain}


CENSORED = [0, 1, 9, 23]
KEPT = [i for i in range(24) if i not in CENSORED]
CLEANING = {"detrend": True, "standardize": "zscore_sample", "high_pass": 0.02,
            "sample_mask": KEPT}


def _rows(path: str) -> list[str]:
    return Path(path).read_text().splitlines()


def test_censored_nan_region_rows_are_n_a_and_kept_rows_equal_drop(run, tmp_path):
    results = {}
    for censored in ("drop", "nan"):
        node = pe.Node(NiftiLabelsMasker(in_file=str(run["bold"]), labels_file=str(run["atlas"]),
                                         censored=censored, **CLEANING),
                       name=f"labels_{censored}", base_dir=str(tmp_path / "work"))
        results[censored] = node.run().outputs
    dropped, kept_as_nan = _rows(results["drop"].out_file), _rows(results["nan"].out_file)
    assert len(dropped) == 1 + len(KEPT) and len(kept_as_nan) == 1 + 24
    assert kept_as_nan[0] == dropped[0] == "1\t5"
    assert [kept_as_nan[1 + i] for i in CENSORED] == ["n/a\tn/a"] * len(CENSORED)
    assert [kept_as_nan[1 + i] for i in KEPT] == dropped[1:]  # bit for bit (shortest repr)
    assert results["nan"].volumes == list(range(24))
    assert results["drop"].volumes == KEPT

    # with a volume selection, the rows are the selected volumes
    node = pe.Node(NiftiLabelsMasker(in_file=str(run["bold"]), labels_file=str(run["atlas"]),
                                     volumes="0:12", censored="nan", sample_mask=KEPT),
                   name="labels_selection", base_dir=str(tmp_path / "work"))
    selection = node.run().outputs
    rows = _rows(selection.out_file)[1:]
    assert len(rows) == 12 and selection.volumes == list(range(12))
    assert [i for i, row in enumerate(rows) if row == "n/a\tn/a"] == [0, 1, 9]


def test_censored_nan_bold_keeps_every_volume_and_kept_ones_equal_drop(run, tmp_path):
    results = {}
    for censored in ("drop", "nan"):
        node = pe.Node(CleanImage(in_file=str(run["bold"]), mask_file=str(run["mask"]),
                                  censored=censored, **CLEANING),
                       name=f"clean_{censored}", base_dir=str(tmp_path / "work"))
        results[censored] = node.run().outputs
    dropped = np.asanyarray(nib.load(results["drop"].out_file).dataobj)
    kept_as_nan = np.asanyarray(nib.load(results["nan"].out_file).dataobj)
    assert dropped.shape[3] == len(KEPT) and kept_as_nan.shape[3] == 24
    np.testing.assert_array_equal(kept_as_nan[..., KEPT], dropped)  # bit for bit
    brain = run["brain"]
    censored_volumes = kept_as_nan[..., CENSORED]
    assert np.isnan(censored_volumes[brain]).all()
    assert (censored_volumes[~brain] == 0).all()
    assert nib.load(results["nan"].out_file).header.get_zooms()[3] == 2.0


# --------------------------------------------------------------------------------------------
# 9. The BOLD's SHA-256, computed while it is streamed
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extension", [".nii.gz", ".nii"])
@pytest.mark.parametrize("gzip_module", ["isal", "zlib"])
@pytest.mark.parametrize("selection", [None, [3, 4], [11, 0, 5]])
def test_hash_reads_equals_the_sha256_of_the_file(tmp_path, monkeypatch, extension,
                                                  gzip_module, selection):
    if gzip_module == "zlib":
        monkeypatch.setattr(volumes, "_fast_gzip", None)
    elif volumes._fast_gzip is None:
        pytest.skip("ISA-L is not installed")
    data, _ = make_epi(n_volumes=12)
    path = tmp_path / f"bold{extension}"
    nib.save(nib.Nifti1Image(data, oblique_affine()), path)
    img = images.load_img(path)
    with hashing.hash_reads(path) as digest:
        for _ in volumes.iter_volumes(img, selection, n_threads=2):
            pass
    if selection is None:  # read to the end: the stream itself hashed every byte
        assert digest.hashed == path.stat().st_size
    assert digest.hexdigest() == _sha256(path)


def test_hash_reads_survives_seeks_back_and_forth_and_second_passes(tmp_path):
    path = tmp_path / "data.bin"
    content = np.random.default_rng(0).bytes(3_000_000)
    path.write_bytes(content)
    with hashing.hash_reads(path) as digest:
        with hashing.open_binary(path) as stream:
            stream.seek(1_000_000)  # skipped: hashed at the seek
            stream.read(10)
            stream.seek(5)  # back: read again, not hashed twice
            stream.read(100)
            stream.seek(-10, 2)
            stream.read()
        with hashing.open_binary(path) as second:  # a second pass
            second.read(2_000_000)
    assert digest.hashed == len(content)
    assert digest.hexdigest() == hashlib.sha256(content).hexdigest()
    with hashing.hash_reads(path) as unread:  # nothing streamed: read once at the end
        pass
    assert unread.hexdigest() == hashlib.sha256(content).hexdigest()
    assert isinstance(hashing.open_binary(path), type(open(path, "rb")))  # nobody watches


def test_interfaces_output_the_bold_sha256_of_their_own_read(run, tmp_path, monkeypatch):
    completed = []
    original = hashing.StreamDigest.hexdigest

    def spy(self):
        completed.append(Path(self.path).stat().st_size - self.hashed)
        return original(self)

    monkeypatch.setattr(hashing.StreamDigest, "hexdigest", spy)
    bold = str(run["bold"])
    clean = pe.Node(CleanImage(in_file=bold, mask_file=str(run["mask"]), detrend=True),
                    name="clean", base_dir=str(tmp_path / "work")).run().outputs
    labels = pe.Node(NiftiLabelsMasker(in_file=bold, labels_file=str(run["atlas"])),
                     name="labels", base_dir=str(tmp_path / "work")).run().outputs
    assert clean.in_file_sha256 == labels.in_file_sha256 == _sha256(run["bold"])
    assert completed == [0, 0]  # the streaming read hashed every byte: nothing read again


def test_write_derivatives_uses_the_given_source_sha256(tmp_path, bold, monkeypatch):
    def no_second_read(path, **kwargs):
        raise AssertionError(f"'{path}' read again to hash it")

    monkeypatch.setattr(bids_interfaces, "file_sha256", no_second_read)
    given = "ab" * 32
    tsv = tmp_path / "ts.tsv"
    tsv.write_text("1\n")
    inputs = {"base_directory": str(tmp_path / "out"), "source_file": str(bold),
              "in_files": [str(tsv)], "entities": [{"atlas": "A", "suffix": "timeseries"}]}
    result = pe.Node(WriteDerivatives(**inputs, source_sha256=given), name="given",
                     base_dir=str(tmp_path / "work")).run().outputs
    assert json.loads(Path(result.out_sidecars[0]).read_text())["SourceSHA256"] == given
    with pytest.raises(Exception, match="source_sha256: 'xyz' is not a SHA-256"):
        pe.Node(WriteDerivatives(**inputs, source_sha256="xyz"), name="bad",
                base_dir=str(tmp_path / "work")).run()


def test_workflow_passes_the_streamed_hash_to_the_sidecars(tmp_path):
    from nipype_maskers.workflows.base import init_maskers_wf
    from nipype_maskers.workflows.timeseries import LabelsAtlas

    atlas = tmp_path / "atlas-Toy_dseg.nii.gz"
    atlas.touch()
    for denoised_bold, reader in ((True, "clean_image"), (False, "timeseries_wf")):
        workflow = init_maskers_wf(output_dir=tmp_path / "out", bold_shape=(5, 5, 5, 40),
                                   labels=[LabelsAtlas("Toy", atlas)],
                                   denoised_bold=denoised_bold)
        edges = {(u.name, v.name): data["connect"] for u, v, data in
                 workflow._graph.edges(data=True)}
        field = "in_file_sha256" if denoised_bold else "labels_Toy.in_file_sha256"
        assert (field, "bold_sha256") in edges[reader, "sidecar_metadata"]
        assert (field, "source_sha256") in edges[reader, "write_derivatives"]


# --------------------------------------------------------------------------------------------
# The command line: the three together, end to end
# --------------------------------------------------------------------------------------------
def _with_non_steady_state(tree: Path) -> None:
    """Flag the first two volumes of every run as non-steady-state (always censored)."""
    for tsv in tree.rglob("*_desc-confounds_timeseries.tsv"):
        lines = tsv.read_text().splitlines()
        lines[0] += "\tnon_steady_state_outlier00\tnon_steady_state_outlier01"
        for row in range(1, len(lines)):
            lines[row] += f"\t{int(row == 1)}\t{int(row == 2)}"
        tsv.write_text("\n".join(lines) + "\n")


def test_cli_scoped_reruns_censored_nan_unstandardized_bold_and_bold_hash(tmp_path, capsys):
    write_fmriprep_tree(tmp_path / "fmriprep", subjects=("01",))
    _with_non_steady_state(tmp_path / "fmriprep")
    common = [str(tmp_path / "fmriprep"), str(tmp_path / "out"), "participant", "--no-reports",
              "--work-dir", str(tmp_path / "work"), "--nprocs", "2"]
    assert main([*common, "--atlas", str(tmp_path / "atlas-Toy_dseg.nii.gz"),
                 "--censored", "nan"]) == 0
    func = tmp_path / "out" / "sub-01" / "func"
    source = tmp_path / "fmriprep" / "sub-01" / "func" / f"{STEM}_desc-preproc_bold.nii.gz"

    rows = (func / f"{STEM}_atlas-Toy_timeseries.tsv").read_text().splitlines()
    assert len(rows) == 1 + 30 and rows[1:3] == ["n/a\tn/a\tn/a"] * 2
    assert "n/a" not in rows[3]
    sidecar = json.loads((func / f"{STEM}_atlas-Toy_timeseries.json").read_text())
    assert sidecar["CensoredVolumes"] == [0, 1]
    assert sidecar["CensoredVolumesHandling"].startswith("kept as n/a rows")
    assert sidecar["Standardize"] == "zscore_sample"
    assert sidecar["InputSHA256"][source.name] == _sha256(source)
    assert sidecar["SourceSHA256"] == _sha256(source)

    denoised = func / f"{STEM}_desc-denoised_bold.nii.gz"
    data = np.asanyarray(nib.load(denoised).dataobj)
    brain = np.asanyarray(nib.load(source.with_name(
        f"{STEM}_desc-brain_mask.nii.gz")).dataobj).astype(bool)
    assert data.shape[3] == 30 and np.isnan(data[brain][:, :2]).all()
    assert np.abs(data[brain][:, 2:].mean(axis=1)).min() > 100  # in the BOLD's units
    bold_sidecar = json.loads((func / f"{STEM}_desc-denoised_bold.json").read_text())
    assert bold_sidecar["Standardize"] is None
    assert bold_sidecar["CensoredVolumes"] == [0, 1]
    assert "NaN" in bold_sidecar["CensoredVolumesHandling"]
    assert bold_sidecar["InputSHA256"][source.name] == _sha256(source)

    toy = {name: data for name, data in _files(func).items() if "atlas-Toy" in name}
    assert len(toy) == 4
    # another atlas into the same folder, dropped censored volumes: Toy's files survive
    assert main([*common, "--seeds", str(tmp_path / "atlas-Balls_seeds.tsv"),
                 "--no-denoised-bold"]) == 0
    assert {name: data for name, data in _files(func).items() if "atlas-Toy" in name} == toy
    balls = (func / f"{STEM}_atlas-Balls_timeseries.tsv").read_text().splitlines()
    assert len(balls) == 1 + 28
    balls_sidecar = json.loads((func / f"{STEM}_atlas-Balls_timeseries.json").read_text())
    assert balls_sidecar["CensoredVolumes"] == [0, 1]
    assert balls_sidecar["CensoredVolumesHandling"].startswith("dropped")
    assert denoised.exists()
    capsys.readouterr()


@pytest.mark.parametrize("extension", [".nii.gz", ".nii"])
def test_closing_the_stream_closes_the_file_under_it(tmp_path, monkeypatch, extension):
    path = tmp_path / f"bold{extension}"
    nib.save(nib.Nifti1Image(make_epi(n_volumes=2)[0], oblique_affine()), path)
    opened = []
    monkeypatch.setattr(volumes, "open_binary",
                        lambda name: opened.append(hashing.open_binary(name)) or opened[-1])
    volumes._open_stream(str(path)).close()
    assert len(opened) == 1 and opened[0].closed
