"""BIDS in: the preprocessed BOLD runs of an fMRIPrep derivatives folder.

:func:`find_fmriprep_runs` finds the runs, with their brain masks and confounds, filtered by
subject, session, task, run and space. This module also gathers the package's BIDS names in
one place to import them from: the naming rules of :mod:`nipype_maskers.bids_names` and the
derivatives dataset's description and provenance of :mod:`nipype_maskers.bids_dataset`.
Standard library only (no nipype, no nibabel), like both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from .bids_dataset import bids_root, dataset_description, file_sha256, source_uri
from .bids_names import (
    ADDED_ENTITIES,
    ENTITY_ORDER,
    derivative_path,
    derived_name,
    format_name,
    parse_entities,
    read_sidecar,
    same_source,
    sidecar_of,
    validate_label,
)

__all__ = [
    "ADDED_ENTITIES", "CIFTI", "ENTITY_ORDER", "GIFTI", "VOLUME", "BoldRun", "bids_root",
    "dataset_description",
    "derivative_path", "derived_name", "file_sha256", "find_fmriprep_runs", "format_name",
    "parse_entities", "read_sidecar", "run_kind", "same_source", "sidecar_of", "source_uri",
    "validate_label",
]

_BOLD_ENDING = "_desc-preproc_bold.nii.gz"
#: fMRIPrep's surface BOLD: CIFTI-2 grayordinates (``--cifti-output``), and GIFTI, one file
#: per hemisphere (``hemi-L``/``hemi-R``), with no ``desc-`` entity.
_CIFTI_ENDING = "_bold.dtseries.nii"
_GIFTI_ENDING = "_bold.func.gii"
#: A run's kinds: a NIfTI volume, a pair of GIFTI hemispheres, a CIFTI-2 dense time series.
VOLUME, GIFTI, CIFTI = "volume", "gifti", "cifti"
_MASK_ENDING = "_desc-brain_mask.nii.gz"
_CONFOUNDS_ENDINGS = ("_desc-confounds_timeseries.tsv", "_desc-confounds_regressors.tsv")
#: Entities of a BOLD name that fMRIPrep leaves out of its confounds name (one confounds
#: file is shared by all output spaces of a run).
_SPACE_ENTITIES = ("space", "cohort", "res", "den", "hemi")


class BoldRun(NamedTuple):
    """One preprocessed BOLD run of an fMRIPrep derivatives folder and its companions.

    ``entities`` are the BOLD's (:func:`parse_entities`, with 'suffix' and 'extension');
    a companion fMRIPrep did not write is None. ``kind`` is :data:`VOLUME` (NIfTI),
    :data:`CIFTI` (``bold`` is the ``.dtseries.nii``) or :data:`GIFTI`: then ``files`` are
    the hemispheres, ``hemi-L`` then ``hemi-R`` (one alone: a lone hemisphere, which is
    skipped), and ``bold`` is the first of them (outputs are named after it, ``hemi``
    dropped).
    """

    bold: Path
    mask: Path | None
    confounds: Path | None
    confounds_json: Path | None
    entities: dict[str, str]
    kind: str = VOLUME
    files: tuple[Path, ...] = ()

    @property
    def in_files(self) -> list[Path]:
        """The file(s) a masker reads: ``[bold]``, or the GIFTI pair."""
        return list(self.files) if self.files else [self.bold]


def _as_list(value: str | int | Sequence[str | int] | None) -> list[str | int] | None:
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return [value]
    return list(value)


def _strip_prefix(value: str | int, prefix: str, entity: str) -> str:
    if isinstance(value, str) and value.startswith(prefix):
        value = value[len(prefix):]
    return validate_label(value, entity)


def _run_key(value: str) -> str:
    return str(int(value)) if value.isdigit() else value


def _space_filters(spaces: list[str | int]) -> list[dict[str, str | None]]:
    """'MNI152NLin2009cAsym:res-2' -> {'space': 'MNI152NLin2009cAsym', 'res': '2'};
    'native' -> {'space': None} (the runs without a space entity)."""
    filters = []
    for text in spaces:
        if not isinstance(text, str):
            raise TypeError(f"space: expected a string, got {type(text).__name__}")
        name, *modifiers = text.split(":")
        wanted: dict[str, str | None] = {"space": _strip_prefix(name, "space-", "space")}
        if wanted["space"] == "native":  # fMRIPrep's runs on their own grid: no space entity
            wanted["space"] = None
        for modifier in modifiers:
            key, sep, label = modifier.partition("-")
            if not sep or key not in ("res", "den", "cohort"):
                raise ValueError(
                    f"space: {text!r}; expected <space>[:res-<label>][:den-<label>]"
                    "[:cohort-<label>], e.g. 'MNI152NLin2009cAsym:res-2'"
                )
            wanted[key] = validate_label(label, key)
        filters.append(wanted)
    return filters


def run_kind(path: str | os.PathLike) -> str:
    """A BOLD file's (or an atlas's) kind from its extension: CIFTI-2 (``.dtseries.nii``,
    ``.dlabel.nii``, ``.dscalar.nii``, ``.ptseries.nii``), GIFTI (``.gii``), else volume.

    Examples
    --------
    >>> [run_kind(n) for n in ('a_bold.dtseries.nii', 'a_hemi-L_bold.func.gii', 'a.nii.gz')]
    ['cifti', 'gifti', 'volume']
    """
    name = Path(path).name.lower()
    if name.endswith((".dtseries.nii", ".dlabel.nii", ".dscalar.nii", ".ptseries.nii",
                      ".pscalar.nii", ".dconn.nii")):
        return CIFTI
    if name.endswith(".gii"):
        return GIFTI
    return VOLUME


def _surface_runs(root: Path) -> list[BoldRun]:
    """fMRIPrep's CIFTI runs and GIFTI hemisphere pairs (a lone hemisphere: one file)."""
    def found(ending: str) -> list[Path]:
        return sorted((p for pattern in (f"sub-*/func/*{ending}", f"sub-*/ses-*/func/*{ending}")
                       for p in root.glob(pattern) if p.is_file()), key=str)

    runs = []
    for bold in found(_CIFTI_ENDING):
        confounds, confounds_json = _confounds_for(bold, _CIFTI_ENDING)
        runs.append(BoldRun(bold, None, confounds, confounds_json, parse_entities(bold), CIFTI))
    hemispheres = {}
    for path in found(_GIFTI_ENDING):
        entities = parse_entities(path)
        if entities.get("hemi") in ("L", "R"):
            key = tuple((k, v) for k, v in entities.items() if k != "hemi")
            hemispheres.setdefault(key, {})[entities["hemi"]] = path
    for pair in hemispheres.values():
        files = tuple(pair[h] for h in ("L", "R") if h in pair)
        confounds, confounds_json = _confounds_for(files[0], _GIFTI_ENDING)
        runs.append(BoldRun(files[0], None, confounds, confounds_json,
                            parse_entities(files[0]), GIFTI, files))
    return runs


