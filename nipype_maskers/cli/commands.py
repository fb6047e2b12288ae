"""What each command-line form does: find the runs, build one workflow per run, run them."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .checks import repetition_times, select_for_atlases, with_stated_space
from .parser import UsageError, execution_options, processing_options

CLUSTER_PLUGINS = ("SLURM", "SLURMGraph", "SGE", "SGEGraph")
GRAPH_PLUGINS = ("SLURMGraph", "SGEGraph")


def _shape(path: Path) -> tuple[int, ...]:
    import nibabel as nib

    try:
        return tuple(int(s) for s in nib.load(path).shape)
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise UsageError(f"'{path}' is not a readable NIfTI image ({exc})") from None


def _check_run(run, options: dict[str, Any], label: str) -> None:
    if options["mask_strategy"] == "fmriprep" and run.mask is None:
        raise UsageError(f"{label}: no desc-brain_mask found next to '{run.bold.name}'; pass "
                         "--mask-strategy epi (or another strategy) to compute one")
    if options["denoise_strategy"] and run.confounds is None:
        raise UsageError(f"{label}: no desc-confounds_timeseries.tsv found for "
                         f"'{run.bold.name}'; pass --denoise none to skip denoising")


def build_workflow(runs, options: dict[str, Any], output_dir: Path, work_dir: Path,
                   t_rs: dict | None = None):
    """The top workflow: one ``init_maskers_wf`` per run, named after the run's entities.

    ``t_rs`` maps a run's BOLD to its :class:`~.checks.RepetitionTime`: a TR from the BIDS
    sidecar or ``--t-r`` is passed in (the workflow reads the header itself).
    """
    from nipype.pipeline import engine as pe

    from ..workflows.base import init_maskers_wf
    from .execution import workflow_name

    top = pe.Workflow(name="nipype_maskers_wf", base_dir=str(work_dir))
    names = []
    for run in runs:
        name = workflow_name(run.entities)
        names.append(name[: -len("_wf")])
        run_wf = init_maskers_wf(output_dir=output_dir, bold_shape=_shape(run.bold),
                                 name=name, **options)
        # the node itself: ``run_wf.inputs`` would rebuild every node's inputs each time
        inputs = run_wf.get_node("inputnode").inputs
        inputs.bold_file = str(run.bold)
        if run.mask is not None:
            inputs.mask_file = str(run.mask)
        if run.confounds is not None:
            inputs.confounds_file = str(run.confounds)
        t_r = (t_rs or {}).get(run.bold)
        if t_r is not None and t_r.value is not None and t_r.source != "NIfTI header":
            inputs.t_r, inputs.t_r_source = t_r.value, t_r.source
        top.add_nodes([run_wf])
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
    try:
        runs = find_fmriprep_runs(args.fmriprep_dir, participant_label=args.participant_label,
                                  session=args.session_label, task=args.task, run=args.run,
                                  space=args.space)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    # runs in another space than the atlases': refused when chosen (--space), else skipped
    selection = select_for_atlases(runs, options, atlas_space_given=args.atlas_space,
                                   space_selected=args.space is not None)
    runs, options["atlas_space"] = selection.runs, selection.space
    for run in runs:
        _check_run(run, options, run.bold.name)
    output_dir = args.output_dir.resolve()
    work_dir = (args.work_dir or Path.cwd() / "work").resolve()
    if output_dir == args.fmriprep_dir.resolve():
        raise UsageError("OUTPUT_DIR: must differ from FMRIPREP_DIR")
    return execute(runs, options, args, output_dir, work_dir)


def extract(args: argparse.Namespace) -> int:
    """One run given by its files."""
    from ..bids import BoldRun, parse_entities

    bold = args.bold.resolve()
    if not bold.is_file():
        raise UsageError(f"--bold: no such file '{args.bold}'")
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
    run = BoldRun(bold, args.mask.resolve() if args.mask else None,
                  args.confounds.resolve() if args.confounds else None, None, entities)
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
    write_fmriprep_dataset(root / "fmriprep", n_volumes=args.n_volumes)
    atlases = write_demo_atlases(root / "atlases")
    demo_args = build_demo_args(args, atlases)
    options = processing_options(demo_args)
    runs = find_fmriprep_runs(root / "fmriprep")
    options["atlas_space"] = select_for_atlases(
        runs, options, atlas_space_given=demo_args.atlas_space, space_selected=False).space
    output_dir = root / "nipype_maskers"
    code = execute(runs, options, demo_args, output_dir, root / "work")
    print(f"\nDone in {time.monotonic() - started:.0f} s. Derivatives in {output_dir}:")
    for path in sorted(output_dir.rglob("sub-*")):
        if path.is_file() and path.suffix not in (".json", ".html"):
            print(f"  {path.relative_to(output_dir)}")
    reports = sorted(output_dir.rglob("*_report.html"))
    if reports:
        print("Reports (open in a browser):")
        for path in reports:
            print(f"  {path}")
    return code


def build_demo_args(args: argparse.Namespace, atlases) -> argparse.Namespace:
    """The demo's options, as if given on the command line."""
    from ..demo.fmriprep import SPACE
    from .parser import build_parsers

    argv = [str(args.output_dir / "fmriprep"), str(args.output_dir / "nipype_maskers"),
            "participant", "--atlas", f"{atlases.labels}:{atlases.labels_lut}",
            "--maps", f"{atlases.maps}:{atlases.maps_lut}",
            "--seeds", str(atlases.seeds), "--radius", "5", "--atlas-space", SPACE,
            "--denoise", "simple", "--high-pass", "0.01", "--low-pass", "0.1",
            "--smoothing-fwhm", "6", "--nprocs", str(args.nprocs)]
    return build_parsers()["participant"].parse_args(argv)

