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

An atlas whose space is still unknown is assumed to be in the space of the runs of its kind
when they are all in one space (what a nilearn user expects, and what fMRIPrep's default
single output space gives); when they are in several, it is refused.

Atlases in several spaces may be given together: each run gets those of its own space and
kind (volume atlases for volume runs, ``.dlabel.nii``/``.dscalar.nii`` for CIFTI-2 runs,
GIFTI pairs for GIFTI runs); an fsLR space includes its density (``fsLR:den-91k``), see
:func:`space_fits`.

Standard library only, like :mod:`nipype_maskers.bids`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from .bids import CIFTI, GIFTI, VOLUME, BoldRun, run_kind
from .bids_names import parse_entities, read_sidecar, validate_label

#: The space of a run without a ``space-`` entity (fMRIPrep's BOLD reference grid), and the
#: ``--space`` value that selects such runs.
NATIVE = "native"
#: Spaces of one subject (or one run): an atlas in one of them fits that subject's runs only.
SUBJECT_SPACES = frozenset({NATIVE, "T1w", "T2w", "anat", "func", "boldref", "fsnative"})
#: Sidecar keys that may name an atlas's space, in the order they are read.
SIDECAR_KEYS = ("SpatialReference", "Space", "Template")
_ENTITY_IN_TEXT = re.compile(r"(?:^|[/_:])(tpl|space|cohort|den)-([A-Za-z0-9]+)")
#: Spaces whose densities (``den-``) are part of the space: a 32k atlas does not fit a 59k
#: run. fsaverage's names its density (fsaverage5, fsaverage6).
DENSITY_SPACES = frozenset({"fsLR"})
#: fsLR's CIFTI-2 grayordinate densities and the surface mesh they hold.
_FSLR_MESH = {"91k": "32k", "170k": "59k"}


def format_space(space: str, cohort: str | None = None, den: str | None = None) -> str:
    """A space as the users write it: ``'MNI152NLin2009cAsym'``, ``'MNIPediatricAsym:cohort-2'``,
    ``'fsLR:den-91k'`` (the density counts for :data:`DENSITY_SPACES` only).

    Examples
    --------
    >>> format_space('MNIPediatricAsym', '2')
    'MNIPediatricAsym:cohort-2'
    >>> format_space('fsLR', den='91k'), format_space('MNI152NLin6Asym', den='91k')
    ('fsLR:den-91k', 'MNI152NLin6Asym')
    """
    text = f"{space}:cohort-{cohort}" if cohort else space
    return f"{text}:den-{den}" if den and space in DENSITY_SPACES else text


def run_space(entities: Mapping[str, str]) -> str:
    """The space of a run from its entities: ``space`` (+ ``cohort``), else ``'native'``.

    Examples
    --------
    >>> run_space(parse_entities('sub-01_task-rest_space-T1w_desc-preproc_bold.nii.gz'))
    'T1w'
    >>> run_space(parse_entities('sub-01_task-rest_desc-preproc_bold.nii.gz'))
    'native'
    >>> run_space(parse_entities('sub-01_task-rest_space-fsLR_den-91k_bold.dtseries.nii'))
    'fsLR:den-91k'
    """
    space = entities.get("space")
    return format_space(space, entities.get("cohort"), entities.get("den")) if space else NATIVE


def parse_space(text: str, what: str) -> str:
    """A space given as text, checked: ``'<label>[:cohort-<label>][:den-<label>]'``
    (``space-`` optional; ``den`` for :data:`DENSITY_SPACES`).

    Raises
    ------
    ValueError
        When it is not a BIDS label with an optional cohort; the message starts with ``what``.

    Examples
    --------
    >>> parse_space('space-MNI152NLin2009cAsym', '--atlas-space')
    'MNI152NLin2009cAsym'
    >>> parse_space('fsLR:den-91k', '--atlas-space')
    'fsLR:den-91k'
    """
    name, *modifiers = str(text).removeprefix("space-").removeprefix("tpl-").split(":")
    try:
        label = validate_label(name, what)
        found = {}
        for modifier in modifiers:
            key, _, value = modifier.partition("-")
            if key not in ("cohort", "den") or key in found:
                raise ValueError(f"{what}: {text!r}; expected <space>[:cohort-<label>]"
                                 "[:den-<label>]")
            found[key] = validate_label(value, what)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {text!r} is not a space; expected a label such as "
                         f"'MNI152NLin2009cAsym', 'T1w', 'fsLR:den-91k' or 'native' "
                         f"({exc})") from None
    return format_space(label, found.get("cohort"), found.get("den"))


def _space_in_text(text: str) -> str | None:
    """The space a sidecar value names: a label, or the tpl-/space- entity of a path/URI."""
    found = dict((key, value) for key, value in _ENTITY_IN_TEXT.findall(text))
    space = found.get("space") or found.get("tpl")
    if space:
        return format_space(space, found.get("cohort"), found.get("den"))
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
    kind: str = VOLUME  #: the data it fits: 'volume', 'cifti' or 'gifti' (its extension)

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
        found.append((format_space(named, entities.get("cohort"), entities.get("den")),
                      "its name"))
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
        return AtlasSpace(option, path, None, "unknown", run_kind(path))
    return AtlasSpace(option, path, *found[0], run_kind(path))


