"""M10: one read per run. The masked matrix (NiftiMasker's ``out_file``) stands for the run.

Every step that takes it as ``masked_file`` must give the bytes it gives when it reads the
run itself; a matrix that is not the run's (another file, cleaned, a selection, another
smoothing or precision, a mask that does not cover the regions) is refused with one line; a
mask computed from the run costs one decompression; a workflow decompresses each run once.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nipype_maskers.workflows.base import init_maskers_wf
from nipype_maskers.workflows.timeseries import (
    LabelsAtlas,
    MapsAtlas,
    SpheresAtlas,
    init_timeseries_wf,
)
from synthetic import make_epi, oblique_affine, run_in, write_fmriprep_tree

from nipype_maskers.core.io import volumes as volume_io
from nipype_maskers.core.spatial.masking import compute_mask
from nipype_maskers.core.voxels import masker as voxel_masker
from nipype_maskers.interfaces.cleaning import CleanImage
from nipype_maskers.interfaces.io import read_masked_run
from nipype_maskers.interfaces.masking import NiftiMasker, Unmask
from nipype_maskers.interfaces.regions import (
    NiftiLabelsMasker,
    NiftiMapsMasker,
    NiftiSpheresMasker,
)

SEEDS = [(0.0, 4.0, 2.0), (-8.0, -6.0, 4.0), (9.0, 3.0, -4.0)]


def _bytes(path) -> bytes:
    return Path(path).read_bytes()


@pytest.fixture
def run_files(tmp_path):
    """A float32 .nii.gz run, an int16 scaled .nii.gz run, a float64 run; an atlas, maps."""
    affine = oblique_affine()
    data, brain = make_epi(n_volumes=24)
    paths = {}
    for name, array, slope in (("f32", data, None), ("i16", np.round(data), (0.5, 10.0)),
                               ("f64", data.astype(np.float64), None)):
        img = nib.Nifti1Image(array.astype(np.int16) if slope else array, affine)
        if slope:
            img.header.set_slope_inter(*slope)
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = 2.0
        paths[name] = tmp_path / f"sub-{name}_task-rest_bold.nii.gz"
        nib.save(img, paths[name])
    atlas = np.zeros(brain.shape, np.int16)
    atlas[brain] = 1 + (np.indices(brain.shape)[0][brain] * 4 // brain.shape[0])
    atlas[: brain.shape[0] // 2, :2] = 9  # a region partly outside the brain
    paths["atlas"] = tmp_path / "atlas-Quarters_dseg.nii.gz"
    nib.save(nib.Nifti1Image(atlas, affine), paths["atlas"])
    grid = np.indices(brain.shape).astype(float)
    maps = np.stack([np.exp(-((grid - np.reshape(c, (3, 1, 1, 1))) ** 2).sum(0) / 8)
                     for c in ((5, 6, 5), (11, 8, 6), (8, 12, 9))], axis=-1)
    paths["maps"] = tmp_path / "atlas-Blobs_probseg.nii.gz"
    nib.save(nib.Nifti1Image(maps.astype(np.float32), affine), paths["maps"])
    return paths


@pytest.mark.parametrize("kind", ["f32", "i16", "f64"])
@pytest.mark.parametrize("fwhm", [None, 5.0])
def test_every_step_gives_the_same_bytes_from_the_matrix(run_files, tmp_path, kind, fwhm):
    """Labels, maps, spheres and the denoised BOLD: the same files, bit for bit, whether they
    read the run or NiftiMasker's matrix of it (in a computed mask, smoothed or not)."""
    bold = run_files[kind]
    smooth = {} if fwhm is None else {"smoothing_fwhm": fwhm}
    read = run_in(NiftiMasker(in_file=str(bold), mask_strategy="epi", dtype="auto", **smooth),
                tmp_path / "read")
    clean = {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.2}
    steps = [
        (NiftiLabelsMasker, {"labels_file": str(run_files["atlas"]), **smooth, **clean}),
        (NiftiMapsMasker, {"maps_file": str(run_files["maps"]), **smooth, **clean}),
        (NiftiSpheresMasker, {"seeds": SEEDS, "radius": 6.0, **smooth, **clean}),
    ]
    if fwhm is None:
        steps.append((CleanImage, {"detrend": True}))
    for index, (interface, inputs) in enumerate(steps):
        common = {"in_file": str(bold), "mask_file": read.mask_file, **inputs}
        direct = run_in(interface(**common), tmp_path / f"direct{index}")
        shared = run_in(interface(masked_file=read.out_file, **common), tmp_path / f"shared{index}")
        assert _bytes(shared.out_file) == _bytes(direct.out_file), interface.__name__
        if hasattr(direct, "regions_file"):
            assert _bytes(shared.regions_file) == _bytes(direct.regions_file)
        # the run's digest comes from the read that made the matrix
        assert shared.in_file_sha256 == direct.in_file_sha256 == read.in_file_sha256


