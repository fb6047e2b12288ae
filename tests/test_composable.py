"""Each sub-workflow embedded in an fMRIPrep-style parent graph, run end to end.

The parent is what a NiPreps pipeline builds: its own inputnode carries fMRIPrep's outputs
(the preprocessed BOLD, its brain mask, the full confounds TSV), our workflows are wired to the
parent's nodes, and a parent Function node plays the sink and records what it got. What comes
through the parent must equal what the interfaces give when run directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from nipype_maskers.workflows.base import init_maskers_wf
from nipype_maskers.workflows.denoise import init_denoise_wf
from nipype_maskers.workflows.masking import init_mask_wf, init_voxel_signals_wf
from nipype_maskers.workflows.resources import estimate_mem_gb
from nipype_maskers.workflows.shape import DEFAULT_BOLD_SHAPE, resolve_bold_shape
from nipype_maskers.workflows.timeseries import LabelsAtlas, SpheresAtlas, init_timeseries_wf
from synthetic import write_fmriprep_tree

from nipype_maskers.interfaces.cleaning import CleanImage, LoadConfounds
from nipype_maskers.interfaces.masking import ComputeMask, NiftiMasker, Unmask
from nipype_maskers.interfaces.regions import NiftiLabelsMasker, NiftiSpheresMasker

STEM = "sub-01_task-rest_space-MNI152NLin2009cAsym"
#: the synthetic run's shape (write_fmriprep_tree)
RUN_SHAPE = (17, 19, 15, 30)


@pytest.fixture
def fmriprep(tmp_path):
    """One fMRIPrep run (BOLD, mask, confounds TSV) and the atlases next to the tree."""
    bold = write_fmriprep_tree(tmp_path / "fmriprep", subjects=("01",))[0]
    func = bold.parent
    return {
        "bold": bold,
        "mask": func / f"{STEM}_desc-brain_mask.nii.gz",
        "confounds": func / "sub-01_task-rest_desc-confounds_timeseries.tsv",
        "labels": LabelsAtlas("Toy", tmp_path / "atlas-Toy_dseg.nii.gz"),
        "spheres": SpheresAtlas("Balls", tmp_path / "atlas-Balls_seeds.tsv", 5.0),
        "root": tmp_path,
    }


def _parent(name: str, run: dict, sink_inputs: list[str]) -> tuple[pe.Workflow, pe.Node,
                                                                     pe.Node]:
    """A parent workflow: an inputnode holding fMRIPrep's outputs and a recording sink."""
    parent = pe.Workflow(name=name, base_dir=str(run["root"] / "work"))
    parent.config["execution"] = {"crashdump_dir": str(run["root"] / "crash"),
                                  "remove_unnecessary_outputs": False}
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["bold_file", "mask_file", "confounds_file"]), name="inputnode")
    inputnode.inputs.bold_file = str(run["bold"])
    inputnode.inputs.mask_file = str(run["mask"])
    inputnode.inputs.confounds_file = str(run["confounds"])
    # the sink returns what it was given (a Function node's output, read after the run)
    arguments = ", ".join(sink_inputs)
    keywords = ", ".join(f"{field}={field}" for field in sink_inputs)
    code = f"def sink({arguments}):\n    return dict({keywords})\n"
    sink = pe.Node(niu.Function(function=code, input_names=sink_inputs,
                                output_names=["received"]), name="sink")
    return parent, inputnode, sink


def _received(result, name: str = "sink") -> dict:
    node = next(node for node in result.nodes() if node.name == name)
    return node.result.outputs.received


def _direct(interface, folder: Path, monkeypatch):
    """Run an interface directly, in a folder of its own (interfaces write to the cwd)."""
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)
    return interface.run().outputs


