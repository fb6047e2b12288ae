"""M4 benchmark: the workflow's overhead, MultiProc's speed-up, memory, the cost per atlas.

Usage::

    python benchmarks/bench_workflow.py overhead [--volumes 100] [--subjects 2] [--repeat 3]
    python benchmarks/bench_workflow.py parallel [--volumes 100] [--repeat 3]
    python benchmarks/bench_workflow.py memory [--volumes 300] [--subjects 8] [--mem-gb 4]
    python benchmarks/bench_workflow.py atlases [--volumes 300] [--repeat 1] [--baseline d33048b]
                                                [--baseline-ks 3]

overhead: the same job (confounds, voxel-wise cleaning, labels + maps + spheres with
cleaning, the denoised BOLD and time series written) as a plain script of core calls vs the
Nipype workflow (Linear, fresh work dir: hashing, pickling, node folders, intermediate files and
sidecars included), both timed as whole processes; the core calls alone are shown too.
parallel: MultiProc with 2 processes vs Linear on two subjects, one thread per node (each
node then keeps one CPU busy; ``--omp-nthreads`` changes it for both).
memory: N subjects under ``--mem-gb``: the process tree's peak resident memory (sampled from
/proc) against the budget, and each node's peak (Nipype's resource monitor) against its
``mem_gb`` estimate.
atlases: the cost of each extra atlas. One subject, the command line (Linear, one thread per
step, fresh work and output dirs, the denoised BOLD written) with k = 1, 3, 12 labels atlases
(Voronoi parcellations of 100 to 400 regions, each its own ``--atlas``), median of the
interleaved runs, against the floor measured in the same run (one ISA-L decompression of the
BOLD + one ISA-L level-1 compression of the denoised BOLD) and against a baseline revision of
the package (``git archive`` into ``benchmarks/_data/``, run through ``PYTHONPATH``). Targets:
<= 10% of t(k=1) per extra atlas, t(k=3) <= 2x the floor, baseline t(k=3) >= 1.6x ours.
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

from common import DATA_DIR, isal_floor, run_case

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


def run_cli(argv: list[str], *, pythonpath: Path | None = None,
            cwd: Path | None = None) -> float:
    """Wall time of ``python -m nipype_maskers.cli ARGV``; with ``pythonpath``, the package
    is imported from there (run it from ``cwd`` outside this tree: ``-m`` puts the current
    folder first on ``sys.path``)."""
    env = None
    if pythonpath is not None:
        env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nipype_maskers.cli", *argv], check=True,
                   stdout=subprocess.DEVNULL, env=env, cwd=cwd)
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


#: The atlas counts of the ``atlases`` case.
ATLAS_COUNTS = (1, 3, 12)
#: Region counts of the ``atlases`` case's atlases, cycled (k = 1: 200; k = 3: 200, 400, 100).
ATLAS_SIZES = (200, 400, 100, 300)


def labels_atlases(k: int) -> list[str]:
    """``k`` distinct labels atlases (cached): their seeds differ, so do their file names and
    hence their atlas names (``AtlasLabels<n>Seed<s>``)."""
    from bench_regions import labels_atlas

    return [labels_atlas(ATLAS_SIZES[i % len(ATLAS_SIZES)], seed=i + 1) for i in range(k)]


def atlases_argv(root: Path, atlases: list[str], out: Path, work: Path,
                 n_threads: int) -> list[str]:
    """The command line of the ``atlases`` case: labels atlases only, cleaned as
    :func:`cli_argv`'s, the denoised BOLD written (the default)."""
    return [str(root / "fmriprep"), str(out), "participant",
            *(option for atlas in atlases for option in ("--atlas", atlas)),
            "--denoise", "simple", "--low-pass", "0.1", "--no-reports",
            "--work-dir", str(work), "--plugin", "Linear", "--omp-nthreads", str(n_threads)]


