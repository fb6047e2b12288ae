"""Denoising: select the fMRIPrep confounds, clean the BOLD run voxel-wise."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from nipype_maskers.interfaces.cleaning import CleanImage, LoadConfounds

from .nodes import heavy_node, preset_t_r
from .resources import estimate_mem_gb
from .shape import resolve_bold_shape


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


def bold_clean_inputs(clean_args: dict[str, Any] | None, standardize_bold: str | None,
                      censored: str) -> dict[str, Any]:
    """CleanImage's inputs for the denoised BOLD: the shared cleaning options, with the
    BOLD's own ``standardize`` (``standardize_bold``; the region signals keep
    ``clean_args['standardize']``) and ``censored``."""
    return {**(clean_args or {}), "standardize": standardize_bold, "censored": censored}


def init_denoise_wf(*, denoise_strategy: str | None = "simple",
                    confounds_args: dict[str, Any] | None = None,
                    clean_args: dict[str, Any] | None = None,
                    bold_shape: Sequence[int] | None = None,
                    bold_file: str | os.PathLike | None = None,
                    standardize_bold: str | None = None, censored: str = "drop",
                    omp_nthreads: int = 1, name: str = "denoise_wf") -> pe.Workflow:
    """A denoised BOLD run: fMRIPrep confounds regressed out (and filtered, censored).

    Workflow Graph
        .. code-block:: text

            inputnode(bold_file, mask_file, confounds_file, t_r)
              -> load_confounds -> clean_image -> outputnode

    In an fMRIPrep-style parent the inputnode takes fMRIPrep's outputs as they are (its full
    confounds table included); the outputnode's ``regressors_file`` and ``sample_mask_file``
    feed ``init_timeseries_wf``'s inputnode fields of the same names.

    Parameters
    ----------
    denoise_strategy : {'simple', 'scrubbing', 'compcor', 'ica_aroma'} or None
        nilearn's ``load_confounds_strategy`` preset; None uses ``confounds_args['strategy']``.
    confounds_args : dict, optional
        LoadConfounds inputs (nilearn's keyword names: ``motion``, ``scrub``...).
    clean_args : dict, optional
        CleanImage inputs (``detrend``, ``low_pass``, ``high_pass``, ``t_r``...), not
        ``standardize``: see ``standardize_bold``.
    bold_shape : (x, y, z, t), optional
        The run's shape, for the memory estimates.
    bold_file : path, optional
        The run, when ``bold_shape`` is not given: its header is read now (not the data) for
        the shape. Neither: a 300-volume MNI 2 mm run is assumed
        (:data:`~nipype_maskers.workflows.shape.DEFAULT_BOLD_SHAPE`). The inputnode's
        ``bold_file`` is still to be connected or set.
    standardize_bold : {None, 'zscore_sample', 'zscore', 'psc'}
        Standardize each voxel's cleaned time series; None (default: the denoised BOLD
        keeps its units, as XCP-D's and fMRIPrep's users expect).
    censored : {'drop', 'nan'}
        The censored volumes in the denoised BOLD: 'drop' (kept volumes only, as nilearn)
        or 'nan' (every volume, the censored ones NaN in the mask).
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
    t_r
        The repetition time in seconds, e.g. fMRIPrep's ``RepetitionTime`` (BOLD sidecar);
        optional (unset: ``clean_args['t_r']``, else the NIfTI header's). It wins over the
        header, and the outputs say which was used.

    Outputs
    -------
    denoised_file
        The cleaned 4D NIfTI (kept volumes only, or every volume with ``censored='nan'``),
        0 outside the mask.
    regressors_file, sample_mask_file
        The selected regressors (TSV) and the kept volumes: what ``init_timeseries_wf``'s
        inputnode takes under the same names.
    t_r
        The TR used.
    """
    if "standardize" in (clean_args or {}):
        raise ValueError(
            f"init_denoise_wf: clean_args has standardize={clean_args['standardize']!r}; the "
            "denoised BOLD's is standardize_bold (default None: not standardized), "
            "clean_args['standardize'] is the region signals' (init_timeseries_wf)"
        )
    bold_shape = resolve_bold_shape(bold_shape, bold_file, owner="init_denoise_wf")
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["bold_file", "mask_file", "confounds_file", "t_r"]), name="inputnode")
    preset_t_r(inputnode, clean_args)
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["denoised_file", "regressors_file", "sample_mask_file", "t_r"]),
        name="outputnode")
    load_confounds = init_confounds_node(denoise_strategy=denoise_strategy,
                                         confounds_args=confounds_args)
    clean_image = heavy_node(
        CleanImage(**bold_clean_inputs(clean_args, standardize_bold, censored)), "clean_image",
        omp_nthreads, estimate_mem_gb("clean_image", bold_shape))
    workflow.connect([
        (inputnode, load_confounds, [("confounds_file", "confounds_file")]),
        (inputnode, clean_image, [("bold_file", "in_file"), ("mask_file", "mask_file"),
                                  ("t_r", "t_r")]),
        (load_confounds, clean_image, [("out_file", "confounds_file"),
                                       ("sample_mask_file", "sample_mask_file")]),
        (load_confounds, outputnode, [("out_file", "regressors_file"),
                                      ("sample_mask_file", "sample_mask_file")]),
        (clean_image, outputnode, [("out_file", "denoised_file"), ("t_r", "t_r")]),
    ])  # fmt:skip
    return workflow
