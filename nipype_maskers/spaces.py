"""Spaces: an atlas is applied only to runs in its own space.

An atlas (labels image, probabilistic maps, or seed coordinates in mm) is drawn in one space:
a template (``MNI152NLin2009cAsym``), a subject's anatomy (``T1w``) or a run's own grid
(``native``: fMRIPrep's BOLD runs without a ``space-`` entity). Resampling it onto a run by
its affine is only right when the run is in that same space: an ``MNI152NLin6Asym`` run, a
``T1w`` run or a native run given a 2009c atlas would give wrong signals without a word.

Where an atlas's space comes from, first found wins:

1. its file name: the ``space-<X>`` entity, else ``tpl-<X>`` (TemplateFlow), with
   ``cohort-<Y>`` when present (``MNIPediatricAsym:cohort-2``);
2. its JSON sidecar (same name, ``.json``): ``SpatialReference``, ``Space`` or ``Template``
   (a label, or a TemplateFlow/BIDS path or URI holding ``tpl-<X>``/``space-<X>``);
3. the value given for every atlas (the command line's ``--atlas-space``), which must agree
   with 1 and 2 when they say something.

An atlas whose space is still unknown is assumed to be in the space of the runs it is applied
to when they are all in one space (what a nilearn user expects, and what fMRIPrep's default
single output space gives); when they are in several, it is refused.

Standard library only, like :mod:`nipype_maskers.bids`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from .bids import BoldRun
from .bids_names import parse_entities, read_sidecar, validate_label

#: The space of a run without a ``space-`` entity (fMRIPrep's BOLD reference grid), and the
#: ``--space`` value that selects such runs.
NATIVE = "native"
#: Spaces of one subject (or one run): an atlas in one of them fits that subject's runs only.
SUBJECT_SPACES = frozenset({NATIVE, "T1w", "T2w", "anat", "func", "boldref", "fsnative"})
#: Sidecar keys that may name an atlas's space, in the order they are read.
SIDECAR_KEYS = ("SpatialReference", "Space", "Template")
_ENTITY_IN_TEXT = re.compile(r"(?:^|[/_:])(tpl|space|cohort)-([A-Za-z0-9]+)")


def format_space(space: str, cohort: str | None = None) -> str:
    """A space as the users write it: ``'MNI152NLin2009cAsym'``, ``'MNIPediatricAsym:cohort-2'``.

    Examples
    --------
    >>> format_space('MNIPediatricAsym', '2')
    'MNIPediatricAsym:cohort-2'
    """
    return f"{space}:cohort-{cohort}" if cohort else space


def run_space(entities: Mapping[str, str]) -> str:
    """The space of a run from its entities: ``space`` (+ ``cohort``), else ``'native'``.

    Examples
    --------
    >>> run_space(parse_entities('sub-01_task-rest_space-T1w_desc-preproc_bold.nii.gz'))
    'T1w'
    >>> run_space(parse_entities('sub-01_task-rest_desc-preproc_bold.nii.gz'))
    'native'
    """
    space = entities.get("space")
    return format_space(space, entities.get("cohort")) if space else NATIVE


def parse_space(text: str, what: str) -> str:
    """A space given as text, checked: ``'<label>[:cohort-<label>]'`` (``space-`` optional).

    Raises
    ------
    ValueError
        When it is not a BIDS label with an optional cohort; the message starts with ``what``.

    Examples
    --------
    >>> parse_space('space-MNI152NLin2009cAsym', '--atlas-space')
    'MNI152NLin2009cAsym'
    """
    name, _, cohort = str(text).removeprefix("space-").removeprefix("tpl-").partition(":")
    try:
        label = validate_label(name, what)
        if cohort:
            key, _, value = cohort.partition("-")
            if key != "cohort":
                raise ValueError(f"{what}: {text!r}; expected <space>[:cohort-<label>]")
            return format_space(label, validate_label(value, what))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {text!r} is not a space; expected a label such as "
                         f"'MNI152NLin2009cAsym', 'T1w' or 'native' ({exc})") from None
    return label


def _space_in_text(text: str) -> str | None:
    """The space a sidecar value names: a label, or the tpl-/space- entity of a path/URI."""
    found = dict((key, value) for key, value in _ENTITY_IN_TEXT.findall(text))
    space = found.get("space") or found.get("tpl")
    if space:
        return format_space(space, found.get("cohort"))
    if re.fullmatch(r"[A-Za-z0-9]+", text.strip()):
        return text.strip()
    return None


def sidecar_space(path: str | os.PathLike) -> tuple[str | None, Path | None]:
    """The space an atlas's JSON sidecar names, and the sidecar; (None, None) without one.

    ``SpatialReference`` may also be an object (one reference per file): its values must
    then agree.

    Raises
    ------
    ValueError
        An unreadable sidecar, or a space key whose value names no space or several.
    """
    metadata, sidecar = read_sidecar(path)
    if metadata is None:
        return None, None
    for key in SIDECAR_KEYS:
        value = metadata.get(key)
        if value is None:
            continue
        texts = list(value.values()) if isinstance(value, dict) else [value]
        spaces = {_space_in_text(t) if isinstance(t, str) else None for t in texts}
        if len(spaces) != 1 or None in spaces:
            raise ValueError(f"atlas sidecar '{sidecar}': {key} {value!r} does not name one "
                             "space; expected e.g. 'MNI152NLin2009cAsym' or a TemplateFlow "
                             "path with tpl-<space>")
        return spaces.pop(), sidecar
    return None, sidecar


class AtlasSpace(NamedTuple):
    """An atlas given to the command line and its space (None: unknown)."""

    option: str  #: how it was given: '--atlas', '--maps', '--seeds'
    path: Path
    space: str | None
    origin: str  #: where the space comes from: 'its name', "its sidecar 'x.json'", ...

    def describe(self) -> str:
        """``atlas 'x.nii.gz' (--atlas)``: how a message names it."""
        return f"atlas '{self.path.name}' ({self.option})"


def atlas_space(path: str | os.PathLike, option: str, given: str | None = None) -> AtlasSpace:
    """An atlas's space from its name, its sidecar, or ``given`` (see the module's rules).

    Parameters
    ----------
    path : path
        The atlas file (image or seeds table).
    option : str
        How it was given ('--atlas', '--maps', '--seeds'), for the messages.
    given : str, optional
        The space stated for it (``--atlas-space``), already checked by :func:`parse_space`.

    Raises
    ------
    ValueError
        When two sources disagree (name, sidecar, ``given``), or the sidecar is unreadable.

    Examples
    --------
    >>> atlas_space('tpl-MNI152NLin2009cAsym_res-01_atlas-Schaefer2018_dseg.nii.gz',
    ...             '--atlas').space
    'MNI152NLin2009cAsym'
    >>> atlas_space('atlas-Toy_dseg.nii.gz', '--atlas').space is None
    True
    """
    path = Path(path)
    found: list[tuple[str, str]] = []
    try:
        entities = parse_entities(path)
    except ValueError:  # not a BIDS name: the name says nothing
        entities = {}
    named = entities.get("space") or entities.get("tpl")
    if named:
        found.append((format_space(named, entities.get("cohort")), "its name"))
    in_sidecar, sidecar = sidecar_space(path)
    if in_sidecar:
        found.append((in_sidecar, f"its sidecar '{sidecar.name}'"))
    if given:
        found.append((given, "--atlas-space"))
    for space, origin in found[1:]:
        if space != found[0][0]:
            raise ValueError(
                f"atlas '{path.name}' ({option}): {found[0][1]} says space {found[0][0]}, "
                f"{origin} says {space}; they must agree (fix the sidecar or --atlas-space)")
    if not found:
        return AtlasSpace(option, path, None, "unknown")
    return AtlasSpace(option, path, *found[0])


class Selection(NamedTuple):
    """The runs to process, the runs left out and why, what was assumed, and the atlases'
    space (stated or assumed; None without atlases or runs)."""

    runs: list[BoldRun]
    skipped: list[tuple[BoldRun, str]]
    notes: list[str]
    space: str | None = None


def _unknown_note(atlases: Sequence[AtlasSpace], space: str) -> list[str]:
    return [f"{atlas.describe()} states no space (no tpl-/space- entity, no SpatialReference "
            f"in a JSON sidecar): assumed to be {space}, the runs' space; say so with "
            f"--atlas-space {space}" for atlas in atlases if atlas.space is None]


def _mismatch(run: BoldRun, atlas: AtlasSpace) -> str:
    space = run_space(run.entities)
    return (f"run '{run.bold.name}' is in space {space}, {atlas.describe()} in "
            f"{atlas.space} ({atlas.origin}): an atlas is applied only to runs in its space; "
            f"select runs in {atlas.space} (--space {atlas.space}) or give an atlas in {space}")


def select_runs(runs: Sequence[BoldRun], atlases: Sequence[AtlasSpace], *,
                space_selected: bool) -> Selection:
    """Keep the runs in the atlases' space.

    Parameters
    ----------
    runs : sequence of BoldRun
        The runs found (already filtered by subject, task, space...).
    atlases : sequence of AtlasSpace
        Every atlas given (none: every run is kept, the denoised BOLD needs no atlas).
    space_selected : bool
        Whether the user chose the runs' space (``--space``) or gave one run (``extract``):
        then a run in another space than an atlas is an error, else it is skipped.

    Raises
    ------
    ValueError
        One line each: atlases in different spaces; a chosen run in another space than an
        atlas (which run, which atlas, which spaces); no run left in the atlases' space; an
        atlas of unknown space with runs in several spaces.
    """
    known = {}
    for atlas in atlases:
        if atlas.space is not None:
            known.setdefault(atlas.space, atlas)
    if len(known) > 1:
        listed = ", ".join(f"{a.describe()} in {s} ({a.origin})" for s, a in known.items())
        raise ValueError(f"atlases: {listed}; every atlas is applied to every run, so they "
                         "must share one space (run once per space)")
    if not atlases:
        return Selection(list(runs), [], [])
    selected, skipped = list(runs), []
    if known:
        space, atlas = next(iter(known.items()))
        if space_selected:
            for run in runs:
                if run_space(run.entities) != space:
                    raise ValueError(_mismatch(run, atlas))
        else:
            selected = [r for r in runs if run_space(r.entities) == space]
            skipped = [(r, f"space {run_space(r.entities)}, not the atlases' {space}")
                       for r in runs if run_space(r.entities) != space]
            if not selected:
                found = sorted({run_space(r.entities) for r in runs})
                raise ValueError(
                    f"no run in {space}, the space of {atlas.describe()} ({atlas.origin}); the "
                    f"runs found are in {', '.join(found)}: give an atlas in one of these")
        _check_subjects(selected, atlases, space)
        return Selection(selected, skipped, _unknown_note(atlases, space), space)
    spaces = sorted({run_space(r.entities) for r in runs})
    if len(spaces) > 1:
        atlas = atlases[0]
        raise ValueError(
            f"{atlas.describe()} states no space (no tpl-/space- entity, no SpatialReference in "
            f"a JSON sidecar) and the runs are in several ({', '.join(spaces)}); pass "
            "--atlas-space SPACE (the atlas's), or --space to select the runs of one space")
    if spaces:
        _check_subjects(selected, atlases, spaces[0])
    if not spaces:
        return Selection(selected, skipped, [])
    return Selection(selected, skipped, _unknown_note(atlases, spaces[0]), spaces[0])


def _check_subjects(runs: Sequence[BoldRun], atlases: Sequence[AtlasSpace], space: str) -> None:
    """An atlas in a subject's own space (T1w, native...) fits that subject's runs only."""
    for atlas in atlases:
        try:
            subject = parse_entities(atlas.path).get("sub")
        except ValueError:
            subject = None
        others = sorted({r.entities.get("sub", "?") for r in runs} - {subject})
        if subject is not None and others:
            raise ValueError(f"{atlas.describe()} is sub-{subject}'s (in {space}), not the one "
                             f"of sub-{', sub-'.join(others)}; select sub-{subject}'s runs with "
                             f"--participant-label {subject}")
    subjects = sorted({r.entities.get("sub", "?") for r in runs})
    if space.partition(":")[0] in SUBJECT_SPACES and len(subjects) > 1:
        raise ValueError(f"atlases: {space} is a subject's own space, the runs are of "
                         f"{len(subjects)} subjects (sub-{', sub-'.join(subjects)}): an atlas in "
                         "it fits one subject; select one with --participant-label")


def skipped_summary(skipped: Sequence[tuple[BoldRun, str]], *, at_most: int = 20) -> str:
    """One line naming the skipped runs (the first ``at_most``) and why, for the summary
    printed before running."""
    reasons = "; ".join(f"{run.bold.name} ({reason})" for run, reason in skipped[:at_most])
    more = f"; and {len(skipped) - at_most} more" if len(skipped) > at_most else ""
    return (f"Skipped {len(skipped)} run(s) not in the atlases' space (choose runs with "
            f"--space): {reasons}{more}")