def baseline_tree(rev: str) -> Path:
    """The package at ``rev``, exported once to ``_data/baseline-<rev>`` (reused after), and
    checked to be what ``python -m nipype_maskers.cli`` imports with it on ``PYTHONPATH``."""
    repo = ROOT.parent
    folder = DATA_DIR / f"baseline-{rev}"
    if not folder.exists():
        print(f"  exporting {rev} to {folder} ...", flush=True)
        tmp = DATA_DIR / f".tmp_baseline-{rev}"  # renamed when whole: no half tree reused
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.Popen(["git", "-C", str(repo), "archive", rev],
                                   stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(tmp)], stdin=archive.stdout, check=True)
        archive.stdout.close()
        if archive.wait() != 0:
            raise SystemExit(f"git archive {rev} failed")
        # the source tree keeps the workflows beside the package (setup.cfg's package_dir):
        # linked in, so that nipype_maskers.workflows is the baseline's too
        (tmp / "nipype_maskers" / "workflows").symlink_to("../workflows")
        # compiled now: the first timed run would otherwise write the bytecode
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tmp / "nipype_maskers")],
                       check=True)
        tmp.rename(folder)
    imported = subprocess.run(
        [sys.executable, "-c", "import nipype_maskers, nipype_maskers.workflows.base as w; "
         "print(nipype_maskers.__file__); print(w.__file__)"],
        env={**os.environ, "PYTHONPATH": str(folder)}, cwd=folder, check=True,
        capture_output=True, text=True).stdout.split()
    print(f"baseline {rev}: nipype_maskers imported from {imported[0]}, its workflows from "
          f"{imported[1]}")
    for module in imported:
        if not Path(module).resolve().is_relative_to(folder.resolve()):
            raise SystemExit(f"baseline {rev}: the child imported {module}, not the exported "
                             f"tree {folder}: the comparison would time the current package")
    return folder


