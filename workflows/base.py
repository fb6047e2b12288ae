"""The full per-run workflow: mask -> confounds -> denoised BOLD + region time series -> BIDS."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from nipype_maskers import __version__
from nipype_maskers.interfaces.bids import WriteDerivatives
from nipype_maskers.interfaces.cleaning import CleanImage

from .connectivity import (
    add_connectivity,
    connect_connectivity_report,
    connect_runtime_metadata,
)
from .denoise import bold_clean_inputs, init_confounds_node
from .masking import read_bold_node
from .nodes import bookkeeping_node, heavy_node, preset_t_r
from .outputs import UNWRITTEN_FIELDS, connect_unwritten_outputs
from .resources import estimate_mem_gb
from .shape import resolve_bold_shape
from .timeseries import (
    LabelsAtlas,
    MapsAtlas,
    SpheresAtlas,
    extraction_nodes,
    init_timeseries_wf,
)

#: nilearn strategies that only censor volumes (they add no confound column)
_CENSORING_ONLY = {"scrub", "non_steady_state"}

#: What a sidecar says of its censored volumes (``CensoredVolumesHandling``), by output kind
#: and ``censored`` mode.
_CENSORED_HANDLING = {
    ("timeseries", "drop"): "dropped: one row per kept volume",
    ("timeseries", "nan"): "kept as n/a rows: one row per volume of the run",
    ("bold", "drop"): "dropped: one volume per kept volume",
    ("bold", "nan"): "kept as volumes of NaN (in the brain mask): one volume per volume of "
                     "the run",
}


def _sidecar_metadata(static: list, t_r=None, sample_mask=None, n_volumes: int = 1,
                      mask_file=None, confounds_file=None, atlas_files: list | None = None,
                      t_r_origin=None, given_t_r_origin=None, bold_file=None,
                      bold_sha256=None) -> list:
    """Per-output sidecar fields known only at run time: TR, censoring, input hashes.

    A Nipype Function node (its imports are inside). Every input but ``static`` has a
    default: a node output left unset (a TR nobody knows) is not passed to the function.
    ``t_r_origin`` is the cleaning node's ``t_r_source``; when it is the ``t_r`` input,
    ``given_t_r_origin`` (the inputnode's ``t_r_source``) says where that came from.
    ``bold_sha256`` comes from the step that streamed the BOLD: it is not read again here.
    A GIFTI run gives both: its pair of files and their pair of digests.
    """
    import os

    from nipype_maskers.bids_dataset import file_sha256

    hashes = {}
    bold_files = list(bold_file) if isinstance(bold_file, (list, tuple)) else [bold_file]
    digests = (list(bold_sha256) if isinstance(bold_sha256, (list, tuple))
               else [bold_sha256] * len(bold_files))
    for path, digest in zip(bold_files, digests, strict=True):
        if path and digest:
            hashes[os.path.basename(str(path))] = digest
        elif path and os.path.isfile(str(path)):  # its reader gave no digest: read it
            hashes[os.path.basename(str(path))] = file_sha256(path)
    for path in [mask_file, confounds_file, *(atlas_files or [])]:
        if path and os.path.isfile(str(path)):
            hashes[os.path.basename(str(path))] = file_sha256(path)
    out = []
    for fields in static:
        fields = dict(fields)
        kind = fields.pop("_kind", None)
        handling = fields.pop("_censored", None)
        if t_r:
            if kind in ("bold", "timeseries", "confounds"):
                fields["RepetitionTimeSource"] = (
                    (given_t_r_origin or "t_r given to the workflow")
                    if t_r_origin == "input t_r" else (t_r_origin or "unknown"))
            if kind == "bold":
                fields["RepetitionTime"] = float(t_r)
            elif kind in ("timeseries", "confounds"):
                fields["SamplingFrequency"] = 1.0 / float(t_r)
        if sample_mask is not None and len(sample_mask) < n_volumes and kind != "regions":
            fields["CensoredVolumes"] = sorted(set(range(n_volumes)) - set(sample_mask))
            if handling:
                fields["CensoredVolumesHandling"] = handling
        if hashes:
            fields["InputSHA256"] = hashes
        out.append(fields)
    return out


def init_maskers_wf(
    *,
    output_dir: Path | None = None,
    bold_shape: Sequence[int] | None = None,
    bold_file: str | os.PathLike | None = None,
    mask_strategy: str = "fmriprep",
    mask_args: dict[str, Any] | None = None,
    denoise_strategy: str | None = "simple",
    confounds_args: dict[str, Any] | None = None,
    clean_args: dict[str, Any] | None = None,
    smoothing_fwhm: float | None = None,
    labels: Sequence[LabelsAtlas] = (),
    maps: Sequence[MapsAtlas] = (),
    spheres: Sequence[SpheresAtlas] = (),
    atlas_space: str | None = None,
    denoised_bold: bool = True,
    standardize_bold: str | None = None,
    censored: str = "drop",
    report: bool = False,
    connectivity: Sequence[str] = (),
    connectivity_shrinkage: str = "ledoit_wolf",
    fisher_z: bool = False,
    write_derivatives: bool = True,
    omp_nthreads: int = 1,
    name: str = "maskers_wf",
) -> pe.Workflow:
    """Everything for one BOLD run, written as BIDS derivatives.

    Workflow Graph
        .. code-block:: text

            inputnode(bold_file, mask_file, confounds_file, t_r, t_r_source)
              -> read_bold (the run decompressed once: its masked matrix; the mask
                            computed there unless mask_strategy='fmriprep')
              -> load_confounds
              -> clean_image (denoised BOLD)          --\\
              -> timeseries_wf (labels/maps/spheres) ---> sidecar_metadata -> write_derivatives
                 -> connectivity_wf (optional: matrices, QC) |             -> outputnode
              -> report_wf (optional HTML report)    --/

        ``read_bold`` masks the run into an uncompressed ``.npy`` matrix of its brain voxels
        (float32: ~275 MB in the work dir for 300 volumes of an MNI 2 mm brain) that the
        denoised BOLD and every atlas read instead of decompressing the run again: one
        decompression per run whatever the number of atlases, the same numbers bit for bit.
        It is built when two steps or more would read the run, or the mask is computed.
        With ``smoothing_fwhm``, the matrix is smoothed for the atlases and the same read
        keeps the rows before smoothing for the denoised BOLD (twice the disk).

        With ``write_derivatives=False`` the last step is ``sidecar_columns -> outputnode``
        (files, entities, metadata): the parent pipeline writes them with its own sink.

    Parameters
    ----------
    output_dir : Path, optional
        The BIDS-derivatives folder (required when ``write_derivatives``).
    bold_shape : (x, y, z, t), optional
        The run's shape, for each node's ``mem_gb`` and the sidecars' censored volumes.
    bold_file : path, optional
        The run, when ``bold_shape`` is not given: its header is read now (not the data) for
        the shape. One of the two is required. The inputnode's ``bold_file`` is still to be
        connected or set.
    mask_strategy : str
        'fmriprep' (use the run's ``desc-brain_mask``) or one of nilearn's strategies.
    mask_args : dict, optional
        nilearn's mask_args for a computed mask.
    denoise_strategy : str or None
        nilearn's ``load_confounds_strategy`` preset ('simple', 'scrubbing', 'compcor',
        'ica_aroma'); None: ``confounds_args`` (with a ``strategy`` list) or no confounds.
    confounds_args : dict, optional
        LoadConfounds inputs with nilearn's names.
    clean_args : dict, optional
        Cleaning options shared by the denoised BOLD and the region signals; its
        ``standardize`` is the region signals' only (see ``standardize_bold``).
    smoothing_fwhm : float, optional
        Smoothing (mm) before region extraction.
    labels, maps, spheres
        The atlases (see :mod:`nipype_maskers.workflows.timeseries`).
    atlas_space : str, optional
        The atlases' space (the command line checks that it is the run's: see
        :mod:`nipype_maskers.spaces`), recorded as ``AtlasSpace`` in the sidecars of their
        time series and regions tables; None: not recorded.
    denoised_bold : bool
        Also write the voxel-wise denoised BOLD run.
    standardize_bold : {None, 'zscore_sample', 'zscore', 'psc'}
        Standardize the denoised BOLD's voxel time series; None (default): not
        standardized, whatever ``clean_args['standardize']`` does to the region signals.
    censored : {'drop', 'nan'}
        Volumes censored by the confounds strategy: 'drop' (default, as nilearn: the
        outputs hold the kept volumes) or 'nan' (every volume: ``n/a`` rows in the region
        time series, NaN volumes in the denoised BOLD). The cleaning excludes them either
        way; the sidecars list them (``CensoredVolumes``) and say which.
    report : bool
        Also write the run's visual report (``..._report.html``; needs matplotlib, the
        "reports" extra).
    connectivity : sequence of str
        Connectivity kinds ('correlation', 'partial_correlation', 'covariance',
        'precision'): a ``..._atlas-X_meas-<Measure>_relmat.tsv`` per atlas and kind, and,
        with confounds, the run's ``..._desc-qc_bold.tsv`` (DenoisingQC; DVARS before
        cleaning from the first atlas's uncleaned signals, an extra pass over the BOLD). See
        :mod:`nipype_maskers.workflows.connectivity`.
    connectivity_shrinkage : {'ledoit_wolf', 'none'}
        The matrices' covariance estimator.
    fisher_z : bool
        Fisher z of the correlation matrices.
    write_derivatives : bool
        True: write the derivatives to ``output_dir`` (node ``write_derivatives``). False:
        stop before writing and hand every output to the outputnode with its entities and
        metadata, for a parent pipeline's own sink (see :mod:`.outputs`).
    omp_nthreads : int
        CPUs of the run (NiPreps' name): ``read_bold`` uses them all (its ``n_procs`` and
        ``num_threads``); the steps that read its matrix, side by side, share them (each
        ``omp_nthreads // steps``, at least 1). 1 suits MultiProc with more runs than
        processes; more suits few runs on many cores.
    name : str
        Workflow name.

    Inputs
    ------
    bold_file, mask_file, confounds_file
        One fMRIPrep run: the preprocessed BOLD, its brain mask (may be unset when the mask
        is computed) and fMRIPrep's full ``*_desc-confounds_timeseries.tsv`` (the regressors
        are selected from it by ``denoise_strategy`` / ``confounds_args``).
    t_r, t_r_source
        Optional: the repetition time in seconds (e.g. fMRIPrep's ``RepetitionTime`` from
        the BOLD's sidecar), which wins over the NIfTI header's, and where it comes from
        (free text, e.g. "BIDS sidecar 'sub-01_..._bold.json'"). The sidecars record the TR
        used and its source (``RepetitionTimeSource``: that text, or 'NIfTI header').

    Outputs
    -------
    out_files
        ``write_derivatives=True``: the derivatives written (NIfTI/TSV, each with its JSON
        sidecar). False: the files to write (in the work dir), and with them, item for item:
    entities
        (False only) Each file's BIDS entities: ``suffix``, ``extension`` and the
        ``atlas``/``desc`` added to the BOLD's own entities (its ``desc-preproc`` dropped),
        e.g. ``{'atlas': 'Schaefer400', 'suffix': 'timeseries', 'extension': '.tsv'}``.
        Set when the workflow is built: ``wf.get_node('outputnode').inputs.entities``.
    metadata
        (False only) Each file's sidecar content (TR or sampling frequency, censored volumes,
        parameters, input hashes, column descriptions), niworkflows' ``meta_dict``.
    """
    if write_derivatives and output_dir is None:
        raise ValueError("init_maskers_wf: output_dir is required to write the derivatives; "
                         "give the BIDS-derivatives folder, or write_derivatives=False")
    bold_shape = resolve_bold_shape(bold_shape, bold_file, owner="init_maskers_wf",
                                    default=None)
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["bold_file", "mask_file", "confounds_file", "t_r", "t_r_source"]),
        name="inputnode")
    preset_t_r(inputnode, clean_args)
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["out_files"] if write_derivatives else list(UNWRITTEN_FIELDS)),
        name="outputnode")
    use_confounds = bool(denoise_strategy or (confounds_args or {}).get("strategy"))
    parameters = {
        "MaskStrategy": mask_strategy, "MaskArgs": mask_args or {},
        "DenoiseStrategy": denoise_strategy, "ConfoundsArgs": confounds_args or {},
        "Cleaning": clean_args or {}, "SmoothingFWHM": smoothing_fwhm,
        "StandardizeBold": standardize_bold, "Censored": censored,
        "NipypeMaskersVersion": __version__,
    }

    mask_source: tuple[pe.Node, str] = (inputnode, "mask_file")
    outputs: list[tuple[pe.Node, str, dict[str, Any], dict[str, Any]]] = []
    n_atlases = len(labels) + len(maps) + len(spheres)
    # the steps that read the run: the atlases and the raw signals of the QC (smoothed as
    # the atlases), the denoised BOLD (never smoothed: with smoothing, the read keeps the
    # rows before smoothing for it too)
    matrix_smoothing = smoothing_fwhm if n_atlases else None
    n_readers = n_atlases + bool(connectivity) + denoised_bold
    read_bold = None
    # the report's summary (mean image, carpet) reads the run too
    if mask_strategy != "fmriprep" or n_readers + report > 1:
        read_bold = read_bold_node(
            mask_strategy=None if mask_strategy == "fmriprep" else mask_strategy,
            mask_args=mask_args, smoothing_fwhm=matrix_smoothing,
            keep_unsmoothed=bool(matrix_smoothing and (denoised_bold or report)),
            mean_image=report, bold_shape=bold_shape, omp_nthreads=omp_nthreads)
        workflow.connect(inputnode, "bold_file", read_bold, "in_file")
        if mask_strategy == "fmriprep":
            workflow.connect(inputnode, "mask_file", read_bold, "mask_file")
        else:
            mask_source = (read_bold, "mask_file")
            outputs.append((read_bold, "mask_file", {"desc": "brain", "suffix": "mask",
                                                     "extension": ".nii.gz"},
                            {"_kind": "mask", "Type": "Brain", "MaskStrategy": mask_strategy,
                             "Description": "The brain mask every output was computed in"}))

    # the steps after the read run side by side: they share the run's CPUs (on 2 CPUs, each
    # step on 2 threads ran them one after the other: 8.7 s instead of 6.6 for 3 atlases)
    step_threads = (omp_nthreads if read_bold is None
                    else max(1, omp_nthreads // max(1, n_readers)))
    unsmoothed_matrix = (read_bold, "unsmoothed_file" if matrix_smoothing else "out_file")

    confounds = None
    if use_confounds:
        confounds = init_confounds_node(denoise_strategy=denoise_strategy,
                                        confounds_args=confounds_args)
        workflow.connect(inputnode, "confounds_file", confounds, "confounds_file")
        # censoring alone ('scrub', 'non_steady_state') selects no column: no confounds file
        strategy = set((confounds_args or {}).get("strategy") or ())
        if denoise_strategy or strategy - _CENSORING_ONLY:
            outputs.append((confounds, "out_file", {"desc": "confounds", "suffix": "timeseries",
                                                    "extension": ".tsv"},
                            {"_kind": "confounds",
                             "Description": "The confounds regressed out of every output"}))

    # the node that streamed the BOLD, and the prefix of its fields: its TR, where that came
    # from, and the BOLD's SHA-256 (hashed as it was read: the BOLD is not read again for it)
    bold_reader: tuple[pe.Node | pe.Workflow, str] | None = None
    if denoised_bold:
        clean_image = heavy_node(
            CleanImage(**bold_clean_inputs(clean_args, standardize_bold, censored)),
            "clean_image", step_threads, estimate_mem_gb("clean_image", bold_shape))
        workflow.connect([
            (inputnode, clean_image, [("bold_file", "in_file"), ("t_r", "t_r")]),
            (mask_source[0], clean_image, [(mask_source[1], "mask_file")]),
        ])  # fmt:skip
        if read_bold is not None:
            workflow.connect(*unsmoothed_matrix, clean_image, "masked_file")
        if confounds is not None:
            workflow.connect([(confounds, clean_image, [
                ("out_file", "confounds_file"), ("sample_mask_file", "sample_mask_file")])])
        outputs.append((clean_image, "out_file", {"desc": "denoised", "suffix": "bold",
                                                  "extension": ".nii.gz"},
                        {"_kind": "bold", "_censored": _CENSORED_HANDLING["bold", censored],
                         "Standardize": standardize_bold, "SkullStripped": True,
                         "Description": "The preprocessed BOLD run cleaned voxel by voxel in "
                         "the brain mask (confounds, filters, censoring: see Parameters)"}))
        bold_reader = (clean_image, "")

    if labels or maps or spheres:
        timeseries_wf = init_timeseries_wf(labels=labels, maps=maps, spheres=spheres,
                                           clean_args=clean_args, smoothing_fwhm=smoothing_fwhm,
                                           bold_shape=bold_shape, omp_nthreads=step_threads,
                                           censored=censored, read_once=False)
        workflow.connect([
            (inputnode, timeseries_wf, [("bold_file", "inputnode.bold_file"),
                                        ("t_r", "inputnode.t_r")]),
            (mask_source[0], timeseries_wf, [(mask_source[1], "inputnode.mask_file")]),
        ])  # fmt:skip
        if read_bold is not None:
            workflow.connect(read_bold, "out_file", timeseries_wf, "inputnode.masked_file")
        if confounds is not None:
            workflow.connect([(confounds, timeseries_wf, [
                ("out_file", "inputnode.regressors_file"),
                ("sample_mask_file", "inputnode.sample_mask_file")])])
        kinds = [("labels", a) for a in labels] + [("maps", a) for a in maps] + [
            ("spheres", a) for a in spheres]
        for index, (kind, atlas) in enumerate(kinds):
            common = {"_kind": "timeseries", "Atlas": atlas.name, "AtlasKind": kind,
                      **({"AtlasSpace": atlas_space} if atlas_space else {}),
                      "_censored": _CENSORED_HANDLING["timeseries", censored],
                      "Standardize": (clean_args or {}).get("standardize")}
            what = {"labels": "signal of the region, reduced over its voxels",
                    "maps": "least-squares signal of the map",
                    "spheres": "mean signal of the sphere's voxels"}[kind]
            outputs.append((timeseries_wf, "outputnode.timeseries_files", {
                "atlas": atlas.name, "suffix": "timeseries", "extension": ".tsv",
                "_index": index}, {**common, "ColumnDescription": f"{{name}}: {what}"}))
            outputs.append((timeseries_wf, "outputnode.regions_files", {
                "atlas": atlas.name, "suffix": "regions", "extension": ".tsv",
                "_index": index}, {**common, "_kind": "regions"}))
        if bold_reader is None:  # no denoised BOLD: the first masker node
            bold_reader = (timeseries_wf, f"{kinds[0][0]}_{kinds[0][1].name}.")
    connectivity_wf = None
    if connectivity and not (labels or maps or spheres):
        raise ValueError("init_maskers_wf: connectivity needs an atlas (labels, maps or "
                         "spheres): matrices are computed from region signals")
    if connectivity:
        # the first atlas once more, uncleaned (every volume, smoothed as the others): the
        # QC's DVARS before cleaning
        raw = extraction_nodes(**{kinds[0][0]: [kinds[0][1]]}, smoothing_fwhm=smoothing_fwhm,
                               bold_shape=bold_shape, omp_nthreads=step_threads)[0][2]
        raw.name = f"raw_{kinds[0][0]}_{kinds[0][1].name}"
        workflow.connect(mask_source[0], mask_source[1], raw, "mask_file")
        if read_bold is not None:
            workflow.connect(read_bold, "out_file", raw, "masked_file")
        connectivity_wf = add_connectivity(
            workflow, timeseries_wf=timeseries_wf, inputnode=inputnode, confounds=confounds,
            atlases=kinds, raw_node=raw, t_r=(timeseries_wf, f"{kinds[0][0]}_"
                                               f"{kinds[0][1].name}.t_r"),
            kinds=connectivity, shrinkage=connectivity_shrinkage, fisher_z=fisher_z,
            clean_args=clean_args, atlas_space=atlas_space, outputs=outputs)

    if report:
        from .reports import init_report_wf

        report_wf = init_report_wf(labels=labels, maps=maps, spheres=spheres,
                                   connectivity=connectivity_wf is not None)
        report_wf.inputs.inputnode.mask_strategy = mask_strategy
        report_wf.inputs.inputnode.parameters = parameters
        workflow.connect([
            (inputnode, report_wf, [("bold_file", "inputnode.bold_file"),
                                    ("confounds_file", "inputnode.fd_file")]),
            (mask_source[0], report_wf, [(mask_source[1], "inputnode.mask_file")]),
        ])  # fmt:skip
        if read_bold is not None:  # the summary from the run's one read
            workflow.connect([
                (unsmoothed_matrix[0], report_wf, [(unsmoothed_matrix[1],
                                                    "inputnode.masked_file")]),
                (read_bold, report_wf, [("mean_file", "inputnode.mean_file")]),
            ])  # fmt:skip
        if confounds is not None:
            workflow.connect([(confounds, report_wf, [
                ("out_file", "inputnode.regressors_file"),
                ("sample_mask_file", "inputnode.sample_mask_file")])])
        if labels or maps or spheres:
            workflow.connect([(timeseries_wf, report_wf, [
                ("outputnode.timeseries_files", "inputnode.timeseries_files"),
                ("outputnode.regions_files", "inputnode.regions_files")])])
        if connectivity_wf is not None:
            connect_connectivity_report(workflow, connectivity_wf, report_wf)
        outputs.append((report_wf, "outputnode.report_file",
                        {"suffix": "report", "extension": ".html"}, {"_kind": "report"}))

    if not outputs:
        raise ValueError("init_maskers_wf: nothing to write (no atlas and denoised_bold=False)")
    # one merge input per producing field; the time series workflow's lists are flattened in
    # (ravel_inputs), so the entities follow that order: field by field, atlas by atlas
    fields: dict[tuple[int, str], list] = {}
    for output in outputs:
        fields.setdefault((id(output[0]), output[1]), []).append(output)
    merge = bookkeeping_node(niu.Merge(len(fields), ravel_inputs=True), "merge_outputs")
    outputs = []
    for position, group in enumerate(fields.values(), start=1):
        workflow.connect(group[0][0], group[0][1], merge, f"in{position}")
        outputs.extend(sorted(group, key=lambda output: output[2].get("_index", 0)))
    static = [{**metadata, **{"Parameters": parameters}} for *_, metadata in outputs]
    metadata = bookkeeping_node(
        niu.Function(function=_sidecar_metadata,
                     input_names=["static", "t_r", "sample_mask", "n_volumes", "mask_file",
                                  "confounds_file", "atlas_files", "t_r_origin",
                                  "given_t_r_origin", "bold_file", "bold_sha256"],
                     output_names=["metadata"]),
        "sidecar_metadata")
    workflow.connect([
        (inputnode, metadata, [("mask_file", "mask_file"), ("confounds_file", "confounds_file"),
                               ("t_r_source", "given_t_r_origin")]),
    ])  # fmt:skip
    metadata.inputs.atlas_files = [str(a[1]) for a in (*labels, *maps, *spheres)] + [
        str(a.lut_file) for a in (*labels, *maps) if a.lut_file]
    metadata.inputs.static = static
    metadata.inputs.n_volumes = int(bold_shape[3]) if len(bold_shape) > 3 else 1
    if confounds is not None:
        workflow.connect(confounds, "sample_mask", metadata, "sample_mask")
    if bold_reader is not None:  # else no TR, no BOLD hash: the inputs keep their defaults
        reader, prefix = bold_reader
        workflow.connect([
            (inputnode, metadata, [("bold_file", "bold_file")]),
            (reader, metadata, [(f"{prefix}t_r", "t_r"), (f"{prefix}t_r_source", "t_r_origin"),
                                (f"{prefix}in_file_sha256", "bold_sha256")]),
        ])  # fmt:skip
    metadata_out: tuple[pe.Node, str] = (metadata, "metadata")
    if connectivity_wf is not None:  # the matrices' and QC's own sidecar content, merged in
        metadata_out = connect_runtime_metadata(workflow, metadata_out, connectivity_wf, [
            i for i, output in enumerate(outputs) if output[0] is connectivity_wf])
    entities = [{k: v for k, v in e.items() if not k.startswith("_")} for _, _, e, _ in outputs]
    if not write_derivatives:
        connect_unwritten_outputs(workflow, files=(merge, "out"),
                                  metadata=metadata_out,
                                  source=(inputnode, "bold_file"), entities=entities,
                                  outputnode=outputnode)
        return workflow
    write = pe.Node(WriteDerivatives(base_directory=str(output_dir)), name="write_derivatives",
                    mem_gb=estimate_mem_gb("sink", bold_shape))
    write.inputs.entities = entities
    workflow.connect([
        (inputnode, write, [("bold_file", "source_file")]),
        (merge, write, [("out", "in_files")]),
        (metadata_out[0], write, [(metadata_out[1], "metadata")]),
        (write, outputnode, [("out_files", "out_files")]),
    ])  # fmt:skip
    if bold_reader is not None:  # the BOLD is not read a second time for SourceSHA256
        workflow.connect(bold_reader[0], f"{bold_reader[1]}in_file_sha256", write,
                         "source_sha256")
    return workflow
