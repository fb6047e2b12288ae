"""The full per-run workflow: mask -> confounds -> denoised BOLD + region time series -> BIDS."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from nipype_maskers import __version__
from nipype_maskers.interfaces.bids import WriteDerivatives
from nipype_maskers.interfaces.cleaning import CleanImage
from nipype_maskers.interfaces.masking import ComputeMask

from .denoise import init_confounds_node
from .nodes import bookkeeping_node, heavy_node
from .resources import estimate_mem_gb
from .timeseries import LabelsAtlas, MapsAtlas, SpheresAtlas, init_timeseries_wf

#: nilearn strategies that only censor volumes (they add no confound column)
_CENSORING_ONLY = {"scrub", "non_steady_state"}


def _sidecar_metadata(static: list, t_r, sample_mask, n_volumes: int, mask_file=None,
                      confounds_file=None, atlas_files: list | None = None) -> list:
    """Per-output sidecar fields known only at run time: TR, censoring, input hashes.

    A Nipype Function node (its imports are inside).
    """
    import hashlib
    import os

    hashes = {}
    for path in [mask_file, confounds_file, *(atlas_files or [])]:
        if path and os.path.isfile(str(path)):
            digest = hashlib.sha256()
            with open(path, "rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(chunk)
            hashes[os.path.basename(str(path))] = digest.hexdigest()
    out = []
    for fields in static:
        fields = dict(fields)
        kind = fields.pop("_kind", None)
        if t_r:
            if kind == "bold":
                fields["RepetitionTime"] = float(t_r)
            elif kind in ("timeseries", "confounds"):
                fields["SamplingFrequency"] = 1.0 / float(t_r)
        if sample_mask is not None and len(sample_mask) < n_volumes and kind != "regions":
            fields["CensoredVolumes"] = sorted(set(range(n_volumes)) - set(sample_mask))
        if hashes:
            fields["InputSHA256"] = hashes
        out.append(fields)
    return out


def init_maskers_wf(
    *,
    output_dir: Path,
    bold_shape: Sequence[int],
    mask_strategy: str = "fmriprep",
    mask_args: dict[str, Any] | None = None,
    denoise_strategy: str | None = "simple",
    confounds_args: dict[str, Any] | None = None,
    clean_args: dict[str, Any] | None = None,
    smoothing_fwhm: float | None = None,
    labels: Sequence[LabelsAtlas] = (),
    maps: Sequence[MapsAtlas] = (),
    spheres: Sequence[SpheresAtlas] = (),
    denoised_bold: bool = True,
    report: bool = False,
    omp_nthreads: int = 1,
    name: str = "maskers_wf",
) -> pe.Workflow:
    """Everything for one BOLD run, written as BIDS derivatives.

    Workflow Graph
        .. code-block:: text

            inputnode(bold_file, mask_file, confounds_file)
              -> compute_mask (unless mask_strategy='fmriprep': fMRIPrep's mask is used)
              -> load_confounds
              -> clean_image (denoised BOLD)          --\\
              -> timeseries_wf (labels/maps/spheres) ---> sidecar_metadata -> write_derivatives
              -> report_wf (optional HTML report)    --/                   -> outputnode

    Parameters
    ----------
    output_dir : Path
        The BIDS-derivatives folder.
    bold_shape : (x, y, z, t)
        The run's shape (from its header), for each node's ``mem_gb``.
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
        Cleaning options shared by the denoised BOLD and the region signals.
    smoothing_fwhm : float, optional
        Smoothing (mm) before region extraction.
    labels, maps, spheres
        The atlases (see :mod:`nipype_maskers.workflows.timeseries`).
    denoised_bold : bool
        Also write the voxel-wise denoised BOLD run.
    report : bool
        Also write the run's visual report (``..._report.html``; needs matplotlib, the
        "reports" extra).
    omp_nthreads : int
        CPUs each heavy node uses (its ``n_procs`` and ``num_threads``; NiPreps' name). 1
        suits MultiProc with more runs than processes; more suits few runs on many cores.
    name : str
        Workflow name.

    Inputs
    ------
    bold_file, mask_file, confounds_file
        One fMRIPrep run (``mask_file`` may be unset when the mask is computed).

    Outputs
    -------
    out_files
        The derivatives written (NIfTI/TSV, each with its JSON sidecar).
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["bold_file", "mask_file", "confounds_file"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_files"]), name="outputnode")
    use_confounds = bool(denoise_strategy or (confounds_args or {}).get("strategy"))
    parameters = {
        "MaskStrategy": mask_strategy, "MaskArgs": mask_args or {},
        "DenoiseStrategy": denoise_strategy, "ConfoundsArgs": confounds_args or {},
        "Cleaning": clean_args or {}, "SmoothingFWHM": smoothing_fwhm,
        "NipypeMaskersVersion": __version__,
    }

    mask_source: tuple[pe.Node, str]
    outputs: list[tuple[pe.Node, str, dict[str, Any], dict[str, Any]]] = []
    if mask_strategy == "fmriprep":
        mask_source = (inputnode, "mask_file")
    else:
        compute_mask = heavy_node(
            ComputeMask(mask_strategy=mask_strategy, mask_args=mask_args or {}),
            "compute_mask", omp_nthreads, estimate_mem_gb("mask", bold_shape))
        workflow.connect(inputnode, "bold_file", compute_mask, "in_file")
        mask_source = (compute_mask, "mask_file")
        outputs.append((compute_mask, "mask_file", {"desc": "brain", "suffix": "mask",
                                                    "extension": ".nii.gz"},
                        {"_kind": "mask", "Type": "Brain", "MaskStrategy": mask_strategy}))

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

    t_r_source = None
    if denoised_bold:
        clean_image = heavy_node(CleanImage(**(clean_args or {})), "clean_image", omp_nthreads,
                                 estimate_mem_gb("clean_image", bold_shape))
        workflow.connect([
            (inputnode, clean_image, [("bold_file", "in_file")]),
            (mask_source[0], clean_image, [(mask_source[1], "mask_file")]),
        ])  # fmt:skip
        if confounds is not None:
            workflow.connect([(confounds, clean_image, [
                ("out_file", "confounds_file"), ("sample_mask_file", "sample_mask_file")])])
        outputs.append((clean_image, "out_file", {"desc": "denoised", "suffix": "bold",
                                                  "extension": ".nii.gz"},
                        {"_kind": "bold", "SkullStripped": True}))
        t_r_source = (clean_image, "t_r")

    if labels or maps or spheres:
        timeseries_wf = init_timeseries_wf(labels=labels, maps=maps, spheres=spheres,
                                           clean_args=clean_args, smoothing_fwhm=smoothing_fwhm,
                                           bold_shape=bold_shape, omp_nthreads=omp_nthreads)
        workflow.connect([
            (inputnode, timeseries_wf, [("bold_file", "inputnode.bold_file")]),
            (mask_source[0], timeseries_wf, [(mask_source[1], "inputnode.mask_file")]),
        ])  # fmt:skip
        if confounds is not None:
            workflow.connect([(confounds, timeseries_wf, [
                ("out_file", "inputnode.confounds_file"),
                ("sample_mask_file", "inputnode.sample_mask_file")])])
        kinds = [("labels", a) for a in labels] + [("maps", a) for a in maps] + [
            ("spheres", a) for a in spheres]
        for index, (kind, atlas) in enumerate(kinds):
            common = {"_kind": "timeseries", "Atlas": atlas.name, "AtlasKind": kind}
            what = {"labels": "signal of the region, reduced over its voxels",
                    "maps": "least-squares signal of the map",
                    "spheres": "mean signal of the sphere's voxels"}[kind]
            outputs.append((timeseries_wf, "outputnode.timeseries_files", {
                "atlas": atlas.name, "suffix": "timeseries", "extension": ".tsv",
                "_index": index}, {**common, "ColumnDescription": f"{{name}}: {what}"}))
            outputs.append((timeseries_wf, "outputnode.regions_files", {
                "atlas": atlas.name, "suffix": "regions", "extension": ".tsv",
                "_index": index}, {**common, "_kind": "regions"}))
        if t_r_source is None:
            first = f"{kinds[0][0]}_{kinds[0][1].name}"
            t_r_source = (timeseries_wf, f"{first}.t_r")

    if report:
        from .reports import init_report_wf

        report_wf = init_report_wf(labels=labels, maps=maps, spheres=spheres)
        report_wf.inputs.inputnode.mask_strategy = mask_strategy
        report_wf.inputs.inputnode.parameters = parameters
        workflow.connect([
            (inputnode, report_wf, [("bold_file", "inputnode.bold_file"),
                                    ("confounds_file", "inputnode.fd_file")]),
            (mask_source[0], report_wf, [(mask_source[1], "inputnode.mask_file")]),
        ])  # fmt:skip
        if confounds is not None:
            workflow.connect([(confounds, report_wf, [
                ("out_file", "inputnode.confounds_file"),
                ("sample_mask_file", "inputnode.sample_mask_file")])])
        if labels or maps or spheres:
            workflow.connect([(timeseries_wf, report_wf, [
                ("outputnode.timeseries_files", "inputnode.timeseries_files"),
                ("outputnode.regions_files", "inputnode.regions_files")])])
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
                                  "confounds_file", "atlas_files"],
                     output_names=["metadata"]),
        "sidecar_metadata")
    workflow.connect([
        (inputnode, metadata, [("mask_file", "mask_file"), ("confounds_file", "confounds_file")]),
    ])  # fmt:skip
    metadata.inputs.atlas_files = [str(a[1]) for a in (*labels, *maps, *spheres)] + [
        str(a.lut_file) for a in (*labels, *maps) if a.lut_file]
    metadata.inputs.static = static
    metadata.inputs.n_volumes = int(bold_shape[3]) if len(bold_shape) > 3 else 1
    metadata.inputs.sample_mask = None
    if t_r_source is not None:
        workflow.connect(t_r_source[0], t_r_source[1], metadata, "t_r")
    else:
        metadata.inputs.t_r = None
    if confounds is not None:
        workflow.connect(confounds, "sample_mask", metadata, "sample_mask")
    write = pe.Node(WriteDerivatives(base_directory=str(output_dir)), name="write_derivatives",
                    mem_gb=estimate_mem_gb("sink", bold_shape))
    write.inputs.entities = [{k: v for k, v in e.items() if not k.startswith("_")}
                             for _, _, e, _ in outputs]
    workflow.connect([
        (inputnode, write, [("bold_file", "source_file")]),
        (merge, write, [("out", "in_files")]),
        (metadata, write, [("metadata", "metadata")]),
        (write, outputnode, [("out_files", "out_files")]),
    ])  # fmt:skip
    return workflow
