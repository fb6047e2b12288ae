"""Workflows for the NiftiMasker path: compute a mask, extract voxel signals, unmask."""

from __future__ import annotations

from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from nipype_maskers.interfaces.masking import ComputeMask, NiftiMasker, Unmask

from .nodes import heavy_node
from .resources import estimate_mem_gb
from .shape import DEFAULT_BOLD_SHAPE


def read_bold_node(*, mask_strategy: str | None = None, mask_args: dict[str, Any] | None = None,
                   smoothing_fwhm: float | None = None, keep_unsmoothed: bool = False,
                   mean_image: bool = False, bold_shape=None, omp_nthreads: int = 1,
                   name: str = "read_bold") -> pe.Node:
    """The run read once: a NiftiMasker node whose matrix the later steps take as
    ``masked_file`` instead of decompressing the run again.

    Its inputs: ``in_file`` and, unless ``mask_strategy`` is given (the mask is then computed
    from the run in the same decompression), ``mask_file``. Its outputs: ``out_file`` (the
    matrix, uncompressed ``.npy``: volumes x brain voxels in float32, about 275 MB for 300
    volumes of an MNI 2 mm brain, in the node's folder of the work dir), ``mask_file`` and
    ``in_file_sha256``; with ``smoothing_fwhm`` and ``keep_unsmoothed``, ``unsmoothed_file``
    (the rows before smoothing, from the same read: twice the disk); with ``mean_image``,
    ``mean_file`` (the run's mean, for the report).
    """
    masker = NiftiMasker(dtype="auto", mean_image=mean_image)
    if mask_strategy is not None:
        masker.inputs.mask_strategy = mask_strategy
        if mask_args:
            masker.inputs.mask_args = dict(mask_args)
    if smoothing_fwhm:
        masker.inputs.smoothing_fwhm = float(smoothing_fwhm)
        masker.inputs.keep_unsmoothed = keep_unsmoothed
    shape = bold_shape if bold_shape is not None else DEFAULT_BOLD_SHAPE
    memory = estimate_mem_gb("nifti_masker", shape)
    if smoothing_fwhm and keep_unsmoothed:  # a second matrix
        memory += estimate_mem_gb("nifti_masker", shape) - estimate_mem_gb("mask", shape)
    return heavy_node(masker, name, omp_nthreads, memory)


def init_mask_wf(*, mask_strategy: str = "epi", mask_args: dict[str, Any] | None = None,
                 omp_nthreads: int = 1, name: str = "mask_wf") -> pe.Workflow:
    """Compute a brain mask from a BOLD run (or several runs).

    Workflow Graph
        .. code-block:: text

            inputnode(in_file) -> compute_mask -> outputnode(mask_file)

    Parameters
    ----------
    mask_strategy : str
        One of nilearn's strategies: 'background', 'epi', 'whole-brain-template',
        'gm-template', 'wm-template'.
    mask_args : dict, optional
        nilearn's ``mask_args`` for that strategy.
    omp_nthreads : int
        CPUs each heavy node uses (its ``n_procs`` and ``num_threads``; NiPreps' name). 1
        suits MultiProc with more runs than processes; more suits few runs on many cores.
    name : str
        Workflow name.

    Inputs
    ------
    in_file
        A 3D/4D NIfTI, or a list of runs.

    Outputs
    -------
    mask_file
        The binary mask.
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_file"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["mask_file"]), name="outputnode")
    compute_mask = heavy_node(
        ComputeMask(mask_strategy=mask_strategy, mask_args=mask_args or {}), "compute_mask",
        omp_nthreads)
    workflow.connect([
        (inputnode, compute_mask, [("in_file", "in_file")]),
        (compute_mask, outputnode, [("mask_file", "mask_file")]),
    ])  # fmt:skip
    return workflow


def init_voxel_signals_wf(*, mask_strategy: str = "epi", smoothing_fwhm: float | None = None,
                          omp_nthreads: int = 1, name: str = "voxel_signals_wf") -> pe.Workflow:
    """Mask a BOLD run into a (volumes x voxels) matrix and paint it back into an image.

    Workflow Graph
        .. code-block:: text

            inputnode(in_file) -> nifti_masker (mask computed, one decompression)
                               -> unmask -> outputnode

    Parameters
    ----------
    mask_strategy : str
        How the mask is computed (nilearn's names).
    smoothing_fwhm : float, optional
        Smoothing before masking, in mm.
    omp_nthreads : int
        CPUs each heavy node uses (its ``n_procs`` and ``num_threads``; NiPreps' name). 1
        suits MultiProc with more runs than processes; more suits few runs on many cores.
    name : str
        Workflow name.

    Inputs
    ------
    in_file
        A 4D BOLD NIfTI.

    Outputs
    -------
    mask_file
        The mask used.
    signals_file
        The ``.npy`` matrix, voxels in the mask's C order.
    unmasked_file
        The matrix painted back on the mask's grid (4D NIfTI).
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["in_file"]), name="inputnode")
    outputnode = pe.Node(
        niu.IdentityInterface(fields=["mask_file", "signals_file", "unmasked_file"]),
        name="outputnode",
    )
    nifti_masker = read_bold_node(mask_strategy=mask_strategy, smoothing_fwhm=smoothing_fwhm,
                                  omp_nthreads=omp_nthreads, name="nifti_masker")
    unmask = pe.Node(Unmask(), name="unmask")
    workflow.connect([
        (inputnode, nifti_masker, [("in_file", "in_file")]),
        (nifti_masker, unmask, [("out_file", "in_file"), ("mask_file", "mask_file")]),
        (nifti_masker, outputnode, [("out_file", "signals_file"), ("mask_file", "mask_file")]),
        (unmask, outputnode, [("out_file", "unmasked_file")]),
    ])  # fmt:skip
    return workflow
