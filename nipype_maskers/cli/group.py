"""The ``group`` analysis level: group connectivity, QC-FC and the group report.

``nipype-maskers FMRIPREP_DIR OUTPUT_DIR group --atlas ...`` reads what the participant level
wrote in OUTPUT_DIR, per atlas: each run's region time series (``*_atlas-X_timeseries.tsv``),
its correlation matrix (``*_atlas-X_meas-PearsonCorrelation_relmat.tsv``, from
``--connectivity correlation``) and its denoising QC (``*_desc-qc_bold.tsv``). Each time
series file is one sample of the group (one run; the runs of a subject are separate
samples). It writes in ``OUTPUT_DIR/group/``:

- per atlas and kind, the group matrix (:class:`~nipype_maskers.interfaces.connectivity.
  GroupConnectivity`): ``<entities>_atlas-X_meas-<Measure>_desc-mean_relmat.tsv``, for
  ``tangent`` the geometric mean of the covariances ``..._meas-Covariance_desc-geometricmean_
  relmat.tsv`` and each sample's ``sub-.._meas-Tangent_relmat.tsv``;
- per atlas, QC-FC (:class:`~nipype_maskers.interfaces.qc.QCFC`) over the correlation
  matrices: ``..._desc-qcfc_bold.tsv`` (summary) and ``..._desc-qcfcedges_bold.tsv`` (edges),
  with distance dependence for labels atlases (centroids of the atlas image's labels) and
  seeds (their coordinates); none for maps and surface atlases (no single position);
- ``desc-flagged_subjects.tsv``: the samples over ``--qc-fd-max`` or ``--qc-censored-max``,
  left out of the group matrices and QC-FC unless ``--include-flagged``;
- ``group_report.html``.

Every input is checked and every output computed in a hidden folder of OUTPUT_DIR before
anything is moved into ``group/``: a bad input is one line, exit code 2, and nothing written.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

#: The command line's kind names (``_`` for spaces) to nilearn's.
GROUP_KINDS = {"correlation": "correlation", "partial_correlation": "partial correlation",
               "covariance": "covariance", "precision": "precision", "tangent": "tangent"}
#: The participant-level matrices QC-FC reads (Pearson correlation, as fMRIDenoise).
QCFC_MEASURE = "PearsonCorrelation"
#: The entities that tell the samples of one group apart (the rest names the group).
SAMPLE_ENTITIES = ("sub", "ses", "run")
FLAGGED_NAME = "desc-flagged_subjects.tsv"
REPORT_NAME = "group_report.html"


class Sample(NamedTuple):
    """One run of the group: its files and its QC figures."""

    label: str  #: e.g. ``sub-01_ses-1_run-2``
    timeseries: Path
    relmat: Path
    qc_file: Path
    qc: dict[str, float]
    flags: tuple[str, ...]  #: why it is flagged (empty: kept)


class AtlasGroup(NamedTuple):
    """The samples of one atlas sharing every entity but sub/ses/run (task, space...)."""

    atlas: str
    key: str  #: the shared entities, e.g. ``task-rest_space-MNI152NLin2009cAsym``
    samples: list[Sample]
    distance_source: str | None  #: 'labels', 'seeds' or None (no centroids)
    atlas_file: Path | None


def _usage_error(message: str) -> Exception:
    from .parser import UsageError

    return UsageError(message)


def _entities(path: Path) -> dict[str, str]:
    from ..bids_names import parse_entities

    try:
        return parse_entities(path)
    except ValueError:
        return {}


def _qc_file(timeseries: Path) -> Path | None:
    """The run's ``*_desc-qc_bold.tsv``: in the same folder, its entities all the run's."""
    wanted = _entities(timeseries)
    best, best_size = None, -1
    for candidate in timeseries.parent.glob("*_desc-qc_bold.tsv"):
        entities = {k: v for k, v in _entities(candidate).items()
                    if k not in ("desc", "suffix", "extension")}
        # every entity of the QC name must be the run's; a run entity must not be missing
        if all(wanted.get(k) == v for k, v in entities.items()) and all(
                entities.get(k) == wanted.get(k) for k in SAMPLE_ENTITIES + ("task",)):
            if len(entities) > best_size:
                best, best_size = candidate, len(entities)
    return best


def _read_qc(path: Path) -> dict[str, float]:
    from ..core.io.tables import read_table

    try:
        table = read_table(path, name="QC table", header=True, delimiter="\t", numeric=False)
        values = table.numbers(["mean_fd", "percent_censored"])
    except ValueError as exc:
        raise _usage_error(f"participant outputs: {exc}") from None
    if values.shape[0] != 1:
        raise _usage_error(f"participant outputs: '{path}' has {values.shape[0]} rows; "
                           "expected the one row of a desc-qc table")
    figures = {"mean_fd": float(values[0, 0]), "percent_censored": float(values[0, 1])}
    for column in ("max_fd", "dof_remaining", "remaining_duration"):
        if column in table.columns:
            figures[column] = float(table.numbers([column])[0, 0])
    return figures


def flags_of(qc: dict[str, float], fd_max: float, censored_max: float) -> tuple[str, ...]:
    """Why a sample is flagged: mean FD over ``fd_max`` (mm), % censored over ``censored_max``.

    Examples
    --------
    >>> flags_of({'mean_fd': 0.6, 'percent_censored': 10.0}, 0.5, 50)
    ('mean FD 0.600 mm > 0.5 mm',)
    >>> flags_of({'mean_fd': 0.1, 'percent_censored': 10.0}, 0.5, 50)
    ()
    """
    flags = []
    if qc["mean_fd"] > fd_max:
        flags.append(f"mean FD {qc['mean_fd']:.3f} mm > {fd_max:g} mm")
    if qc["percent_censored"] > censored_max:
        flags.append(f"{qc['percent_censored']:.1f}% censored > {censored_max:g}%")
    return tuple(flags)


def find_samples(output_dir: Path, atlas: str, participants: Sequence[str] | None,
                 fd_max: float, censored_max: float) -> dict[str, list[Sample]]:
    """The participant outputs of ``atlas`` in ``output_dir``, grouped by shared entities."""
    from ..bids_names import derived_name

    groups: dict[str, list[Sample]] = {}
    pattern = f"*_atlas-{atlas}_*timeseries.tsv"
    found = sorted(p for p in output_dir.glob(f"sub-*/**/{pattern}")
                   if _entities(p).get("atlas") == atlas)
    for timeseries in found:
        entities = _entities(timeseries)
        if participants and entities.get("sub") not in participants:
            continue
        relmat = timeseries.with_name(derived_name(timeseries, meas=QCFC_MEASURE,
                                                   suffix="relmat", extension=".tsv"))
        if not relmat.is_file():
            raise _usage_error(
                f"participant outputs missing: no '{relmat.name}' next to '{timeseries}'; "
                "expected the participant level run with --connectivity correlation")
        qc_file = _qc_file(timeseries)
        if qc_file is None:
            raise _usage_error(
                f"participant outputs missing: no *_desc-qc_bold.tsv for '{timeseries}' in "
                f"'{timeseries.parent}'; expected the participant level's QC table")
        qc = _read_qc(qc_file)
        label = "_".join(f"{k}-{entities[k]}" for k in SAMPLE_ENTITIES if k in entities)
        key = "_".join(f"{k}-{v}" for k, v in entities.items()
                       if k not in (*SAMPLE_ENTITIES, "atlas", "suffix", "extension"))
        groups.setdefault(key, []).append(Sample(
            label, timeseries, relmat, qc_file, qc, flags_of(qc, fd_max, censored_max)))
    return groups


def _check_columns(samples: list[Sample], atlas: str) -> None:
    """One line naming the first time series whose header differs from the first one's."""
    def header(path: Path) -> list[str]:
        with open(path, encoding="utf-8") as stream:
            return stream.readline().rstrip("\n").split("\t")

    reference = header(samples[0].timeseries)
    for sample in samples[1:]:
        columns = header(sample.timeseries)
        if columns != reference:
            extra = sorted(set(columns) ^ set(reference))[:3]
            raise _usage_error(
                f"participant outputs: '{sample.timeseries}' has {len(columns)} columns, "
                f"'{samples[0].timeseries.name}' {len(reference)} (differing: {extra or 'order'})"
                f"; expected the same regions of atlas {atlas} in every run (same atlas and "
                "options at the participant level)")