def write_floor(denoised: Path) -> dict:
    """Time to compress the decompressed bytes of ``denoised`` with ISA-L at our level, as
    :func:`nipype_maskers.files.open_atomic` writes it, to /dev/null (decompression untimed)."""
    return run_case(f"""
from isal import igzip
from nipype_maskers.files import COMPRESS_LEVEL
with igzip.open({str(denoised)!r}, "rb") as f:
    data = memoryview(f.read())
""", """
# in 4 MB pieces, as a stream is written: no compressed copy of the whole file in memory
with open("/dev/null", "wb") as raw, igzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                    mtime=0, compresslevel=COMPRESS_LEVEL) as s:
    for start in range(0, len(data), 1 << 22):
        s.write(data[start:start + (1 << 22)])
""")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def per_atlas(args) -> None:
    root, _ = dataset(args.volumes, 1)
    bold = next((root / "fmriprep").rglob("*_desc-preproc_bold.nii.gz"))
    files = labels_atlases(max(ATLAS_COUNTS))
    baseline_ks = [int(k) for k in args.baseline_ks.split(",") if k.strip()]
    unknown = sorted(set(baseline_ks) - set(ATLAS_COUNTS))
    if unknown:
        raise SystemExit(f"--baseline-ks: {unknown} not among {ATLAS_COUNTS}")
    baseline = baseline_tree(args.baseline) if baseline_ks else None
    # ("current" or the revision, k): the order rotates with each repetition so that no case
    # always runs first or after the same one (the machine's speed drifts)
    cases = [("current", k) for k in ATLAS_COUNTS] + [(args.baseline, k) for k in baseline_ks]
    times: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    reads, writes = [], []
    for rep in range(args.repeat):
        for tree, k in cases[rep % len(cases):] + cases[:rep % len(cases)]:
            tag = "current" if tree == "current" else "baseline"
            work = DATA_DIR / f"bench_work_atlases_{tag}_k{k}"
            out = DATA_DIR / f"bench_out_atlases_{tag}_k{k}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            argv = atlases_argv(root, files[:k], out, work, args.omp_nthreads)
            if tree == "current":
                seconds = run_cli(argv, cwd=ROOT.parent)
            else:
                seconds = run_cli(argv, pythonpath=baseline, cwd=baseline)
            times[tree, k].append(seconds)
            print(f"  run {rep + 1}: {tree} k={k}: {seconds:.1f} s", flush=True)
        # the floor, in the same repetition: the denoised BOLD of this repetition's k=1 run
        denoised = next((DATA_DIR / "bench_out_atlases_current_k1").rglob(
            "*desc-denoised_bold.nii.gz"))
        reads.append(isal_floor(bold)["seconds"])
        writes.append(write_floor(denoised)["seconds"])
    median = {case: statistics.median(values) for case, values in times.items()}
    read, write = statistics.median(reads), statistics.median(writes)
    floor = read + write

    def runs(values: list[float]) -> str:
        return ", ".join(f"{v:.1f}" for v in values)

    print(f"\n## cost per atlas (1 subject x {args.volumes} volumes, MNI 2 mm, "
          f"{bold.stat().st_size / 2**20:.0f} MB BOLD; CLI, Linear, {args.omp_nthreads} "
          f"thread(s) per step, denoised BOLD written; median of {args.repeat} interleaved "
          "runs)")
    for tree, k in cases:
        regions = sum(ATLAS_SIZES[i % len(ATLAS_SIZES)] for i in range(k))
        label = "current" if tree == "current" else f"baseline {tree}"
        print(f"{label:18s} k={k:<3d} {median[tree, k]:7.2f} s   (runs: "
              f"{runs(times[tree, k])}; {regions} regions in all)")
    print(f"{'floor: ISA-L read of the BOLD':50s}{read:7.2f} s   (runs: "
          f"{', '.join(f'{v:.2f}' for v in reads)})")
    print(f"{'     + ISA-L write of the denoised BOLD (level 1)':50s}{write:7.2f} s   (runs: "
          f"{', '.join(f'{v:.2f}' for v in writes)}; to /dev/null)")
    print(f"{'     =':50s}{floor:7.2f} s")
    one = median["current", 1]
    print("\n(a) growth per extra atlas, % of t(k=1) (target <= 10%):")
    for k in ATLAS_COUNTS[1:]:
        growth = (median["current", k] - one) / (k - 1)
        print(f"    (t(k={k}) - t(k=1)) / {k - 1} = {growth:5.1f} s = {100 * growth / one:5.1f}%"
              f"   target <= 10%   {verdict(growth <= 0.10 * one)}")
    ratio = median["current", 3] / floor
    print(f"(b) t(k=3) / floor = {median['current', 3]:.1f} / {floor:.1f} = x{ratio:.2f}"
          f"   target <= x2   {verdict(ratio <= 2.0)}")
    if 3 in baseline_ks:
        speedup = median[args.baseline, 3] / median["current", 3]
        print(f"(c) baseline {args.baseline} t(k=3) / current t(k=3) = "
              f"{median[args.baseline, 3]:.1f} / {median['current', 3]:.1f} = x{speedup:.2f}"
              f"   target >= x1.6   {verdict(speedup >= 1.6)}")
    else:
        print("(c) baseline t(k=3) / current t(k=3): not measured (--baseline-ks without 3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=("overhead", "parallel", "memory", "atlases"))
    parser.add_argument("--volumes", type=int, default=None)
    parser.add_argument("--subjects", type=int, default=None)
    parser.add_argument("--mem-gb", type=float, default=4.0)
    parser.add_argument("--omp-nthreads", type=int, default=1,
                        help="threads per step, for the script and the workflow alike "
                        "(default 1: the setting under which MultiProc's scaling is measured)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per case, interleaved; best (and median) reported "
                        "(atlases: the median)")
    parser.add_argument("--baseline", default="d33048b", metavar="REV",
                        help="atlases: the revision compared with (default d33048b, the "
                        "package before one read served every atlas)")
    parser.add_argument("--baseline-ks", default="3", metavar="K[,K]",
                        help="atlases: the atlas counts (of 1, 3, 12) also run with the "
                        "baseline (default 3; '' for none)")
    args = parser.parse_args()
    defaults = {"overhead": (100, 2), "parallel": (100, 2), "memory": (300, 8),
                "atlases": (300, 1)}[args.case]
    args.volumes = args.volumes or defaults[0]
    args.subjects = args.subjects or defaults[1]
    {"overhead": overhead, "parallel": parallel, "memory": memory,
     "atlases": per_atlas}[args.case](args)


if __name__ == "__main__":
    main()
