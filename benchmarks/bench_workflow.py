"""M4 benchmark: the workflow's overhead, MultiProc's speed-up, and memory under a budget.

Usage::

    python benchmarks/bench_workflow.py overhead [--volumes 100] [--subjects 2] [--repeat 3]
    python benchmarks/bench_workflow.py parallel [--volumes 100] [--repeat 3]
    python benchmarks/bench_workflow.py memory [--volumes 300] [--subjects 8] [--mem-gb 4]

overhead: the same job (confounds, voxel-wise cleaning, labels + maps + spheres with
cleaning, the denoised BOLD and time series written) as a plain script of core calls vs the
Nipype workflow (Linear, fresh work dir: hashing, pickling, node folders, intermediate files and
sidecars included), both timed as whole processes; the core calls alone are shown too.
parallel: MultiProc with 2 processes vs Linear on two subjects, one thread per node (each
node then keeps one CPU busy; ``--omp-nthreads`` changes it for both).
memory: N subjects under ``--mem-gb``: the process tree's peak resident memory (sampled from
/proc) against the budget, and each node's peak (Nipype's resource monitor) against its
``mem_gb`` estimate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import DATA_DIR

ROOT = Path(__file__).resolve().parent


def dataset(n_volumes: int, n_subjects: int) -> tuple[Path, object]:
    """The demo's fMRIPrep-like dataset and atlases at this size (built once)."""
    from nipype_maskers.demo.atlases import write_demo_atlases
    from nipype_maskers.demo.fmriprep import write_fmriprep_dataset

    root = DATA_DIR / f"fmriprep_{n_subjects}x{n_volumes}"
    subjects = tuple(f"{i + 1:02d}" for i in range(n_subjects))
    write_fmriprep_dataset(root / "fmriprep", subjects=subjects, n_volumes=n_volumes)
    return root, write_demo_atlases(DATA_DIR / "atlases")


def cli_argv(root: Path, atlases, out: Path, work: Path, *extra: str) -> list[str]:
    return [str(root / "fmriprep"), str(out), "participant",
            "--atlas", f"{atlases.labels}:{atlases.labels_lut}",
            "--maps", f"{atlases.maps}:{atlases.maps_lut}", "--seeds", str(atlases.seeds),
            "--radius", "5", "--denoise", "simple", "--low-pass", "0.1",
            "--no-reports", "--work-dir", str(work), *extra]


