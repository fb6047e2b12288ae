"""The per-run visual report: mask, atlases and signals, gathered in one HTML page."""

from __future__ import annotations

from collections.abc import Sequence

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from nipype_maskers.interfaces.reports import (
    AtlasReport,
    MaskReport,
    RunReport,
    SignalsReport,
    SummarizeBold,
    SurfaceSignalsReport,
)

from .nodes import bookkeeping_node
from .timeseries import LabelsAtlas, MapsAtlas, SpheresAtlas

#: Memory of a report node (GB): a run's mean, one 3D volume at a time, a figure; measured
#: peak 0.37 GB (process included) on a 300-volume MNI 2 mm run.
MEM_GB = 0.5
INPUT_FIELDS = ["bold_file", "mask_file", "mask_strategy", "regressors_file",
                "sample_mask_file", "fd_file", "timeseries_files", "regions_files",
                "parameters", "masked_file", "mean_file"]


def atlas_report_nodes(*, labels: Sequence[LabelsAtlas] = (), maps: Sequence[MapsAtlas] = (),
                       spheres: Sequence[SpheresAtlas] = ()) -> list[pe.Node]:
    """One AtlasReport node per atlas, in the order of ``init_timeseries_wf``'s outputs."""
    nodes = []
    for atlas in labels:
        nodes.append(pe.Node(AtlasReport(labels_file=str(atlas.labels_file),
                                         atlas_name=atlas.name),
                             name=f"report_labels_{atlas.name}", mem_gb=MEM_GB))
    for atlas in maps:
        nodes.append(pe.Node(AtlasReport(maps_file=str(atlas.maps_file), atlas_name=atlas.name),
                             name=f"report_maps_{atlas.name}", mem_gb=MEM_GB))
    for atlas in spheres:
        interface = AtlasReport(seeds_file=str(atlas.seeds_file), atlas_name=atlas.name)
        if atlas.radius:
            interface.inputs.radius = float(atlas.radius)
        nodes.append(pe.Node(interface, name=f"report_spheres_{atlas.name}", mem_gb=MEM_GB))
    return nodes


def init_report_wf(*, labels: Sequence[LabelsAtlas] = (), maps: Sequence[MapsAtlas] = (),
                   spheres: Sequence[SpheresAtlas] = (), connectivity: bool = False,
                   name: str = "report_wf") -> pe.Workflow:
    """The visual report of one run: ``..._report.html``, self-contained.

    The run is read once (``summarize_bold``: its mean image and sampled voxel time series);
    every reportlet works from that. Given the run's unsmoothed matrix and mean image from
    the workflow's own read (``masked_file``, ``mean_file``: NiftiMasker with
    ``mean_image``), ``summarize_bold`` reads no volume.

    Workflow Graph
        .. code-block:: text

            inputnode -> summarize_bold -> report_mask ----------------\\
                                        -> report_<kind>_<atlas> (+ table) -> merge_reportlets
                                        -> report_signals -------------/        -> run_report
                                                                                -> outputnode

    Parameters
    ----------
    labels, maps, spheres : sequences of LabelsAtlas, MapsAtlas, SpheresAtlas
        The atlases, as given to ``init_timeseries_wf`` (same order: their regions tables
        and time series are taken by position).
    connectivity : bool
        Also a connectivity section (:func:`add_connectivity_reportlet`): inputs
        ``matrix_files`` and ``qc_file``.
    name : str
        Workflow name.

    Inputs
    ------
    bold_file, mask_file
        The run and the mask used.
    masked_file, mean_file
        Optional, together: the run already read (unsmoothed, in ``mask_file``) and its mean.
    mask_strategy
        How the mask was made (written on the mask report); optional.
    regressors_file, sample_mask_file
        LoadConfounds' selected regressors and kept volumes (``init_denoise_wf``'s outputs of
        the same names); optional.
    fd_file
        A table with a ``framewise_displacement`` column (fMRIPrep's confounds TSV); optional.
    timeseries_files, regions_files
        ``init_timeseries_wf``'s outputs, one per atlas (needed when there are atlases).
    parameters
        The run's parameters (a dict), shown as a table.

    Outputs
    -------
    report_file
        The HTML report.
    """
    atlas_nodes = atlas_report_nodes(labels=labels, maps=maps, spheres=spheres)
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=INPUT_FIELDS + (CONNECTIVITY_FIELDS if connectivity else [])), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["report_file"]), name="outputnode")
    summarize = pe.Node(SummarizeBold(), name="summarize_bold", mem_gb=MEM_GB)
    report_mask = pe.Node(MaskReport(), name="report_mask", mem_gb=MEM_GB)
    report_signals = pe.Node(SignalsReport(raw_label="voxels (sampled)"),
                             name="report_signals", mem_gb=MEM_GB)
    if atlas_nodes:
        report_signals.inputs.cleaned_labels = (
            [f"labels {a.name}" for a in labels] + [f"maps {a.name}" for a in maps]
            + [f"spheres {a.name}" for a in spheres])
    n_reportlets = 2 + 2 * len(atlas_nodes)
    merge = bookkeeping_node(niu.Merge(n_reportlets + int(connectivity)), "merge_reportlets")
    if connectivity:
        add_connectivity_reportlet(workflow, inputnode, merge, n_reportlets + 1)
    run_report = pe.Node(RunReport(), name="run_report")
    workflow.connect([
        (inputnode, summarize, [("bold_file", "in_file"), ("mask_file", "mask_file"),
                                ("masked_file", "masked_file"), ("mean_file", "mean_file")]),
        (inputnode, report_mask, [("mask_file", "mask_file"),
                                  ("mask_strategy", "mask_strategy")]),
        (summarize, report_mask, [("mean_file", "in_file")]),
        (summarize, report_signals, [("carpet_file", "in_file"), ("t_r", "t_r")]),
        (inputnode, report_signals, [("regressors_file", "confounds_file"),
                                     ("sample_mask_file", "sample_mask_file"),
                                     ("fd_file", "fd_file")]),
        (report_mask, merge, [("out_report", "in1")]),
        (report_signals, merge, [("out_report", f"in{n_reportlets}")]),
        (merge, run_report, [("out", "reportlets")]),
        (inputnode, run_report, [("bold_file", "source_file"), ("parameters", "parameters")]),
        (run_report, outputnode, [("out_report", "report_file")]),
    ])  # fmt:skip
    if atlas_nodes:
        workflow.connect(inputnode, "timeseries_files", report_signals, "cleaned_files")
    for index, node in enumerate(atlas_nodes):
        select = bookkeeping_node(niu.Select(index=index), f"select_regions_{index}")
        workflow.connect([
            (inputnode, select, [("regions_files", "inlist")]),
            (select, node, [("out", "regions_file")]),
            (summarize, node, [("mean_file", "in_file")]),
            (inputnode, node, [("mask_file", "mask_file")]),
            (node, merge, [("out_report", f"in{2 + 2 * index}"),
                           ("out_table", f"in{3 + 2 * index}")]),
        ])  # fmt:skip
    return workflow