def _data(path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def test_mask_and_voxel_signals_workflows_in_a_parent(fmriprep, monkeypatch):
    parent, inputnode, sink = _parent("parent_mask", fmriprep,
                                      ["mask_file", "signals_file", "unmasked_file"])
    mask_wf = init_mask_wf(mask_strategy="epi")
    voxels_wf = init_voxel_signals_wf(mask_strategy="epi")
    parent.connect([
        (inputnode, mask_wf, [("bold_file", "inputnode.in_file")]),
        (inputnode, voxels_wf, [("bold_file", "inputnode.in_file")]),
        (mask_wf, sink, [("outputnode.mask_file", "mask_file")]),
        (voxels_wf, sink, [("outputnode.signals_file", "signals_file"),
                           ("outputnode.unmasked_file", "unmasked_file")]),
    ])  # fmt:skip
    received = _received(parent.run(plugin="Linear"))

    direct = _direct(ComputeMask(in_file=str(fmriprep["bold"]), mask_strategy="epi"),
                     fmriprep["root"] / "direct", monkeypatch)
    mask = _data(received["mask_file"])
    assert mask.shape == RUN_SHAPE[:3] and 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(mask, _data(direct.mask_file))
    signals = _direct(NiftiMasker(in_file=str(fmriprep["bold"]), mask_file=direct.mask_file),
                      fmriprep["root"] / "direct", monkeypatch)
    through_parent = np.load(received["signals_file"])
    assert through_parent.shape == (RUN_SHAPE[3], int(mask.sum()))
    np.testing.assert_array_equal(through_parent, np.load(signals.out_file))
    unmasked = _direct(Unmask(in_file=signals.out_file, mask_file=direct.mask_file),
                       fmriprep["root"] / "direct", monkeypatch)
    np.testing.assert_array_equal(_data(received["unmasked_file"]), _data(unmasked.out_file))


def test_denoise_then_timeseries_in_a_parent(fmriprep, monkeypatch):
    """fMRIPrep's full confounds TSV goes to init_denoise_wf; its selected regressors go, by
    the same names, to init_timeseries_wf: the signals equal the maskers' direct output."""
    # the denoised BOLD is not standardized (standardize_bold=None), the region signals are
    clean_args = {"detrend": True}
    region_args = {**clean_args, "standardize": "zscore_sample"}
    parent, inputnode, sink = _parent(
        "parent_denoise", fmriprep,
        ["denoised_file", "regressors_file", "sample_mask_file", "timeseries_files",
         "regions_files", "atlas_names"])
    denoise_wf = init_denoise_wf(denoise_strategy="simple", clean_args=clean_args,
                                 bold_file=fmriprep["bold"])
    timeseries_wf = init_timeseries_wf(labels=[fmriprep["labels"]],
                                       spheres=[fmriprep["spheres"]], clean_args=region_args,
                                       bold_file=fmriprep["bold"])
    # the shape was read from the file's header: the estimates are the run's own
    assert denoise_wf.get_node("clean_image").mem_gb == pytest.approx(
        estimate_mem_gb("clean_image", RUN_SHAPE))
    parent.connect([
        (inputnode, denoise_wf, [("bold_file", "inputnode.bold_file"),
                                 ("mask_file", "inputnode.mask_file"),
                                 ("confounds_file", "inputnode.confounds_file")]),
        (inputnode, timeseries_wf, [("bold_file", "inputnode.bold_file"),
                                    ("mask_file", "inputnode.mask_file")]),
        (denoise_wf, timeseries_wf, [("outputnode.regressors_file", "inputnode.regressors_file"),
                                     ("outputnode.sample_mask_file",
                                      "inputnode.sample_mask_file")]),
        (denoise_wf, sink, [("outputnode.denoised_file", "denoised_file"),
                            ("outputnode.regressors_file", "regressors_file"),
                            ("outputnode.sample_mask_file", "sample_mask_file")]),
        (timeseries_wf, sink, [("outputnode.timeseries_files", "timeseries_files"),
                               ("outputnode.regions_files", "regions_files"),
                               ("outputnode.atlas_names", "atlas_names")]),
    ])  # fmt:skip
    received = _received(parent.run(plugin="Linear"))

    folder = fmriprep["root"] / "direct"
    selected = _direct(LoadConfounds(confounds_file=str(fmriprep["confounds"]),
                                     denoise_strategy="simple"), folder, monkeypatch)
    regressors = Path(received["regressors_file"]).read_text()
    assert regressors == Path(selected.out_file).read_text()
    assert "trans_x" in regressors.splitlines()[0]
    assert "global_signal" not in regressors  # selected, not fMRIPrep's whole table
    cleaning = {"mask_file": str(fmriprep["mask"]), "confounds_file": selected.out_file,
                "sample_mask_file": selected.sample_mask_file}
    denoised = _direct(CleanImage(in_file=str(fmriprep["bold"]), standardize=None,
                                  **clean_args, **cleaning), folder, monkeypatch)
    np.testing.assert_array_equal(_data(received["denoised_file"]), _data(denoised.out_file))
    assert received["atlas_names"] == ["Toy", "Balls"]
    labels = _direct(NiftiLabelsMasker(in_file=str(fmriprep["bold"]),
                                       labels_file=str(fmriprep["labels"].labels_file),
                                       **region_args, **cleaning), folder, monkeypatch)
    spheres = _direct(NiftiSpheresMasker(in_file=str(fmriprep["bold"]),
                                         seeds_file=str(fmriprep["spheres"].seeds_file),
                                         radius=5.0, **region_args, **cleaning), folder,
                                         monkeypatch)
    for through_parent, direct in zip(received["timeseries_files"],
                                      (labels.out_file, spheres.out_file), strict=True):
        text = Path(through_parent).read_text()
        assert text == Path(direct).read_text()
        assert len(text.splitlines()) == 1 + RUN_SHAPE[3]  # header + one row per volume
    for through_parent, direct in zip(received["regions_files"],
                                      (labels.regions_file, spheres.regions_file), strict=True):
        assert Path(through_parent).read_text() == Path(direct).read_text()
    # the regressors were used: without them the signals differ
    unregressed = _direct(NiftiLabelsMasker(in_file=str(fmriprep["bold"]),
                                            labels_file=str(fmriprep["labels"].labels_file),
                                            mask_file=str(fmriprep["mask"]), **region_args),
                          fmriprep["root"] / "unregressed", monkeypatch)
    assert Path(unregressed.out_file).read_text() != Path(labels.out_file).read_text()


def _bids_name(source_file: str, entities: dict) -> str:
    """The name a parent's sink gives: the source's entities minus desc, then ours (by hand,
    as an independent check of the names our own writer gives)."""
    stem = Path(source_file).name.split("_desc-")[0]
    added = "".join(f"_{key}-{entities[key]}" for key in ("atlas", "desc") if key in entities)
    return f"{stem}{added}_{entities['suffix']}{entities['extension']}"


def test_maskers_wf_hands_its_outputs_to_the_parents_sink(fmriprep, tmp_path):
    """write_derivatives=False: the outputnode carries each file, its entities and metadata;
    a parent sink writing them gets the same names, bytes and sidecar content as our own
    writer (write_derivatives=True) does."""
    options = {"labels": [fmriprep["labels"]], "spheres": [fmriprep["spheres"]],
               "denoise_strategy": "simple", "clean_args": {"detrend": True}}
    maskers_wf = init_maskers_wf(bold_file=fmriprep["bold"], write_derivatives=False,
                                 **options)
    names = maskers_wf.list_node_names()
    assert "write_derivatives" not in names and "sidecar_columns" in names
    expected = [
        {"desc": "confounds", "suffix": "timeseries", "extension": ".tsv"},
        {"desc": "denoised", "suffix": "bold", "extension": ".nii.gz"},
        {"atlas": "Toy", "suffix": "timeseries", "extension": ".tsv"},
        {"atlas": "Balls", "suffix": "timeseries", "extension": ".tsv"},
        {"atlas": "Toy", "suffix": "regions", "extension": ".tsv"},
        {"atlas": "Balls", "suffix": "regions", "extension": ".tsv"},
    ]
    # known when the workflow is built: a parent can create one sink per output from them
    entities = maskers_wf.get_node("outputnode").inputs.entities
    assert sorted(entities, key=str) == sorted(expected, key=str)
    assert maskers_wf.get_node("clean_image").mem_gb == pytest.approx(
        estimate_mem_gb("clean_image", RUN_SHAPE))
    assert maskers_wf.get_node("sidecar_metadata").inputs.n_volumes == RUN_SHAPE[3]

    parent, inputnode, sink = _parent("parent_maskers", fmriprep,
                                      ["source_file", "in_files", "entities", "meta_dicts"])
    parent.connect([
        (inputnode, maskers_wf, [("bold_file", "inputnode.bold_file"),
                                 ("mask_file", "inputnode.mask_file"),
                                 ("confounds_file", "inputnode.confounds_file")]),
        (inputnode, sink, [("bold_file", "source_file")]),
        (maskers_wf, sink, [("outputnode.out_files", "in_files"),
                            ("outputnode.entities", "entities"),
                            ("outputnode.metadata", "meta_dicts")]),
    ])  # fmt:skip
    received = _received(parent.run(plugin="Linear"))
    assert received["entities"] == entities
    assert len(received["in_files"]) == len(received["meta_dicts"]) == len(expected)

    ours = init_maskers_wf(bold_file=fmriprep["bold"], output_dir=tmp_path / "ours",
                           name="ours_wf", **options)
    assert set(ours.get_node("outputnode").inputs.copyable_trait_names()) == {"out_files"}
    ours.base_dir = str(tmp_path / "work")
    inputs = ours.get_node("inputnode").inputs
    inputs.bold_file, inputs.mask_file = str(fmriprep["bold"]), str(fmriprep["mask"])
    inputs.confounds_file = str(fmriprep["confounds"])
    ours.config["execution"] = {"crashdump_dir": str(tmp_path / "crash")}
    ours.run(plugin="Linear")
    written = tmp_path / "ours" / "sub-01" / "func"

    for in_file, wanted, meta in zip(received["in_files"], received["entities"],
                                     received["meta_dicts"], strict=True):
        name = _bids_name(received["source_file"], wanted)
        if name.endswith(".nii.gz"):  # two runs' gzip headers may differ (a time stamp)
            np.testing.assert_array_equal(_data(written / name), _data(in_file), err_msg=name)
        else:
            assert (written / name).read_bytes() == Path(in_file).read_bytes(), name
        sidecar = json.loads((written / name.replace(wanted["extension"], ".json")).read_text())
        meta = json.loads(json.dumps(meta))  # as JSON: tuples become lists
        assert {key: sidecar[key] for key in meta} == meta, name
        assert meta["Parameters"]["DenoiseStrategy"] == "simple"
        if wanted["suffix"] == "timeseries" and "atlas" in wanted:
            columns = Path(in_file).read_text().splitlines()[0].split("\t")
            # the column descriptions are expanded, as in our own sidecars
            assert "ColumnDescription" not in meta
            assert all("Description" in meta[column] for column in columns)


def test_bold_shape_comes_from_the_file_or_is_required(fmriprep, tmp_path):
    bold = fmriprep["bold"]
    assert resolve_bold_shape(bold_file=bold, owner="f") == RUN_SHAPE
    assert resolve_bold_shape(RUN_SHAPE, bold, owner="f") == RUN_SHAPE
    assert resolve_bold_shape(owner="f") == DEFAULT_BOLD_SHAPE
    timeseries_wf = init_timeseries_wf(labels=[fmriprep["labels"]], bold_file=bold)
    assert timeseries_wf.get_node("labels_Toy").mem_gb == pytest.approx(
        estimate_mem_gb("labels", RUN_SHAPE))
    # init_maskers_wf writes the censored volumes from the shape: no silent default
    with pytest.raises(ValueError, match="init_maskers_wf: give bold_file .* or bold_shape"):
        init_maskers_wf(output_dir=tmp_path, labels=[fmriprep["labels"]])
    with pytest.raises(ValueError, match=r"init_denoise_wf: bold_shape \(17, 19, 15, 40\) "
                                         r"disagrees with bold_file .* says \(17, 19, 15, 30\)"):
        init_denoise_wf(bold_shape=(17, 19, 15, 40), bold_file=bold)
    with pytest.raises(ValueError, match="init_timeseries_wf: bold_file '.*missing.nii.gz' "
                                         "is not a readable NIfTI image"):
        init_timeseries_wf(labels=[fmriprep["labels"]], bold_file=tmp_path / "missing.nii.gz")
    with pytest.raises(ValueError, match=r"init_denoise_wf: bold_shape \(17, 0\) is not the "
                                         r"shape of a run; expected \(x, y, z\)"):
        init_denoise_wf(bold_shape=(17, 0))
    with pytest.raises(ValueError, match="init_maskers_wf: output_dir is required"):
        init_maskers_wf(bold_file=bold, labels=[fmriprep["labels"]])


def test_unwritten_images_carry_the_spatial_reference_our_writer_adds(fmriprep, tmp_path):
    """write_derivatives=False: a parent's sink adds no SpatialReference, so the outputnode's
    metadata of an image carries the one WriteDerivatives would write (the run's template);
    a table gets none."""
    from nipype_maskers.workflows.outputs import _sidecar_ready

    from nipype_maskers.bids_dataset import spatial_reference

    maskers_wf = init_maskers_wf(bold_file=fmriprep["bold"], write_derivatives=False,
                                 labels=[fmriprep["labels"]], denoise_strategy="simple")
    ready = maskers_wf.get_node("sidecar_columns")
    wired = {(edge[0].name, field) for edge in maskers_wf._graph.in_edges(ready, data=True)
             for field in edge[2]["connect"]}
    assert ("inputnode", ("bold_file", "source_file")) in wired

    image = tmp_path / "x_desc-denoised_bold.nii.gz"
    table = tmp_path / "x_desc-confounds_timeseries.tsv"
    image.write_bytes(b"")
    table.write_text("a\n1\n")
    metadata = _sidecar_ready([str(image), str(table)], [{"Description": "d"}, {}],
                              str(fmriprep["bold"]))
    template = ("https://templateflow.s3.amazonaws.com/tpl-MNI152NLin2009cAsym/"
                "tpl-MNI152NLin2009cAsym_res-01_T1w.nii.gz")
    assert spatial_reference(fmriprep["bold"]) == template
    assert metadata == [{"SpatialReference": template, "Description": "d"}, {}]
