"""Surface and grayordinate runs: region time series of GIFTI pairs and CIFTI-2 runs.

fMRIPrep writes BOLD on the cortical surface as GIFTI pairs
(``*_hemi-L|R_space-fsaverage5_bold.func.gii``) and, with ``--cifti-output``, as CIFTI-2
grayordinates (``*_space-fsLR_den-91k_bold.dtseries.nii``). Their outputs are region signals
only (no voxel-wise denoised output yet); the confounds and censoring are the volume runs'
(:class:`~nipype_maskers.interfaces.cleaning.LoadConfounds` on the run's fMRIPrep confounds),
the derivatives are named after the run with its ``hemi`` dropped
(``sub-01_task-rest_space-fsaverage5_atlas-X_timeseries.tsv``,
``sub-01_task-rest_space-fsLR_den-91k_atlas-X_timeseries.tsv``) and written by
:class:`~nipype_maskers.interfaces.bids.WriteDerivatives` as the volume runs' are.

The maskers (``SurfaceLabelsMasker``/``SurfaceMapsMasker`` for GIFTI,
``CiftiLabelsMasker``/``CiftiMapsMasker`` for CIFTI) are imported when a workflow is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from nipype_maskers import __version__
from nipype_maskers.interfaces.bids import WriteDerivatives

from .base import _CENSORED_HANDLING, _sidecar_metadata
from .connectivity import (
    add_connectivity,
    connect_connectivity_report,
    connect_runtime_metadata,
)
from .denoise import init_confounds_node
from .nodes import bookkeeping_node, heavy_node, preset_t_r
from .outputs import UNWRITTEN_FIELDS, connect_unwritten_outputs
from .resources import estimate_mem_gb, estimate_surface_mem_gb
from .timeseries import LabelsAtlas, MapsAtlas

#: The kinds of surface run: a pair of GIFTI hemispheres, a CIFTI-2 dense time series.
KINDS = ("gifti", "cifti")
#: Entities of the run left out of the output names: fMRIPrep's desc, and the hemisphere of
#: a GIFTI pair (the outputs hold both).
DISMISSED_ENTITIES = ["desc", "hemi"]
#: Shape assumed for the memory estimates when no file is given: 300 volumes of fsLR 91k.
DEFAULT_SURFACE_SHAPE = (300, 91282)
_STRATEGIES_ONLY_CENSOR = {"scrub", "non_steady_state"}


def _masker_classes(kind: str) -> tuple[type, type]:
    """The (labels, maps) masker interfaces of a kind of run."""
    if kind == "gifti":
        from nipype_maskers.interfaces.surface import SurfaceLabelsMasker, SurfaceMapsMasker

        return SurfaceLabelsMasker, SurfaceMapsMasker
    if kind == "cifti":
        from nipype_maskers.interfaces.cifti import CiftiLabelsMasker, CiftiMapsMasker

        return CiftiLabelsMasker, CiftiMapsMasker
    raise ValueError(f"kind: {kind!r} is not a surface run's kind; expected one of {KINDS}")


def _as_input(path: Path | str | Sequence[Path | str], kind: str, what: str) -> Any:
    """An atlas or run file as the masker takes it: a path (CIFTI), a list of two (GIFTI)."""
    if kind == "cifti":
        if isinstance(path, (list, tuple)):
            raise ValueError(f"{what}: a CIFTI run takes one file, got {len(path)}: "
                             f"{[str(p) for p in path]}")
        return str(path)
    files = [str(p) for p in path] if isinstance(path, (list, tuple)) else [str(path)]
    if len(files) != 2:
        raise ValueError(f"{what}: a GIFTI run takes a pair (hemi-L, hemi-R), got {files}")
    return files


def surface_shape(bold_file: str | os.PathLike | Sequence[str | os.PathLike]
                  ) -> tuple[int, int]:
    """(volumes, grayordinates or vertices of both hemispheres) of a surface run.

    A CIFTI file's header is read (not its data); a GIFTI pair is parsed (nibabel reads a
    GIFTI whole; fsaverage5 runs are small).
    """
    import nibabel as nib

    if isinstance(bold_file, (list, tuple)):
        images = [nib.load(str(path)) for path in bold_file]
        n_volumes = {len(image.darrays) for image in images}
        if len(n_volumes) != 1:
            raise ValueError(f"bold_file: the hemispheres have {sorted(n_volumes)} volumes; "
                             "a pair must have the same number")
        vertices = sum(int(image.darrays[0].data.size) if image.darrays else 0
                       for image in images)
        return n_volumes.pop(), vertices
    shape = nib.load(str(bold_file)).shape
    if len(shape) != 2:
        raise ValueError(f"bold_file: '{bold_file}' has shape {shape}; expected a CIFTI-2 "
                         "dense time series (volumes x grayordinates)")
    return int(shape[0]), int(shape[1])


def _check_takes_names(interface, field: str, atlas: LabelsAtlas | MapsAtlas, kind: str
                       ) -> None:
    """A look-up table only for maskers that take names: a CIFTI atlas names its own."""
    if interface.inputs.trait(field) is None:
        raise ValueError(
            f"atlas {atlas.name}: a look-up table ('{Path(atlas.lut_file).name}') was given "
            f"with a {kind.upper()} atlas, whose names come from the file itself (the "
            ".dlabel.nii label table, the .dscalar.nii map names); give the atlas alone")


def surface_extraction_nodes(
    *, kind: str, labels: Sequence[LabelsAtlas] = (), maps: Sequence[MapsAtlas] = (),
    clean_args: dict[str, Any] | None = None, shape: Sequence[int] = DEFAULT_SURFACE_SHAPE,
    omp_nthreads: int = 1, censored: str = "drop",
) -> list[tuple[str, str, pe.Node]]:
    """One masker node per atlas: (kind, atlas name, node), nodes named ``<kind>_<atlas>``.

    ``labels_file`` / ``maps_file`` of an atlas is a ``.dlabel.nii`` / ``.dscalar.nii`` for
    CIFTI runs, a (hemi-L, hemi-R) pair of ``.label.gii`` / ``.func.gii`` for GIFTI runs.
    """
    labels_class, maps_class = _masker_classes(kind)
    common = {**(clean_args or {}), "censored": censored}
    nodes = []
    for atlas in labels:
        interface = labels_class(
            labels_file=_as_input(atlas.labels_file, kind, f"atlas {atlas.name}"), **common)
        if atlas.lut_file:
            _check_takes_names(interface, "lut_file", atlas, kind)
            interface.inputs.lut_file = str(atlas.lut_file)
        nodes.append(("labels", atlas.name, heavy_node(
            interface, f"labels_{atlas.name}", omp_nthreads,
            estimate_surface_mem_gb("labels", shape))))
    for atlas in maps:
        interface = maps_class(
            maps_file=_as_input(atlas.maps_file, kind, f"maps {atlas.name}"), **common)
        if atlas.lut_file:
            from nipype_maskers.core.regions.label_names import read_lut

            _check_takes_names(interface, "labels", atlas, kind)

            table = read_lut(atlas.lut_file)  # one name per map, in the maps' order
            interface.inputs.labels = [table[index] for index in sorted(table)]
        nodes.append(("maps", atlas.name, heavy_node(
            interface, f"maps_{atlas.name}", omp_nthreads,
            estimate_surface_mem_gb("maps", shape, n_maps=atlas.n_maps))))
    return nodes


def read_surface_node(*, kind: str, shape: Sequence[int] = DEFAULT_SURFACE_SHAPE,
                      omp_nthreads: int = 1, name: str = "read_bold") -> pe.Node:
    """The run read once: a node whose matrix the maskers take as ``masked_file`` instead of
    reading the run again.

    GIFTI: SurfaceMasker (``all_vertices``, ``dtype='auto'``): decoding a pair (base64, zlib,
    XML) is most of a GIFTI masker's time (an fsaverage5 pair of 300 volumes: 0.25 s a
    branch, 0.03 s from the matrix). CIFTI: CiftiMasker: a branch then skips the file's read
    and SHA-256 (~0.15 s for 300 volumes of fsLR 91k) but still parses its CIFTI header
    (~0.3 s, for the grayordinates). Its input: ``in_file``; its outputs:
    ``out_file`` (the matrix, uncompressed ``.npy``: volumes x vertices or grayordinates,
    about 110 MB for 300 volumes of fsLR 91k in float32, in the node's folder of the work
    dir) and ``in_file_sha256`` (the run's digest(s), which the maskers then pass on).
    """
    if kind == "gifti":
        from nipype_maskers.interfaces.surface import SurfaceMasker

        interface = SurfaceMasker(all_vertices=True, dtype="auto")
    elif kind == "cifti":
        from nipype_maskers.interfaces.cifti import CiftiMasker

        interface = CiftiMasker()
    else:
        raise ValueError(f"kind: {kind!r} is not a surface run's kind; expected one of {KINDS}")
    return heavy_node(interface, name, omp_nthreads, estimate_surface_mem_gb("labels", shape))


def init_surface_timeseries_wf(
    *, kind: str, labels: Sequence[LabelsAtlas] = (), maps: Sequence[MapsAtlas] = (),
    clean_args: dict[str, Any] | None = None, shape: Sequence[int] | None = None,
    bold_file: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    omp_nthreads: int = 1, censored: str = "drop", read_once: bool | None = None,
    name: str = "surface_timeseries_wf",
) -> pe.Workflow:
    """Region signals of a GIFTI pair or a CIFTI-2 run, one branch per atlas.

    A GIFTI pair with two atlases or more is read once: ``read_bold``
    (:func:`read_surface_node`) writes its matrix and every branch reads its rows from there
    (the same numbers as reading the run itself, bit for bit) and the run's digest from its
    trailer. A CIFTI run is already an uncompressed matrix: its branches read it each (from
    the page cache), since each parses its CIFTI header anyway (~0.3 s for fsLR 91k, more
    than its data's read and digest); ``read_once=True`` gives it a ``read_bold`` too.

    Workflow Graph
        .. code-block:: text

            inputnode(bold_file, masked_file, regressors_file, sample_mask_file, t_r)
              -> read_bold (read_once: SurfaceMasker / CiftiMasker, the run's matrix)
                  |-> labels_<atlas> --\\
                  |-> maps_<atlas>   ---> merge_timeseries, merge_regions -> outputnode

    Parameters
    ----------
    kind : {'gifti', 'cifti'}
        The run's data: a pair of GIFTI hemispheres, or a CIFTI-2 ``.dtseries.nii``.
    labels, maps : sequences of LabelsAtlas, MapsAtlas
        The atlases, at least one: for CIFTI a ``.dlabel.nii`` / ``.dscalar.nii``, for GIFTI
        a (hemi-L, hemi-R) pair of ``.label.gii`` (or integer ``.func.gii``) / ``.func.gii``.
    clean_args : dict, optional
        The maskers' cleaning inputs (``detrend``, ``standardize``, ``low_pass``,
        ``high_pass``, ``t_r``...), as for the volume maskers.
    shape : (volumes, grayordinates), optional
        For the nodes' memory estimates; else read from ``bold_file``, else
        :data:`DEFAULT_SURFACE_SHAPE`.
    bold_file : path or pair of paths, optional
        The run, to read its shape now (the inputnode's ``bold_file`` is still to be set).
    omp_nthreads : int
        CPUs each masker node claims.
    censored : {'drop', 'nan'}
        The censored volumes: dropped, or ``n/a`` rows (as the volume maskers).
    read_once : bool, optional
        True: the ``read_bold`` node reads the run once for every branch; False: no such
        node (each branch reads the run, or the inputnode's ``masked_file``). None
        (default): True for a GIFTI pair with two atlases or more (with one, the matrix
        would cost more than it saves; a CIFTI run: see above).
    name : str
        Workflow name.

    Inputs
    ------
    bold_file
        The run: a ``.dtseries.nii``, or ``[hemi-L .func.gii, hemi-R .func.gii]``.
    masked_file
        Optional: the run already read by the parent (``read_bold``'s ``out_file`` of
        :func:`read_surface_node`); unset, each branch reads ``bold_file``.
    regressors_file, sample_mask_file
        LoadConfounds' outputs (the selected regressors, the kept volumes); optional.
    t_r
        Repetition time (s); optional: else the file's (CIFTI SeriesAxis, GIFTI TimeStep).

    Outputs
    -------
    timeseries_files, regions_files, atlas_names, atlas_kinds
        As :func:`~nipype_maskers.workflows.timeseries.init_timeseries_wf`'s.
    """
    if shape is None:
        shape = surface_shape(bold_file) if bold_file is not None else DEFAULT_SURFACE_SHAPE
    nodes = surface_extraction_nodes(kind=kind, labels=labels, maps=maps,
                                     clean_args=clean_args, shape=shape,
                                     omp_nthreads=omp_nthreads, censored=censored)
    if not nodes:
        raise ValueError("init_surface_timeseries_wf: no atlas given (labels or maps)")
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["bold_file", "masked_file", "regressors_file", "sample_mask_file", "t_r"]),
        name="inputnode")
    preset_t_r(inputnode, clean_args)
    masked_source: tuple[pe.Node, str] = (inputnode, "masked_file")
    if read_once if read_once is not None else (kind == "gifti" and len(nodes) > 1):
        read_bold = read_surface_node(kind=kind, shape=shape, omp_nthreads=omp_nthreads)
        workflow.connect(inputnode, "bold_file", read_bold, "in_file")
        masked_source = (read_bold, "out_file")
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["timeseries_files", "regions_files", "atlas_names", "atlas_kinds"]),
        name="outputnode")
    outputnode.inputs.atlas_names = [atlas for _, atlas, _ in nodes]
    outputnode.inputs.atlas_kinds = [what for what, _, _ in nodes]
    merge_timeseries = bookkeeping_node(niu.Merge(len(nodes)), "merge_timeseries")
    merge_regions = bookkeeping_node(niu.Merge(len(nodes)), "merge_regions")
    for index, (_, _, node) in enumerate(nodes, start=1):
        workflow.connect([
            (inputnode, node, [("bold_file", "in_file"), ("regressors_file", "confounds_file"),
                               ("sample_mask_file", "sample_mask_file"), ("t_r", "t_r")]),
            (masked_source[0], node, [(masked_source[1], "masked_file")]),
            (node, merge_timeseries, [("out_file", f"in{index}")]),
            (node, merge_regions, [("regions_file", f"in{index}")]),
        ])  # fmt:skip
    workflow.connect([
        (merge_timeseries, outputnode, [("out", "timeseries_files")]),
        (merge_regions, outputnode, [("out", "regions_files")]),
    ])  # fmt:skip
    return workflow


def _atlas_files(atlases: Sequence[LabelsAtlas | MapsAtlas]) -> list[str]:
    """Every file of the atlases (pairs flattened, look-up tables too), for the hashes."""
    files = []
    for atlas in atlases:
        image = atlas[1]
        files += [str(p) for p in image] if isinstance(image, (list, tuple)) else [str(image)]
        if atlas.lut_file:
            files.append(str(atlas.lut_file))
    return files


def init_surface_maskers_wf(
    *,
    kind: str,
    output_dir: Path | None = None,
    bold_file: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    shape: Sequence[int] | None = None,
    denoise_strategy: str | None = "simple",
    confounds_args: dict[str, Any] | None = None,
    clean_args: dict[str, Any] | None = None,
    labels: Sequence[LabelsAtlas] = (),
    maps: Sequence[MapsAtlas] = (),
    atlas_space: str | None = None,
    censored: str = "drop",
    report: bool = False,
    connectivity: Sequence[str] = (),
    connectivity_shrinkage: str = "ledoit_wolf",
    fisher_z: bool = False,
    write_derivatives: bool = True,
    omp_nthreads: int = 1,
    name: str = "surface_maskers_wf",
) -> pe.Workflow:
    """Everything for one surface run (GIFTI pair or CIFTI-2), written as BIDS derivatives.

    The surface sibling of :func:`~nipype_maskers.workflows.base.init_maskers_wf`: the same
    confounds and censoring, the same sidecars (``SamplingFrequency``,
    ``RepetitionTimeSource``, ``AtlasSpace``, ``Parameters``, ``CensoredVolumes``,
    ``InputSHA256``), the same writer; region time series and regions tables only.

    Workflow Graph
        .. code-block:: text

            inputnode(bold_file, confounds_file, t_r, t_r_source)
              -> read_bold (a GIFTI pair read once: its matrix, when two steps or more read it)
              -> load_confounds
              -> surface_timeseries_wf (one masker per atlas)
              -> surface_report_wf (optional HTML report)
              -> sidecar_metadata -> write_derivatives -> outputnode

    Parameters
    ----------
    kind : {'gifti', 'cifti'}
        The run's data.
    output_dir : Path, optional
        The BIDS-derivatives folder (required when ``write_derivatives``).
    bold_file : path or pair of paths, optional
        The run, to read its shape for the memory estimates and the sidecars' censored
        volumes (or give ``shape``).
    shape : (volumes, grayordinates), optional
        The run's shape, when ``bold_file`` is not given.
    denoise_strategy, confounds_args, clean_args, censored, omp_nthreads
        As :func:`~nipype_maskers.workflows.base.init_maskers_wf`'s.
    labels, maps : sequences of LabelsAtlas, MapsAtlas
        The atlases (see :func:`init_surface_timeseries_wf`); at least one.
    atlas_space : str, optional
        Recorded as ``AtlasSpace`` in the sidecars.
    report : bool
        Also write the run's visual report (``..._report.html``: carpet, coverage; needs
        matplotlib), :func:`~nipype_maskers.workflows.reports.init_surface_report_wf`.
    connectivity, connectivity_shrinkage, fisher_z
        The matrices and QC, as :func:`~nipype_maskers.workflows.base.init_maskers_wf`'s.
    write_derivatives : bool
        False: hand files, entities and metadata to the outputnode, for a parent's sink
        (which must dismiss the ``hemi`` entity of a GIFTI run's name, as
        :data:`DISMISSED_ENTITIES` does here).
    name : str
        Workflow name.

    Inputs
    ------
    bold_file
        A ``.dtseries.nii``, or ``[hemi-L .func.gii, hemi-R .func.gii]``.
    confounds_file
        fMRIPrep's ``*_desc-confounds_timeseries.tsv`` of the run.
    t_r, t_r_source
        Optional repetition time (wins over the file's) and where it comes from.

    Outputs
    -------
    out_files (and with ``write_derivatives=False``: entities, metadata)
        As :func:`~nipype_maskers.workflows.base.init_maskers_wf`'s.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r}; expected one of {KINDS}")
    if write_derivatives and output_dir is None:
        raise ValueError("init_surface_maskers_wf: output_dir is required to write the "
                         "derivatives; give the BIDS-derivatives folder, or "
                         "write_derivatives=False")
    if not (labels or maps):
        raise ValueError("init_surface_maskers_wf: no atlas given (labels or maps); surface "
                         "runs give region signals only")
    if shape is None:
        shape = surface_shape(bold_file) if bold_file is not None else DEFAULT_SURFACE_SHAPE
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["bold_file", "confounds_file", "t_r", "t_r_source"]), name="inputnode")
    preset_t_r(inputnode, clean_args)
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["out_files"] if write_derivatives else list(UNWRITTEN_FIELDS)),
        name="outputnode")
    parameters = {
        "DenoiseStrategy": denoise_strategy, "ConfoundsArgs": confounds_args or {},
        "Cleaning": clean_args or {}, "Censored": censored,
        "NipypeMaskersVersion": __version__,
    }
    timeseries_wf = init_surface_timeseries_wf(
        kind=kind, labels=labels, maps=maps, clean_args=clean_args, shape=shape,
        omp_nthreads=omp_nthreads, censored=censored, read_once=False)
    workflow.connect(inputnode, "bold_file", timeseries_wf, "inputnode.bold_file")
    workflow.connect(inputnode, "t_r", timeseries_wf, "inputnode.t_r")
    outputs: list[tuple[pe.Node | pe.Workflow, str, dict[str, Any], dict[str, Any]]] = []
    confounds = None
    strategy = set((confounds_args or {}).get("strategy") or ())
    if denoise_strategy or strategy:
        confounds = init_confounds_node(denoise_strategy=denoise_strategy,
                                        confounds_args=confounds_args)
        workflow.connect([
            (inputnode, confounds, [("confounds_file", "confounds_file")]),
            (confounds, timeseries_wf, [("out_file", "inputnode.regressors_file"),
                                        ("sample_mask_file", "inputnode.sample_mask_file")]),
        ])  # fmt:skip
        if denoise_strategy or strategy - _STRATEGIES_ONLY_CENSOR:
            outputs.append((confounds, "out_file", {"desc": "confounds", "suffix": "timeseries",
                                                    "extension": ".tsv"},
                            {"_kind": "confounds",
                             "Description": "The confounds regressed out of every output"}))
    # the steps that read the run: the atlases and the uncleaned signals of the QC (which
    # needs the confounds); with two or more, a GIFTI pair is read (decoded, hashed) once
    # (a CIFTI run is an uncompressed matrix already: see init_surface_timeseries_wf)
    read_bold = None
    if kind == "gifti" and len(labels) + len(maps) + bool(
            connectivity and confounds is not None) > 1:
        read_bold = read_surface_node(kind=kind, shape=shape, omp_nthreads=omp_nthreads)
        workflow.connect([
            (inputnode, read_bold, [("bold_file", "in_file")]),
            (read_bold, timeseries_wf, [("out_file", "inputnode.masked_file")]),
        ])  # fmt:skip
    kinds = [("labels", a) for a in labels] + [("maps", a) for a in maps]
    for index, (what, atlas) in enumerate(kinds):
        common = {"_kind": "timeseries", "Atlas": atlas.name, "AtlasKind": what,
                  **({"AtlasSpace": atlas_space} if atlas_space else {}),
                  "_censored": _CENSORED_HANDLING["timeseries", censored],
                  "Standardize": (clean_args or {}).get("standardize")}
        reduced = {"labels": "signal of the region, reduced over its vertices/voxels",
                   "maps": "least-squares signal of the map"}[what]
        outputs.append((timeseries_wf, "outputnode.timeseries_files", {
            "atlas": atlas.name, "suffix": "timeseries", "extension": ".tsv", "_index": index},
            {**common, "ColumnDescription": f"{{name}}: {reduced}"}))
        outputs.append((timeseries_wf, "outputnode.regions_files", {
            "atlas": atlas.name, "suffix": "regions", "extension": ".tsv", "_index": index},
            {**common, "_kind": "regions"}))
    connectivity_wf = None
    if connectivity:
        # the first atlas once more, uncleaned: the QC's DVARS before cleaning
        raw = surface_extraction_nodes(kind=kind, **{kinds[0][0]: [kinds[0][1]]},
                                       shape=shape, omp_nthreads=omp_nthreads)[0][2]
        raw.name = f"raw_{kinds[0][0]}_{kinds[0][1].name}"
        if read_bold is not None and confounds is not None:  # raw is used (the QC)
            workflow.connect(read_bold, "out_file", raw, "masked_file")
        reader = timeseries_wf.get_node(f"{kinds[0][0]}_{kinds[0][1].name}")
        t_r = ((timeseries_wf, f"{kinds[0][0]}_{kinds[0][1].name}.t_r")
               if "t_r" in reader.interface.output_spec().copyable_trait_names()
               else (inputnode, "t_r"))
        connectivity_wf = add_connectivity(
            workflow, timeseries_wf=timeseries_wf, inputnode=inputnode, confounds=confounds,
            atlases=kinds, raw_node=raw, t_r=t_r, kinds=connectivity,
            shrinkage=connectivity_shrinkage, fisher_z=fisher_z, clean_args=clean_args,
            atlas_space=atlas_space, outputs=outputs)
    if report:
        from .reports import init_surface_report_wf

        report_wf = init_surface_report_wf(atlas_names=[atlas.name for _, atlas in kinds],
                                           connectivity=connectivity_wf is not None)
        if connectivity_wf is not None:
            connect_connectivity_report(workflow, connectivity_wf, report_wf)
        report_wf.inputs.inputnode.parameters = parameters
        if labels:  # the first labels atlas orders the carpet's rows
            report_wf.inputs.inputnode.labels_file = _as_input(
                labels[0].labels_file, kind, f"atlas {labels[0].name}")
        workflow.connect([
            (inputnode, report_wf, [("bold_file", "inputnode.bold_file"),
                                    ("confounds_file", "inputnode.fd_file")]),
            (timeseries_wf, report_wf, [
                ("outputnode.timeseries_files", "inputnode.timeseries_files"),
                ("outputnode.regions_files", "inputnode.regions_files")]),
        ])  # fmt:skip
        if confounds is not None:
            workflow.connect([(confounds, report_wf, [
                ("out_file", "inputnode.regressors_file"),
                ("sample_mask_file", "inputnode.sample_mask_file")])])
        outputs.append((report_wf, "outputnode.report_file",
                        {"suffix": "report", "extension": ".html"}, {"_kind": "report"}))
    # one merge input per producing field, flattened: entities in the same order
    fields: dict[tuple[int, str], list] = {}
    for output in outputs:
        fields.setdefault((id(output[0]), output[1]), []).append(output)
    merge = bookkeeping_node(niu.Merge(len(fields), ravel_inputs=True), "merge_outputs")
    outputs = []
    for position, group in enumerate(fields.values(), start=1):
        workflow.connect(group[0][0], group[0][1], merge, f"in{position}")
        outputs.extend(sorted(group, key=lambda output: output[2].get("_index", 0)))
    metadata = bookkeeping_node(
        niu.Function(function=_sidecar_metadata,
                     input_names=["static", "t_r", "sample_mask", "n_volumes", "mask_file",
                                  "confounds_file", "atlas_files", "t_r_origin",
                                  "given_t_r_origin", "bold_file", "bold_sha256"],
                     output_names=["metadata"]),
        "sidecar_metadata")
    metadata.inputs.static = [{**meta, "Parameters": parameters} for *_, meta in outputs]
    metadata.inputs.n_volumes = int(shape[0])
    metadata.inputs.atlas_files = _atlas_files([*labels, *maps])
    workflow.connect([
        (inputnode, metadata, [("confounds_file", "confounds_file"),
                               ("t_r_source", "given_t_r_origin")]),
    ])  # fmt:skip
    if confounds is not None:
        workflow.connect(confounds, "sample_mask", metadata, "sample_mask")
    # the first masker read the run: its TR, where that came from, its digest when it has one
    reader = timeseries_wf.get_node(f"{kinds[0][0]}_{kinds[0][1].name}")
    produced = set(reader.interface.output_spec().copyable_trait_names())
    prefix = f"{kinds[0][0]}_{kinds[0][1].name}."
    for field, target in (("t_r", "t_r"), ("t_r_source", "t_r_origin")):
        if field in produced:
            workflow.connect(timeseries_wf, prefix + field, metadata, target)
    source = (inputnode, "bold_file")
    if kind == "gifti":  # the outputs are named after hemi-L's name, hemi dropped
        first = bookkeeping_node(niu.Select(index=0), "select_source")
        workflow.connect(inputnode, "bold_file", first, "inlist")
        source = (first, "out")
    # the run's digests (a GIFTI pair has two): its masker's, computed while streaming it
    digest = "in_file_sha256" in produced
    workflow.connect(inputnode, "bold_file", metadata, "bold_file")
    if digest:
        workflow.connect(timeseries_wf, prefix + "in_file_sha256", metadata, "bold_sha256")
    metadata_out: tuple[pe.Node, str] = (metadata, "metadata")
    if connectivity_wf is not None:  # the matrices' and QC's own sidecar content, merged in
        metadata_out = connect_runtime_metadata(workflow, metadata_out, connectivity_wf, [
            i for i, output in enumerate(outputs) if output[0] is connectivity_wf])
    entities = [{k: v for k, v in e.items() if not k.startswith("_")} for _, _, e, _ in outputs]
    if not write_derivatives:
        connect_unwritten_outputs(workflow, files=(merge, "out"),
                                  metadata=metadata_out, source=source,
                                  entities=entities, outputnode=outputnode)
        return workflow
    write = pe.Node(WriteDerivatives(base_directory=str(output_dir),
                                     dismiss_entities=DISMISSED_ENTITIES),
                    name="write_derivatives", mem_gb=estimate_mem_gb("sink", (1, 1, 1, 1)))
    write.inputs.entities = entities
    workflow.connect([
        (source[0], write, [(source[1], "source_file")]),
        (merge, write, [("out", "in_files")]),
        (metadata_out[0], write, [(metadata_out[1], "metadata")]),
        (write, outputnode, [("out_files", "out_files")]),
    ])  # fmt:skip
    if digest and kind == "gifti":  # the source is hemi-L: its digest is the pair's first
        first_digest = bookkeeping_node(niu.Select(index=0), "select_source_sha256")
        workflow.connect(timeseries_wf, prefix + "in_file_sha256", first_digest, "inlist")
        workflow.connect(first_digest, "out", write, "source_sha256")
    elif digest:  # the run is not read a second time for SourceSHA256
        workflow.connect(timeseries_wf, prefix + "in_file_sha256", write, "source_sha256")
    return workflow
