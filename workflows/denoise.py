"""Denoising: select the fMRIPrep confounds, clean the BOLD run voxel-wise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from nipype_maskers.interfaces.cleaning import CleanImage, LoadConfounds

from .nodes import heavy_node
from .resources import estimate_mem_gb


def init_confounds_node(*, denoise_strategy: str | None = "simple",
                        confounds_args: dict[str, Any] | None = None,
                        name: str = "load_confounds") -> pe.Node:
    """The LoadConfounds node: a nilearn preset (``denoise_strategy``) or explicit strategy."""
    interface = LoadConfounds()
    if denoise_strategy:
        interface.inputs.denoise_strategy = denoise_strategy
    for key, value in (confounds_args or {}).items():
        setattr(interface.inputs, key, value)
    return pe.Node(interface, name=name, mem_gb=estimate_mem_gb("confounds", (1, 1, 1, 1)))


def init_denoise_wf(*, denoise_strategy: str | None = "simple",
                    confounds_args: dict[str, Any] | None = None,
                    clean_args: dict[str, Any] | None = None,
                    bold_shape: Sequence[int] = (97, 115, 97, 300),
                    omp_nthreads: int = 1, name: str = "denoise_wf") -> pe.Workflow:
    """A denoised BOLD run: fMRIPrep confounds regressed out (and filtered, censored).

    Workflow Graph
        .. code-block:: text

            inputnode(bold_file, mask_file, confounds_file)
              -> load_confounds -> clean_image -> outputnode

    Parameters
    ----------
    denoise_strategy : {'simple', 'scrubbing', 'compcor', 'ica_aroma'} or None
        nilearn's ``load_confounds_strategy`` preset; None uses ``confounds_args['strategy']``.
    confounds_args : dict, optional
        LoadConfounds inputs (nilearn's keyword names: ``motion``, ``scrub``...).
    clean_args : dict, optional
        CleanImage inputs (``detrend``, ``standardize``, ``low_pass``, ``high_pass``, ``t_r``).
    bold_shape : (x, y, z, t)
        The run's shape, for the memory estimates.
    omp_nthreads : int
        CPUs each heavy node uses (its ``n_procs`` and ``num_threads``; NiPreps' name). 1
        suits MultiProc with more runs than processes; more suits few runs on many cores.
    name : str
        Workflow name.

    Inputs
    ------
    bold_file, mask_file
        The fMRIPrep run and its brain mask.
    confounds_file
        fMRIPrep's ``*_desc-confounds_timeseries.tsv`` (its JSON sidecar beside it).

    Outputs
    -------
    denoised_file
        The cleaned 4D NIfTI (kept volumes only), 0 outside the mask.
    selected_confounds, sample_mask_file
        The regressed confounds (TSV) and the kept volumes.
    t_r
        The TR used.
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["bold_file", "mask_file", "confounds_file"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["denoised_file", "selected_confounds", "sample_mask_file", "t_r"]),
        name="outputnode")
    load_confounds = init_confounds_node(denoise_strategy=denoise_strategy,
                                         confounds_args=confounds_args)
    clean_image = heavy_node(CleanImage(**(clean_args or {})), "clean_image", omp_nthreads,
                             estimate_mem_gb("clean_image", bold_shape))
    workflow.connect([
        (inputnode, load_confounds, [("confounds_file", "confounds_file")]),
        (inputnode, clean_image, [("bold_file", "in_file"), ("mask_file", "mask_file")]),
        (load_confounds, clean_image, [("out_file", "confounds_file"),
                                       ("sample_mask_file", "sample_mask_file")]),
        (load_confounds, outputnode, [("out_file", "selected_confounds"),
                                      ("sample_mask_file", "sample_mask_file")]),
        (clean_image, outputnode, [("out_file", "denoised_file"), ("t_r", "t_r")]),
    ])  # fmt:skip
    return workflow
