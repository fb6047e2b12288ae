"""Write one input run's outputs into a BIDS-derivatives folder, with provenance sidecars."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import secrets
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
    source_uri,
)
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
        desc="one dict per file: 'suffix' (required), optional 'atlas', 'seg', 'desc' and "
        "'extension' (default: the file's own)",
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
        desc="delete files of the same source run that this run does not produce any more "
        "(so one node must write all of a run's outputs)",
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
    ``SourceSHA256`` and ``Software`` (versions).

    All files and sidecars are first copied to hidden temporary names in their final
    folders, then renamed into place (atomic per file); then files of the same source run
    that this call did not write (an atlas dropped since the last run, their sidecars,
    temporary files left by a killed run) are deleted, so re-running into the same folder
    never leaves a mix of old and new outputs for one input. Hence one node per source
    run must write all its outputs (or set ``remove_stale=False``). Writes
    ``dataset_description.json`` when the folder has none. Cheap: suited to
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
        common = dict(defined(self.inputs.provenance, {}))
        uri = source_uri(source, dataset=self.inputs.source_dataset, relative_to=base)
        sha256 = file_sha256(source) if self.inputs.source_hashes else None
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
    with open(path, encoding="utf-8") as stream:
        header = stream.readline().rstrip("\n").split("\t")
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
            drop=drop,
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


def _temporary_beside(path: Path) -> Path:
    """Create an empty hidden file beside ``path`` (mode from the umask, not 0600)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary file beside '{path}'")


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
            staged.append((_temporary_beside(target), target))
            _stage_copy(source, staged[-1][0])
        for text, target in texts:
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.append((_temporary_beside(target), target))
            staged[-1][0].write_text(text, encoding="utf-8")
        for tmp, target in staged:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in staged:
            if tmp.exists():
                tmp.unlink()
        raise


_LEFTOVER = re.compile(r"\.(?P<name>[^/]+)\.[0-9a-f]{8}\.part")


def sidecar_of(path: Path) -> Path:
    """The JSON sidecar of a BIDS file: its name up to the first dot, plus '.json'."""
    return path.with_name(path.name.partition(".")[0] + ".json")


def written_by_us(path: Path) -> bool:
    """Whether the sidecar of ``path`` (or ``path``, a sidecar) names nipype_maskers."""
    sidecar = path if path.name.endswith(".json") else sidecar_of(path)
    try:
        content = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    software = content.get("Software") if isinstance(content, dict) else None
    return isinstance(software, dict) and "nipype_maskers" in software


def remove_stale(folders: Sequence[Path] | set[Path], source_entities: Mapping[str, str],
                 keep: set[Path]) -> list[Path]:
    """Delete our files of the same source run in ``folders``, except ``keep``; return them.

    Same run: :func:`nipype_maskers.bids.same_source`. Ours: its sidecar lists
    ``nipype_maskers`` under ``Software`` (so files of other pipelines are never touched).
    Hidden ``.<name>.<8 hex>.part`` leftovers of a killed run with such names go too.
    """
    keep = {Path(os.path.abspath(p)) for p in keep}
    stale = []
    for folder in folders:
        for path in Path(folder).iterdir():
            if not path.is_file() or Path(os.path.abspath(path)) in keep:
                continue
            leftover = _LEFTOVER.fullmatch(path.name)
            if leftover is not None:
                if same_source(leftover["name"], source_entities):
                    stale.append(path)
            elif same_source(path.name, source_entities) and written_by_us(path):
                stale.append(path)
    for path in stale:  # decided first: a sidecar may vouch for its data file
        path.unlink(missing_ok=True)
    return stale
