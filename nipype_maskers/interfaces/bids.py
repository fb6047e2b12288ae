"""Write one input run's outputs into a BIDS-derivatives folder, with provenance sidecars."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nipype.interfaces.base import (
    Directory,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from .. import __version__
from ..bids import (
    ADDED_ENTITIES,
    bids_root,
    dataset_description,
    derivative_path,
    file_sha256,
    parse_entities,
    same_source,
    sidecar_of,
    source_uri,
)
from ..bids_dataset import is_image, spatial_reference, write_dataset_files
from ..core.io.tables import read_table
from ..files import temporary_beside, temporary_target
from .base import MaskersInputSpec, defined
from .io import split_ext

OUTPUT_ENTITY_KEYS = (*ADDED_ENTITIES, "suffix", "extension")
SOFTWARE = ("nipype", "numpy", "scipy", "nibabel")


class _WriteDerivativesInputSpec(MaskersInputSpec):
    base_directory = Directory(
        mandatory=True, desc="the derivatives folder, an absolute path (created if needed)"
    )
    source_file = File(
        exists=True, mandatory=True,
        desc="the BIDS file the outputs derive from (fMRIPrep's preprocessed BOLD)",
    )
    in_files = InputMultiObject(
        File(exists=True), mandatory=True, desc="the files to write, all from source_file"
    )
    entities = traits.List(
        traits.Dict(traits.Str, traits.Str), mandatory=True,
        desc="one dict per file: 'suffix' (required), optional 'atlas', 'seg', 'meas', 'desc' "
        "and 'extension' (default: the file's own)",
    )
    metadata = traits.List(
        traits.Dict(traits.Str, traits.Any),
        desc="one dict per file merged into its JSON sidecar (wins over provenance)",
    )
    provenance = traits.Dict(
        traits.Str, traits.Any, desc="merged into every sidecar: parameters, versions, ..."
    )
    source_hashes = traits.Bool(
        True, usedefault=True, desc="record the SHA-256 of source_file in every sidecar"
    )
    source_sha256 = traits.Str(
        desc="source_file's SHA-256 (hex) when a step that streamed it computed it (e.g. "
        "CleanImage's in_file_sha256): used instead of reading the file again",
    )
    dismiss_entities = traits.List(
        traits.Str, ["desc"], usedefault=True,
        desc="entities of source_file left out of the output names",
    )
    source_dataset = traits.Str(
        "fmriprep", usedefault=True,
        desc="name of the source dataset in 'bids:<name>:...' URIs and in DatasetLinks",
    )
    remove_stale = traits.Bool(
        True, usedefault=True,
        desc="delete our files of the same source run and the same configuration (atlas, "
        "or desc and suffix) as a file written now, that this run does not write again",
    )


class _WriteDerivativesOutputSpec(TraitedSpec):
    out_files = traits.List(File(), desc="the written files, in the order of in_files")
    out_sidecars = traits.List(File(), desc="their JSON sidecars")


class WriteDerivatives(SimpleInterface):
    """Copy one run's outputs to their BIDS-derivative names, with JSON sidecars.

    Each file gets its name from ``source_file``'s entities (minus ``dismiss_entities``)
    plus its own atlas/seg/desc, suffix and extension (:func:`nipype_maskers.bids.
    derivative_path`), and a sidecar holding its ``metadata``, the ``provenance``,
    ``Sources`` (a BIDS URI of ``source_file``, plus any 'Sources' given in its metadata),
    ``SourceSHA256`` (``source_sha256`` when given, else the file is read) and ``Software``
    (versions).

    All files and sidecars are first copied to hidden temporary names in their final
    folders, then renamed into place (atomic per file); then our files of the same source
    run and the same configuration as a file written now, that this call did not write
    (:func:`remove_stale`: e.g. an output an atlas no longer has, their sidecars, temporary
    files left by a killed run) are deleted, so re-running into the same folder never
    leaves a mix of old and new outputs for one input and one atlas, while the outputs of
    other atlases (another invocation into the same folder) are never touched. Hence one
    node must write all the outputs of one atlas of a run (or set ``remove_stale=False``).
    Writes ``dataset_description.json`` when the folder has none, and the ``.bidsignore``
    and ``README.md`` the BIDS validator asks for
    (:func:`nipype_maskers.bids_dataset.write_dataset_files`). Image sidecars get a
    ``SpatialReference`` (:func:`nipype_maskers.bids_dataset.spatial_reference`) unless
    their metadata gives one. Cheap: suited to
    ``run_without_submitting=True`` (hashing the source reads it once).
    """

    input_spec = _WriteDerivativesInputSpec
    output_spec = _WriteDerivativesOutputSpec

    def _run_interface(self, runtime):
        base = Path(self.inputs.base_directory)
        if not base.is_absolute():
            raise ValueError(
                f"base_directory: {str(base)!r} is relative; give an absolute path (a Nipype "
                "node runs in its own working folder)"
            )
        source = self.inputs.source_file
        in_files = [Path(f) for f in self.inputs.in_files]
        source_entities = parse_entities(source)
        root = bids_root(source)
        if root is not None and base.resolve() == root[0].resolve():
            raise ValueError(
                f"base_directory: '{base}' is the dataset source_file comes from; write the "
                "derivatives to a folder of their own"
            )
        targets = plan_outputs(
            base, source_entities, in_files, list(self.inputs.entities),
            drop=tuple(self.inputs.dismiss_entities),
        )
        metadata = defined(self.inputs.metadata, [{}] * len(in_files))
        if len(metadata) != len(in_files):
            raise ValueError(
                f"metadata: {len(metadata)} dicts for {len(in_files)} in_files; give one per file"
            )
        metadata = [describe_columns(meta, path)
                    for meta, path in zip(metadata, in_files, strict=True)]
        reference = spatial_reference(source, dataset=self.inputs.source_dataset,
                                      relative_to=base)
        metadata = [{"SpatialReference": reference, **meta} if is_image(target) else meta
                    for meta, target in zip(metadata, targets, strict=True)]
        common = dict(defined(self.inputs.provenance, {}))
        uri = source_uri(source, dataset=self.inputs.source_dataset, relative_to=base)
        sha256 = source_sha256(source, defined(self.inputs.source_sha256),
                               self.inputs.source_hashes)
        software = software_versions()
        sidecars = [
            (sidecar_text(common, meta, uri, sha256, software), sidecar_of(target))
            for meta, target in zip(metadata, targets, strict=True)
        ]
        write_all(list(zip(in_files, targets, strict=True)), sidecars)
        if self.inputs.remove_stale:
            kept = {k: v for k, v in source_entities.items()
                    if k not in set(self.inputs.dismiss_entities)}
            written = set(targets) | {path for _, path in sidecars}
            remove_stale({t.parent for t in targets}, kept, written)
        description = base / "dataset_description.json"
        if not description.exists():
            text = json.dumps(dataset_description(
                source_dir=None if root is None else root[0],
                source_name=self.inputs.source_dataset), indent=2) + "\n"
            write_all([], [(text, description)])
        write_dataset_files(base)
        self._results["out_files"] = [str(t) for t in targets]
        self._results["out_sidecars"] = [str(path) for _, path in sidecars]
        return runtime


def describe_columns(metadata: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Expand a ``ColumnDescription`` template into BIDS per-column sidecar entries.

    For a TSV whose metadata holds ``"ColumnDescription": "{name}: ..."``, each header column
    gets ``{"<column>": {"Description": template.format(name=<column>)}}`` (BIDS's way of
    describing a tabular file's columns).
    """
    metadata = dict(metadata)
    template = metadata.pop("ColumnDescription", None)
    if template is None or not str(path).endswith(".tsv"):
        return metadata
    # the package's one table reader: our TSVs always have a header row, numbers included
    header = read_table(path, name="in_files", header=True, delimiter="\t", numeric=False).columns
    for column in header:
        metadata.setdefault(column, {"Description": str(template).format(name=column)})
    return metadata