def _write_centroids(group: AtlasGroup, folder: Path) -> Path | None:
    """A TSV of region name and centroid (mm) for QC-FC's distance dependence, or None."""
    if group.distance_source == "seeds":
        return group.atlas_file
    if group.distance_source != "labels":
        return None
    from ..bids_names import derived_name
    from ..core.io.tables import read_table
    from ..core.qc.qcfc import labels_img_centroids

    values, centroids = labels_img_centroids(group.atlas_file)
    names = {int(v): str(int(v)) for v in values}
    # the time series name labels by the LUT: the run's regions table maps index to name
    regions = group.samples[0].timeseries
    regions = regions.with_name(derived_name(regions, suffix="regions", extension=".tsv"))
    if regions.is_file():
        table = read_table(regions, name="regions table", header=True, delimiter="\t",
                           numeric=False)
        names.update({int(float(i)): n for i, n in zip(table.text("index"), table.text("name"),
                                                        strict=True)})
    lines = ["name\tx\ty\tz"] + [f"{names[int(v)]}\t{float(x)!r}\t{float(y)!r}\t{float(z)!r}"
                                  for v, (x, y, z) in zip(values, centroids, strict=True)]
    path = folder / f"atlas-{group.atlas}_{group.key}_centroids.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(interface, folder: Path, what: str) -> Any:
    """Run a Nipype interface in ``folder``; its ValueError is a one-line usage error."""
    try:
        return interface.run(cwd=str(folder)).outputs
    except ValueError as exc:
        message = str(exc).strip().splitlines()
        raise _usage_error(f"{what}: {message[0] if message else exc}") from None


