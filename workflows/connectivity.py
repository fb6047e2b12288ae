"""Connectivity matrices and denoising QC of a run, and of a subject's runs combined.

- :func:`init_connectivity_wf`: per run, one :class:`~nipype_maskers.interfaces.
  connectivity.ConnectivityMatrix` per atlas and kind, and one :class:`~nipype_maskers.
  interfaces.qc.DenoisingQC`; the run's workflow (volume or surface) writes them with its
  other outputs, so their sidecars carry the same provenance as the time series'.
- :func:`init_combine_runs_wf`: per subject and task (``--combine-runs``), each run's
  signals z-scored then concatenated (XCP-D's rule), one matrix per atlas and kind, written
  without the ``run`` entity.

Names (BEP017 style): ``<source>_atlas-X_meas-PearsonCorrelation_relmat.tsv`` (+ ``.json``),
``<source>_desc-qc_bold.tsv`` (+ ``.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from nipype_maskers.interfaces.connectivity import MEASURES, ConnectivityMatrix

from .nodes import bookkeeping_node

#: The command line's kind names (``_`` for spaces) -> nilearn's.
CLI_KINDS = {"correlation": "correlation", "partial_correlation": "partial correlation",
             "covariance": "covariance", "precision": "precision"}
#: The kinds the Fisher z transform applies to (the others are left as they are).
_CORRELATIONS = ("correlation", "partial correlation")
#: Memory of a matrix or QC node (GB): a run's region signals and a few square matrices.
MEM_GB = 0.3


def _check_kinds(kinds: Sequence[str]) -> list[str]:
    """nilearn's names of ``kinds`` (either spelling), in order, without repeats."""
    out = []
    for kind in kinds:
        name = CLI_KINDS.get(kind, kind)
        if name not in MEASURES or name == "tangent":
            raise ValueError(f"connectivity: unknown kind {kind!r}; expected some of "
                             f"{list(CLI_KINDS)}")
        if name not in out:
            out.append(name)
    return out


def _label_atlases(timeseries_files: list, atlas_names: list) -> list:
    """Copies of the maskers' time series named with their atlas (``atlas-<name>``, no
    ``desc``), so that every file derived from them carries it. A Nipype Function node."""
    import os
    import shutil

    from nipype_maskers.bids_names import derived_name

    out = []
    for path, atlas in zip(timeseries_files, atlas_names, strict=True):
        folder = os.path.abspath(f"atlas_{atlas}")
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, derived_name(path, desc=None, atlas=atlas))
        shutil.copyfile(path, target)
        out.append(target)
    return out


def _read_sidecars(sidecars: list, extra: list | None = None) -> list:
    """Each JSON sidecar's content, updated with ``extra`` item for item. A Function node."""
    import json

    out = []
    for index, path in enumerate(sidecars):
        with open(path, encoding="utf-8") as stream:
            content = json.load(stream)
        if extra:
            content.update(extra[index])
        out.append(content)
    return out


def _merge_runtime_metadata(metadata: list, runtime: list, positions: list) -> list:
    """The sidecar metadata with ``runtime[k]`` merged into item ``positions[k]`` (the
    figures only known once the matrices and QC are computed). A Nipype Function node."""
    merged = [dict(item) for item in metadata]
    for position, extra in zip(positions, runtime, strict=True):
        own = merged[position]
        merged[position] = {**extra, **own}
        if isinstance(extra.get("Parameters"), dict) and isinstance(own.get("Parameters"), dict):
            # the run's parameters, and those of the step (the QC's TR, filter...)
            merged[position]["Parameters"] = {**own["Parameters"], **extra["Parameters"]}
    return merged