def plan_outputs(base: Path, source_entities: Mapping[str, str], in_files: Sequence[Path],
                 entities: Sequence[Mapping[str, str]], *, drop: Sequence[str]) -> list[Path]:
    """The BIDS path of each file; checks the per-file entities and that no two collide."""
    if len(entities) != len(in_files):
        raise ValueError(
            f"entities: {len(entities)} dicts for {len(in_files)} in_files; give one per file"
        )
    targets = []
    for in_file, wanted in zip(in_files, entities, strict=True):
        unknown = sorted(set(wanted) - set(OUTPUT_ENTITY_KEYS))
        if unknown:
            raise ValueError(
                f"entities: unknown key(s) {unknown} for '{in_file.name}'; accepted: "
                f"{list(OUTPUT_ENTITY_KEYS)}"
            )
        if "suffix" not in wanted:
            raise ValueError(f"entities: 'suffix' is required (for '{in_file.name}')")
        extension = split_ext(in_file)[1]
        if wanted.get("extension", extension) != extension:
            raise ValueError(
                f"entities: extension {wanted['extension']!r} for '{in_file.name}', whose "
                f"extension is {extension!r}; files are copied, not converted"
            )
        if extension == ".json":
            raise ValueError(f"in_files: '{in_file.name}': .json names are kept for sidecars")
        targets.append(derivative_path(
            base, source_entities, suffix=wanted["suffix"], extension=extension,
            atlas=wanted.get("atlas"), seg=wanted.get("seg"), desc=wanted.get("desc"),
            meas=wanted.get("meas"), drop=drop,
        ))
    seen: dict[Path, Path] = {}
    for in_file, target in zip(in_files, targets, strict=True):
        if target in seen:
            raise ValueError(
                f"entities: '{seen[target].name}' and '{in_file.name}' would both be written "
                f"to '{target.name}'; give them different atlas/seg/desc/suffix"
            )
        seen[target] = in_file
    return targets


