"""M5 benchmark: what a scheduler costs per subject, against MultiProc on the same machine.

Usage::

    python benchmarks/bench_cluster.py [--subjects 1 4 16] [--volumes 30]
                                       [--plugins MultiProc SLURM SLURMGraph SGE SGEGraph]

Needs the single-node schedulers of ``tests/cluster/`` (``bash tests/cluster/slurm.sh start``,
``bash tests/cluster/sge.sh start``); a plugin whose scheduler is not running is skipped. Runs
the command line on the tiny fMRIPrep-like tree of the tests (shape (17, 19, 15), 30 volumes:
the processing itself takes well under a second per subject, so what is measured is the
overhead), one labels atlas, ``--denoise simple``, a fresh work dir each time, and prints per
plugin and number of subjects: the wall time, the jobs submitted, the wall time per subject,
the overhead per subject over MultiProc, and the slot-seconds each job occupied on average
(wall x slots / jobs at the largest size: Python start-up, the node, and the scheduler's
dispatch and polling). The figures feed the README's "Running on a cluster" scaling estimate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
SGE_ENV = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}


def scheduler_running(plugin: str) -> bool:
    if plugin in ("MultiProc", "Linear"):
        return True
    name = "slurm" if plugin.startswith("SLURM") else "sge"
    done = subprocess.run(["bash", str(ROOT / "tests" / "cluster" / f"{name}.sh"), "status"],
                          capture_output=True, text=True, check=False)
    return done.returncode == 0


def run(tree: Path, plugin: str, slots: int) -> tuple[float, int]:
    """Wall time of one fresh run, and the number of jobs it submitted."""
    out, work = tree / f"out_{plugin}", tree / f"work_{plugin}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    command = [sys.executable, "-m", "nipype_maskers.cli", str(tree / "fmriprep"), str(out),
               "participant", "--atlas", str(tree / "atlas-Toy_dseg.nii.gz"),
               "--denoise", "simple", "--no-reports", "--work-dir", str(work),
               "--plugin", plugin, "--nprocs", str(slots)]
    env = {**os.environ, **(SGE_ENV if plugin.startswith("SGE") else {})}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                          cwd=tree)  # not a source tree that could shadow the installed package
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{plugin} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    jobs = len(list((work / "nipype_maskers_wf" / "batch").glob("batchscript_*.sh")))
    return wall, jobs


def main() -> None:
    from synthetic import write_fmriprep_tree

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--volumes", type=int, default=30)
    parser.add_argument("--plugins", nargs="+",
                        default=["MultiProc", "SLURM", "SLURMGraph", "SGE", "SGEGraph"])
    args = parser.parse_args()
    slots = os.cpu_count() or 1
    plugins = [p for p in args.plugins if scheduler_running(p)]
    skipped = sorted(set(args.plugins) - set(plugins))
    if skipped:
        print(f"skipped (scheduler not running): {', '.join(skipped)}")
    results: dict[tuple[str, int], tuple[float, int]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as scratch:
        for n in args.subjects:
            tree = Path(scratch) / f"n{n}"
            write_fmriprep_tree(tree / "fmriprep", subjects=[f"{i + 1:02d}" for i in range(n)],
                                n_volumes=args.volumes)
            for plugin in plugins:
                results[plugin, n] = run(tree, plugin, slots)
                wall, jobs = results[plugin, n]
                print(f"  {plugin:<10} {n:>3} subject(s): {wall:6.1f} s, {jobs} jobs",
                      flush=True)
    print(f"\n{slots} slots (cores) on one node; tiny runs (17x19x15, {args.volumes} volumes)")
    print(f"{'plugin':<11}{'subjects':>9}{'wall s':>9}{'jobs':>6}{'s/subject':>11}"
          f"{'overhead s/subject':>20}{'slot-s/job':>12}")
    for plugin in plugins:
        for n in args.subjects:
            wall, jobs = results[plugin, n]
            base = results.get(("MultiProc", n), (None, 0))[0]
            overhead = f"{(wall - base) / n:20.1f}" if base is not None else f"{'-':>20}"
            per_job = f"{wall * slots / jobs:12.1f}" if jobs else f"{'-':>12}"
            print(f"{plugin:<11}{n:>9}{wall:9.1f}{jobs:6d}{wall / n:11.1f}{overhead}{per_job}")


if __name__ == "__main__":
    main()
