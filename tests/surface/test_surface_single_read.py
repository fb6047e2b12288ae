"""M10 for surface runs: a GIFTI pair or a CIFTI-2 run read once for every atlas.

SurfaceMasker (``all_vertices``, ``dtype='auto'``) and CiftiMasker write the run's matrix with
its description after the array; the region maskers that take it as ``masked_file`` must
give the bytes they give when they read the run itself (labels and maps, with cleaning,
confounds, censoring and a volume selection), and the run's digest(s) from the matrix. A
matrix that is not the run's (another run, cleaned, a selection, some vertices only, a
plain ``.npy``) is refused with one line; a workflow with two atlases decodes each run once.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nipype_maskers.workflows.surface import init_surface_timeseries_wf
from nipype_maskers.workflows.timeseries import LabelsAtlas, MapsAtlas
from surface.cifti_data import (
    layout,
    parcel_keys,
    save_dlabel,
    save_dscalar,
    save_dtseries,
    series,
)
from surface.gifti_data import make_labels, make_maps, make_pair_data, save_pair
from synthetic import run_in

from nipype_maskers.core.surface import cifti_maskers, gifti_series, gifti_stream
from nipype_maskers.interfaces.cifti import CiftiLabelsMasker, CiftiMapsMasker, CiftiMasker
from nipype_maskers.interfaces.surface import (
    SurfaceLabelsMasker,
    SurfaceMapsMasker,
    SurfaceMasker,
)

N_VOLUMES = 40
T_R = 2.0
#: The cleaning options every masker is compared with (nilearn's order: extract, clean).
CLEANINGS = {
    "none": {},
    "filters": {"detrend": True, "standardize": "zscore_sample", "high_pass": 0.01,
                "low_pass": 0.2},
    "confounds": {"standardize": "zscore_sample", "confounds": True, "censor": True},
    "censored_nan": {"detrend": True, "confounds": True, "censor": True, "censored": "nan"},
    "selection": {"volumes": "3:37", "detrend": True, "dtype": "float64"},
}


def _bytes(path) -> bytes:
    return Path(path).read_bytes()


def _cleaning(name: str, tables: dict[str, str]) -> dict:
    """The interface inputs of CLEANINGS[name] (confounds and censoring: the run's files)."""
    options = dict(CLEANINGS[name])
    if options.pop("confounds", False):
        options["confounds_file"] = tables["confounds"]
    if options.pop("censor", False):
        options["sample_mask_file"] = tables["sample_mask"]
    return options


@pytest.fixture
def tables(tmp_path) -> dict[str, str]:
    """A confounds table (two regressors) and a sample mask that censors four volumes."""
    rng = np.random.default_rng(11)
    confounds = tmp_path / "confounds.tsv"
    values = rng.normal(size=(N_VOLUMES, 2))
    confounds.write_text("a\tb\n" + "".join(f"{x:.6f}\t{y:.6f}\n" for x, y in values))
    kept = [i for i in range(N_VOLUMES) if i not in (4, 5, 17, 23)]
    sample_mask = tmp_path / "sample_mask.tsv"
    sample_mask.write_text("sample_mask\n" + "".join(f"{i}\n" for i in kept))
    return {"confounds": str(confounds), "sample_mask": str(sample_mask)}


@pytest.fixture
def gifti_run(tmp_path) -> dict:
    """A float32 pair (with a NaN and an inf: the region maskers count them as 0, the
    matrix must keep them), an int32 pair (read in float64: GIFTI has no float64), a labels
    pair and a maps pair."""
    folder = tmp_path / "gifti"
    folder.mkdir()
    left, right = make_pair_data(60, 50, N_VOLUMES)
    left[3, 7], right[10, 2] = np.nan, np.inf
    runs = {"f32": save_pair(folder, "space-fsaverage5", "bold.func.gii", left, right,
                             time_step=T_R)}
    other = folder / "i32"
    other.mkdir()
    runs["i32"] = save_pair(other, "space-fsaverage5", "bold.func.gii",
                            *(np.round(part * 1000).astype(np.int32)
                              for part in make_pair_data(60, 50, N_VOLUMES, seed=3)),
                            time_step=T_R)
    labels = save_pair(folder, "atlas-Toy", "dseg.label.gii", *make_labels(60, 50),
                       intent="NIFTI_INTENT_LABEL")
    maps = save_pair(folder, "atlas-Blobs", "probseg.func.gii", *make_maps(60, 50, 3))
    return {**runs, "labels": labels, "maps": maps}


@pytest.fixture
def cifti_run(tmp_path) -> dict:
    """A float32 dtseries (all-zero and non-finite grayordinates: XCP-D's rule), another
    run, a dlabel and a dscalar."""
    folder = tmp_path / "cifti"
    folder.mkdir()
    axis = layout()
    data = series(N_VOLUMES, len(axis))
    data[:, [3, 4, 40]] = 0
    data[5, 7], data[2, 150] = np.nan, np.inf
    bold = save_dtseries(folder / "sub-01_task-rest_space-fsLR_den-91k_bold.dtseries.nii",
                         data, axis, step=T_R)
    other = save_dtseries(folder / "sub-02_task-rest_space-fsLR_den-91k_bold.dtseries.nii",
                          series(N_VOLUMES, len(axis), seed=4), axis, step=T_R)
    dlabel = save_dlabel(folder / "atlas-Toy_dseg.dlabel.nii", parcel_keys(axis, 7), axis)
    rng = np.random.default_rng(6)
    maps = rng.random((3, len(axis))) * (rng.random((3, len(axis))) < 0.4)
    dscalar = save_dscalar(folder / "atlas-Blobs_probseg.dscalar.nii", maps, axis)
    return {"bold": str(bold), "other": str(other), "labels": str(dlabel),
            "maps": str(dscalar), "data": data}


def _gifti_read(bold, folder: Path):
    return run_in(SurfaceMasker(in_file=bold, all_vertices=True, dtype="auto"), folder)


def _assert_same_outputs(direct, shared, digest) -> None:
    assert _bytes(shared.out_file) == _bytes(direct.out_file)
    assert _bytes(shared.regions_file) == _bytes(direct.regions_file)
    assert shared.volumes == direct.volumes and shared.t_r == direct.t_r
    assert shared.t_r_source == direct.t_r_source
    # the run's digest comes from the read that made the matrix
    assert shared.in_file_sha256 == direct.in_file_sha256 == digest


# ------------------------------------------------------------------ the matrices


def test_surface_masker_writes_the_pair_as_it_is(gifti_run, tmp_path):
    """Every vertex, NaN and inf kept, in the pair's precision; a plain .npy for numpy;
    nilearn's computed mask without all_vertices (those vertices dropped, as before)."""
    left, right = (np.stack([d.data for d in nib.load(p).darrays], axis=1)
                   for p in gifti_run["f32"])
    read = _gifti_read(gifti_run["f32"], tmp_path / "read")
    matrix = np.load(read.out_file)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, np.vstack([left, right]).T)
    assert len(read.in_file_sha256) == 2
    wide = _gifti_read(gifti_run["i32"], tmp_path / "wide")
    assert np.load(wide.out_file).dtype == np.float64
    nilearn = run_in(SurfaceMasker(in_file=gifti_run["f32"]), tmp_path / "nilearn")
    assert np.load(nilearn.out_file).shape == (N_VOLUMES, left.shape[0] + right.shape[0] - 2)
    with pytest.raises(ValueError, match="mask_file: given with all_vertices"):
        run_in(SurfaceMasker(in_file=gifti_run["f32"], all_vertices=True,
                           mask_file=nilearn.mask_file), tmp_path / "both")