def connectivity_outputs(atlases: Sequence[tuple[str, str]], kinds: Sequence[str],
                         qc: bool, atlas_space: str | None = None
                         ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(entities, static sidecar fields) of each file of :func:`init_connectivity_wf`'s
    ``out_files``, in order: atlas by atlas, kind by kind, then the QC table.

    ``atlases`` are (atlas kind, name) pairs: ('labels', 'Schaefer400').
    """
    outputs = []
    index = 0
    for atlas_kind, name in atlases:
        for kind in _check_kinds(kinds):
            outputs.append((
                {"atlas": name, "meas": MEASURES[kind], "suffix": "relmat", "extension": ".tsv",
                 "_index": index},
                {"_kind": "relmat", "Atlas": name, "AtlasKind": atlas_kind,
                 **({"AtlasSpace": atlas_space} if atlas_space else {}),
                 "Description": f"Connectivity matrix ({kind}) of the atlas's region signals "
                 "(its time series), over the kept volumes"}))
            index += 1
    if qc:
        outputs.append(({"desc": "qc", "suffix": "bold", "extension": ".tsv", "_index": index},
                        {"_kind": "qc", "Description": "Denoising QC figures of the run "
                         "(motion, censoring, DVARS before and after cleaning, degrees of "
                         "freedom); DVARS before is that of the first atlas's uncleaned "
                         "region signals"}))
    return outputs


def init_connectivity_wf(*, atlas_names: Sequence[str], kinds: Sequence[str],
                         shrinkage: str = "ledoit_wolf", fisher_z: bool = False,
                         qc: bool = True, clean_args: dict[str, Any] | None = None,
                         name: str = "connectivity_wf") -> pe.Workflow:
    """A run's connectivity matrices (each atlas, each kind) and its denoising QC.

    Workflow Graph
        .. code-block:: text

            inputnode -> label_atlases -> connectivity_<atlas>_<meas> --\\
                                       -> denoising_qc -------------------> merge_out
                                                                              -> read_sidecars
                                                                              -> outputnode

    Parameters
    ----------
    atlas_names : sequence of str
        The atlases, in the order of ``timeseries_files``.
    kinds : sequence of str
        nilearn's kinds ('correlation', 'partial correlation', 'covariance', 'precision'),
        or the command line's spelling ('partial_correlation').
    shrinkage : {'ledoit_wolf', 'none'}
        The covariance estimator (nilearn's default LedoitWolf, or the empirical one).
    fisher_z : bool
        Fisher z (arctanh) of the correlation kinds (the others are left as they are).
    qc : bool
        Also the DenoisingQC table (needs ``confounds_file`` and ``t_r``).
    clean_args : dict, optional
        The cleaning options of the time series (their filter, for the degrees of freedom).
    name : str
        Workflow name.

    Inputs
    ------
    timeseries_files
        The run's region time series, one per atlas (``init_timeseries_wf``'s outputs).
    confounds_file, regressors_file, sample_mask_file, t_r
        fMRIPrep's full confounds table (FD, DVARS), the selected regressors and kept volumes
        (LoadConfounds' outputs; optional) and the TR used, for the QC.
    raw_file
        The first atlas's region signals before cleaning, one row per volume (DVARS before);
        optional.

    Outputs
    -------
    out_files, metadata
        The matrices (atlas by atlas, kind by kind) then the QC table, and the content of
        their sidecars (:func:`connectivity_outputs` gives their entities).
    matrix_files, qc_file
        The same files, for the report.
    """
    kinds = _check_kinds(kinds)
    if not kinds and not qc:
        raise ValueError("init_connectivity_wf: no kind and qc=False: nothing to compute")
    if not atlas_names:
        raise ValueError("init_connectivity_wf: no atlas given; matrices need region signals")
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["timeseries_files", "confounds_file", "regressors_file", "sample_mask_file",
                "t_r", "raw_file"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["out_files", "metadata", "matrix_files", "qc_file"]), name="outputnode")
    label = bookkeeping_node(niu.Function(function=_label_atlases,
                                          input_names=["timeseries_files", "atlas_names"],
                                          output_names=["out_files"]), "label_atlases")
    label.inputs.atlas_names = list(atlas_names)
    workflow.connect(inputnode, "timeseries_files", label, "timeseries_files")

    n_matrices = len(atlas_names) * len(kinds)
    merge_files = bookkeeping_node(niu.Merge(n_matrices + int(qc)), "merge_out")
    merge_sidecars = bookkeeping_node(niu.Merge(n_matrices + int(qc)), "merge_sidecars")
    merge_matrices = (bookkeeping_node(niu.Merge(n_matrices), "merge_matrices")
                      if n_matrices else None)
    position = 1
    for index, atlas in enumerate(atlas_names):
        select = bookkeeping_node(niu.Select(index=index), f"select_{atlas}")
        workflow.connect(label, "out_files", select, "inlist")
        for kind in kinds:
            node = pe.Node(ConnectivityMatrix(kind=kind, shrinkage=shrinkage,
                                              fisher_z=fisher_z and kind in _CORRELATIONS),
                           name=f"connectivity_{atlas}_{MEASURES[kind]}", mem_gb=MEM_GB)
            workflow.connect([
                (select, node, [("out", "in_file")]),
                (node, merge_files, [("out_file", f"in{position}")]),
                (node, merge_sidecars, [("out_sidecar", f"in{position}")]),
                (node, merge_matrices, [("out_file", f"in{position}")]),
            ])  # fmt:skip
            position += 1
    if qc:
        from nipype_maskers.interfaces.qc import DenoisingQC

        clean_args = clean_args or {}
        qc_node = pe.Node(DenoisingQC(filter=clean_args.get("filter", "butterworth")),
                          name="denoising_qc", mem_gb=MEM_GB)
        for option in ("high_pass", "low_pass"):
            if clean_args.get(option) is not None:
                setattr(qc_node.inputs, option, float(clean_args[option]))
        first = bookkeeping_node(niu.Select(index=0), "select_clean")
        workflow.connect([
            (label, first, [("out_files", "inlist")]),
            (first, qc_node, [("out", "clean_file")]),
            (label, qc_node, [("out_files", "timeseries_files")]),
            (inputnode, qc_node, [("confounds_file", "confounds_file"),
                                  ("regressors_file", "regressors_file"),
                                  ("sample_mask_file", "sample_mask_file"), ("t_r", "t_r"),
                                  ("raw_file", "raw_file")]),
            (qc_node, merge_files, [("out_file", f"in{position}")]),
            (qc_node, merge_sidecars, [("out_sidecar", f"in{position}")]),
            (qc_node, outputnode, [("out_file", "qc_file")]),
        ])  # fmt:skip
    read = bookkeeping_node(niu.Function(function=_read_sidecars,
                                         input_names=["sidecars", "extra"],
                                         output_names=["metadata"]), "read_sidecars")
    workflow.connect([
        (merge_sidecars, read, [("out", "sidecars")]),
        (merge_files, outputnode, [("out", "out_files")]),
        (read, outputnode, [("metadata", "metadata")]),
    ])  # fmt:skip
    if merge_matrices is not None:
        workflow.connect(merge_matrices, "out", outputnode, "matrix_files")
    return workflow


def connect_runtime_metadata(workflow: pe.Workflow, metadata: tuple[pe.Node, str],
                             connectivity_wf: pe.Workflow, positions: list[int],
                             name: str = "connectivity_metadata") -> tuple[pe.Node, str]:
    """Merge the matrices' and QC's sidecar content into a run's sidecar metadata list.

    ``positions`` are the places of ``connectivity_wf``'s ``out_files`` among the run's
    outputs; returns the (node, field) to take the merged metadata from.
    """
    merge = bookkeeping_node(niu.Function(function=_merge_runtime_metadata,
                                          input_names=["metadata", "runtime", "positions"],
                                          output_names=["metadata"]), name)
    merge.inputs.positions = list(positions)
    workflow.connect([
        (metadata[0], merge, [(metadata[1], "metadata")]),
        (connectivity_wf, merge, [("outputnode.metadata", "runtime")]),
    ])  # fmt:skip
    return merge, "metadata"


def _combined_extra(sources: list, n_volumes: list, n_censored: list, n_kinds: int) -> list:
    """What a combined matrix's sidecar says of its runs. A Nipype Function node."""
    return [{"CombinedRuns": list(sources), "NumberOfVolumesPerRun": list(n_volumes),
             "NumberOfCensoredVolumesPerRun": list(n_censored),
             "Combination": "each run's region signals z-scored (mean 0, ddof=1 standard "
             "deviation 1) over its kept volumes, then the runs concatenated before the "
             "matrix (XCP-D's --combine-runs); censored volumes excluded"}] * n_kinds


def init_combine_runs_wf(*, atlas_names: Sequence[str], kinds: Sequence[str], n_runs: int,
                         output_dir: Path | None, shrinkage: str = "ledoit_wolf",
                         fisher_z: bool = False, dismiss_entities: Sequence[str] = ("desc",),
                         parameters: dict[str, Any] | None = None,
                         name: str = "combine_runs_wf") -> pe.Workflow:
    """One subject's runs of a task combined: a matrix per atlas and kind, no ``run`` entity.

    Workflow Graph
        .. code-block:: text

            inputnode(timeseries_<i>, source_file) -> combine_<atlas> (z-score, concatenate)
              -> connectivity_<atlas>_<meas> -> write_derivatives -> outputnode

    Parameters
    ----------
    atlas_names : sequence of str
        The atlases, in the order of each run's ``timeseries_files``.
    kinds, shrinkage, fisher_z
        As :func:`init_connectivity_wf`'s.
    n_runs : int
        The runs combined: inputs ``timeseries_1`` .. ``timeseries_<n_runs>``.
    output_dir : Path
        The BIDS-derivatives folder.
    dismiss_entities : sequence of str
        Entities of ``source_file`` left out of the names (``run`` is added).
    parameters : dict, optional
        Recorded as ``Parameters`` in the sidecars.
    name : str
        Workflow name.

    Inputs
    ------
    timeseries_1 .. timeseries_<n_runs>
        Each run's time series files (one per atlas, in atlas order).
    source_file
        The first run's BOLD (names the outputs, once ``run`` is dropped).
    """
    from nipype_maskers.interfaces.bids import WriteDerivatives
    from nipype_maskers.interfaces.combine import CombineRuns

    kinds = _check_kinds(kinds)
    if not kinds or not atlas_names or n_runs < 1:
        raise ValueError("init_combine_runs_wf: needs a kind, an atlas and a run")
    workflow = pe.Workflow(name=name)
    fields = [f"timeseries_{i}" for i in range(1, n_runs + 1)]
    inputnode = pe.Node(niu.IdentityInterface(fields=[*fields, "source_file"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_files"]), name="outputnode")
    n_outputs = len(atlas_names) * len(kinds)
    merge_files = bookkeeping_node(niu.Merge(n_outputs), "merge_out")
    merge_metadata = bookkeeping_node(niu.Merge(len(atlas_names), ravel_inputs=True),
                                      "merge_metadata")
    entities, position = [], 1
    for index, atlas in enumerate(atlas_names):
        runs = bookkeeping_node(niu.Merge(n_runs), f"runs_{atlas}")
        for run, field in enumerate(fields, start=1):
            select = bookkeeping_node(niu.Select(index=index), f"select_{atlas}_{run}")
            workflow.connect([(inputnode, select, [(field, "inlist")]),
                              (select, runs, [("out", f"in{run}")])])
        label = bookkeeping_node(niu.Function(function=_label_atlases,
                                              input_names=["timeseries_files", "atlas_names"],
                                              output_names=["out_files"]),
                                 f"label_{atlas}")
        label.inputs.atlas_names = [atlas] * n_runs
        combine = pe.Node(CombineRuns(), name=f"combine_{atlas}", mem_gb=MEM_GB)
        sidecars = bookkeeping_node(niu.Merge(len(kinds)), f"sidecars_{atlas}")
        extra = bookkeeping_node(niu.Function(
            function=_combined_extra,
            input_names=["sources", "n_volumes", "n_censored", "n_kinds"],
            output_names=["extra"]), f"runs_metadata_{atlas}")
        extra.inputs.n_kinds = len(kinds)
        read = bookkeeping_node(niu.Function(function=_read_sidecars,
                                             input_names=["sidecars", "extra"],
                                             output_names=["metadata"]), f"read_{atlas}")
        workflow.connect([
            (runs, label, [("out", "timeseries_files")]),
            (label, combine, [("out_files", "in_files")]),
            (combine, extra, [("sources", "sources"), ("n_volumes", "n_volumes"),
                              ("n_censored", "n_censored")]),
            (sidecars, read, [("out", "sidecars")]),
            (extra, read, [("extra", "extra")]),
            (read, merge_metadata, [("metadata", f"in{index + 1}")]),
        ])  # fmt:skip
        for number, kind in enumerate(kinds, start=1):
            node = pe.Node(ConnectivityMatrix(kind=kind, shrinkage=shrinkage,
                                              fisher_z=fisher_z and kind in _CORRELATIONS),
                           name=f"connectivity_{atlas}_{MEASURES[kind]}", mem_gb=MEM_GB)
            workflow.connect([
                (combine, node, [("out_file", "in_file")]),
                (node, merge_files, [("out_file", f"in{position}")]),
                (node, sidecars, [("out_sidecar", f"in{number}")]),
            ])  # fmt:skip
            entities.append({"atlas": atlas, "meas": MEASURES[kind], "suffix": "relmat",
                             "extension": ".tsv"})
            position += 1
    static = bookkeeping_node(niu.Function(function=_with_parameters,
                                           input_names=["metadata", "parameters"],
                                           output_names=["metadata"]), "sidecar_metadata")
    static.inputs.parameters = dict(parameters or {})
    write = pe.Node(WriteDerivatives(
        base_directory=str(output_dir), entities=entities,
        dismiss_entities=sorted({*dismiss_entities, "run"})),
        name="write_derivatives", mem_gb=0.2)
    workflow.connect([
        (merge_metadata, static, [("out", "metadata")]),
        (inputnode, write, [("source_file", "source_file")]),
        (merge_files, write, [("out", "in_files")]),
        (static, write, [("metadata", "metadata")]),
        (write, outputnode, [("out_files", "out_files")]),
    ])  # fmt:skip
    return workflow


def _with_parameters(metadata: list, parameters: dict) -> list:
    """Each sidecar's content with the run's ``Parameters``. A Nipype Function node."""
    return [{**item, "Parameters": parameters} for item in metadata]


def connect_connectivity_report(workflow: pe.Workflow, connectivity_wf: pe.Workflow,
                                report_wf: pe.Workflow) -> None:
    """Hand the matrices and the QC table to a report workflow built with
    ``connectivity=True`` (its inputnode's ``matrix_files`` and ``qc_file``)."""
    fields = [("outputnode.matrix_files", "inputnode.matrix_files")]
    if connectivity_wf.get_node("denoising_qc") is not None:
        fields.append(("outputnode.qc_file", "inputnode.qc_file"))
    workflow.connect([(connectivity_wf, report_wf, fields)])


def add_connectivity(workflow: pe.Workflow, *, timeseries_wf: pe.Workflow,
                     inputnode: pe.Node, confounds: pe.Node | None,
                     atlases: Sequence[tuple[str, Any]], raw_node: pe.Node | None,
                     t_r: tuple[pe.Node | pe.Workflow, str], kinds: Sequence[str],
                     shrinkage: str, fisher_z: bool, clean_args: dict[str, Any] | None,
                     atlas_space: str | None, outputs: list) -> pe.Workflow:
    """A run's matrices and QC (:func:`init_connectivity_wf`) inside its workflow.

    Connects the time series, the confounds (QC only with a ``confounds`` node: the QC
    needs the run's confounds table), the uncleaned signals ``raw_node`` (a masker of the
    first atlas without cleaning, for the DVARS before cleaning; its ``in_file`` is
    connected here, any mask by the caller) and the TR, and appends the outputs (node,
    field, entities, static metadata) to the run's ``outputs``.
    """
    qc = confounds is not None
    connectivity_wf = init_connectivity_wf(
        atlas_names=[atlas.name for _, atlas in atlases], kinds=kinds, shrinkage=shrinkage,
        fisher_z=fisher_z, qc=qc, clean_args=clean_args)
    workflow.connect(timeseries_wf, "outputnode.timeseries_files",
                     connectivity_wf, "inputnode.timeseries_files")
    if qc:
        workflow.connect([
            (inputnode, connectivity_wf, [("confounds_file", "inputnode.confounds_file")]),
            (confounds, connectivity_wf, [("out_file", "inputnode.regressors_file"),
                                          ("sample_mask_file", "inputnode.sample_mask_file")]),
            (t_r[0], connectivity_wf, [(t_r[1], "inputnode.t_r")]),
        ])  # fmt:skip
        if raw_node is not None:
            workflow.connect([
                (inputnode, raw_node, [("bold_file", "in_file")]),
                (raw_node, connectivity_wf, [("out_file", "inputnode.raw_file")]),
            ])  # fmt:skip
    described = [(kind, atlas.name) for kind, atlas in atlases]
    for entities, static in connectivity_outputs(described, kinds, qc, atlas_space):
        outputs.append((connectivity_wf, "outputnode.out_files", entities, static))
    return connectivity_wf


#: Entities that tell a subject's runs of one task apart (left out of the combined names).
_RUN_ENTITIES = ("run", "desc", "hemi", "suffix", "extension")


def add_combined_runs(top: pe.Workflow, runs: Sequence[tuple[dict, str, pe.Workflow, dict,
                                                              str]],
                      output_dir: Path) -> list[str]:
    """``--combine-runs``: one :func:`init_combine_runs_wf` per subject, session, task (and
    every other entity but ``run``) and set of atlases, fed by each run's time series.

    ``runs`` are (entities, kind, run workflow, its options, source BOLD file) for each run
    workflow of ``top``. A group whose runs carry no ``run`` entity (one run: its combined
    name would be the run's own) is left out, and named in the returned notes.
    """
    groups: dict[tuple, list] = {}
    for entities, kind, run_wf, options, source in runs:
        if not options.get("connectivity"):
            continue
        atlases = [(what, atlas.name) for what in ("labels", "maps", "spheres")
                   for atlas in options.get(what, ())]
        if not atlases:
            continue
        key = (tuple(sorted((k, str(v)) for k, v in entities.items()
                            if k not in _RUN_ENTITIES)), kind, tuple(atlases))
        groups.setdefault(key, []).append((entities, run_wf, options, source))
    notes = []
    for (fixed, kind, atlases), members in groups.items():
        if any("run" not in entities for entities, *_ in members):
            notes.append(" ".join(f"{k}-{v}" for k, v in fixed) + ": no run entity, not "
                         "combined (its run's own matrices are the task's)")
            continue
        members.sort(key=lambda member: str(member[0]["run"]))
        options = members[0][2]
        name = "combined_" + "_".join(f"{k}_{v}" for k, v in fixed
                                      if k in ("sub", "ses", "task", "acq", "space", "den"))
        combine_wf = init_combine_runs_wf(
            atlas_names=[atlas for _, atlas in atlases], kinds=options["connectivity"],
            n_runs=len(members), output_dir=output_dir,
            shrinkage=options.get("connectivity_shrinkage", "ledoit_wolf"),
            fisher_z=options.get("fisher_z", False),
            dismiss_entities=("desc", "hemi") if kind == "gifti" else ("desc",),
            parameters={"Cleaning": options.get("clean_args") or {},
                        "DenoiseStrategy": options.get("denoise_strategy"),
                        "Censored": options.get("censored", "drop")},
            name="".join(c if c.isalnum() or c == "_" else "_" for c in name) + "_wf")
        combine_wf.get_node("inputnode").inputs.source_file = members[0][3]
        for number, (_, run_wf, _, _) in enumerate(members, start=1):
            series = ("timeseries_wf" if run_wf.get_node("timeseries_wf") is not None
                      else "surface_timeseries_wf")
            top.connect(run_wf, f"{series}.outputnode.timeseries_files",
                        combine_wf, f"inputnode.timeseries_{number}")
    return notes