def software_versions() -> dict[str, str]:
    """Versions of nipype-maskers, its dependencies and Python."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"nipype_maskers": __version__}
    for name in SOFTWARE:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays to Python, paths to str, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return _jsonable(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"metadata/provenance: {type(value).__name__} value {value!r} is not "
                    "JSON-serializable")


def sidecar_text(provenance: Mapping[str, Any], metadata: Mapping[str, Any], uri: str,
                 sha256: str | None, software: Mapping[str, str]) -> str:
    """A sidecar: provenance, then metadata (which wins), then Sources, hash and Software."""
    content = {**provenance, **metadata}
    extra = content.pop("Sources", [])
    extra = [extra] if isinstance(extra, str) else list(extra)
    content["Sources"] = [uri, *[s for s in extra if s != uri]]
    if sha256 is not None:
        content["SourceSHA256"] = sha256
    content["Software"] = dict(software)
    return json.dumps(_jsonable(content), indent=2, allow_nan=False) + "\n"


def _stage_copy(source: Path, tmp: Path) -> None:
    """Put ``source``'s content at ``tmp`` (an empty file we created): a hard link when both
    are on one file system, else a byte copy.

    A link is safe because no file of ours is ever modified in place (every write is a new
    file renamed into place, and Nipype clears a node's folder before rerunning it); it saves
    writing the denoised BOLD (270 MB at 300 volumes) a second time.
    """
    tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(source, tmp)


def write_all(copies: Sequence[tuple[Path, Path]], texts: Sequence[tuple[str, Path]]) -> None:
    """Stage every copy and text under a temporary name, then rename them all into place.

    On any failure every temporary file is removed and the error raised.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for source, target in copies:
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.append((temporary_beside(target), target))
            _stage_copy(source, staged[-1][0])
        for text, target in texts:
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.append((temporary_beside(target), target))
            staged[-1][0].write_text(text, encoding="utf-8")
        for tmp, target in staged:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in staged:
            if tmp.exists():
                tmp.unlink()
        raise


def written_by_us(path: Path) -> bool:
    """Whether the sidecar of ``path`` (or ``path``, a sidecar) names nipype_maskers."""
    sidecar = path if path.name.endswith(".json") else sidecar_of(path)
    try:
        content = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    software = content.get("Software") if isinstance(content, dict) else None
    return isinstance(software, dict) and "nipype_maskers" in software


def output_configuration(name: str | os.PathLike) -> tuple[str, ...] | None:
    """What a derivative is an output of, beyond its source run: the slot a rerun replaces.

    An atlas's outputs (``atlas-<name>``, or ``seg-<name>``: time series, regions table, any
    other suffix or desc) form one configuration, that of the atlas: a rerun with that
    atlas replaces all of them, whatever its options. Any other output is its own
    configuration: its ``desc`` and suffix (the denoised BOLD ``desc-denoised_bold``, the
    confounds ``desc-confounds_timeseries``, the mask, the report). The extension does not
    count (a sidecar goes with its file). None for a name that is not a BIDS name.

    Examples
    --------
    >>> output_configuration('sub-01_task-rest_atlas-A_regions.tsv')
    ('atlas', 'A', '')
    >>> output_configuration('sub-01_task-rest_desc-denoised_bold.json')
    ('output', 'denoised', 'bold')
    """
    try:
        entities = parse_entities(name)
    except ValueError:
        return None
    if entities.get("atlas") or entities.get("seg"):
        return ("atlas", entities.get("atlas", ""), entities.get("seg", ""))
    return ("output", entities.get("desc", ""), entities["suffix"])


def remove_stale(folders: Sequence[Path] | set[Path], source_entities: Mapping[str, str],
                 keep: set[Path]) -> list[Path]:
    """Delete the files ``keep`` replaces in ``folders``; return them.

    A file is replaced when it is of the same source run
    (:func:`nipype_maskers.bids.same_source`) and of the same configuration
    (:func:`output_configuration`: the same atlas, or the same desc and suffix) as a file
    of ``keep``, is not in ``keep``, and is ours: its sidecar lists ``nipype_maskers`` under
    ``Software`` (so files of other pipelines are never touched). Hidden temporary files
    of a killed run for such names (:func:`nipype_maskers.files.temporary_target`) go too.
    Everything else stays: another atlas's outputs, written by another invocation into the
    same folder (even one running now: its temporary files are left alone), or by this one
    earlier.
    """
    keep = {Path(os.path.abspath(p)) for p in keep}
    replaced = {output_configuration(p.name) for p in keep} - {None}
    stale = []
    for folder in folders:
        for path in Path(folder).iterdir():
            if not path.is_file() or Path(os.path.abspath(path)) in keep:
                continue
            leftover_of = temporary_target(path.name)  # a killed run's temporary file
            name = path.name if leftover_of is None else leftover_of
            if (not same_source(name, source_entities)
                    or output_configuration(name) not in replaced):
                continue
            if leftover_of is not None or written_by_us(path):
                stale.append(path)
    for path in stale:  # decided first: a sidecar may vouch for its data file
        path.unlink(missing_ok=True)
    return stale


def source_sha256(source: str | os.PathLike, given: str | None, wanted: bool) -> str | None:
    """The SHA-256 of ``source`` for the sidecars: ``given`` (computed by the step that
    streamed it; checked to be a SHA-256), else read from the file; None when not ``wanted``.
    """
    if not wanted:
        return None
    if given is None:
        return file_sha256(source)
    if not re.fullmatch(r"[0-9a-f]{64}", given):
        raise ValueError(f"source_sha256: {given!r} is not a SHA-256; expected 64 lowercase "
                         "hexadecimal digits (e.g. CleanImage's in_file_sha256)")
    return given