def test_cifti_masker_writes_every_grayordinate(cifti_run, tmp_path):
    read = run_in(CiftiMasker(in_file=cifti_run["bold"]), tmp_path / "read")
    assert read.out_file.endswith("sub-01_task-rest_space-fsLR_den-91k_signals.npy")
    matrix = np.load(read.out_file)
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous
    np.testing.assert_array_equal(matrix, cifti_run["data"])
    direct = run_in(CiftiLabelsMasker(in_file=cifti_run["bold"],
                                    labels_file=cifti_run["labels"]), tmp_path / "labels")
    assert read.in_file_sha256 == direct.in_file_sha256  # hashed from its own read


# ------------------------------------------------------------------ bit for bit


@pytest.mark.parametrize("cleaning", sorted(CLEANINGS))
@pytest.mark.parametrize("run", ["f32", "i32"])
def test_gifti_maskers_give_the_same_bytes_from_the_matrix(gifti_run, tables, tmp_path,
                                                           cleaning, run):
    bold = gifti_run[run]
    read = _gifti_read(bold, tmp_path / "read")
    options = _cleaning(cleaning, tables)
    for interface, atlas in ((SurfaceLabelsMasker, {"labels_file": gifti_run["labels"]}),
                             (SurfaceMapsMasker, {"maps_file": gifti_run["maps"]})):
        common = {"in_file": bold, **atlas, **options}
        direct = run_in(interface(**common), tmp_path / f"direct_{interface.__name__}")
        shared = run_in(interface(masked_file=read.out_file, **common),
                      tmp_path / f"shared_{interface.__name__}")
        _assert_same_outputs(direct, shared, read.in_file_sha256)