def run_cli(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nipype_maskers.cli", *argv], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def core_steps(root: Path, atlases, out: Path, n_threads: int) -> dict[str, float]:
    """The workflow's steps as a plain script: core calls, then the same output files written
    with the same writers (the denoised BOLD, the time series TSVs). Run as its own process:
    returns its wall time (interpreter start and imports included, as for the workflow's
    command) and, measured inside, the compute and write times."""
    code = f"""
import time
_started = time.perf_counter()
import json, warnings
warnings.simplefilter('ignore')
from pathlib import Path
from nipype_maskers.bids import find_fmriprep_runs
from nipype_maskers.core.confounds.strategies import load_confounds_strategy
from nipype_maskers.core.voxels.cleaning import clean_masked, unmasked_volumes
from nipype_maskers.core.regions.label_names import read_lut
from nipype_maskers.core.regions.maskers import labels_masker, maps_masker, spheres_masker
from nipype_maskers.core.regions.spheres import read_seeds
from nipype_maskers.core.io.tables import format_table
from nipype_maskers.files import save_nifti_volumes, write_text
out = Path({str(out)!r})
out.mkdir(parents=True, exist_ok=True)
compute = write = 0.0
start = time.perf_counter()
for run in find_fmriprep_runs(Path({str(root / 'fmriprep')!r})):
    t = time.perf_counter()
    conf = load_confounds_strategy(run.confounds, 'simple')
    args = dict(confounds=conf.confounds, sample_mask=conf.sample_mask, t_r=2.0,
                low_pass=0.1, standardize='zscore_sample', detrend=False)
    cleaned = clean_masked(str(run.bold), str(run.mask), clean_args=args, dtype='float32',
                           n_threads={n_threads})
    lut = read_lut({str(atlases.labels_lut)!r})
    seeds, names = read_seeds({str(atlases.seeds)!r})
    tables = [
        labels_masker(str(run.bold), {str(atlases.labels)!r}, mask=str(run.mask), lut=lut,
                      clean_args=args, n_threads={n_threads}),
        maps_masker(str(run.bold), {str(atlases.maps)!r}, mask=str(run.mask),
                    clean_args=args, n_threads={n_threads}),
        spheres_masker(str(run.bold), seeds, radius=5.0, mask=str(run.mask), clean_args=args,
                       n_threads={n_threads}),
    ]
    compute += time.perf_counter() - t
    t = time.perf_counter()
    stem = run.bold.name.split('_desc-')[0]
    save_nifti_volumes(cleaned.header, unmasked_volumes(cleaned.signals, cleaned.mask),
                       out / (stem + '_desc-denoised_bold.nii.gz'))
    for kind, table in zip(('labels', 'maps', 'spheres'), tables):
        write_text(format_table(table.names, table.signals),
                  out / (stem + '_atlas-' + kind + '_timeseries.tsv'))
    write += time.perf_counter() - t
print(json.dumps({{"compute": compute, "write": write,
                   "imports": start - _started}}))
"""
    begin = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True)
    times = json.loads(result.stdout.strip().splitlines()[-1])
    times["process"] = time.perf_counter() - begin
    return times


def overhead(args) -> None:
    root, atlases = dataset(args.volumes, args.subjects)
    out = DATA_DIR / "bench_out_script"
    shutil.rmtree(out, ignore_errors=True)
    scripts, workflows = [], []
    for _ in range(args.repeat):  # interleaved: the machine's speed drifts
        scripts.append(core_steps(root, atlases, out, args.omp_nthreads))
        work, wf_out = DATA_DIR / "bench_work", DATA_DIR / "bench_out"
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(wf_out, ignore_errors=True)
        workflows.append(run_cli(cli_argv(root, atlases, wf_out, work, "--plugin", "Linear",
                                          "--omp-nthreads", str(args.omp_nthreads))))
    script = min(scripts, key=lambda s: s["process"])
    workflow = min(workflows)
    print(f"\n## workflow overhead ({args.subjects} subjects x {args.volumes} volumes, MNI 2 mm,"
          f" {args.omp_nthreads} thread(s) per step, best of {args.repeat})")
    print(f"script: core calls                         {script['compute']:8.1f} s")
    written = script["compute"] + script["write"]
    print(f"script: + writing the same outputs         {written:8.1f} s")
    print(f"script: whole process (+ start, imports)   {script['process']:8.1f} s")
    print(f"Nipype workflow, whole process (Linear)    {workflow:8.1f} s   (fresh work dir)")
    print("runs (script, workflow): " + ", ".join(
        f"({s['process']:.1f}, {w:.1f})" for s, w in zip(scripts, workflows, strict=True)))
    print(f"-> overhead over the script doing the same job: "
          f"{100 * (workflow - script['process']) / script['process']:+.0f}%")
    print(f"   over the core calls alone (no files, no start-up): "
          f"{100 * (workflow - script['compute']) / script['compute']:+.0f}%")