def test_the_matrix_is_a_plain_npy_for_numpy_and_unmask(run_files, tmp_path):
    read = run_in(NiftiMasker(in_file=str(run_files["f32"]), mask_strategy="epi"),
                tmp_path / "read")
    matrix = np.load(read.out_file)
    mask = np.asanyarray(nib.load(read.mask_file).dataobj) != 0
    assert matrix.shape == (24, int(mask.sum())) and matrix.dtype == np.float32
    data = nib.load(run_files["f32"]).get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(matrix, data[mask].T)
    back = run_in(Unmask(in_file=read.out_file, mask_file=read.mask_file), tmp_path / "unmask")
    np.testing.assert_array_equal(nib.load(back.out_file).get_fdata()[mask], data[mask])
    run, digest = read_masked_run(read.out_file, run_files["f32"])
    np.testing.assert_array_equal(run.take(np.arange(24)), matrix)
    np.testing.assert_array_equal(run.mask, mask)
    assert digest == read.in_file_sha256


def test_a_matrix_that_is_not_the_run_is_refused(run_files, tmp_path):
    bold, atlas = str(run_files["f32"]), str(run_files["atlas"])
    read = run_in(NiftiMasker(in_file=bold, mask_strategy="epi"), tmp_path / "read")

    def refused(match, **inputs):
        inputs = {"in_file": bold, "labels_file": atlas, "mask_file": read.mask_file,
                  "masked_file": read.out_file, **inputs}
        inputs = {key: value for key, value in inputs.items() if value is not None}
        with pytest.raises(ValueError, match=match):
            run_in(NiftiLabelsMasker(**inputs), tmp_path / "refused")

    refused("not from in_file", in_file=str(run_files["i16"]))
    refused(r"smoothing_fwhm: \[4.0, 4.0, 4.0\] mm, but masked_file was smoothed with none",
            smoothing_fwhm=4.0)
    refused("lie outside the mask of masked_file", mask_file=None)
    cleaned = run_in(NiftiMasker(in_file=bold, mask_file=read.mask_file, detrend=True),
                   tmp_path / "cleaned")
    refused("masked_file: cleaned rows", masked_file=cleaned.out_file)
    some = run_in(NiftiMasker(in_file=bold, mask_file=read.mask_file, volumes="0:5"),
                tmp_path / "some")
    refused("a selection of volumes", masked_file=some.out_file)
    plain = tmp_path / "plain.npy"
    np.save(plain, np.load(read.out_file))
    refused("without NiftiMasker's description", masked_file=str(plain))
    # float64 data read into float32: not what the maskers compute in
    wide = run_in(NiftiMasker(in_file=str(run_files["f64"]), mask_file=read.mask_file),
                tmp_path / "wide")
    with pytest.raises(Exception, match="expected NiftiMasker's dtype='auto' matrix"):
        run_in(NiftiLabelsMasker(in_file=str(run_files["f64"]), labels_file=atlas,
                               mask_file=read.mask_file, masked_file=wide.out_file),
             tmp_path / "refused64")
    # the data resampled onto the atlas's grid cannot come from the matrix
    fine = nib.load(atlas)
    fine_affine = fine.affine.copy()
    fine_affine[:3, :3] /= 2
    nib.save(nib.Nifti1Image(np.asanyarray(fine.dataobj), fine_affine),
             tmp_path / "atlas-Fine_dseg.nii.gz")
    refused("resampling_target='labels' resamples in_file's volumes",
            labels_file=str(tmp_path / "atlas-Fine_dseg.nii.gz"), resampling_target="labels")
    # touched since it was read: the matrix may not be the run any more
    os.utime(bold, ns=(0, os.stat(bold).st_mtime_ns + 10**9))
    refused("not from in_file")


def _count_volume_reads(monkeypatch) -> dict[str, int]:
    """Volumes decompressed, by file (every read of a volume's bytes goes through here)."""
    counts: dict[str, int] = {}
    original = volume_io.VolumeSource.read

    def read(self, step, slot=0):
        key = Path(getattr(self, "filename", "memory")).name
        counts[key] = counts.get(key, 0) + 1
        return original(self, step, slot)

    monkeypatch.setattr(volume_io.VolumeSource, "read", read)
    return counts


