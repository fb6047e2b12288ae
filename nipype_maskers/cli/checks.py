"""Checks of the runs against the options, before any work: spaces and repetition times.

Spaces (:mod:`nipype_maskers.spaces`): every atlas must be in the space of the runs it is
applied to. TR: ``RepetitionTime`` from the BOLD's BIDS JSON sidecar (fMRIPrep writes
``*_desc-preproc_bold.json``), else the NIfTI header; ``--t-r`` overrides both. A filter
(``--low-pass``/``--high-pass``) without any TR is refused here, not in the middle of a run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..bids import BoldRun, read_sidecar, sidecar_of
from ..spaces import (
    NATIVE,
    AtlasSpace,
    Selection,
    atlas_space,
    parse_space,
    run_space,
    select_runs,
    skipped_summary,
)
from .parser import UsageError

#: Relative difference between the sidecar's and the header's TR above which we warn.
TR_TOLERANCE = 0.01


# --------------------------------------------------------------------------------------------
# Spaces
# --------------------------------------------------------------------------------------------
def atlas_spaces(options: dict[str, Any], given: str | None) -> list[AtlasSpace]:
    """The space of every atlas of ``options`` (``processing_options``' labels, maps, spheres).

    ``given`` is ``--atlas-space``: the space of the atlases that do not state theirs.
    """
    if given and not any(options[kind] for kind in ("labels", "maps", "spheres")):
        raise UsageError("--atlas-space: only meaningful with --atlas, --maps or --seeds")
    try:
        space = parse_space(given, "--atlas-space") if given else None
        # a GIFTI pair is named (and its space read) after its left hemisphere's file
        return [atlas_space(atlas[1][0] if isinstance(atlas[1], tuple) else atlas[1], option,
                            space)
                for option, kind in (("--atlas", "labels"), ("--maps", "maps"),
                                     ("--seeds", "spheres"))
                for atlas in options[kind]]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def with_stated_space(run: BoldRun, space: str | None) -> dict[str, str]:
    """The entities of ``extract``'s run with the space ``--space`` states.

    Raises
    ------
    UsageError
        When ``--space`` is not a space, or contradicts the name's ``space-`` entity.
    """
    entities = dict(run.entities)
    if space is None:
        return entities
    try:
        stated = parse_space(space, "--space")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    named = run_space(entities)
    if "space" in entities and named != stated:
        raise UsageError(f"--space {stated}: '{run.bold.name}' says space {named} in its name")
    if stated != NATIVE:
        name, _, cohort = stated.partition(":cohort-")
        entities["space"] = name
        if cohort:
            entities["cohort"] = cohort
    return entities


def select_for_atlases(runs: Sequence[BoldRun], options: dict[str, Any], *,
                       atlas_space_given: str | None, space_selected: bool) -> Selection:
    """The runs in the atlases' space, and that space; prints which runs were skipped and
    what was assumed.

    Raises
    ------
    UsageError
        See :func:`nipype_maskers.spaces.select_runs`.
    """
    atlases = atlas_spaces(options, atlas_space_given)
    try:
        selection = select_runs(runs, atlases, space_selected=space_selected)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if selection.skipped:
        print(skipped_summary(selection.skipped), flush=True)
    for note in selection.notes:
        print(f"note: {note}", flush=True)
    return selection


# --------------------------------------------------------------------------------------------
# Repetition time
# --------------------------------------------------------------------------------------------
class RepetitionTime(NamedTuple):
    """A run's TR (seconds; None: unknown) and where it comes from."""

    value: float | None
    source: str  #: '--t-r', "BIDS sidecar 'x_bold.json'", 'NIfTI header' or 'none'
    warning: str | None = None


def sidecar_t_r(bold: Path) -> tuple[float | None, Path]:
    """``RepetitionTime`` from the BOLD's JSON sidecar (None when absent) and the sidecar.

    Raises
    ------
    UsageError
        An unreadable sidecar, or a RepetitionTime that is not a positive number.
    """
    try:
        metadata, sidecar = read_sidecar(bold)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    value = (metadata or {}).get("RepetitionTime")
    if value is None:
        return None, sidecar
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise UsageError(f"'{sidecar}': RepetitionTime must be a positive number of seconds, "
                         f"got {value!r}")
    return float(value), sidecar


def nifti_t_r(bold: Path) -> float | None:
    """The TR the NIfTI header gives (pixdim[4] with a time unit), as the interfaces read it."""
    import nibabel as nib

    from ..interfaces.base import header_t_r

    try:
        return header_t_r(nib.load(bold))
    except Exception:  # an unreadable file is reported by the run itself, not here
        return None


def surface_t_r(bold: Path) -> tuple[float | None, str]:
    """The TR a surface file states, and where: a CIFTI-2 run's ``SeriesAxis`` (its step in
    seconds), a GIFTI run's first ``TimeStep`` (see :mod:`nipype_maskers.core.surface.gifti`),
    read by the maskers' own functions (headers and first data array only). (None, '') when
    it states none or cannot be read."""
    from ..bids import CIFTI, run_kind

    try:
        if run_kind(bold) == CIFTI:
            from ..core.surface.cifti import load_cifti, series_t_r

            return series_t_r(load_cifti(bold, "dtseries")), "CIFTI SeriesAxis"
        from ..core.surface.gifti_series import time_series_t_r

        return time_series_t_r(bold), "GIFTI TimeStep"
    except Exception:  # an unreadable file is reported by the run itself, not here
        return None, ""


def run_repetition_time(bold: Path, given: float | None = None) -> RepetitionTime:
    """A run's TR: ``given`` (``--t-r``), else its BIDS sidecar's, else its NIfTI header's
    (a surface run: its CIFTI ``SeriesAxis`` or GIFTI ``TimeStep``, :func:`surface_t_r`).

    When the sidecar and the header both give one and they differ by more than 1%, the
    sidecar's is used and ``warning`` names both values and both sources.
    """
    if given is not None:
        return RepetitionTime(float(given), "--t-r")
    from ..bids import VOLUME, run_kind

    from_sidecar, sidecar = sidecar_t_r(bold)
    if run_kind(bold) == VOLUME:
        from_header, header = nifti_t_r(bold), "NIfTI header"
    else:
        from_header, header = surface_t_r(bold)
    if from_sidecar is None:
        if from_header is None:
            return RepetitionTime(None, "none")
        return RepetitionTime(from_header, header)
    warning = None
    if from_header is not None and abs(from_sidecar - from_header) > TR_TOLERANCE * from_header:
        described = "NIfTI header (pixdim[4])" if header == "NIfTI header" else header
        warning = (f"{bold.name}: RepetitionTime {from_sidecar:g} s in its BIDS sidecar "
                   f"'{sidecar.name}' and {from_header:g} s in its {described} "
                   f"differ by {abs(from_sidecar - from_header) / from_header:.0%}; using the "
                   f"sidecar's {from_sidecar:g} s (pass --t-r to choose)")
    return RepetitionTime(from_sidecar, f"BIDS sidecar '{sidecar.name}'", warning)


def repetition_times(runs: Sequence[BoldRun], clean_args: dict[str, Any]
                     ) -> dict[Path, RepetitionTime]:
    """Every run's TR; prints the disagreements to stderr.

    Raises
    ------
    UsageError
        When a filter (``low_pass``/``high_pass``) is asked and a run has no TR at all.
    """
    filters = [f"--{k.replace('_', '-')}" for k in ("low_pass", "high_pass") if k in clean_args]
    found = {}
    for run in runs:
        t_r = run_repetition_time(run.bold, clean_args.get("t_r"))
        if t_r.warning:
            print(f"warning: {t_r.warning}", file=sys.stderr, flush=True)
        if t_r.value is None and filters:
            in_file = {"cifti": "no time unit for the step of its CIFTI SeriesAxis",
                       "gifti": "no TimeStep (ms) in its GIFTI data arrays"}.get(
                run.kind, "no time unit (sec, msec, usec) for pixdim[4] in its NIfTI header")
            raise UsageError(
                f"{run.bold.name}: no repetition time, which {' and '.join(filters)} need: no "
                f"RepetitionTime in a BIDS sidecar ('{sidecar_of(run.bold).name}') and "
                f"{in_file}; pass --t-r SECONDS")
        found[run.bold] = t_r
    return found