class Selection(NamedTuple):
    """The runs to process, the runs left out and why, what was assumed, and the atlases'
    space (stated or assumed; None without atlases or runs, or when the runs' atlases are in
    several spaces).

    ``atlases`` maps each selected run's BOLD (``run.bold``) to the atlases applied to it
    (those of its kind and space; every run gets every atlas when it fits them all) and
    ``spaces`` to their space, as the sidecars record it (``AtlasSpace``).
    """

    runs: list[BoldRun]
    skipped: list[tuple[BoldRun, str]]
    notes: list[str]
    space: str | None = None
    atlases: Mapping[Path, list[AtlasSpace]] = MappingProxyType({})
    spaces: Mapping[Path, str] = MappingProxyType({})


#: How a message names a kind of data.
_KIND_WORDS = {VOLUME: "a volume (NIfTI)", CIFTI: "CIFTI-2 grayordinates",
               GIFTI: "a GIFTI surface (pair of hemispheres)"}
#: What an atlas of each kind is, for the messages that ask for one.
_ATLAS_FORMS = {VOLUME: "a NIfTI atlas (or seeds)",
                CIFTI: "a .dlabel.nii (--atlas) or .dscalar.nii (--maps)",
                GIFTI: "a pair of .label.gii (--atlas L,R) or .func.gii maps (--maps L,R)"}


def space_fits(run: str, atlas: str) -> bool:
    """Whether an atlas in space ``atlas`` fits a run in space ``run``.

    Equal spaces fit; an atlas that names no ``den-`` fits every density of its space (the
    masker then checks the vertices); fsLR's CIFTI densities fit their surface meshes'
    (``den-91k`` grayordinates hold the ``den-32k`` cortex, ``170k`` the ``59k``).

    Examples
    --------
    >>> space_fits('fsLR:den-91k', 'fsLR:den-32k'), space_fits('fsLR:den-91k', 'fsLR')
    (True, True)
    >>> space_fits('fsLR:den-91k', 'fsLR:den-170k'), space_fits('fsaverage5', 'fsaverage')
    (False, False)
    """
    if run == atlas:
        return True
    run_base, _, run_den = run.partition(":den-")
    atlas_base, _, atlas_den = atlas.partition(":den-")
    if run_base != atlas_base:
        return False
    return not atlas_den or _FSLR_MESH.get(run_den, run_den) == _FSLR_MESH.get(atlas_den,
                                                                               atlas_den)


def _unknown_notes(atlases: Sequence[AtlasSpace], assumed: Mapping[Path, str]) -> list[str]:
    return [f"{atlas.describe()} states no space (no tpl-/space- entity, no SpatialReference "
            f"in a JSON sidecar): assumed to be {assumed[atlas.path]}, the runs' space; say so "
            f"with --atlas-space {assumed[atlas.path]}"
            for atlas in atlases if atlas.space is None and atlas.path in assumed]


def _mismatch(run: BoldRun, atlas: AtlasSpace, space: str | None = None) -> str:
    run_in = run_space(run.entities)
    space = space or atlas.space
    if atlas.kind != run.kind:
        return (f"run '{run.bold.name}' is {_KIND_WORDS[run.kind]}, {atlas.describe()} is "
                f"{_KIND_WORDS[atlas.kind]}: an atlas is applied only to runs of its kind; "
                f"give {_ATLAS_FORMS[run.kind]} in {run_in}")
    return (f"run '{run.bold.name}' is in space {run_in}, {atlas.describe()} in "
            f"{space} ({atlas.origin}): an atlas is applied only to runs in its space; "
            f"select runs in {space} (--space {space}) or give an atlas in {run_in}")


def _skip_reason(run: BoldRun, atlases: Sequence[AtlasSpace],
                 spaces: Mapping[Path, str]) -> str:
    same_kind = [a for a in atlases if a.kind == run.kind]
    if not same_kind:
        kinds = sorted({_KIND_WORDS[a.kind] for a in atlases})
        return (f"{_KIND_WORDS[run.kind]}, the atlases are {' and '.join(kinds)}: give "
                f"{_ATLAS_FORMS[run.kind]}")
    theirs = ", ".join(dict.fromkeys(spaces[a.path] for a in same_kind))
    return f"space {run_space(run.entities)}, not the atlases' {theirs}"


def _assumed_spaces(runs: Sequence[BoldRun], atlases: Sequence[AtlasSpace]) -> dict[Path, str]:
    """Each atlas's space: stated, else the single space of the runs of its kind.

    Raises
    ------
    ValueError
        An atlas that states no space while the runs of its kind are in several.
    """
    spaces = {}
    for atlas in atlases:
        if atlas.space is not None:
            spaces[atlas.path] = atlas.space
            continue
        found = sorted({run_space(r.entities) for r in runs if r.kind == atlas.kind})
        if len(found) > 1:
            raise ValueError(
                f"{atlas.describe()} states no space (no tpl-/space- entity, no "
                f"SpatialReference in a JSON sidecar) and the runs are in several "
                f"({', '.join(found)}); pass --atlas-space SPACE (the atlas's), or --space to "
                "select the runs of one space")
        if found:
            spaces[atlas.path] = found[0]
    return spaces


