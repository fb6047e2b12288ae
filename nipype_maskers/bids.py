"""BIDS in and out: find fMRIPrep's BOLD runs, name BIDS-derivative outputs.

Standard library only (no nipype, no nibabel), so the workflows, the interfaces and the CLI
can all use it. Every label that ends up in a path goes through :func:`validate_label`, and
:func:`derivative_path` checks that the path it builds stays inside the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from . import __version__

BIDS_VERSION = "1.11.0"

#: Entity keys in the order BIDS 1.11 puts them in file names (the schema's
#: ``rules/entities.yaml``: subject, template, session, sample, task, tracksys, acquisition,
#: nucleus, volume, ceagent, tracer, stain, reconstruction, direction, run, modality, echo,
#: flip, inversion, mtransfer, part, processing, hemisphere, space, split, recording, chunk,
#: atlas, segmentation, scale, resolution, density, label, prov, description), with one
#: deliberate difference: ``cohort`` comes right after ``space``, as fMRIPrep and
#: TemplateFlow write it in subject files (``space-MNIPediatricAsym_cohort-2_res-2``), where
#: it qualifies the space. The schema lists it after ``tpl``, for template datasets
#: (``tpl-X/cohort-Y/``); following it would rename fMRIPrep's entities in our outputs.
ENTITY_ORDER: tuple[str, ...] = (
    "sub", "tpl", "ses", "sample", "task", "tracksys", "acq", "nuc", "voi", "ce", "trc",
    "stain", "rec", "dir", "run", "mod", "echo", "flip", "inv", "mt", "part", "proc", "hemi",
    "space", "cohort", "split", "recording", "chunk", "atlas", "seg", "scale", "res", "den",
    "label", "prov", "desc",
)

#: The entities a derivative adds to its source's (the only ones :func:`derivative_path`
#: sets besides the source's).
ADDED_ENTITIES = ("atlas", "seg", "desc")

_LABEL = re.compile(r"[A-Za-z0-9]+")
_KEY = re.compile(r"[a-z][a-z0-9]*")
_EXTENSION = re.compile(r"(\.[A-Za-z0-9]+)+")
_BOLD_ENDING = "_desc-preproc_bold.nii.gz"
_MASK_ENDING = "_desc-brain_mask.nii.gz"
_CONFOUNDS_ENDINGS = ("_desc-confounds_timeseries.tsv", "_desc-confounds_regressors.tsv")
#: Entities of a BOLD name that fMRIPrep leaves out of its confounds name (one confounds
#: file is shared by all output spaces of a run).
_SPACE_ENTITIES = ("space", "cohort", "res", "den")


def validate_label(value: str | int, entity: str) -> str:
    """Check a BIDS label (or index): ASCII letters and digits only; return it as a string.

    Parameters
    ----------
    value : str or int
        The label; a non-negative int (a run index) is turned into its decimal text.
    entity : str
        The entity (or input) it is for, named in the error message.

    Raises
    ------
    TypeError
        When ``value`` is neither a string nor an int.
    ValueError
        When it is empty or holds anything but letters and digits ('_', '-', '.', '/', ...).

    Examples
    --------
    >>> validate_label('Schaefer400', 'atlas')
    'Schaefer400'
    >>> validate_label(2, 'run')
    '2'
    >>> validate_label('../x', 'atlas')
    Traceback (most recent call last):
    ...
    ValueError: atlas: '../x' is not a valid BIDS label; expected letters and digits only ...
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{entity}: expected a string label, got {type(value).__name__}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{entity}: expected a non-negative index, got {value}")
        value = str(value)
    if not _LABEL.fullmatch(value):
        raise ValueError(
            f"{entity}: {value!r} is not a valid BIDS label; expected letters and digits only "
            "(no '_', '-', '.', '/' or spaces, not empty)"
        )
    return value


def parse_entities(path: str | os.PathLike) -> dict[str, str]:
    """The entities of a BIDS file name, in file order, plus 'suffix' and 'extension'.

    The extension is everything from the first dot of the name (``.nii.gz``, ``.tsv``).

    Examples
    --------
    >>> parse_entities('sub-01/func/sub-01_task-rest_desc-preproc_bold.nii.gz')
    {'sub': '01', 'task': 'rest', 'desc': 'preproc', 'suffix': 'bold', 'extension': '.nii.gz'}
    """
    name = Path(path).name
    stem, dot, rest = name.partition(".")
    parts = stem.split("_")
    if not stem or len(parts) < 2 or "-" in parts[-1] or not parts[-1]:
        raise ValueError(
            f"'{name}' is not a BIDS file name; expected <key>-<label>_..._<suffix><extension>"
        )
    entities: dict[str, str] = {}
    for part in parts[:-1]:
        key, sep, label = part.partition("-")
        if not sep or not key or not label:
            raise ValueError(f"'{name}': '{part}' is not a <key>-<label> pair")
        if key in entities or key in ("suffix", "extension"):
            raise ValueError(f"'{name}': the entity '{key}' appears twice or is reserved")
        entities[key] = label
    entities["suffix"] = parts[-1]
    entities["extension"] = dot + rest
    return entities