def parallel(args) -> None:
    root, atlases = dataset(args.volumes, 2)
    cases = {"Linear": ["--plugin", "Linear"],
             "MultiProc": ["--plugin", "MultiProc", "--nprocs", "2"]}
    threads = ["--omp-nthreads", str(args.omp_nthreads)]
    times: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for plugin, extra in cases.items():
            work, out = DATA_DIR / f"bench_work_{plugin}", DATA_DIR / f"bench_out_{plugin}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            seconds = run_cli(cli_argv(root, atlases, out, work, *extra, *threads))
            times.setdefault(plugin, []).append(seconds)
    best = {plugin: min(values) for plugin, values in times.items()}
    median = {plugin: statistics.median(values) for plugin, values in times.items()}
    print(f"\n## MultiProc vs Linear (2 subjects x {args.volumes} volumes, "
          f"{args.omp_nthreads} thread(s) per node, {args.repeat} interleaved runs each)")
    for plugin, values in times.items():
        print(f"{plugin:10s} best {best[plugin]:6.1f} s, median {median[plugin]:6.1f} s   "
              f"(runs: {', '.join(f'{v:.1f}' for v in values)})")
    print(f"-> speed-up x{best['Linear'] / best['MultiProc']:.2f} (best), "
          f"x{median['Linear'] / median['MultiProc']:.2f} (median)")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0.0)
        stack.extend(children.get(current, []))
    return total


def memory(args) -> None:
    from nipype.utils.filemanip import loadpkl

    root, atlases = dataset(args.volumes, args.subjects)
    work, out = DATA_DIR / "bench_work_memory", DATA_DIR / "bench_out_memory"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    argv = cli_argv(root, atlases, out, work, "--plugin", "MultiProc", "--nprocs", "2",
                    "--mem-gb", str(args.mem_gb), "--resource-monitor")
    env = dict(os.environ)
    start = time.perf_counter()
    # the resource monitor writes .proc-* files in the current folder: keep them in _data
    process = subprocess.Popen([sys.executable, "-m", "nipype_maskers.cli", *argv], env=env,
                               cwd=DATA_DIR,
                               stdout=subprocess.DEVNULL)
    peak = [0.0]

    def sample():
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    process.wait()
    sampler.join()
    elapsed = time.perf_counter() - start
    print(f"\n## memory under a {args.mem_gb} GB budget ({args.subjects} subjects x "
          f"{args.volumes} volumes, MultiProc 2 processes, {elapsed:.0f} s, exit "
          f"{process.returncode})")
    print(f"process tree peak RSS: {peak[0] / 1024:.2f} GB "
          f"({'under' if peak[0] / 1024 <= args.mem_gb else 'OVER'} the budget)")
    print(f"\n{'node':28s} {'estimate (GB)':>14s} {'measured peak (GB)':>19s} {'ratio':>7s}")
    worst = 0.0
    seen = set()
    for path in sorted(work.rglob("result_*.pklz")):
        result = loadpkl(path)
        runtime = getattr(result, "runtime", None)
        measured = getattr(runtime, "mem_peak_gb", None)
        node = path.parent.name
        if measured is None or node in seen:
            continue
        seen.add(node)
        node_object = loadpkl(path.parent / "_node.pklz")
        if node_object.run_without_submitting:  # merges etc.: inside the scheduler's process
            continue
        estimate = node_object.mem_gb
        ratio = max(estimate, measured) / max(min(estimate, measured), 1e-3)
        worst = max(worst, ratio)
        print(f"{node:28s} {estimate:14.2f} {measured:19.2f} {ratio:7.2f}")
    print(f"-> worst estimate/measured ratio x{worst:.2f} (one subject's nodes shown)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=("overhead", "parallel", "memory"))
    parser.add_argument("--volumes", type=int, default=None)
    parser.add_argument("--subjects", type=int, default=None)
    parser.add_argument("--mem-gb", type=float, default=4.0)
    parser.add_argument("--omp-nthreads", type=int, default=1,
                        help="threads per step, for the script and the workflow alike "
                        "(default 1: the setting under which MultiProc's scaling is measured)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per case, interleaved; best (and median) reported")
    args = parser.parse_args()
    defaults = {"overhead": (100, 2), "parallel": (100, 2), "memory": (300, 8)}[args.case]
    args.volumes = args.volumes or defaults[0]
    args.subjects = args.subjects or defaults[1]
    {"overhead": overhead, "parallel": parallel, "memory": memory}[args.case](args)


if __name__ == "__main__":
    main()