def compute_group(group: AtlasGroup, kinds: Sequence[str], options: dict[str, Any],
                  folder: Path) -> dict[str, Any]:
    """Group matrices and QC-FC of one atlas group, written in ``folder``."""
    from ..interfaces.connectivity import GroupConnectivity
    from ..interfaces.qc import QCFC

    kept = [s for s in group.samples if not s.flags or options["include_flagged"]]
    what = f"atlas {group.atlas} ({group.key or 'all runs'})"
    if len(kept) < 3:
        raise _usage_error(
            f"{what}: {len(kept)} run(s) left of {len(group.samples)} "
            f"({len(group.samples) - len(kept)} flagged); QC-FC needs at least 3 subjects "
            "(add subjects, raise --qc-fd-max / --qc-censored-max or pass --include-flagged)")
    matrices: dict[str, list[str]] = {}
    for kind in kinds:
        nilearn_kind = GROUP_KINDS[kind]
        interface = GroupConnectivity(
            in_files=[str(s.timeseries) for s in kept], kind=nilearn_kind,
            shrinkage=options["shrinkage"],
            fisher_z=options["fisher_z"] and nilearn_kind in ("correlation",
                                                              "partial correlation"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outputs = _run(interface, folder, f"{what}, --connectivity {kind}")
        for warning in caught:  # e.g. the geometric mean's stopping rule, as nilearn's
            print(f"note: {what}, {kind}: {warning.message}", flush=True)
        matrices[kind] = [outputs.mean_file, outputs.mean_sidecar, *outputs.subject_files,
                          *outputs.subject_sidecars]
    centroids = _write_centroids(group, folder)
    qcfc = QCFC(in_files=[str(s.relmat) for s in kept], qc_files=[str(s.qc_file) for s in kept])
    if centroids is not None:
        qcfc.inputs.regions_file = str(centroids)
    outputs = _run(qcfc, folder, f"{what}, QC-FC")
    return {"matrices": matrices, "kept": kept,
            "qcfc": [outputs.out_file, outputs.out_sidecar, outputs.edges_file,
                     outputs.edges_sidecar],
            "summary": outputs.summary, "edges_file": outputs.edges_file,
            "mean_files": {kind: files[0] for kind, files in matrices.items()}}


def flagged_table(samples: Sequence[Sample]) -> str:
    """``desc-flagged_subjects.tsv``: one row per flagged sample (header only: none)."""
    rows = ["participant_id\tsample\tmean_fd\tpercent_censored\treason"]
    seen = set()
    for sample in samples:
        if sample.flags and sample.label not in seen:
            seen.add(sample.label)
            subject = sample.label.split("_")[0]
            rows.append(f"{subject}\t{sample.label}\t{sample.qc['mean_fd']!r}\t"
                        f"{sample.qc['percent_censored']!r}\t{'; '.join(sample.flags)}")
    return "\n".join(rows) + "\n"


def atlas_groups(args: argparse.Namespace, output_dir: Path) -> list[AtlasGroup]:
    """Every atlas's groups of samples, checked (files present, same columns)."""
    from ..bids import CIFTI, GIFTI, run_kind
    from .parser import parse_atlases

    atlases = parse_atlases(args)
    wanted = []
    for atlas in atlases["labels"]:
        volume = not isinstance(atlas.labels_file, tuple) and run_kind(
            atlas.labels_file) not in (CIFTI, GIFTI)
        wanted.append((atlas.name, "labels" if volume else None,
                       atlas.labels_file if volume else None))
    wanted += [(atlas.name, None, None) for atlas in atlases["maps"]]
    wanted += [(atlas.name, "seeds", atlas.seeds_file) for atlas in atlases["spheres"]]
    if not wanted:
        raise _usage_error("no atlas: give the --atlas/--maps/--seeds of the participant "
                           "level (their names select the participant outputs)")
    groups = []
    for name, source, path in wanted:
        participants = [label.removeprefix("sub-") for label in args.participant_label or []]
        found = find_samples(output_dir, name, participants, args.qc_fd_max,
                             args.qc_censored_max)
        if not found:
            raise _usage_error(
                f"participant outputs missing: no *_atlas-{name}_timeseries.tsv under "
                f"'{output_dir}'; expected the participant level run with this atlas first")
        for key, samples in sorted(found.items()):
            _check_columns(samples, name)
            groups.append(AtlasGroup(name, key, samples, source, path))
    return groups


def remove_earlier_outputs(target: Path, atlas_group: AtlasGroup) -> list[Path]:
    """Delete the files of ``target`` an earlier group run wrote for this atlas group (same
    atlas and shared entities, any kind), so that a rerun never mixes old and new outputs."""
    removed = []
    for path in sorted(target.iterdir()) if target.is_dir() else []:
        entities = _entities(path)
        if entities.get("atlas") != atlas_group.atlas:
            continue
        key = "_".join(f"{k}-{v}" for k, v in entities.items() if k not in (
            *SAMPLE_ENTITIES, "atlas", "meas", "desc", "suffix", "extension"))
        if key == atlas_group.key and path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def _move(files: Sequence[str], target: Path) -> list[Path]:
    moved = []
    for path in files:
        destination = target / Path(path).name
        os.replace(path, destination)
        moved.append(destination)
    return moved


def group(args: argparse.Namespace) -> int:
    """The group level: check, compute in a hidden folder, then move into ``group/``."""
    from ..bids_dataset import write_dataset_files
    from ..files import write_text
    from .parser import reports_available

    output_dir = args.output_dir.resolve()
    if not output_dir.is_dir():
        raise _usage_error(f"OUTPUT_DIR: no such folder '{args.output_dir}'; expected the "
                           "participant level's outputs")
    if args.qc_fd_max <= 0:
        raise _usage_error(f"--qc-fd-max: must be > 0 mm, got {args.qc_fd_max}")
    if not 0 <= args.qc_censored_max <= 100:
        raise _usage_error(f"--qc-censored-max: a percentage (0-100), got {args.qc_censored_max}")
    kinds = list(dict.fromkeys(args.connectivity))
    groups = atlas_groups(args, output_dir)
    options = {"shrinkage": args.connectivity_shrinkage, "fisher_z": args.fisher_z,
               "include_flagged": args.include_flagged}
    report = not args.no_reports and reports_available()
    target = output_dir / "group"
    with tempfile.TemporaryDirectory(prefix=".group-", dir=output_dir) as staging:
        staging = Path(staging)
        results = []
        for number, atlas_group in enumerate(groups):
            folder = staging / str(number)
            folder.mkdir()
            results.append(compute_group(atlas_group, kinds, options, folder))
        samples = [s for g in groups for s in g.samples]
        page = None
        if report:
            from ..reporting.group import group_report

            page = group_report(groups, results, kinds=kinds, fd_max=args.qc_fd_max,
                                censored_max=args.qc_censored_max,
                                include_flagged=args.include_flagged)
        # everything is computed: only now is OUTPUT_DIR/group touched
        target.mkdir(exist_ok=True)
        written = []
        for atlas_group, result in zip(groups, results, strict=True):
            remove_earlier_outputs(target, atlas_group)
            for files in result["matrices"].values():
                written += _move(files, target)
            written += _move(result["qcfc"], target)
        written.append(write_text(flagged_table(samples), target / FLAGGED_NAME))
        if page is not None:
            written.append(write_text(page, target / REPORT_NAME))
    write_dataset_files(output_dir)
    flagged = sorted({s.label for s in samples if s.flags})
    fate = (f" ({', '.join(flagged)}), {'kept in' if args.include_flagged else 'left out of'}"
            " the group matrices and QC-FC") if flagged else ""
    print(f"Group level: {len(groups)} atlas group(s), {len({s.label for s in samples})} "
          f"run(s); {len(flagged)} flagged{fate}")
    for result, atlas_group in zip(results, groups, strict=True):
        summary = result["summary"]
        print(f"  atlas {atlas_group.atlas}: QC-FC median |r| "
              f"{_number(summary.get('median_abs_qcfc'))}, "
              f"{_number(summary.get('percent_significant'))}% edges p<0.05, distance "
              f"dependence {_number(summary.get('distance_dependence'))}")
    print(f"Wrote {len(written)} file(s) in {target}")
    if page is not None:
        print(f"Report (open in a browser): {target / REPORT_NAME}")
    return 0


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}"