def _entity_rank(key: str) -> float:
    """Where ``key`` goes in a name: BIDS order; unknown keys just before 'desc'."""
    try:
        return ENTITY_ORDER.index(key)
    except ValueError:
        return ENTITY_ORDER.index("desc") - 0.5


def format_name(entities: Mapping[str, str | int], *, suffix: str, extension: str) -> str:
    """A BIDS file name from entities (validated, put in BIDS order), suffix and extension.

    Keys that :data:`ENTITY_ORDER` does not know keep their given order, just before 'desc'.

    Examples
    --------
    >>> format_name({'task': 'rest', 'sub': '01'}, suffix='bold', extension='.nii.gz')
    'sub-01_task-rest_bold.nii.gz'
    """
    parts = []
    keys = sorted(entities, key=_entity_rank)  # stable: unknown keys keep their order
    for key in keys:
        if not _KEY.fullmatch(key):
            raise ValueError(f"'{key}' is not a valid BIDS entity key; expected lowercase "
                             "letters and digits")
        parts.append(f"{key}-{validate_label(entities[key], key)}")
    parts.append(validate_label(suffix, "suffix"))
    if not isinstance(extension, str) or not _EXTENSION.fullmatch(extension):
        raise ValueError(
            f"extension: {extension!r} is not a valid extension; expected e.g. '.tsv' or "
            "'.nii.gz'"
        )
    return "_".join(parts) + extension


def derivative_path(
    output_dir: str | os.PathLike,
    entities: Mapping[str, str | int],
    *,
    suffix: str,
    extension: str,
    atlas: str | None = None,
    seg: str | None = None,
    desc: str | None = None,
    drop: Iterable[str] = ("desc",),
    datatype: str = "func",
) -> Path:
    """The BIDS-derivative path of an output of the file with ``entities``.

    ``<output_dir>/sub-<sub>/[ses-<ses>/]<datatype>/<name>`` where the name holds the source
    entities minus ``drop`` (plus any 'suffix'/'extension' keys, which are ignored), then
    ``atlas``/``seg``/``desc`` when given, all in BIDS order.

    Raises
    ------
    ValueError
        When a label, the suffix or the extension is not valid, 'sub' is missing, or the
        resolved path would fall outside ``output_dir`` (e.g. through a symbolic link).

    Examples
    --------
    >>> source = parse_entities(
    ...     'sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz')
    >>> derivative_path('out', source, atlas='Schaefer400', suffix='timeseries',
    ...                 extension='.tsv').as_posix()
    'out/sub-01/func/sub-01_task-rest_space-MNI152NLin2009cAsym_atlas-Schaefer400_timeseries.tsv'
    """
    dropped = set(drop) | {"suffix", "extension"}
    kept: dict[str, str | int] = {k: v for k, v in entities.items() if k not in dropped}
    for key, value in (("atlas", atlas), ("seg", seg), ("desc", desc)):
        if value is not None:
            kept[key] = value
    if "sub" not in kept:
        raise ValueError(f"entities: 'sub' is required to place a derivative, got {dict(kept)}")
    name = format_name(kept, suffix=suffix, extension=extension)
    folder = Path(output_dir) / f"sub-{validate_label(kept['sub'], 'sub')}"
    if "ses" in kept:
        folder = folder / f"ses-{validate_label(kept['ses'], 'ses')}"
    path = folder / validate_label(datatype, "datatype") / name
    root = Path(output_dir).resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"derivative path '{resolved}' is outside output_dir '{root}'")
    return path


def same_source(name: str | os.PathLike, source_entities: Mapping[str, str]) -> bool:
    """Whether ``name`` is a derivative of the source run with ``source_entities``.

    It is when its entities other than the added ones (atlas, seg, desc) are exactly
    ``source_entities`` (themselves without atlas/seg/desc/suffix/extension). Names that are
    not BIDS names are never.
    """
    try:
        entities = parse_entities(name)
    except ValueError:
        return False
    ignored = set(ADDED_ENTITIES) | {"suffix", "extension"}
    own = {k: v for k, v in entities.items() if k not in ignored}
    source = {k: str(v) for k, v in source_entities.items() if k not in ignored}
    return own == source


class BoldRun(NamedTuple):
    """One preprocessed BOLD run of an fMRIPrep derivatives folder and its companions.

    ``entities`` are the BOLD's (:func:`parse_entities`, with 'suffix' and 'extension');
    a companion fMRIPrep did not write is None.
    """

    bold: Path
    mask: Path | None
    confounds: Path | None
    confounds_json: Path | None
    entities: dict[str, str]


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


