"""BIDS names: labels, entities, file names, derivative paths and sidecars.

The one naming rule of the package. Every label that ends up in a path goes through
:func:`validate_label`; :func:`derived_name` names the interfaces' outputs (one entity of each
key), :func:`derivative_path` places a derivative and checks that it stays inside the output
folder, :func:`sidecar_of` names a file's JSON sidecar. Standard library only (no nipype, no
nibabel), so every layer can use it; :mod:`nipype_maskers.bids` re-exports these names.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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
ADDED_ENTITIES = ("atlas", "seg", "meas", "desc")

_LABEL = re.compile(r"[A-Za-z0-9]+")
_KEY = re.compile(r"[a-z][a-z0-9]*")
_EXTENSION = re.compile(r"(\.[A-Za-z0-9]+)+")


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


def _checked_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"'{key}' is not a valid BIDS entity key; expected lowercase letters "
                         "and digits")
    return key


def _checked_extension(extension: str) -> str:
    if not isinstance(extension, str) or not _EXTENSION.fullmatch(extension):
        raise ValueError(f"extension: {extension!r} is not a valid extension; expected e.g. "
                         "'.tsv' or '.nii.gz'")
    return extension


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
        parts.append(f"{_checked_key(key)}-{validate_label(entities[key], key)}")
    parts.append(validate_label(suffix, "suffix"))
    return "_".join(parts) + _checked_extension(extension)


def derived_name(source: str | os.PathLike, *, suffix: str | None = None,
                 extension: str | None = None, **entities: str | int | None) -> str:
    """The name of a file derived from ``source``: its entities, some replaced, added or removed.

    This is the one naming rule of the interfaces' outputs. Each entity is set once: a given
    value replaces the source's (``desc='labels'`` on a ``desc-preproc`` name gives one
    ``desc-labels``), None removes it, an entity not given keeps the source's value. Entities
    are written in BIDS order (:data:`ENTITY_ORDER`), then the suffix (the source's when
    None) and the extension (the source's, from its first dot, when None). Parts of a name
    that are not BIDS entities (``signals.npy``, ``mean.nii.gz``) are kept in front as they
    are, so any input name gives a usable output name.

    Raises
    ------
    ValueError
        When a given label, key, suffix or extension is not valid BIDS.

    Examples
    --------
    >>> derived_name('sub-01_task-rest_space-MNI_desc-preproc_bold.nii.gz', desc='labels',
    ...              suffix='timeseries', extension='.tsv')
    'sub-01_task-rest_space-MNI_desc-labels_timeseries.tsv'
    >>> derived_name('/d/sub-01_task-rest_desc-preproc_bold.nii.gz', desc=None, suffix='report',
    ...              extension='.html')
    'sub-01_task-rest_report.html'
    >>> derived_name('signals.npy', desc='clean')
    'signals_desc-clean.npy'
    """
    name = Path(source).name
    stem, dot, rest = name.partition(".")
    parts = stem.split("_") if stem else []
    source_suffix = None
    if len(parts) > 1 and "-" not in parts[-1]:
        source_suffix = parts.pop()
    kept_as_is: list[str] = []
    found: dict[str, str] = {}
    for part in parts:
        key, sep, label = part.partition("-")
        if sep and _KEY.fullmatch(key) and label:  # the source's labels are kept as they are
            found.pop(key, None)  # a repeated entity: the last one counts (and is moved)
            found[key] = label
        else:
            kept_as_is.append(part)
    for key, value in entities.items():
        _checked_key(key)
        if value is None:
            found.pop(key, None)
        else:
            found[key] = validate_label(value, key)
    suffix = source_suffix if suffix is None else validate_label(suffix, "suffix")
    extension = dot + rest if extension is None else extension
    if extension:  # none: a source name without one
        _checked_extension(extension)
    ordered = [f"{key}-{found[key]}" for key in sorted(found, key=_entity_rank)]
    return "_".join(kept_as_is + ordered + ([suffix] if suffix else [])) + extension


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
    meas: str | None = None,
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
    for key, value in (("atlas", atlas), ("seg", seg), ("meas", meas), ("desc", desc)):
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



def sidecar_of(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a file: its name up to the first dot (where BIDS's extension
    starts, as :func:`parse_entities` reads it), plus ``.json``.

    Examples
    --------
    >>> sidecar_of('/d/atlas-Toy_dseg.nii.gz').as_posix()
    '/d/atlas-Toy_dseg.json'
    """
    path = Path(path)
    return path.with_name(path.name.partition(".")[0] + ".json")


def read_sidecar(path: str | os.PathLike) -> tuple[dict[str, Any] | None, Path]:
    """The content of the JSON sidecar of ``path`` and the sidecar's path.

    None when there is no sidecar; ``{}`` when its top level is not an object (it then
    holds no key).

    Raises
    ------
    ValueError
        When the sidecar exists but is not readable JSON (the message names it).
    """
    sidecar = sidecar_of(path)
    if not sidecar.is_file():
        return None, sidecar
    try:
        metadata = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"sidecar '{sidecar}': not readable JSON ({exc})") from None
    return (metadata if isinstance(metadata, dict) else {}), sidecar