#: The inputnode fields of a report with a connectivity section.
CONNECTIVITY_FIELDS = ["matrix_files", "qc_file"]


def add_connectivity_reportlet(workflow: pe.Workflow, inputnode: pe.Node, merge: pe.Node,
                               position: int) -> None:
    """The connectivity section (matrix heatmaps, denoising QC table): a
    :class:`~nipype_maskers.interfaces.connectivity_reports.ConnectivityReport` node fed by
    the inputnode's ``matrix_files`` and ``qc_file``, as reportlet ``position``."""
    from nipype_maskers.interfaces.connectivity_reports import ConnectivityReport

    node = pe.Node(ConnectivityReport(), name="report_connectivity", mem_gb=MEM_GB)
    workflow.connect([
        (inputnode, node, [("matrix_files", "matrix_files"), ("qc_file", "qc_file")]),
        (node, merge, [("out_report", f"in{position}")]),
    ])  # fmt:skip


#: The inputs of :func:`init_surface_report_wf`.
SURFACE_INPUT_FIELDS = ["bold_file", "labels_file", "regressors_file", "sample_mask_file",
                        "fd_file", "timeseries_files", "regions_files", "parameters"]


def init_surface_report_wf(*, atlas_names: Sequence[str] = (), connectivity: bool = False,
                           name: str = "surface_report_wf") -> pe.Workflow:
    """The visual report of a surface or CIFTI run: ``..._report.html``, self-contained.

    Workflow Graph
        .. code-block:: text

            inputnode -> report_surface_signals -> merge_reportlets -> run_report -> outputnode

    Parameters
    ----------
    atlas_names : sequence of str
        The atlases' names, in the order of ``timeseries_files`` and ``regions_files``.
    connectivity : bool
        Also the connectivity section (inputs ``matrix_files``, ``qc_file``), as
        :func:`init_report_wf`'s.
    name : str
        Workflow name.

    Inputs
    ------
    bold_file
        The run: a ``.dtseries.nii``, or the pair [hemi-L, hemi-R] of ``.func.gii``.
    labels_file
        Optional: a ``.dlabel.nii`` or a GIFTI label pair ordering the carpet's rows.
    regressors_file, sample_mask_file, fd_file
        As :func:`init_report_wf`'s; optional.
    timeseries_files, regions_files
        The region maskers' outputs, one per atlas (optional).
    parameters
        The run's parameters (a dict), shown as a table.

    Outputs
    -------
    report_file
        The HTML report.
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=SURFACE_INPUT_FIELDS + (CONNECTIVITY_FIELDS if connectivity else [])),
        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["report_file"]), name="outputnode")
    signals = pe.Node(SurfaceSignalsReport(), name="report_surface_signals", mem_gb=MEM_GB)
    if atlas_names:
        signals.inputs.atlas_names = list(atlas_names)
    merge = bookkeeping_node(niu.Merge(1 + int(connectivity)), "merge_reportlets")
    if connectivity:
        add_connectivity_reportlet(workflow, inputnode, merge, 2)
    run_report = pe.Node(RunReport(), name="run_report")
    workflow.connect([
        (inputnode, signals, [("bold_file", "in_file"), ("labels_file", "labels_file"),
                              ("regressors_file", "confounds_file"),
                              ("sample_mask_file", "sample_mask_file"),
                              ("fd_file", "fd_file"), ("timeseries_files", "timeseries_files"),
                              ("regions_files", "regions_files")]),
        (signals, merge, [("out_report", "in1")]),
        (merge, run_report, [("out", "reportlets")]),
        (signals, run_report, [("source_file", "source_file")]),
        (inputnode, run_report, [("parameters", "parameters")]),
        (run_report, outputnode, [("out_report", "report_file")]),
    ])  # fmt:skip
    return workflow