def select_runs(runs: Sequence[BoldRun], atlases: Sequence[AtlasSpace], *,
                space_selected: bool) -> Selection:
    """Give each run the atlases of its kind and space; keep the runs that have some.

    Atlases in several spaces may be given together: each run gets those of its own space
    (volume atlases go to volume runs only, CIFTI ones to CIFTI runs, GIFTI pairs to GIFTI
    runs). A GIFTI hemisphere without its other half is skipped (a run is the pair).

    Parameters
    ----------
    runs : sequence of BoldRun
        The runs found (already filtered by subject, task, space...).
    atlases : sequence of AtlasSpace
        Every atlas given (none: every volume run is kept, the denoised BOLD needs no atlas;
        surface runs are skipped: their outputs are region signals only).
    space_selected : bool
        Whether the user chose the runs' space (``--space``) or gave one run (``extract``):
        then a run with no atlas of its space, or an atlas fitting none of the runs, is an
        error, else such runs are skipped.

    Raises
    ------
    ValueError
        One line each: a chosen run in another space (or of another kind) than an atlas
        (which run, which atlas, which spaces); an atlas that fits no run; an atlas of
        unknown space with the runs of its kind in several spaces; an atlas of a subject's
        own space with runs of several subjects.
    """
    skipped = [(r, f"hemi-{r.entities.get('hemi', '?')} alone: no "
                   f"hemi-{'R' if r.entities.get('hemi') == 'L' else 'L'} file beside it (a "
                   "GIFTI run is the pair of hemispheres)")
               for r in runs if r.kind == GIFTI and len(r.files) != 2]
    runs = [r for r in runs if not (r.kind == GIFTI and len(r.files) != 2)]
    if not atlases:
        surface = [r for r in runs if r.kind != VOLUME]
        if surface and (space_selected or len(surface) == len(runs)):
            raise ValueError(
                f"run '{surface[0].bold.name}' is {_KIND_WORDS[surface[0].kind]}: its outputs "
                f"are region signals only (no voxel-wise denoised output yet); give "
                f"{_ATLAS_FORMS[surface[0].kind]}")
        skipped += [(r, f"{_KIND_WORDS[r.kind]}, no atlas for it: surface runs give region "
                        "signals only") for r in surface]
        return Selection([r for r in runs if r.kind == VOLUME], skipped, [])
    spaces = _assumed_spaces(runs, atlases)
    selected, fitting = [], {}
    for run in runs:
        fits = [a for a in atlases if a.kind == run.kind and a.path in spaces
                and space_fits(run_space(run.entities), spaces[a.path])]
        if fits:
            selected.append(run)
            fitting[run.bold] = fits
        elif space_selected:
            same_kind = [a for a in atlases if a.kind == run.kind] or list(atlases)
            raise ValueError(_mismatch(run, same_kind[0], spaces.get(same_kind[0].path)))
        else:
            skipped.append((run, _skip_reason(run, atlases, spaces)))
    for atlas in atlases:
        if any(atlas in fits for fits in fitting.values()):
            continue
        same_kind = [r for r in selected if r.kind == atlas.kind] or selected
        if space_selected and same_kind:
            raise ValueError(_mismatch(same_kind[0], atlas, spaces.get(atlas.path)))
        found = sorted({run_space(r.entities) for r in runs if r.kind == atlas.kind})
        where = (f"the {atlas.kind} runs found are in {', '.join(found)}: give an atlas in one "
                 "of these" if found else f"no run is {_KIND_WORDS[atlas.kind]}")
        lone = [f"{r.bold.name} ({why})" for r, why in skipped
                if r.kind == atlas.kind and r.kind == GIFTI and len(r.files) != 2]
        where += f"; skipped: {', '.join(lone)}" if lone else ""
        raise ValueError(f"no run in {spaces.get(atlas.path, 'its space')}, the space of "
                         f"{atlas.describe()} ({atlas.origin}); {where}")
    run_spaces = {}
    for run in selected:
        theirs = list(dict.fromkeys(spaces[a.path] for a in fitting[run.bold]))
        run_spaces[run.bold] = theirs[0] if len(theirs) == 1 else run_space(run.entities)
    for space in dict.fromkeys(run_spaces.values()):
        in_space = [r for r in selected if run_spaces[r.bold] == space]
        _check_subjects(in_space, [a for a in atlases if spaces.get(a.path) == space], space)
    single = set(run_spaces.values())
    return Selection(selected, skipped, _unknown_notes(atlases, spaces),
                     single.pop() if len(single) == 1 else None, fitting, run_spaces)


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
    return (f"Skipped {len(skipped)} run(s) not in the atlases' space or kind (choose runs "
            f"with --space): {reasons}{more}")
