"""What each command-line form does: find the runs, build one workflow per run, run them."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .checks import repetition_times, select_for_atlases, with_stated_space
from .parser import UsageError, execution_options, processing_options

CLUSTER_PLUGINS = ("SLURM", "SLURMGraph", "SGE", "SGEGraph")
#: The demo's subjects (enough for QC-FC at the group level) and those with a CIFTI run too.
DEMO_SUBJECTS = ("01", "02", "03", "04", "05", "06")
DEMO_CIFTI_SUBJECTS = ("01", "02")
GRAPH_PLUGINS = ("SLURMGraph", "SGEGraph")


def _shape(path: Path) -> tuple[int, ...]:
    import nibabel as nib

    try:
        return tuple(int(s) for s in nib.load(path).shape)
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise UsageError(f"'{path}' is not a readable NIfTI image ({exc})") from None


def _check_run(run, options: dict[str, Any], label: str) -> None:
    from ..bids import VOLUME

    if run.kind == VOLUME and options["mask_strategy"] == "fmriprep" and run.mask is None:
        raise UsageError(f"{label}: no desc-brain_mask found next to '{run.bold.name}'; pass "
                         "--mask-strategy epi (or another strategy) to compute one")
    if options["denoise_strategy"] and run.confounds is None:
        raise UsageError(f"{label}: no desc-confounds_timeseries.tsv found for "
                         f"'{run.bold.name}'; pass --denoise none to skip denoising")
    if options.get("connectivity") and options["denoise_strategy"]:
        # the denoising QC written with the matrices needs fMRIPrep's framewise displacement
        with open(run.confounds, encoding="utf-8") as stream:
            header = stream.readline().rstrip("\n").split("\t")
        if "framewise_displacement" not in header:
            raise UsageError(f"{label}: '{run.confounds.name}' has no framewise_displacement "
                             "column, which the denoising QC of --connectivity needs; "
                             "expected fMRIPrep's confounds table")


def run_options(run, options: dict[str, Any], selection=None) -> dict[str, Any]:
    """The workflow options of one run: the atlases the selection gave it (those of its
    kind and space) and their space; every atlas without a selection."""
    if selection is None or run.bold not in selection.atlases:
        return dict(options)
    wanted = {atlas.path for atlas in selection.atlases[run.bold]}

    def key(atlas) -> Path:  # a GIFTI pair is known by its left file
        return Path(atlas[1][0] if isinstance(atlas[1], tuple) else atlas[1])

    return {**options, **{kind: [a for a in options[kind] if key(a) in wanted]
                          for kind in ("labels", "maps", "spheres")},
            "atlas_space": selection.spaces.get(run.bold, options.get("atlas_space"))}


def _surface_workflow(run, options: dict[str, Any], output_dir: Path, name: str):
    """``init_surface_maskers_wf`` for a CIFTI run or a GIFTI pair: region signals only."""
    from ..workflows.surface import init_surface_maskers_wf

    inputs = run.in_files if run.kind == "gifti" else run.bold
    try:
        return init_surface_maskers_wf(
            kind=run.kind, output_dir=output_dir, bold_file=inputs, name=name,
            **{key: options[key] for key in (
                "denoise_strategy", "confounds_args", "clean_args", "labels", "maps",
                "atlas_space", "censored", "report", "omp_nthreads", "connectivity",
                "connectivity_shrinkage", "fisher_z") if key in options})
    except (ValueError, OSError) as exc:
        raise UsageError(f"{run.bold.name}: {exc}") from None


def build_workflow(runs, options: dict[str, Any], output_dir: Path, work_dir: Path,
                   t_rs: dict | None = None):
    """The top workflow: one ``init_maskers_wf`` per volume run, one
    ``init_surface_maskers_wf`` per surface run, named after the run's entities.

    ``t_rs`` maps a run's BOLD to its :class:`~.checks.RepetitionTime`: a TR from the BIDS
    sidecar or ``--t-r`` is passed in (the workflow reads the header itself).
    ``options['selection']`` (a :class:`~nipype_maskers.spaces.Selection`), when present,
    says which atlases go to which run.
    """
    from nipype.pipeline import engine as pe

    from ..bids import VOLUME
    from ..workflows.base import init_maskers_wf
    from .execution import workflow_name

    options = dict(options)
    selection = options.pop("selection", None)
    combine_runs = options.pop("combine_runs", False)
    top = pe.Workflow(name="nipype_maskers_wf", base_dir=str(work_dir))
    names, built = [], []
    for run in runs:
        name = workflow_name(run.entities)
        names.append(name[: -len("_wf")])
        wanted = run_options(run, options, selection)
        if run.kind == VOLUME:
            run_wf = init_maskers_wf(output_dir=output_dir, bold_shape=_shape(run.bold),
                                     name=name, **wanted)
        else:
            run_wf = _surface_workflow(run, wanted, output_dir, name)
        # the node itself: ``run_wf.inputs`` would rebuild every node's inputs each time
        inputs = run_wf.get_node("inputnode").inputs
        inputs.bold_file = (str(run.bold) if run.kind != "gifti"
                            else [str(path) for path in run.in_files])
        if run.mask is not None and run.kind == VOLUME:
            inputs.mask_file = str(run.mask)
        if run.confounds is not None:
            inputs.confounds_file = str(run.confounds)
        t_r = (t_rs or {}).get(run.bold)
        if t_r is not None and t_r.value is not None and t_r.source not in (
                "NIfTI header", "CIFTI SeriesAxis", "GIFTI TimeStep"):
            inputs.t_r, inputs.t_r_source = t_r.value, t_r.source
        top.add_nodes([run_wf])
        built.append((run.entities, run.kind, run_wf, wanted, str(run.bold)))
    if combine_runs:  # --combine-runs: each subject's runs of a task, one matrix
        from ..workflows.connectivity import add_combined_runs

        for note in add_combined_runs(top, built, output_dir):
            print(f"note: --combine-runs: {note}", flush=True)
    return top, names


def execute(runs, options: dict[str, Any], args, output_dir: Path, work_dir: Path) -> int:
    """Check the runs' repetition times, build, configure and run; print the summary.

    Returns the exit code. A run without the TR a filter needs is refused here, before any
    folder is made.
    """
    from nipype import config, logging

    from .execution import (
        Progress,
        count_steps,
        default_omp_nthreads,
        plugin_settings,
        request_resources,
        run_label,
        run_workflows,
        thread_limits_per_node,
    )

    plugin, plugin_args = execution_options(args)
    t_rs = repetition_times(runs, options["clean_args"])
    if plugin in CLUSTER_PLUGINS:
        from .cluster import prepare_environment

        prepare_environment()
    output_dir.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    crash_dir = work_dir / "crash"
    config.update_config({
        "execution": {"crashdump_dir": str(crash_dir), "crashfile_format": "txt",
                      "stop_on_first_crash": "false", "remove_unnecessary_outputs": "false",
                      # a scheduler needs seconds between polls; MultiProc answers at once
                      "poll_sleep_duration": 2 if plugin in CLUSTER_PLUGINS else 0.05},
        "logging": {"workflow_level": "WARNING", "interface_level": "WARNING"},
    })
    if getattr(args, "resource_monitor", False):
        config.enable_resource_monitor()
        config.set("monitoring", "sample_frequency", "0.2")
    logging.update_logging(config)
    nprocs = getattr(args, "nprocs", None)
    omp_nthreads = getattr(args, "omp_nthreads", None) or default_omp_nthreads(
        plugin, nprocs=nprocs, n_runs=len(runs))
    limiter = thread_limits_per_node(omp_nthreads)  # noqa: F841 - kept for the run
    workflow, names = build_workflow(runs, {**options, "omp_nthreads": omp_nthreads},
                                     output_dir, work_dir, t_rs)
    request_resources(workflow, plugin)
    if plugin.startswith("SLURM") and args.sbatch_args:
        plugin_args.setdefault("sbatch_args", args.sbatch_args)
    if plugin.startswith("SGE") and args.qsub_args:
        plugin_args.setdefault("qsub_args", args.qsub_args)
    labels = {f"{name}_wf": run_label(run.entities) for name, run in zip(names, runs, strict=True)}
    progress = Progress(total=count_steps(workflow), labels=labels)
    print(f"Processing {len(runs)} run(s) with {plugin}: "
          f"{', '.join(labels.values())}", flush=True)
    settings = plugin_settings(plugin, nprocs=nprocs,
                               mem_gb=getattr(args, "mem_gb", None), plugin_args=plugin_args,
                               progress=progress)
    wait, runner = None, plugin
    if plugin in ("SLURM", "SGE"):
        from .cluster import batch_plugin

        runner = batch_plugin(plugin, settings)
    if plugin in GRAPH_PLUGINS:  # they only submit: wait for the jobs, then read the outcome
        from .cluster import graph_outcome, graph_plugin_args

        try:
            settings, timeout = graph_plugin_args(plugin, settings)
        except ValueError as exc:
            raise UsageError(f"--plugin-args: {exc}") from None

        def wait(failed):
            return graph_outcome(workflow, plugin=plugin, work_dir=work_dir, timeout=timeout,
                                 failed=failed)
    return run_workflows(workflow, plugin=runner, plugin_args=settings, crash_dir=crash_dir,
                         runs=labels, wait=wait)


def participant(args: argparse.Namespace) -> int:
    """The BIDS-App form."""
    from ..bids import find_fmriprep_runs

    if not args.fmriprep_dir.is_dir():
        raise UsageError(f"FMRIPREP_DIR: no such folder '{args.fmriprep_dir}'")
    args.fmriprep_dir = args.fmriprep_dir.resolve()  # nodes run in their own folders
    options = processing_options(args)
    execution_options(args)
    space = args.space
    if args.den is not None:
        if space is None:
            raise UsageError(f"--den {args.den}: only with --space (e.g. --space fsLR --den "
                             "91k)")
        space = f"{space}:den-{args.den}"
    try:
        runs = find_fmriprep_runs(args.fmriprep_dir, participant_label=args.participant_label,
                                  session=args.session_label, task=args.task, run=args.run,
                                  space=space)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    # runs in another space than the atlases': refused when chosen (--space), else skipped
    selection = select_for_atlases(runs, options, atlas_space_given=args.atlas_space,
                                   space_selected=args.space is not None)
    runs, options["atlas_space"] = selection.runs, selection.space
    options["selection"] = selection
    for run in runs:
        _check_run(run, options, run.bold.name)
    if options["smoothing_fwhm"] and any(run.kind != "volume" for run in runs):
        print("note: --smoothing-fwhm is applied to volume runs only (surface runs are not "
              "smoothed: no mesh is read)", flush=True)
    output_dir = args.output_dir.resolve()
    work_dir = (args.work_dir or Path.cwd() / "work").resolve()
    if output_dir == args.fmriprep_dir.resolve():
        raise UsageError("OUTPUT_DIR: must differ from FMRIPREP_DIR")
    return execute(runs, options, args, output_dir, work_dir)


def extract(args: argparse.Namespace) -> int:
    """One run given by its files (a GIFTI run: ``--bold L.func.gii,R.func.gii``)."""
    from ..bids import GIFTI, VOLUME, BoldRun, parse_entities, run_kind

    files = [Path(part).resolve() for part in str(args.bold).split(",")]
    for path in files:
        if not path.is_file():
            raise UsageError(f"--bold: no such file '{path}'")
    bold, kind = files[0], run_kind(files[0])
    if (kind == GIFTI) != (len(files) == 2) or len(files) > 2:
        raise UsageError(f"--bold: {str(args.bold)!r}: a GIFTI run is a pair (--bold "
                         "L.func.gii,R.func.gii, left first); any other run is one file")
    for option in ("mask", "confounds"):
        path = getattr(args, option)
        if path is not None and not path.is_file():
            raise UsageError(f"--{option}: no such file '{path}'")
    try:
        entities = parse_entities(bold)
    except ValueError:
        entities = {}
    if "sub" not in entities:
        raise UsageError(f"--bold: '{bold.name}' carries no sub-<label> entity; outputs are "
                         "named after the BIDS entities of the input (rename it, e.g. "
                         "sub-01_task-rest_bold.nii.gz)")
    options = processing_options(args)
    if args.mask is None and options["mask_strategy"] == "fmriprep":
        options["mask_strategy"] = "epi"
    run = BoldRun(bold, args.mask.resolve() if args.mask and kind == VOLUME else None,
                  args.confounds.resolve() if args.confounds else None, None, entities, kind,
                  tuple(files) if kind == GIFTI else ())
    if options["denoise_strategy"] and run.confounds is None:
        raise UsageError("--confounds: needed for --denoise "
                         f"{options['denoise_strategy']} (or pass --denoise none)")
    # the run's space is its name's space- entity (none: --space, else native); the atlases
    # must be in it
    run = run._replace(entities=with_stated_space(run, args.space))
    options["atlas_space"] = select_for_atlases(
        [run], options, atlas_space_given=args.atlas_space, space_selected=True).space
    work_dir = (args.work_dir or args.out / "work").resolve()
    return execute([run], options, args, args.out.resolve(), work_dir)


def demo(args: argparse.Namespace) -> int:
    """Build the demo dataset and run the full workflow on it."""
    from ..bids import find_fmriprep_runs
    from ..demo.atlases import write_demo_atlases
    from ..demo.fmriprep import write_fmriprep_dataset

    if args.n_volumes < 40:
        raise UsageError(f"--n-volumes: at least 40 (the band-pass filter's padding needs "
                         f"them), got {args.n_volumes}")
    root = args.output_dir.resolve()
    started = time.monotonic()
    print(f"Building the demo dataset in {root / 'fmriprep'} ...", flush=True)
    write_fmriprep_dataset(root / "fmriprep", subjects=DEMO_SUBJECTS, n_volumes=args.n_volumes)
    # a CIFTI run for two of them: the surface path is shown, the volume runs make the group
    from ..demo.cifti import write_cifti_run

    for label in DEMO_CIFTI_SUBJECTS:
        write_cifti_run(root / "fmriprep", label, seed=0, t_r=2.0)
    atlases = write_demo_atlases(root / "atlases", cifti=True)
    demo_args = build_demo_args(args, atlases)
    options = processing_options(demo_args)
    # each run gets the atlases of its kind and space (volume, CIFTI)
    selection = select_for_atlases(find_fmriprep_runs(root / "fmriprep"), options,
                                   atlas_space_given=demo_args.atlas_space,
                                   space_selected=False)
    runs, options["atlas_space"] = selection.runs, selection.space
    options["selection"] = selection
    output_dir = root / "nipype_maskers"
    code = execute(runs, options, demo_args, output_dir, root / "work")
    if code == 0:  # the group level over the volume atlases (every subject has them)
        from .group import group
        from .parser import build_parsers

        print("\nGroup level ...", flush=True)
        code = group(build_parsers()["group"].parse_args([
            str(root / "fmriprep"), str(output_dir), "group",
            "--atlas", f"{atlases.labels}:{atlases.labels_lut}",
            "--maps", f"{atlases.maps}:{atlases.maps_lut}", "--seeds", str(atlases.seeds)]))
    print(f"\nDone in {time.monotonic() - started:.0f} s. Derivatives in {output_dir}:")
    for path in sorted(output_dir.rglob("sub-*")):
        if path.is_file() and path.suffix not in (".json", ".html") and \
                path.parent.name != "group":
            print(f"  {path.relative_to(output_dir)}")
    group_tables = sorted((output_dir / "group").glob("*.tsv"))
    if group_tables:  # the per-run tangent matrices are many: counted, not listed
        print(f"  group/: {len(group_tables)} tables (group matrices, QC-FC, flagged runs)")
    reports = sorted(output_dir.rglob("*_report.html"))  # the group's report last
    reports = [p for p in reports if p.parent.name != "group"] + [
        p for p in reports if p.parent.name == "group"]
    if reports:
        print("Reports (open in a browser):")
        for path in reports:
            print(f"  {path}")
    return code


def build_demo_args(args: argparse.Namespace, atlases) -> argparse.Namespace:
    """The demo's options, as if given on the command line (every demo atlas states its
    space: the volume ones in a JSON sidecar, the CIFTI ones by their tpl- entity)."""
    from .parser import build_parsers

    argv = [str(args.output_dir / "fmriprep"), str(args.output_dir / "nipype_maskers"),
            "participant", "--atlas", f"{atlases.labels}:{atlases.labels_lut}",
            "--maps", f"{atlases.maps}:{atlases.maps_lut}",
            "--atlas", str(atlases.cifti_labels), "--maps", str(atlases.cifti_maps),
            "--seeds", str(atlases.seeds), "--radius", "5",
            "--denoise", "simple", "--high-pass", "0.01", "--low-pass", "0.1",
            "--smoothing-fwhm", "6", "--connectivity", "correlation",
            "--nprocs", str(args.nprocs)]
    return build_parsers()["participant"].parse_args(argv)

