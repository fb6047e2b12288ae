"""The ``nipype-maskers`` command line.

Three forms::

    nipype-maskers FMRIPREP_DIR OUTPUT_DIR participant [options]   # a BIDS App
    nipype-maskers extract --bold BOLD --out OUTPUT_DIR [options]  # one run, by its files
    nipype-maskers FMRIPREP_DIR OUTPUT_DIR group --atlas ...       # group matrices, QC-FC
    nipype-maskers demo OUTPUT_DIR                                 # the bundled demo

Bad arguments are reported in one line with exit code 2 before any work starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .. import __version__

#: Surface and CIFTI-2 file endings, left out of an atlas's name.
SURFACE_EXTENSIONS = (".dlabel.nii", ".dscalar.nii", ".label.gii", ".func.gii", ".shape.gii")
PLUGINS = ("MultiProc", "Linear", "SLURM", "SLURMGraph", "SGE", "SGEGraph")
DENOISE = ("simple", "scrubbing", "compcor", "ica_aroma", "none")
STANDARDIZE = ("zscore_sample", "zscore", "psc", "none")
#: ``--connectivity`` kinds: nilearn's, with ``_`` for spaces.
CONNECTIVITY_KINDS = ("correlation", "partial_correlation", "covariance", "precision")
MASK_STRATEGIES = ("fmriprep", "background", "epi", "whole-brain-template", "gm-template",
                   "wm-template")
EPILOG = """\
examples:
  nipype-maskers demo demo_output
  nipype-maskers /data/derivatives/fmriprep /data/derivatives/maskers participant \\
      --participant-label 01 02 --task rest --space MNI152NLin2009cAsym \\
      --atlas atlas-Schaefer400_dseg.nii.gz:atlas-Schaefer400_dseg.tsv --denoise simple
  nipype-maskers extract --bold sub-01_task-rest_desc-preproc_bold.nii.gz \\
      --confounds sub-01_task-rest_desc-confounds_timeseries.tsv \\
      --seeds power2011.tsv --radius 5 --out results/
  nipype-maskers /data/derivatives/fmriprep /data/derivatives/maskers group \\
      --atlas atlas-Schaefer400_dseg.nii.gz --connectivity correlation tangent