def test_gifti_maskers_with_a_vertex_mask_and_a_strategy(gifti_run, tmp_path):
    """mask_file and min_coverage apply to the matrix's vertices as to the pair's."""
    bold = gifti_run["f32"]
    read = _gifti_read(bold, tmp_path / "read")
    masks = run_in(SurfaceMasker(in_file=bold), tmp_path / "mask").mask_file  # finite vertices
    common = {"in_file": bold, "labels_file": gifti_run["labels"], "mask_file": masks,
              "strategy": "median", "min_coverage": 0.5}
    direct = run_in(SurfaceLabelsMasker(**common), tmp_path / "direct")
    shared = run_in(SurfaceLabelsMasker(masked_file=read.out_file, **common), tmp_path / "shared")
    _assert_same_outputs(direct, shared, read.in_file_sha256)


@pytest.mark.parametrize("cleaning", sorted(CLEANINGS))
def test_cifti_maskers_give_the_same_bytes_from_the_matrix(cifti_run, tables, tmp_path,
                                                           cleaning):
    bold = cifti_run["bold"]
    read = run_in(CiftiMasker(in_file=bold), tmp_path / "read")
    options = _cleaning(cleaning, tables)
    for interface, atlas in ((CiftiLabelsMasker, {"labels_file": cifti_run["labels"],
                                                  "write_ptseries": True}),
                             (CiftiMapsMasker, {"maps_file": cifti_run["maps"]})):
        common = {"in_file": bold, **atlas, **options}
        direct = run_in(interface(**common), tmp_path / f"direct_{interface.__name__}")
        shared = run_in(interface(masked_file=read.out_file, **common),
                      tmp_path / f"shared_{interface.__name__}")
        _assert_same_outputs(direct, shared, read.in_file_sha256)
        if interface is CiftiLabelsMasker:
            assert _bytes(shared.ptseries_file) == _bytes(direct.ptseries_file)


def test_cifti_integer_run_comes_back_in_its_own_dtype(cifti_run, tmp_path):
    """An int16 dtseries: the matrix holds float64 (exact), the maskers get int16 back."""
    axis = nib.load(cifti_run["bold"]).header.get_axis(1)
    data = np.round(series(N_VOLUMES, len(axis), seed=9) / 10).astype(np.int16)
    bold = str(save_dtseries(tmp_path / "sub-03_task-rest_bold.dtseries.nii", data, axis))
    read = run_in(CiftiMasker(in_file=bold), tmp_path / "read")
    assert np.load(read.out_file).dtype == np.float64
    common = {"in_file": bold, "maps_file": cifti_run["maps"], "detrend": True}
    direct = run_in(CiftiMapsMasker(**common), tmp_path / "direct")
    shared = run_in(CiftiMapsMasker(masked_file=read.out_file, **common), tmp_path / "shared")
    _assert_same_outputs(direct, shared, read.in_file_sha256)


# ------------------------------------------------------------------ refusals