def _space_filters(spaces: list[str | int]) -> list[dict[str, str]]:
    """'MNI152NLin2009cAsym:res-2' -> {'space': 'MNI152NLin2009cAsym', 'res': '2'}."""
    filters = []
    for text in spaces:
        if not isinstance(text, str):
            raise TypeError(f"space: expected a string, got {type(text).__name__}")
        name, *modifiers = text.split(":")
        wanted = {"space": _strip_prefix(name, "space-", "space")}
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


def _companion(bold: Path, ending: str) -> Path | None:
    path = bold.with_name(bold.name[: -len(_BOLD_ENDING)] + ending)
    return path if path.is_file() else None


def _confounds_for(bold: Path) -> tuple[Path | None, Path | None]:
    """fMRIPrep's confounds of a BOLD run: its name without space/cohort/res/den.

    A per-echo BOLD (``--me-output-echos``) falls back on the run's confounds (no echo).
    """
    stem = bold.name[: -len(_BOLD_ENDING)]
    kept = [p for p in stem.split("_") if p.partition("-")[0] not in _SPACE_ENTITIES]
    no_echo = [p for p in kept if p.partition("-")[0] != "echo"]
    for parts in (kept, no_echo) if no_echo != kept else (kept,):
        for ending in _CONFOUNDS_ENDINGS:
            tsv = bold.with_name("_".join(parts) + ending)
            if tsv.is_file():
                sidecar = tsv.with_suffix(".json")
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
    Companions that do not exist are None.

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
        'MNI152NLin2009cAsym:res-2'.

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
    if not bolds:
        raise ValueError(
            f"fmriprep_dir: no '{searched}' under '{root}' (subjects found: {subjects}); is it "
            "an fMRIPrep output folder?"
        )
    runs = []
    for bold in sorted(bolds, key=str):
        confounds, confounds_json = _confounds_for(bold)
        runs.append(BoldRun(bold, _companion(bold, _MASK_ENDING), confounds, confounds_json,
                            parse_entities(bold)))
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


def bids_root(path: str | os.PathLike) -> tuple[Path, str] | None:
    """The dataset folder of a BIDS file and the file's path relative to it (POSIX).

    The dataset folder is the parent of the ``sub-<label>`` folder named by the file's
    own 'sub' entity; None when the file is not inside such a folder.

    Examples
    --------
    >>> root, rel = bids_root('/data/fmriprep/sub-01/func/sub-01_task-rest_bold.nii.gz')
    >>> root.as_posix(), rel
    ('/data/fmriprep', 'sub-01/func/sub-01_task-rest_bold.nii.gz')
    """
    path = Path(os.path.abspath(path))
    try:
        subject = parse_entities(path).get("sub")
    except ValueError:
        return None
    if subject is None:
        return None
    for parent in path.parents:
        if parent.name == f"sub-{subject}":
            return parent.parent, path.relative_to(parent.parent).as_posix()
    return None


def source_uri(path: str | os.PathLike, *, dataset: str = "fmriprep",
               relative_to: str | os.PathLike | None = None) -> str:
    """How a derivative's sidecar names its source in ``Sources``.

    A BIDS URI ``bids:<dataset>:<path in the dataset>`` when the file sits in a BIDS tree
    (``dataset`` is its key in the ``DatasetLinks`` of ``dataset_description.json``), else
    its path relative to ``relative_to`` (or absolute when that is None).
    """
    found = bids_root(path)
    if found is not None:
        return f"bids:{validate_label(dataset, 'dataset')}:{found[1]}"
    if relative_to is None:
        return Path(os.path.abspath(path)).as_posix()
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(relative_to))).as_posix()


def dataset_description(name: str = "nipype-maskers", source_dir: str | os.PathLike | None = None,
                        *, source_name: str = "fmriprep", code_url: str | None = None
                        ) -> dict:
    """The ``dataset_description.json`` of a nipype-maskers derivatives folder.

    With ``source_dir``: ``SourceDatasets`` (its file URI, and the version of the pipeline
    that made it when its own ``dataset_description.json`` says) and ``DatasetLinks``
    (``source_name`` -> its URI), so that ``bids:<source_name>:...`` URIs resolve.
    """
    generated = {"Name": "nipype-maskers", "Version": __version__}
    if code_url is not None:
        generated["CodeURL"] = code_url
    description: dict = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
    }
    if source_dir is not None:
        source_dir = Path(os.path.abspath(source_dir))
        uri = source_dir.as_uri()
        source: dict = {"URL": uri}
        try:
            parent = json.loads((source_dir / "dataset_description.json").read_text("utf-8"))
            pipeline = parent.get("GeneratedBy", [{}])[0]
            if pipeline.get("Version"):
                source["Version"] = f"{pipeline.get('Name', '')} {pipeline['Version']}".strip()
        except (OSError, ValueError, AttributeError, IndexError, KeyError, TypeError):
            pass
        description["SourceDatasets"] = [source]
        description["DatasetLinks"] = {validate_label(source_name, "source_name"): uri}
    return description


def file_sha256(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 of a file (hex), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
