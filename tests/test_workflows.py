"""The workflow factories: graphs built and inspected (cheap), resources, and one real run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nipype_maskers.workflows.base import init_maskers_wf
from nipype_maskers.workflows.denoise import init_denoise_wf
from nipype_maskers.workflows.masking import init_mask_wf, init_voxel_signals_wf
from nipype_maskers.workflows.resources import estimate_mem_gb
from nipype_maskers.workflows.timeseries import (
    LabelsAtlas,
    MapsAtlas,
    SpheresAtlas,
    init_timeseries_wf,
)

from nipype_maskers.cli.execution import (
    default_omp_nthreads,
    request_resources,
    scheduler_args,
    thread_limits_per_node,
)

SHAPE = (97, 115, 97, 300)


@pytest.fixture
def atlases(tmp_path):
    """Atlas descriptions; graph building only checks that the files exist."""
    files = {}
    for name in ("atlas-Parcels_dseg.nii.gz", "atlas-Parcels_dseg.tsv", "maps.nii.gz",
                 "power.tsv"):
        files[name] = tmp_path / name
        files[name].touch()
    return {
        "labels": [LabelsAtlas("Parcels", files["atlas-Parcels_dseg.nii.gz"],
                               files["atlas-Parcels_dseg.tsv"])],
        "maps": [MapsAtlas("Maps", files["maps.nii.gz"], 16)],
        "spheres": [SpheresAtlas("Power", files["power.tsv"], 5.0)],
    }


def _edges(workflow):
    graph = workflow._graph
    return {(u.name, v.name) for u, v in graph.edges()}


def test_every_factory_has_input_and_output_nodes(atlases):
    for workflow in (init_mask_wf(), init_voxel_signals_wf(), init_denoise_wf(),
                     init_timeseries_wf(**atlases),
                     init_maskers_wf(output_dir=Path("/out"), bold_shape=SHAPE, **atlases)):
        names = workflow.list_node_names()
        assert any(n.endswith("inputnode") for n in names)
        assert any(n.endswith("outputnode") for n in names)


def test_timeseries_branches_run_in_parallel(atlases, tmp_path):
    workflow = init_timeseries_wf(**atlases, clean_args={"standardize": "zscore_sample"},
                                  smoothing_fwhm=6.0, bold_shape=SHAPE)
    branches = ["labels_Parcels", "maps_Maps", "spheres_Power"]
    edges = _edges(workflow)
    for branch in branches:
        # one read of the run for all (smoothed as the branches ask), then side by side
        assert {("inputnode", branch), ("read_bold", branch)} <= edges
        assert not any((other, branch) in edges for other in branches)
    assert workflow.get_node("read_bold").inputs.smoothing_fwhm == 6.0
    labels = workflow.get_node("labels_Parcels")
    assert labels.inputs.lut_file == str(tmp_path / "atlas-Parcels_dseg.tsv")
    assert labels.inputs.standardize == "zscore_sample"
    assert labels.inputs.smoothing_fwhm == 6.0
    assert workflow.get_node("spheres_Power").inputs.radius == 5.0


def test_full_workflow_graph_and_memory(atlases):
    workflow = init_maskers_wf(output_dir=Path("/out"), bold_shape=SHAPE, mask_strategy="epi",
                               **atlases)
    names = set(workflow.list_node_names())
    for expected in ("read_bold", "load_confounds", "clean_image", "write_derivatives",
                     "timeseries_wf.labels_Parcels"):
        assert expected in names
    clean = workflow.get_node("clean_image")
    assert clean.mem_gb == pytest.approx(estimate_mem_gb("clean_image", SHAPE))
    longer = init_maskers_wf(output_dir=Path("/out"), bold_shape=SHAPE[:3] + (1200,),
                             mask_strategy="epi", **atlases)
    assert longer.get_node("clean_image").mem_gb > 3 * clean.mem_gb > 1.0
    assert longer.get_node("timeseries_wf.labels_Parcels").mem_gb == pytest.approx(
        workflow.get_node("timeseries_wf.labels_Parcels").mem_gb)
    writes = workflow.get_node("write_derivatives").inputs.entities
    assert {e.get("atlas") for e in writes} >= {"Parcels", "Maps", "Power"}
    assert {"desc": "denoised", "suffix": "bold", "extension": ".nii.gz"} in writes


def test_fmriprep_mask_skips_the_mask_node(atlases):
    workflow = init_maskers_wf(output_dir=Path("/out"), bold_shape=SHAPE, **atlases)
    assert "compute_mask" not in workflow.list_node_names()
    # the run is still read once for every step, in fMRIPrep's mask
    assert ("inputnode", "read_bold") in _edges(workflow)
    read_bold = workflow.get_node("read_bold")
    fields = [c for _, _, data in workflow._graph.in_edges(read_bold, data=True)
              for c in data["connect"]]
    assert sorted(fields) == [("bold_file", "in_file"), ("mask_file", "mask_file")]


def test_cluster_requests_follow_the_estimates(atlases):
    workflow = init_maskers_wf(output_dir=Path("/out"), bold_shape=SHAPE, mask_strategy="epi",
                               **atlases)
    request_resources(workflow, "SLURM")
    clean = workflow.get_node("clean_image")
    megabytes = int(-(-clean.mem_gb * 1024 // 1))
    assert clean.plugin_args["sbatch_args"] == f"--mem={megabytes}M --cpus-per-task=1"
    # h_vmem caps virtual memory: the estimate plus the interpreter's mappings
    assert scheduler_args("SGE", 2.0) == {"qsub_args": "-l h_vmem=3072M"}
    assert scheduler_args("MultiProc", 2.0) == {}


def test_bookkeeping_nodes_claim_no_cpu_from_multiproc_but_one_from_a_cluster(atlases):
    """MultiProc runs them whenever their inputs exist, even with every slot busy; a job
    that a graph plugin submits for one still asks for a CPU."""
    workflow = init_maskers_wf(output_dir=Path("/out"), bold_shape=SHAPE, mask_strategy="epi",
                               **atlases)
    nodes = [workflow.get_node(name) for name in workflow.list_node_names()]
    bookkeeping = {node.name: node for node in nodes if node.run_without_submitting}
    assert {"merge_outputs", "sidecar_metadata", "merge_timeseries", "merge_regions"} <= set(
        bookkeeping)
    assert all(node.n_procs == 0 for node in bookkeeping.values())
    assert all(node.n_procs >= 1 for node in nodes if not node.run_without_submitting)
    request_resources(workflow, "SGEGraph")
    assert bookkeeping["merge_outputs"].plugin_args == {"qsub_args": "-l h_vmem=1088M"}
    request_resources(workflow, "SLURMGraph")
    assert "--cpus-per-task=1" in bookkeeping["sidecar_metadata"].plugin_args["sbatch_args"]


def test_omp_nthreads_reaches_every_heavy_node(atlases):
    workflow = init_maskers_wf(output_dir=Path("/out"), bold_shape=SHAPE, mask_strategy="epi",
                               omp_nthreads=3, **atlases)
    # the run's one read gets its CPUs; the four steps that read its matrix side by side
    # share them (3 // 4: one each)
    read_bold = workflow.get_node("read_bold")
    assert (read_bold.n_procs, read_bold.inputs.num_threads) == (3, 3)
    readers = ["clean_image", "timeseries_wf.labels_Parcels", "timeseries_wf.maps_Maps",
               "timeseries_wf.spheres_Power"]
    for name in readers:
        node = workflow.get_node(name)
        assert (node.n_procs, node.inputs.num_threads) == (1, 1), name
    wide = init_maskers_wf(output_dir=Path("/out"), bold_shape=SHAPE, mask_strategy="epi",
                           omp_nthreads=8, **atlases)
    assert [wide.get_node(name).n_procs for name in ["read_bold", *readers]] == [8, 2, 2, 2, 2]
    assert workflow.get_node("load_confounds").n_procs == 1
    request_resources(workflow, "SLURM")
    assert "--cpus-per-task=3" in read_bold.plugin_args["sbatch_args"]
    assert "--cpus-per-task=1" in workflow.get_node("clean_image").plugin_args["sbatch_args"]
    for factory in (init_mask_wf, init_voxel_signals_wf, init_denoise_wf):
        flat = factory(omp_nthreads=2)
        nodes = [flat.get_node(n) for n in flat.list_node_names()]
        assert any(getattr(n.inputs, "num_threads", None) == 2 and n.n_procs == 2
                   for n in nodes), factory.__name__


def test_thread_count_is_not_part_of_the_cache_key(atlases):
    def hashes(omp_nthreads):
        workflow = init_timeseries_wf(**atlases, omp_nthreads=omp_nthreads)
        node = workflow.get_node("labels_Parcels")
        node.inputs.in_file = str(atlases["labels"][0].labels_file)
        return node.inputs.get_hashval()[1]

    assert hashes(1) == hashes(4)


@pytest.mark.parametrize(("plugin", "nprocs", "runs", "expected"), [
    ("MultiProc", 2, 2, 1), ("MultiProc", 2, 1, 2), ("MultiProc", 8, 2, 4),
    ("MultiProc", 16, 1, 4), ("SLURM", 8, 1, 1), ("SGEGraph", 8, 1, 1),
])
def test_default_omp_nthreads_shares_the_processes(plugin, nprocs, runs, expected):
    assert default_omp_nthreads(plugin, nprocs=nprocs, n_runs=runs) == expected


def test_censoring_only_writes_no_confounds_file(atlases):
    workflow = init_maskers_wf(output_dir=Path("/out"), bold_shape=SHAPE, denoise_strategy=None,
                               confounds_args={"strategy": ["scrub"]}, **atlases)
    writes = workflow.get_node("write_derivatives").inputs.entities
    assert {"desc": "confounds", "suffix": "timeseries", "extension": ".tsv"} not in writes
    assert "load_confounds" in workflow.list_node_names()  # still censors
    with_motion = init_maskers_wf(output_dir=Path("/out"), bold_shape=SHAPE,
                                  denoise_strategy=None,
                                  confounds_args={"strategy": ["motion", "scrub"]}, **atlases)
    assert {"desc": "confounds", "suffix": "timeseries", "extension": ".tsv"} in \
        with_motion.get_node("write_derivatives").inputs.entities


def test_thread_limits_hold_blas_for_every_plugin(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(variable, raising=False)
    limiter = thread_limits_per_node(1)
    try:
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
        blas = [pool for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
        assert blas and all(pool["num_threads"] == 1 for pool in blas)
    finally:
        limiter.restore_original_limits()