def test_a_matrix_that_is_not_the_pair_is_refused(gifti_run, tmp_path):
    bold = gifti_run["f32"]
    read = _gifti_read(bold, tmp_path / "read")

    def refused(match, **inputs):
        inputs = {"in_file": bold, "labels_file": gifti_run["labels"],
                  "masked_file": read.out_file, **inputs}
        with pytest.raises(ValueError, match=match):
            run_in(SurfaceLabelsMasker(**inputs), tmp_path / "refused")

    refused("masked_file: read from .*hemi-L.*not from in_file", in_file=gifti_run["i32"])
    refused("masked_file: read from", in_file=list(reversed(bold)))
    cleaned = run_in(SurfaceMasker(in_file=bold, all_vertices=True, detrend=True),
                   tmp_path / "cleaned")
    refused("masked_file: cleaned rows", masked_file=cleaned.out_file)
    some = run_in(SurfaceMasker(in_file=bold, all_vertices=True, volumes="0:5"),
                tmp_path / "some")
    refused("masked_file: a selection of volumes", masked_file=some.out_file)
    computed = run_in(SurfaceMasker(in_file=bold), tmp_path / "computed")  # NaN vertices out
    refused(r"masked_file: 108 of the pair's 110 vertices .*all_vertices=True",
            masked_file=computed.out_file)
    narrow = run_in(SurfaceMasker(in_file=gifti_run["i32"], all_vertices=True),
                  tmp_path / "narrow")  # float32 of an int32 pair (read in float64)
    refused(r"masked_file: float32 values, in_file holds float64; .*dtype='auto'",
            in_file=gifti_run["i32"], masked_file=narrow.out_file)
    plain = tmp_path / "plain.npy"
    np.save(plain, np.load(read.out_file))
    refused("a .npy without SurfaceMasker's description", masked_file=str(plain))


def test_a_matrix_that_is_not_the_cifti_run_is_refused(cifti_run, gifti_run, tmp_path):
    bold = cifti_run["bold"]
    read = run_in(CiftiMasker(in_file=bold), tmp_path / "read")

    def refused(match, **inputs):
        inputs = {"in_file": bold, "labels_file": cifti_run["labels"],
                  "masked_file": read.out_file, **inputs}
        with pytest.raises(ValueError, match=match):
            run_in(CiftiLabelsMasker(**inputs), tmp_path / "refused")

    refused("masked_file: read from sub-01.*not from in_file sub-02.*rerun its CiftiMasker",
            in_file=cifti_run["other"])
    pair = _gifti_read(gifti_run["f32"], tmp_path / "pair")
    refused("masked_file: read from .*hemi-L", masked_file=pair.out_file)
    plain = tmp_path / "plain.npy"
    np.save(plain, cifti_run["data"])
    refused("a .npy without CiftiMasker's description", masked_file=str(plain))
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(_bytes(read.out_file)[:200])
    refused("masked_file .*truncated", masked_file=str(truncated))


# ------------------------------------------------------------------ the workflow


def _run_workflow(workflow, base_dir: Path):
    workflow.base_dir = str(base_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return workflow.run(plugin="Linear")


def _outputs(graph) -> dict[str, bytes]:
    """The bytes of each atlas' time series and regions tables, by file name."""
    files = [path for node in graph.nodes() if node.name in ("merge_timeseries",
                                                            "merge_regions")
             for path in node.result.outputs.out]
    return {Path(path).name: _bytes(path) for path in files}


def _count(monkeypatch, module, name: str) -> list:
    """Record every call of ``module.name`` (the calls' first argument)."""
    calls, original = [], getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args[0] if args else None)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize("kind", ["gifti", "cifti"])