@pytest.mark.parametrize("strategy", ["epi", "background"])
def test_a_computed_mask_costs_one_decompression(run_files, monkeypatch, strategy):
    """The mean and the rows in one pass (plus the first volume once more, for the guess of
    where the mask will lie): the same mask and rows as computing the mask, then masking."""
    bold = run_files["i16"]
    two_passes = voxel_masker.mask_volumes(bold, compute_mask(bold, strategy))
    counts = _count_volume_reads(monkeypatch)
    once = voxel_masker.mask_volumes(bold, mask_strategy=strategy, smoothing_fwhm=None)
    assert counts == {bold.name: 24 + 1}
    np.testing.assert_array_equal(np.asanyarray(once.mask.dataobj),
                                  np.asanyarray(two_passes.mask.dataobj))
    np.testing.assert_array_equal(once.signals, two_passes.signals)


def test_a_wrong_guess_falls_back_to_a_second_pass(run_files, monkeypatch):
    bold = run_files["f32"]
    expected = voxel_masker.mask_volumes(bold, compute_mask(bold, "epi"), smoothing_fwhm=4.0)

    def tiny_guess(img, first, strategy, mask_args, *, name):
        guess = np.zeros(img.shape[:3], dtype=bool)
        guess[img.shape[0] // 2, img.shape[1] // 2, img.shape[2] // 2] = True
        return guess

    monkeypatch.setattr(voxel_masker, "_candidate_voxels", tiny_guess)
    counts = _count_volume_reads(monkeypatch)
    got = voxel_masker.mask_volumes(bold, mask_strategy="epi", smoothing_fwhm=4.0)
    assert counts == {bold.name: 2 * 24}
    np.testing.assert_array_equal(got.signals, expected.signals)


@pytest.fixture
def fmriprep_run(tmp_path, run_files):
    bold = write_fmriprep_tree(tmp_path / "fmriprep", subjects=("01",), n_volumes=20)[0]
    func = bold.parent
    stem = "sub-01_task-rest_space-MNI152NLin2009cAsym"
    img = nib.load(bold)
    shape = img.shape[:3]
    atlases = []
    for index in range(3):  # three labels atlases, cut along different axes
        atlas = (np.indices(shape)[index] * (3 + index) // shape[index] + 1).astype(np.int16)
        path = tmp_path / f"atlas-Cut{index}_dseg.nii.gz"
        nib.save(nib.Nifti1Image(atlas, img.affine), path)
        atlases.append(LabelsAtlas(f"Cut{index}", path))
    confounds = func / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    lines = confounds.read_text().splitlines()  # fMRIPrep's FD column, for the QC
    fd = ["n/a"] + [f"{0.05 + 0.01 * (i % 7):.3f}" for i in range(1, len(lines) - 1)]
    confounds.write_text("\n".join(f"{line}\t{value}" for line, value in
                                   zip(lines, ["framewise_displacement", *fd], strict=True))
                         + "\n")
    return {"bold": bold, "mask": func / f"{stem}_desc-brain_mask.nii.gz",
            "confounds": confounds,
            "labels": atlases, "shape": img.shape}


def _run_workflow(workflow, base_dir):
    workflow.base_dir = str(base_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return workflow.run(plugin="Linear")


@pytest.mark.parametrize("fwhm", [None, 4.0])
def test_the_workflow_decompresses_each_run_once(fmriprep_run, tmp_path, monkeypatch, fwhm):
    """Denoised BOLD + three atlases + the QC's raw signals + the report's summary from one
    read (with smoothing, the atlases' smoothed rows and the others' unsmoothed ones), with
    the same outputs as the branches that read the run each (compared byte for byte, the
    HTML report included)."""
    outputs = {}
    for read_once in (True, False):
        counts = _count_volume_reads(monkeypatch)
        workflow = init_maskers_wf(
            output_dir=tmp_path / f"out{read_once}", bold_shape=fmriprep_run["shape"],
            labels=fmriprep_run["labels"], clean_args={"standardize": "zscore_sample"},
            smoothing_fwhm=fwhm, connectivity=["correlation"], report=True,
            name="maskers_wf")
        if not read_once:  # the per-branch workflow of before: no read_bold, no masked_file
            workflow.remove_nodes([workflow.get_node("read_bold")])
        assert ("read_bold" in workflow.list_node_names()) is read_once
        workflow.inputs.inputnode.bold_file = str(fmriprep_run["bold"])
        workflow.inputs.inputnode.mask_file = str(fmriprep_run["mask"])
        workflow.inputs.inputnode.confounds_file = str(fmriprep_run["confounds"])
        _run_workflow(workflow, tmp_path / f"work{read_once}")
        reads = counts.get(fmriprep_run["bold"].name)
        # BOLD, 3 atlases, the QC's raw signals, the report's summary
        assert reads == (20 if read_once else 20 * 6)
        outputs[read_once] = {p.relative_to(tmp_path / f"out{read_once}"): p
                              for p in (tmp_path / f"out{read_once}").rglob("*")
                              if p.is_file() and p.suffix in (".tsv", ".gz", ".html")}
    assert outputs[True].keys() == outputs[False].keys()
    assert len(outputs[True]) >= 3 * 2 + 3
    for name, path in outputs[True].items():
        assert _bytes(path) == _bytes(outputs[False][name]), name


def test_a_changed_atlas_reruns_only_its_branch(fmriprep_run, tmp_path):
    atlases = fmriprep_run["labels"]

    def run():
        workflow = init_timeseries_wf(labels=atlases, bold_shape=fmriprep_run["shape"])
        workflow.inputs.inputnode.bold_file = str(fmriprep_run["bold"])
        workflow.inputs.inputnode.mask_file = str(fmriprep_run["mask"])
        _run_workflow(workflow, tmp_path / "work")
        folder = tmp_path / "work" / "timeseries_wf"
        return {name: (folder / name / "_report" / "report.rst").stat().st_mtime_ns
                for name in ("read_bold", "labels_Cut0", "labels_Cut1", "labels_Cut2")}

    before = run()
    atlas = nib.load(atlases[1].labels_file)
    changed = np.asanyarray(atlas.dataobj).copy()
    changed[changed == 1] = 7
    nib.save(nib.Nifti1Image(changed, atlas.affine), atlases[1].labels_file)
    after = run()
    rerun = {name for name in before if after[name] != before[name]}
    assert rerun == {"labels_Cut1"}


@pytest.mark.parametrize("given_mask", [True, False])
def test_the_rows_before_smoothing_come_from_the_same_read(run_files, tmp_path, monkeypatch,
                                                           given_mask):
    bold = str(run_files["i16"])
    plain = run_in(NiftiMasker(in_file=bold, mask_strategy="epi"), tmp_path / "plain")
    mask = {"mask_file": plain.mask_file} if given_mask else {"mask_strategy": "epi"}
    smooth = run_in(NiftiMasker(in_file=bold, smoothing_fwhm=5.0, **mask), tmp_path / "smooth")
    counts = _count_volume_reads(monkeypatch)
    both = run_in(NiftiMasker(in_file=bold, smoothing_fwhm=5.0, keep_unsmoothed=True, **mask),
                tmp_path / "both")
    assert counts == {Path(bold).name: 24 + (not given_mask)}  # + the guess's first volume
    np.testing.assert_array_equal(np.load(both.out_file), np.load(smooth.out_file))
    np.testing.assert_array_equal(np.load(both.unsmoothed_file), np.load(plain.out_file))
    run, _ = read_masked_run(both.unsmoothed_file, bold)
    assert run.smoothing_fwhm is None
    with pytest.raises(ValueError, match="keep_unsmoothed: the rows before smoothing are kept "
                                         "without cleaning"):
        run_in(NiftiMasker(in_file=bold, smoothing_fwhm=5.0, keep_unsmoothed=True, detrend=True,
                         **mask), tmp_path / "refused")


@pytest.mark.parametrize("kind", ["f32", "i16", "f64"])
def test_the_report_summary_comes_from_the_same_read(run_files, tmp_path, kind):
    """NiftiMasker's mean_file is the report's mean image, bit for bit; SummarizeBold given
    the matrix and that mean reads no volume and gives the same carpet."""
    from nipype_maskers.interfaces.reports import SummarizeBold

    bold = str(run_files[kind])
    read = run_in(NiftiMasker(in_file=bold, mask_strategy="epi", dtype="auto",
                              mean_image=True), tmp_path / "read")
    direct = run_in(SummarizeBold(in_file=bold, mask_file=read.mask_file), tmp_path / "direct")
    np.testing.assert_array_equal(nib.load(read.mean_file).get_fdata(dtype=np.float32),
                                  nib.load(direct.mean_file).get_fdata(dtype=np.float32))
    shared = run_in(SummarizeBold(in_file=bold, mask_file=read.mask_file,
                                  masked_file=read.out_file, mean_file=read.mean_file),
                    tmp_path / "shared")
    assert shared.mean_file == read.mean_file
    np.testing.assert_array_equal(np.load(shared.carpet_file), np.load(direct.carpet_file))
    smoothed = run_in(NiftiMasker(in_file=bold, mask_file=read.mask_file, smoothing_fwhm=4.0,
                                  dtype="auto"), tmp_path / "smoothed")
    with pytest.raises(ValueError, match="masked_file was smoothed"):
        run_in(SummarizeBold(in_file=bold, mask_file=read.mask_file,
                             masked_file=smoothed.out_file, mean_file=read.mean_file),
               tmp_path / "refused")