Outputs are BIDS derivatives (sub-*/func/*_atlas-<name>_timeseries.tsv + .json,
*_desc-denoised_bold.nii.gz); an atlas's name is its atlas-<name> entity, or its file name.
"""


class UsageError(Exception):
    """A bad argument: reported in one line, exit code 2."""


def _add_processing_options(parser: argparse.ArgumentParser) -> None:
    atlases = parser.add_argument_group("atlases (any combination; each is its own branch)")
    atlases.add_argument("--atlas", action="append", default=[], metavar="LABELS[:LUT]",
                         help="3D labels atlas (NIfTI), a CIFTI-2 .dlabel.nii, or a pair of "
                         "GIFTI .label.gii 'L.label.gii,R.label.gii', optionally with its "
                         "BIDS dseg.tsv")
    atlases.add_argument("--maps", action="append", default=[], metavar="MAPS[:LUT]",
                         help="4D probabilistic atlas (NIfTI), one map per volume, optionally "
                         "with a TSV of index and name (one row per map); or a CIFTI-2 "
                         ".dscalar.nii (one map per row), or a GIFTI pair 'L.func.gii,"
                         "R.func.gii' (one map per data array)")
    atlases.add_argument("--seeds", action="append", default=[], metavar="SEEDS",
                         help="TSV/CSV of sphere centres (x, y, z in mm [, name])")
    atlases.add_argument("--radius", type=float, help="sphere radius in mm (with --seeds)")
    atlases.add_argument("--atlas-space", metavar="SPACE",
                         help="the space of every --atlas/--maps/--seeds that does not state "
                         "its own (by a tpl-/space- entity in its name or SpatialReference in "
                         "its JSON sidecar), e.g. MNI152NLin2009cAsym, T1w, native; one value "
                         "for all, which must agree with those that do. An atlas is applied "
                         "only to runs in its space. Unstated and not given: assumed to be "
                         "the runs' space when they are all in one, else refused")
    cleaning = parser.add_argument_group("denoising (nilearn's names and defaults)")
    cleaning.add_argument("--denoise", choices=DENOISE, default="simple",
                          help="nilearn's load_confounds_strategy preset (default: simple)")
    cleaning.add_argument("--mask-strategy", choices=MASK_STRATEGIES, default="fmriprep",
                          help="'fmriprep' uses the run's desc-brain_mask, else nilearn's "
                          "strategy computes one (default: fmriprep)")
    cleaning.add_argument("--smoothing-fwhm", type=float, metavar="MM",
                          help="smoothing before region extraction")
    cleaning.add_argument("--low-pass", type=float, metavar="HZ")
    cleaning.add_argument("--high-pass", type=float, metavar="HZ")
    cleaning.add_argument("--detrend", action="store_true", help="remove linear trends")
    cleaning.add_argument("--standardize", choices=STANDARDIZE, default="zscore_sample",
                          help="standardize the region time series (default: zscore_sample); "
                          "the denoised BOLD has its own --standardize-bold")
    cleaning.add_argument("--standardize-bold", choices=STANDARDIZE, default="none",
                          help="standardize each voxel of the denoised BOLD (default: none: "
                          "the denoised BOLD keeps its units, as XCP-D and fMRIPrep users "
                          "expect)")
    cleaning.add_argument("--censored", choices=("drop", "nan"), default="drop",
                          help="volumes censored by the denoising (scrubbing, non-steady "
                          "state): 'drop' leaves them out of the outputs, as nilearn "
                          "(default); 'nan' keeps every volume, as n/a rows in the time "
                          "series TSVs and NaN volumes in the denoised BOLD, so that task "
                          "onsets stay aligned. Either way the cleaning excludes them and "
                          "the sidecars list them (CensoredVolumes)")
    cleaning.add_argument("--t-r", type=float, metavar="SECONDS",
                          help="repetition time of every run (default: RepetitionTime in the "
                          "BOLD's BIDS JSON sidecar, else the NIfTI header; a disagreement "
                          "above 1%% is a warning)")
    cleaning.add_argument("--no-denoised-bold", action="store_true",
                          help="do not write the voxel-wise denoised BOLD run")
    cleaning.add_argument("--no-reports", action="store_true",
                          help="do not write the per-run HTML report (written by default "
                          "when matplotlib is installed: pip install nipype-maskers[reports])")
    connectivity = parser.add_argument_group("connectivity (nilearn's ConnectivityMeasure)")
    connectivity.add_argument(
        "--connectivity", nargs="+", choices=CONNECTIVITY_KINDS, default=[], metavar="KIND",
        help="per run and atlas, a *_atlas-<name>_meas-<Measure>_relmat.tsv per KIND "
        f"({', '.join(CONNECTIVITY_KINDS)}), and per run the denoising QC table "
        "*_desc-qc_bold.tsv (needs the run's confounds)")
    connectivity.add_argument(
        "--connectivity-shrinkage", choices=("ledoit_wolf", "none"), default="ledoit_wolf",
        help="covariance estimator: ledoit_wolf (nilearn's default) or none (empirical)")
    connectivity.add_argument("--fisher-z", action="store_true",
                              help="Fisher z (arctanh) of the correlation matrices")
    connectivity.add_argument(
        "--combine-runs", action="store_true",
        help="also one matrix per subject, session, task and atlas from all its runs: each "
        "run's signals z-scored, then concatenated, censored volumes excluded (XCP-D's "
        "rule); named without the run entity")
    execution = parser.add_argument_group("execution")
    execution.add_argument("--work-dir", type=Path, help="Nipype work dir (cache)")
    execution.add_argument("--plugin", choices=PLUGINS, default="MultiProc")
    execution.add_argument("--plugin-args", metavar="JSON", help="extra plugin arguments")
    execution.add_argument("--sbatch-args", default="", metavar="ARGS",
                           help="extra sbatch arguments, e.g. --sbatch-args=\"--time=1:00:00\"")
    execution.add_argument("--qsub-args", default="", metavar="ARGS",
                           help="extra qsub arguments, e.g. --qsub-args=\"-q all.q\"")
    execution.add_argument("--nprocs", type=int, default=os.cpu_count() or 1,
                           help="parallel processes (MultiProc; default: all cores)")
    execution.add_argument("--omp-nthreads", type=int, metavar="N",
                           help="CPUs each heavy node uses (threads that read, smooth and "
                           "clean side by side). Default: MultiProc shares --nprocs among "
                           "the runs (1 when there are more runs than processes), Linear "
                           "uses the machine's cores, cluster jobs 1; at most 4")
    execution.add_argument("--resource-monitor", action="store_true",
                           help="record each node's peak memory and CPU (Nipype's resource "
                           "monitor; in each node's result)")
    execution.add_argument("--mem-gb", type=float,
                           help="memory budget: MultiProc never runs nodes whose summed "
                           "estimates exceed it")


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    """The parsers: 'participant' (the BIDS App), 'group', 'extract' and 'demo'."""
    common = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": EPILOG}
    app = argparse.ArgumentParser(
        prog="nipype-maskers",
        usage="nipype-maskers FMRIPREP_DIR OUTPUT_DIR participant [options]\n"
              "       nipype-maskers extract --bold BOLD --out OUTPUT_DIR [options]\n"
              "       nipype-maskers FMRIPREP_DIR OUTPUT_DIR group --atlas ... [options]\n"
              "       nipype-maskers demo OUTPUT_DIR [options]",
        description="nilearn's maskers as Nipype workflows: fMRIPrep derivatives in, "
        "denoised BOLD and region time series out, as BIDS derivatives.", **common)
    app.add_argument("fmriprep_dir", type=Path, metavar="FMRIPREP_DIR",
                     help="fMRIPrep derivatives: sub-*/[ses-*/]func/*_desc-preproc_bold.nii.gz "
                     "with their desc-brain_mask and desc-confounds_timeseries files")
    app.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR",
                     help="where the BIDS derivatives are written")
    app.add_argument("analysis_level", choices=("participant",), metavar="participant",
                     help="the analysis level (participant: each run on its own)")
    app.add_argument("--version", action="version", version=f"nipype-maskers {__version__}")
    select = app.add_argument_group("which runs")
    select.add_argument("--participant-label", nargs="+", metavar="LABEL")
    select.add_argument("--session-label", metavar="LABEL")
    select.add_argument("--task", metavar="LABEL")
    select.add_argument("--run", metavar="LABEL")
    select.add_argument("--space", metavar="LABEL",
                        help="the runs' output space, e.g. MNI152NLin2009cAsym[:res-2], T1w, "
                        "fsLR (CIFTI, with --den), fsaverage5 (GIFTI pairs), or 'native' (runs "
                        "without a space- entity); every atlas must be in it. Default: the "
                        "atlases' spaces (each run gets the atlases of its space; the others "
                        "are skipped and listed); every volume run when no atlas is given")
    select.add_argument("--den", metavar="LABEL",
                        help="with --space fsLR: the CIFTI runs' density, e.g. 91k "
                        "(*_space-fsLR_den-91k_bold.dtseries.nii)")
    _add_processing_options(app)

    extract = argparse.ArgumentParser(
        prog="nipype-maskers extract", description="Process one run given by its files.",
        **common)
    extract.add_argument("--bold", type=Path, required=True)
    extract.add_argument("--mask", type=Path, help="brain mask (else computed: see "
                         "--mask-strategy)")
    extract.add_argument("--confounds", type=Path, help="fMRIPrep confounds TSV")
    extract.add_argument("--space", metavar="LABEL",
                         help="the run's space when its name has no space- entity (default: "
                         "'native'); every atlas must be in it")
    extract.add_argument("--out", type=Path, required=True, metavar="OUTPUT_DIR")
    _add_processing_options(extract)

    demo = argparse.ArgumentParser(
        prog="nipype-maskers demo",
        description="Build a small fMRIPrep-like dataset (six subjects, MNI 2 mm, and a "
        "CIFTI run for two of them) in OUTPUT_DIR/fmriprep/, run the participant level on "
        "it with MultiProc (work dir OUTPUT_DIR/work/, derivatives in "
        "OUTPUT_DIR/nipype_maskers/), then the group level over the volume atlases "
        "(OUTPUT_DIR/nipype_maskers/group/), and print where the outputs are. Run again "
        "into the same folder, the participant level recomputes nothing.", **common)
    demo.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR")
    demo.add_argument("--n-volumes", type=int, default=100)
    demo.add_argument("--nprocs", type=int, default=2)
    return {"participant": app, "extract": extract, "demo": demo,
            "group": build_group_parser(common)}


def build_group_parser(common: dict[str, Any]) -> argparse.ArgumentParser:
    """The group level: ``nipype-maskers FMRIPREP_DIR OUTPUT_DIR group --atlas ...``."""
    group = argparse.ArgumentParser(
        prog="nipype-maskers group",
        usage="nipype-maskers FMRIPREP_DIR OUTPUT_DIR group --atlas ... [options]",
        description="Read the participant level's outputs in OUTPUT_DIR (each run's\n"
        "*_timeseries.tsv, *_meas-PearsonCorrelation_relmat.tsv from --connectivity\n"
        "correlation, *_desc-qc_bold.tsv) and write OUTPUT_DIR/group/: the group matrices\n"
        "(mean of each kind; tangent: geometric mean and each run's tangent matrix), QC-FC\n"
        "(summary and edges, with distance dependence for labels atlases and seeds),\n"
        "desc-flagged_subjects.tsv and group_report.html. Each run is one sample.", **common)
    group.add_argument("fmriprep_dir", type=Path, metavar="FMRIPREP_DIR",
                       help="the participant level's FMRIPREP_DIR (not read: BIDS-App form)")
    group.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR",
                       help="the participant level's OUTPUT_DIR")
    group.add_argument("analysis_level", choices=("group",), metavar="group")
    group.add_argument("--participant-label", nargs="+", metavar="LABEL",
                       help="only these subjects (default: all in OUTPUT_DIR)")
    atlases = group.add_argument_group("atlases (as given at the participant level: their "
                                       "names select the outputs)")
    atlases.add_argument("--atlas", action="append", default=[], metavar="LABELS[:LUT]",
                         help="a labels atlas (its image gives the centroids of the distance "
                         "dependence)")
    atlases.add_argument("--maps", action="append", default=[], metavar="MAPS[:LUT]",
                         help="a maps atlas (no distance dependence: a map has no one "
                         "position)")
    atlases.add_argument("--seeds", action="append", default=[], metavar="SEEDS",
                         help="seeds (their coordinates give the distance dependence)")
    atlases.add_argument("--radius", type=float, help="accepted and ignored (as at the "
                         "participant level)")
    measures = group.add_argument_group("group matrices")
    measures.add_argument("--connectivity", nargs="+", metavar="KIND",
                          default=["correlation", "tangent"],
                          choices=("correlation", "partial_correlation", "covariance",
                                   "precision", "tangent"),
                          help="kinds of group matrix, from the runs' time series: the mean "
                          "of correlation, partial_correlation, covariance or precision; "
                          "tangent: the geometric mean and each run's tangent matrix "
                          "(nilearn's ConnectivityMeasure). Default: correlation tangent")
    measures.add_argument("--connectivity-shrinkage", choices=("ledoit_wolf", "none"),
                          default="ledoit_wolf", help="covariance estimator (default: "
                          "ledoit_wolf, nilearn's)")
    measures.add_argument("--fisher-z", action="store_true",
                          help="average Fisher z-transformed correlations")
    qc = group.add_argument_group("quality control")
    qc.add_argument("--qc-fd-max", type=float, default=0.5, metavar="MM",
                    help="flag runs whose mean framewise displacement exceeds this "
                    "(default: 0.5 mm)")
    qc.add_argument("--qc-censored-max", type=float, default=50.0, metavar="PERCENT",
                    help="flag runs with more censored volumes than this (default: 50%%)")
    qc.add_argument("--include-flagged", action="store_true",
                    help="keep flagged runs in the group matrices and QC-FC (default: they "
                    "are left out, and listed in desc-flagged_subjects.tsv and the report)")
    qc.add_argument("--no-reports", action="store_true", help="do not write group_report.html")
    return group


def atlas_name(path: Path) -> str:
    """An atlas's name: its ``atlas-<name>`` entity, else its file name, alphanumerics only."""
    from ..bids import parse_entities, validate_label

    try:
        name = parse_entities(path).get("atlas")
    except ValueError:  # not a BIDS name: the file name serves
        name = None
    if not name:
        stem = path.name
        for ext in SURFACE_EXTENSIONS + (".nii.gz", ".nii", ".tsv", ".csv", ".txt"):
            stem = stem[: -len(ext)] if stem.endswith(ext) else stem
        name = "".join(c for c in stem.replace(".", " ").title() if c.isalnum())
    return validate_label(name, "atlas")


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise UsageError(f"{what}: no such file or folder '{path}'")
    return path.resolve()


def _atlas_image(text: str, option: str) -> Path | tuple[Path, Path]:
    """An atlas's image(s): one file (NIfTI, CIFTI-2) or a GIFTI pair 'L.gii,R.gii'."""
    from ..bids import CIFTI, GIFTI, parse_entities, run_kind

    wanted = {"--atlas": ((".dlabel.nii",), (".label.gii", ".func.gii", ".shape.gii"),
                          "a labels image: .nii[.gz], .dlabel.nii or a .label.gii pair"),
              "--maps": ((".dscalar.nii",), (".func.gii", ".shape.gii"),
                         "maps: a 4D .nii[.gz], a .dscalar.nii or a .func.gii pair")}[option]
    paths = [_existing(Path(part), option) for part in text.split(",")]
    for path in paths:
        kind = run_kind(path)
        if (kind == CIFTI and not path.name.endswith(wanted[0])) or (
                kind == GIFTI and not path.name.endswith(wanted[1])):
            raise UsageError(f"{option}: '{path.name}' is not {wanted[2]}")
    kinds = {run_kind(path) for path in paths}
    if len(paths) > 2 or (len(paths) == 2 and kinds != {GIFTI}):
        raise UsageError(f"{option}: {text!r}: only GIFTI atlases come in pairs "
                         "('L.label.gii,R.label.gii'); expected one file or a GIFTI pair")
    if kinds == {GIFTI} and len(paths) != 2:
        raise UsageError(f"{option}: '{paths[0].name}' is one hemisphere; a GIFTI atlas is "
                         f"a pair: {option} L.label.gii,R.label.gii (left first)")
    if len(paths) == 1:
        return paths[0]
    hemispheres = []
    for path in paths:
        try:
            hemispheres.append(parse_entities(path).get("hemi"))
        except ValueError:  # not a BIDS name: the masker checks the files' own hemispheres
            hemispheres.append(None)
    if hemispheres == ["R", "L"]:
        raise UsageError(f"{option}: {text!r} gives hemi-R first; expected the left "
                         "hemisphere first: L.label.gii,R.label.gii")
    return paths[0], paths[1]


def _n_maps(maps: Path | tuple[Path, Path]) -> int:
    """The number of maps of a 4D NIfTI, a .dscalar.nii (rows) or a GIFTI pair (darrays)."""
    import nibabel as nib

    from ..bids import CIFTI

    if isinstance(maps, tuple):
        counts = [len(nib.load(path).darrays) for path in maps]
        if counts[0] != counts[1]:
            raise UsageError(f"--maps: '{maps[0].name}' holds {counts[0]} maps, "
                             f"'{maps[1].name}' {counts[1]}; both hemispheres need each map")
        return counts[0]
    from ..bids import run_kind

    shape = nib.load(maps).shape
    if run_kind(maps) == CIFTI:
        return int(shape[0])
    if len(shape) != 4:
        raise UsageError(f"--maps: '{maps}' is not a 4D image (shape {shape})")
    return int(shape[3])


def _no_cifti_lut(path: Path | tuple[Path, Path], lut: str, option: str) -> None:
    """A CIFTI atlas names its regions itself (label table, map names): no LUT."""
    from ..bids import CIFTI, run_kind

    if lut and not isinstance(path, tuple) and run_kind(path) == CIFTI:
        raise UsageError(f"{option}: '{path.name}' names its regions itself (its label table "
                         f"or map names); give it without ':{lut}'")


def parse_atlases(args) -> dict[str, list]:
    """The --atlas/--maps/--seeds options as the workflows' atlas descriptions.

    A GIFTI atlas is a pair (``L.label.gii,R.label.gii``): its ``labels_file`` /
    ``maps_file`` is then a (left, right) tuple, named after the left file.
    """
    from ..workflows.timeseries import LabelsAtlas, MapsAtlas, SpheresAtlas

    labels, maps, spheres = [], [], []
    for spec in args.atlas:
        image, _, lut = spec.partition(":")
        files = _atlas_image(image, "--atlas")
        first = files[0] if isinstance(files, tuple) else files
        _no_cifti_lut(first, lut, "--atlas")
        labels.append(LabelsAtlas(atlas_name(first), files,
                                  _existing(Path(lut), "--atlas LUT") if lut else None))
    for spec in args.maps:
        image, _, lut = spec.partition(":")
        path = _atlas_image(image, "--maps")
        _no_cifti_lut(path, lut, "--maps")
        n_maps = _n_maps(path)
        lut_path = _existing(Path(lut), "--maps LUT") if lut else None
        if lut_path is not None:
            from ..core.regions.label_names import read_lut

            try:
                n_names = len(read_lut(lut_path))
            except ValueError as exc:
                raise UsageError(f"--maps LUT: {exc}") from None
            if n_names != n_maps:
                raise UsageError(f"--maps LUT: '{lut_path}' names {n_names} maps, the image "
                                 f"has {n_maps}")
        first = path[0] if isinstance(path, tuple) else path
        maps.append(MapsAtlas(atlas_name(first), path, n_maps, lut_path))
    for spec in args.seeds:
        path = _existing(Path(spec), "--seeds")
        spheres.append(SpheresAtlas(atlas_name(path), path, args.radius))
    if args.radius is not None and not args.seeds:
        raise UsageError("--radius: only meaningful with --seeds")
    if args.radius is not None and args.radius < 0:
        raise UsageError(f"--radius: must be >= 0 mm, got {args.radius}")
    names = [a.name for a in labels + maps + spheres]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"atlases: two atlases share the name {duplicates[0]!r}; rename one "
                         "file (its atlas-<name> entity names its outputs)")
    return {"labels": labels, "maps": maps, "spheres": spheres}


def reports_available() -> bool:
    """Whether matplotlib (the "reports" extra) can be imported."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def processing_options(args) -> dict[str, Any]:
    """The workflow factory's keyword arguments from the processing options."""
    if args.low_pass is not None and args.high_pass is not None and \
            args.high_pass >= args.low_pass:
        raise UsageError(f"--high-pass ({args.high_pass} Hz) must be below --low-pass "
                         f"({args.low_pass} Hz)")
    for option in ("low_pass", "high_pass", "smoothing_fwhm", "t_r"):
        value = getattr(args, option)
        if value is not None and value <= 0:
            raise UsageError(f"--{option.replace('_', '-')}: must be > 0, got {value}")
    clean_args: dict[str, Any] = {"detrend": args.detrend}
    if args.standardize != "none":
        clean_args["standardize"] = args.standardize
    for option in ("low_pass", "high_pass", "t_r"):
        if getattr(args, option) is not None:
            clean_args[option] = getattr(args, option)
    atlases = parse_atlases(args)
    if args.no_denoised_bold and not any(atlases.values()):
        raise UsageError("nothing to do: --no-denoised-bold and no --atlas/--maps/--seeds")
    report = not args.no_reports and reports_available()
    if not args.no_reports and not report:
        print("note: no HTML reports (matplotlib is missing: pip install "
              "'nipype-maskers[reports]'); pass --no-reports to silence this", file=sys.stderr)
    return {
        "report": report,
        "mask_strategy": args.mask_strategy,
        "denoise_strategy": None if args.denoise == "none" else args.denoise,
        "clean_args": clean_args, "smoothing_fwhm": args.smoothing_fwhm,
        "denoised_bold": not args.no_denoised_bold, **atlases,
        "standardize_bold": None if args.standardize_bold == "none" else args.standardize_bold,
        "censored": args.censored,
        **connectivity_options(args, atlases),
    }


def connectivity_options(args, atlases: dict[str, list]) -> dict[str, Any]:
    """The workflow options of ``--connectivity`` and its companions (none when not given)."""
    kinds = list(dict.fromkeys(getattr(args, "connectivity", None) or []))
    if not kinds:
        for option in ("fisher_z", "combine_runs"):
            if getattr(args, option, False):
                raise UsageError(f"--{option.replace('_', '-')}: only with --connectivity "
                                 "KIND [KIND ...]")
        return {}
    if not any(atlases.values()):
        raise UsageError("--connectivity: needs an atlas (--atlas, --maps or --seeds): "
                         "matrices are computed from region signals")
    return {"connectivity": kinds, "connectivity_shrinkage": args.connectivity_shrinkage,
            "fisher_z": bool(args.fisher_z), "combine_runs": bool(args.combine_runs)}


def execution_options(args) -> tuple[str, dict[str, Any]]:
    """The plugin and its arguments."""
    plugin_args: dict[str, Any] = {}
    if args.plugin_args:
        try:
            plugin_args = json.loads(args.plugin_args)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--plugin-args: not valid JSON ({exc})") from None
        if not isinstance(plugin_args, dict):
            raise UsageError("--plugin-args: expected a JSON object")
    if args.sbatch_args and not args.plugin.startswith("SLURM"):
        raise UsageError("--sbatch-args: only with --plugin SLURM or SLURMGraph")
    if args.qsub_args and not args.plugin.startswith("SGE"):
        raise UsageError("--qsub-args: only with --plugin SGE or SGEGraph")
    if args.nprocs < 1:
        raise UsageError(f"--nprocs: must be >= 1, got {args.nprocs}")
    if getattr(args, "omp_nthreads", None) is not None and args.omp_nthreads < 1:
        raise UsageError(f"--omp-nthreads: must be >= 1, got {args.omp_nthreads}")
    if args.mem_gb is not None and args.mem_gb <= 0:
        raise UsageError(f"--mem-gb: must be > 0, got {args.mem_gb}")
    return args.plugin, plugin_args