def test_the_workflow_reads_each_run_once(gifti_run, cifti_run, tables, tmp_path,
                                          monkeypatch, kind):
    """Two atlases: read_bold reads (decodes, hashes) the run once and both branches read
    its matrix, with the same bytes as the branches that read the run each."""
    if kind == "gifti":
        bold = gifti_run["f32"]
        labels, maps = gifti_run["labels"], gifti_run["maps"]
    else:
        bold, labels, maps = cifti_run["bold"], cifti_run["labels"], cifti_run["maps"]
    # opening a file decodes its first arrays only (these arrays are small: ~1 per 512 B)
    monkeypatch.setattr(gifti_stream, "_FIRST_CHUNK", 512)
    outputs = {}
    # the default reads a GIFTI pair once with two atlases; a CIFTI run (uncompressed,
    # its header parsed by every branch anyway) only when asked
    once = None if kind == "gifti" else True
    for read_once in (once, False):
        arrays = _count(monkeypatch, gifti_series._Hemisphere, "arrays")
        decoded = _count(monkeypatch, gifti_stream.GiftiStream, "_decode")
        cifti_reads = _count(monkeypatch, cifti_maskers, "series_data")
        workflow = init_surface_timeseries_wf(
            kind=kind, labels=[LabelsAtlas("Toy", labels)], maps=[MapsAtlas("Blobs", maps)],
            clean_args={"detrend": True, "standardize": "zscore_sample"},
            bold_file=bold, read_once=read_once, name=f"surface_{read_once}")
        assert ("read_bold" in workflow.list_node_names()) is (read_once is not False)
        workflow.inputs.inputnode.bold_file = bold
        workflow.inputs.inputnode.regressors_file = tables["confounds"]
        workflow.inputs.inputnode.sample_mask_file = tables["sample_mask"]
        outputs[read_once] = _outputs(_run_workflow(workflow, tmp_path / f"work{read_once}"))
        if kind == "gifti":
            # the volumes of each hemisphere handed out once (read_bold) or per branch; the
            # branches that take the matrix decode their files' first arrays only
            assert len(arrays) == 2 * (1 if read_once is not False else 2)
            if read_once is not False:
                assert len(decoded) == 2 * N_VOLUMES + 2 * 2  # + each file's first array
            else:
                assert len(decoded) == 2 * 2 * N_VOLUMES
        else:
            assert len(cifti_reads) == (1 if read_once is not False else 2)
    assert len(outputs[once]) == 4
    assert outputs[once] == outputs[False]
    default = init_surface_timeseries_wf(kind=kind, labels=[LabelsAtlas("Toy", labels)],
                                         maps=[MapsAtlas("Blobs", maps)], bold_file=bold)
    assert ("read_bold" in default.list_node_names()) is (kind == "gifti")


def test_the_surface_maskers_workflow_reads_once_for_the_qc_too(gifti_run, tmp_path):
    """init_surface_maskers_wf: read_bold feeds the atlases and the QC's uncleaned signals
    (which need the confounds); its sidecars' digests still come from the first masker
    (from the matrix)."""
    from nipype_maskers.workflows.surface import init_surface_maskers_wf

    atlas = LabelsAtlas("Toy", gifti_run["labels"])
    common = {"kind": "gifti", "labels": [atlas], "write_derivatives": False,
              "bold_file": gifti_run["f32"]}
    one = init_surface_maskers_wf(denoise_strategy=None, **common)
    assert "read_bold" not in one.list_node_names()
    # no confounds: no QC, the raw signals are not read
    no_qc = init_surface_maskers_wf(denoise_strategy=None, connectivity=["correlation"],
                                    **common)
    assert "read_bold" not in no_qc.list_node_names()
    qc = init_surface_maskers_wf(connectivity=["correlation"], **common)
    read_bold, raw = qc.get_node("read_bold"), qc.get_node("raw_labels_Toy")
    assert qc._graph.get_edge_data(read_bold, raw)["connect"] == [("out_file", "masked_file")]
    two = init_surface_maskers_wf(denoise_strategy=None,
                                  maps=[MapsAtlas("Blobs", gifti_run["maps"])], **common)
    assert "read_bold" in two.list_node_names()
    assert "read_bold" not in two.get_node("surface_timeseries_wf").list_node_names()
    two.inputs.inputnode.bold_file = gifti_run["f32"]
    graph = _run_workflow(two, tmp_path / "work")
    nodes = {node.name: node for node in graph.nodes()}
    digests = [hashlib.sha256(_bytes(path)).hexdigest() for path in gifti_run["f32"]]
    assert nodes["labels_Toy"].result.outputs.in_file_sha256 == digests
    metadata = nodes["sidecar_metadata"].result.outputs.metadata
    assert digests[0] in str(metadata) and digests[1] in str(metadata)
