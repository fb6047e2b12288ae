"""Region time series: labels, maps and spheres extraction in parallel branches."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from nipype_maskers.core.regions.label_names import read_lut
from nipype_maskers.interfaces.regions import (
    NiftiLabelsMasker,
    NiftiMapsMasker,
    NiftiSpheresMasker,
)

from .masking import read_bold_node
from .nodes import bookkeeping_node, heavy_node, preset_t_r
from .resources import estimate_mem_gb
from .shape import DEFAULT_BOLD_SHAPE, resolve_bold_shape


class LabelsAtlas(NamedTuple):
    """A labels atlas: a 3D integer image, with an optional BIDS dseg.tsv look-up table."""

    name: str
    labels_file: Path
    lut_file: Path | None = None


class MapsAtlas(NamedTuple):
    """A probabilistic atlas: a 4D image, one map per volume, optionally a names table."""

    name: str
    maps_file: Path
    n_maps: int = 0
    lut_file: Path | None = None


class SpheresAtlas(NamedTuple):
    """Seeds (a TSV/CSV of x, y, z [name]) and a radius in mm."""

    name: str
    seeds_file: Path
    radius: float | None = None


def extraction_nodes(
    *, labels: Sequence[LabelsAtlas] = (), maps: Sequence[MapsAtlas] = (),
    spheres: Sequence[SpheresAtlas] = (), clean_args: dict[str, Any] | None = None,
    smoothing_fwhm: float | None = None, bold_shape: Sequence[int] = DEFAULT_BOLD_SHAPE,
    omp_nthreads: int = 1, censored: str = "drop",
) -> list[tuple[str, str, pe.Node]]:
    """One masker node per atlas: (kind, atlas name, node), nodes named ``<kind>_<atlas>``.

    ``bold_shape`` is for the memory estimates (:func:`~.shape.resolve_bold_shape` checks it).
    """
    common = {**(clean_args or {}), "censored": censored}
    if smoothing_fwhm:
        common["smoothing_fwhm"] = float(smoothing_fwhm)
    nodes = []
    for atlas in labels:
        interface = NiftiLabelsMasker(labels_file=str(atlas.labels_file), **common)
        if atlas.lut_file:
            interface.inputs.lut_file = str(atlas.lut_file)
        nodes.append(("labels", atlas.name, heavy_node(
            interface, f"labels_{atlas.name}", omp_nthreads,
            estimate_mem_gb("labels", bold_shape))))
    for atlas in maps:
        interface = NiftiMapsMasker(maps_file=str(atlas.maps_file), **common)
        if atlas.lut_file:
            # one name per map, in the order of the table's index (= the volumes' order)
            table = read_lut(atlas.lut_file)
            interface.inputs.labels = [table[index] for index in sorted(table)]
        nodes.append(("maps", atlas.name, heavy_node(
            interface, f"maps_{atlas.name}", omp_nthreads,
            estimate_mem_gb("maps", bold_shape, n_maps=atlas.n_maps))))
    for atlas in spheres:
        interface = NiftiSpheresMasker(seeds_file=str(atlas.seeds_file), **common)
        if atlas.radius:
            interface.inputs.radius = float(atlas.radius)
        nodes.append(("spheres", atlas.name, heavy_node(
            interface, f"spheres_{atlas.name}", omp_nthreads,
            estimate_mem_gb("spheres", bold_shape))))
    return nodes


def init_timeseries_wf(
    *, labels: Sequence[LabelsAtlas] = (), maps: Sequence[MapsAtlas] = (),
    spheres: Sequence[SpheresAtlas] = (), clean_args: dict[str, Any] | None = None,
    smoothing_fwhm: float | None = None, bold_shape: Sequence[int] | None = None,
    bold_file: str | os.PathLike | None = None, omp_nthreads: int = 1,
    censored: str = "drop", read_once: bool | None = None, name: str = "timeseries_wf",
) -> pe.Workflow:
    """Extract region signals for any combination of labels, maps and spheres atlases.

    Each atlas is its own branch, run in parallel by MultiProc or as its own cluster job,
    and cleans its region signals with the selected confounds and censoring (nilearn's
    masker order: extract, then clean). The BOLD run is decompressed once: ``read_bold``
    masks (and smooths) it into an uncompressed matrix of its brain voxels, and every branch
    reads its rows from there (the same numbers as reading the run itself, bit for bit).
    A changed atlas reruns only its branch; a parent that has read the run already gives
    its matrix as the inputnode's ``masked_file`` (``read_once=False``).

    Workflow Graph
        .. code-block:: text

            inputnode(bold_file, mask_file, masked_file, regressors_file, sample_mask_file,
                      t_r)
              -> read_bold (NiftiMasker: the run's masked matrix, .npy)
                  |-> labels_<atlas>  --\\
                  |-> maps_<atlas>    ---> merge_timeseries, merge_regions -> outputnode
                  |-> spheres_<atlas> --/

    In an fMRIPrep-style parent: ``bold_file`` and ``mask_file`` from fMRIPrep's outputs,
    ``regressors_file`` and ``sample_mask_file`` from a LoadConfounds node (or from
    ``init_denoise_wf``'s outputnode, same names), never fMRIPrep's full confounds table.

    Parameters
    ----------
    labels, maps, spheres : sequences of LabelsAtlas, MapsAtlas, SpheresAtlas
        The atlases; at least one in all.
    clean_args : dict, optional
        Cleaning inputs of the maskers (``detrend``, ``standardize``, ``low_pass``,
        ``high_pass``, ``t_r``, ``filter`` ...).
    smoothing_fwhm : float, optional
        Smoothing before extraction, in mm.
    bold_shape : (x, y, z, t), optional
        The run's shape, for the nodes' memory estimates.
    bold_file : path, optional
        The run, when ``bold_shape`` is not given: its header is read now (not the data) for
        the shape. Neither: a 300-volume MNI 2 mm run is assumed
        (:data:`~nipype_maskers.workflows.shape.DEFAULT_BOLD_SHAPE`). The inputnode's
        ``bold_file`` is still to be connected or set.
    omp_nthreads : int
        CPUs of the run (NiPreps' name): ``read_bold`` uses them all (its ``n_procs`` and
        ``num_threads``), the branches that read its matrix, side by side, share them (each
        ``omp_nthreads // atlases``, at least 1). 1 suits MultiProc with more runs than
        processes; more suits few runs on many cores.
    censored : {'drop', 'nan'}
        The volumes ``sample_mask_file`` censors: 'drop' (one row per kept volume, as
        nilearn) or 'nan' (one row per volume, ``n/a`` for the censored ones, so that task
        onsets stay aligned). The cleaning excludes them either way.
    read_once : bool, optional
        True: the ``read_bold`` node reads the run once for every branch; False: no such
        node (each branch reads the run, or the inputnode's ``masked_file``). None
        (default): True with two atlases or more (with one, the matrix would cost more than
        it saves).
    name : str
        Workflow name.

    Inputs
    ------
    bold_file, mask_file
        The run and its brain mask (unset with ``read_once``: ``read_bold`` computes
        nilearn's 'background' mask, which every branch then uses).
    masked_file
        Optional: the run already read by the parent (NiftiMasker's ``out_file`` with
        ``dtype='auto'``, in ``mask_file``, smoothed with ``smoothing_fwhm``); unset, each
        branch reads ``bold_file``.
    regressors_file
        The SELECTED regressors, every column regressed out (LoadConfounds' ``out_file``:
        a TSV with a header row, one row per volume); optional. Not fMRIPrep's full
        ``*_desc-confounds_timeseries.tsv``, whose every column would be regressed out.
    sample_mask_file
        The kept volumes (LoadConfounds' ``sample_mask_file``); optional.
    t_r
        The repetition time in seconds, e.g. fMRIPrep's ``RepetitionTime`` (BOLD sidecar);
        optional (unset: ``clean_args['t_r']``, else the NIfTI header's). It wins over the
        header, and the outputs say which was used.

    Outputs
    -------
    timeseries_files, regions_files
        One ``*_timeseries.tsv`` and one regions table per atlas, in atlas order.
    atlas_names, atlas_kinds
        The atlas of each file and its kind ('labels', 'maps', 'spheres').
    """
    bold_shape = resolve_bold_shape(bold_shape, bold_file, owner="init_timeseries_wf")
    n_atlases = len(labels) + len(maps) + len(spheres)
    if not n_atlases:
        raise ValueError("init_timeseries_wf: no atlas given (labels, maps or spheres)")
    read_once = read_once if read_once is not None else n_atlases > 1
    # after the one read, the branches run side by side: they share its CPUs
    nodes = extraction_nodes(labels=labels, maps=maps, spheres=spheres, clean_args=clean_args,
                             smoothing_fwhm=smoothing_fwhm, bold_shape=bold_shape,
                             omp_nthreads=(max(1, omp_nthreads // n_atlases) if read_once
                                           else omp_nthreads), censored=censored)
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["bold_file", "mask_file", "masked_file", "regressors_file", "sample_mask_file",
                "t_r"]),
        name="inputnode")
    preset_t_r(inputnode, clean_args)
    masked_source: tuple[pe.Node, str] = (inputnode, "masked_file")
    mask_source: tuple[pe.Node, str] = (inputnode, "mask_file")
    if read_once:
        read_bold = read_bold_node(smoothing_fwhm=smoothing_fwhm, bold_shape=bold_shape,
                                   omp_nthreads=omp_nthreads)
        workflow.connect([(inputnode, read_bold, [("bold_file", "in_file"),
                                                  ("mask_file", "mask_file")])])
        masked_source, mask_source = (read_bold, "out_file"), (read_bold, "mask_file")
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["timeseries_files", "regions_files", "atlas_names", "atlas_kinds"]),
        name="outputnode")
    outputnode.inputs.atlas_names = [atlas for _, atlas, _ in nodes]
    outputnode.inputs.atlas_kinds = [kind for kind, _, _ in nodes]
    merge_timeseries = bookkeeping_node(niu.Merge(len(nodes)), "merge_timeseries")
    merge_regions = bookkeeping_node(niu.Merge(len(nodes)), "merge_regions")
    for index, (_, _, node) in enumerate(nodes, start=1):
        workflow.connect([
            (inputnode, node, [("bold_file", "in_file"), ("regressors_file", "confounds_file"),
                               ("sample_mask_file", "sample_mask_file"), ("t_r", "t_r")]),
            (masked_source[0], node, [(masked_source[1], "masked_file")]),
            (mask_source[0], node, [(mask_source[1], "mask_file")]),
            (node, merge_timeseries, [("out_file", f"in{index}")]),
            (node, merge_regions, [("regions_file", f"in{index}")]),
        ])  # fmt:skip
    workflow.connect([
        (merge_timeseries, outputnode, [("out", "timeseries_files")]),
        (merge_regions, outputnode, [("out", "regions_files")]),
    ])  # fmt:skip
    return workflow