def _companion(bold: Path, ending: str) -> Path | None:
    path = bold.with_name(bold.name[: -len(_BOLD_ENDING)] + ending)
    return path if path.is_file() else None


def _confounds_for(bold: Path, bold_ending: str = _BOLD_ENDING
                   ) -> tuple[Path | None, Path | None]:
    """fMRIPrep's confounds of a BOLD run: its name without space/cohort/res/den/hemi.

    A per-echo BOLD (``--me-output-echos``) falls back on the run's confounds (no echo).
    """
    stem = bold.name[: -len(bold_ending)]
    kept = [p for p in stem.split("_") if p.partition("-")[0] not in _SPACE_ENTITIES]
    no_echo = [p for p in kept if p.partition("-")[0] != "echo"]
    for parts in (kept, no_echo) if no_echo != kept else (kept,):
        for ending in _CONFOUNDS_ENDINGS:
            tsv = bold.with_name("_".join(parts) + ending)
            if tsv.is_file():
                sidecar = sidecar_of(tsv)
                return tsv, (sidecar if sidecar.is_file() else None)
    return None, None


def _available(runs: Sequence[BoldRun]) -> str:
    def values(key: str) -> list[str]:
        return sorted({r.entities.get(key, "(none)") for r in runs})

    return (f"subjects {values('sub')}, sessions {values('ses')}, tasks {values('task')}, "
            f"runs {values('run')}, spaces {values('space')}")


def find_fmriprep_runs(
    fmriprep_dir: str | os.PathLike,
    *,
    participant_label: Sequence[str] | str | None = None,
    session: Sequence[str] | str | None = None,
    task: Sequence[str] | str | None = None,
    run: Sequence[str | int] | str | int | None = None,
    space: Sequence[str] | str | None = None,
) -> list[BoldRun]:
    """The preprocessed BOLD runs of an fMRIPrep derivatives folder, filtered and sorted.

    Looks for ``sub-*/[ses-*/]func/*_desc-preproc_bold.nii.gz`` with, beside each, its
    ``_desc-brain_mask.nii.gz`` (same entities) and its confounds
    ``_desc-confounds_timeseries.tsv`` (or the older ``_desc-confounds_regressors.tsv``)
    and ``.json``, whose name has no space/cohort/res/den (one file for all spaces).
    Companions that do not exist are None. Surface runs too: CIFTI-2
    ``*_bold.dtseries.nii`` (e.g. ``space-fsLR_den-91k``) and GIFTI pairs
    ``*_hemi-L_*_bold.func.gii`` + ``hemi-R`` (one run; a lone hemisphere is returned with
    one file, for the selection to skip with the reason), with the same confounds (their
    names have no hemi either) and no mask.

    Parameters
    ----------
    fmriprep_dir : path
        The fMRIPrep output folder (the one holding ``sub-*`` folders).
    participant_label : list of str, optional
        Subjects to keep, with or without 'sub-'. Each must exist.
    session, task, run : str or list, optional
        Labels to keep (with or without the 'ses-'/'task-' prefix; runs compare as numbers,
        so 1 matches 'run-01').
    space : str or list of str, optional
        Output spaces to keep, optionally with fMRIPrep's modifiers, e.g.
        'MNI152NLin2009cAsym:res-2'; 'native' keeps the runs without a space entity (on
        their own BOLD grid).

    Raises
    ------
    FileNotFoundError
        When ``fmriprep_dir`` is not a folder.
    ValueError
        For an unknown participant (the available ones are listed) and when no BOLD run is
        left (what was searched and what exists are listed), and for invalid labels.
    """
    root = Path(fmriprep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"fmriprep_dir: no such folder '{root}'")
    subjects = sorted(p.name[4:] for p in root.glob("sub-*") if p.is_dir())
    wanted_subjects = None
    if participant_label is not None:
        wanted_subjects = {_strip_prefix(s, "sub-", "participant_label")
                           for s in _as_list(participant_label)}
        unknown = sorted(wanted_subjects - set(subjects))
        if unknown:
            raise ValueError(
                f"participant_label: {unknown} not found in '{root}'; available: {subjects}"
            )
    bolds = [p for pattern in (f"sub-*/func/*{_BOLD_ENDING}", f"sub-*/ses-*/func/*{_BOLD_ENDING}")
             for p in root.glob(pattern) if p.is_file()]
    searched = f"sub-*/[ses-*/]func/*{_BOLD_ENDING}"
    surface = _surface_runs(root)
    if not bolds and not surface:
        raise ValueError(
            f"fmriprep_dir: no '{searched}' under '{root}' (nor CIFTI *{_CIFTI_ENDING}, GIFTI "
            f"*_hemi-L|R_*{_GIFTI_ENDING}; subjects found: {subjects}); is it "
            "an fMRIPrep output folder?"
        )
    runs = []
    for bold in sorted(bolds, key=str):
        confounds, confounds_json = _confounds_for(bold)
        runs.append(BoldRun(bold, _companion(bold, _MASK_ENDING), confounds, confounds_json,
                            parse_entities(bold)))
    runs = sorted(runs + surface, key=lambda found: str(found.bold))
    every_run = runs
    if wanted_subjects is not None:
        runs = [r for r in runs if r.entities.get("sub") in wanted_subjects]
    pool = runs or every_run
    filters = {}
    if session is not None:
        filters["ses"] = {_strip_prefix(s, "ses-", "session") for s in _as_list(session)}
    if task is not None:
        filters["task"] = {_strip_prefix(t, "task-", "task") for t in _as_list(task)}
    if run is not None:
        filters["run"] = {_run_key(_strip_prefix(r, "run-", "run")) for r in _as_list(run)}
    for key, allowed in filters.items():
        normalize = _run_key if key == "run" else str
        runs = [r for r in runs if key in r.entities and normalize(r.entities[key]) in allowed]
    if space is not None:
        spaces = _space_filters(_as_list(space))
        runs = [r for r in runs
                if any(all(r.entities.get(k) == v for k, v in s.items()) for s in spaces)]
    if not runs:
        asked = {"participant_label": participant_label, "session": session, "task": task,
                 "run": run, "space": space}
        asked_text = ", ".join(f"{k}={v!r}" for k, v in asked.items() if v is not None)
        raise ValueError(
            f"no BOLD run in '{root}' matches {asked_text or 'the filters'} (searched "
            f"'{searched}'); available: {_available(pool)}"
        )
    return runs

