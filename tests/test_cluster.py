"""Cluster runs: Slurm and Grid Engine, for real (tests/cluster/*.sh start them), and the
helpers that wait for *Graph jobs.

Each cluster run processes the tiny tree with three subjects' worth of outcomes in one go:
sub-01 must match a MultiProc run byte for byte; sub-02's BOLD is truncated (its read_bold
step, the one read of the run, crashes) and the job of its load_confounds step is killed by
the job script before Python starts (as a scheduler kills a job over its memory or time
limit). The command must exit 1,
name both failures, and still finish sub-01. Every job must have asked the scheduler for its
node's memory and CPUs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from synthetic import write_fmriprep_tree

from nipype_maskers.cli import cluster
from nipype_maskers.cli.execution import scheduler_args

HERE = Path(__file__).parent
SGE_ENV = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}
STEM = "sub-{}_task-rest_space-MNI152NLin2009cAsym"
# a job script that dies before Python starts for sub-02's load_confounds step (a step that
# does not wait for read_bold, which crashes); the pattern is built at run time so that the
# script's own text does not match it
KILL = ('s=sub_0; if grep -q "${s}2_task.*load_confounds" "$0"; then '
        'echo "killed by the test" >&2; exit 9; fi')
TEMPLATES = {"slurm": f"#!/bin/bash\n{KILL}",
             "sge": f"#!/bin/bash\n#$ -V\n#$ -S /bin/bash\n{KILL}"}


def _status(scheduler: str) -> str | None:
    """None when the scheduler is up, else why not (the status script's answer)."""
    try:
        done = subprocess.run(["bash", str(HERE / "cluster" / f"{scheduler}.sh"), "status"],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{scheduler}: status check failed ({exc})"
    return None if done.returncode == 0 else (done.stdout + done.stderr).strip()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The tiny tree with sub-02's BOLD truncated, and a MultiProc run of it."""
    root = tmp_path_factory.mktemp("cluster")
    bolds = write_fmriprep_tree(root / "fmriprep")
    raw = bolds[1].read_bytes()
    bolds[1].write_bytes(raw[: len(raw) // 2])
    code, printed = _run(root, "reference", "MultiProc")
    assert code == 1, printed
    return root


def _argv(root: Path, name: str, plugin: str, *extra: str) -> list[str]:
    return [str(root / "fmriprep"), str(root / name), "participant",
            "--atlas", str(root / "atlas-Toy_dseg.nii.gz"), "--denoise", "simple",
            "--no-reports",
            "--work-dir", str(root / f"{name}_work"), "--plugin", plugin, *extra]


def _run(root: Path, name: str, plugin: str, *extra: str, timeout: float = 240):
    """Run the command line in a subprocess (a hang fails the test instead of the suite)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LOGNAME", None)  # Nipype's batch plugins need it: the command line sets it
    if plugin.startswith("SGE"):
        env = {**SGE_ENV, **env}
    command = [sys.executable, "-m", "nipype_maskers.cli", *_argv(root, name, plugin, *extra)]
    # cwd: not the repository, whose nipype_maskers/ (without the workflows subpackage, which
    # setup.cfg maps from workflows/) would shadow the installed package
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, cwd=root,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"{plugin} run still going after {timeout} s:\n{out[-3000:]}")
    return process.returncode, out


def _node_requests(root: Path, plugin: str) -> dict[str, str]:
    from nipype_maskers.bids import find_fmriprep_runs
    from nipype_maskers.cli.commands import build_workflow
    from nipype_maskers.cli.parser import build_parsers, processing_options

    args = build_parsers()["participant"].parse_args(_argv(root, "x", plugin))
    runs = find_fmriprep_runs(root / "fmriprep")
    workflow, _ = build_workflow(runs, processing_options(args), root / "x", root / "x_work")
    requests = {}
    for name in workflow.list_node_names():
        node = workflow.get_node(name)
        (request,) = scheduler_args(plugin, node.mem_gb, node.n_procs).values()
        assert requests.setdefault(node.name, request) == request  # same shape, same request
    return requests


def _job_node(job_name: str) -> str:
    """The node a job ran: 'j12_labels_Toy' (*Graph), 'labels_Toy.timeseries_wf...root'."""
    return re.sub(r"^j\d+_", "", job_name.split(".")[0])


def _slurm_requests(root: Path) -> dict[str, set[str]]:
    """{node name: {'--mem=...M --cpus-per-task=K' as Slurm recorded it}} for our jobs."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    found: dict[str, set[str]] = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\S+?)=(\S*)", line))
        if not fields.get("Command", "").startswith(str(root)):
            continue
        memory = fields["MinMemoryNode"]
        found.setdefault(_job_node(fields["JobName"]), set()).add(
            f"--mem={memory} --cpus-per-task={fields['CPUs/Task']}")
    return found


def _sge_requests(since: float) -> dict[str, set[str]]:
    """{node name: {'-l h_vmem=...M[ -pe smp K]'}} from Grid Engine's accounting (qacct)."""
    begin = time.strftime("%y%m%d%H%M.%S", time.localtime(since))
    out = subprocess.run(["qacct", "-b", begin, "-j"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, **SGE_ENV}, check=False).stdout
    found: dict[str, set[str]] = {}
    for record in out.split("=" * 62)[1:]:
        fields = dict(re.findall(r"^(\w+)[ \t]+(.*?)[ \t]*$", record, re.MULTILINE))
        if "jobname" not in fields:  # qacct's closing "Total System Usage" table
            continue
        found.setdefault(_job_node(fields["jobname"]), set()).add(fields["category"])
    return found


def _same_outputs(ours: Path, reference: Path) -> None:
    names = sorted(str(p.relative_to(reference)) for p in reference.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(ours)) for p in ours.rglob("*") if p.is_file())
    assert any(n.endswith("_timeseries.tsv") for n in names)
    for name in names:
        if name.endswith(".nii.gz"):
            mine, theirs = nib.load(ours / name), nib.load(reference / name)
            np.testing.assert_array_equal(mine.get_fdata(), theirs.get_fdata())
            np.testing.assert_array_equal(mine.affine, theirs.affine)
        elif name.endswith(".json"):
            assert json.loads((ours / name).read_text()) == \
                json.loads((reference / name).read_text()), name
        else:
            assert (ours / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.mark.cluster
@pytest.mark.parametrize("plugin", ["SLURM", "SLURMGraph", "SGE", "SGEGraph"])
def test_cluster_run_matches_multiproc_and_reports_failures(plugin, tmp_path_factory,
                                                            request):
    scheduler = "slurm" if plugin.startswith("SLURM") else "sge"
    reason = _status(scheduler)
    if reason:
        pytest.skip(reason)
    root = request.getfixturevalue("tree")
    started = time.time()
    extra = {"template": TEMPLATES[scheduler]}
    if plugin.endswith("Graph"):
        extra["wait_timeout"] = 200
    code, printed = _run(root, plugin, plugin, "--plugin-args", json.dumps(extra))

    assert code == 1 and "runs finished" in printed, printed[-3000:]
    summary = printed[printed.index("runs finished") - len("1 of 2 "):]
    assert summary.startswith("1 of 2 runs finished; 1 failed:"), summary
    failures = [line.strip() for line in summary.splitlines() if "FAILED" in line]
    label = "FAILED sub-02 task-rest space-MNI152NLin2009cAsym:"
    assert failures and all(line.startswith(label) for line in failures), summary
    crashed = [f for f in failures if f.startswith(f"{label} read_bold: ")]
    assert len(crashed) == 1 and "is truncated or corrupt" in crashed[0], summary
    killed = [f for f in failures if f.startswith(f"{label} load_confounds: ")]
    assert len(killed) == 1, summary
    assert killed[0].startswith(f"{label} load_confounds: JobError: ")
    assert "its output ends with: killed by the test" in killed[0]
    _same_outputs(root / plugin, root / "reference")
    assert not (root / plugin / "sub-02").exists()

    if plugin == "SLURMGraph":  # resuming: only the failed run's steps get jobs again
        batch = root / f"{plugin}_work" / "nipype_maskers_wf" / "batch"
        before = set(batch.glob("batchscript_*.sh"))
        assert _run(root, plugin, plugin, "--plugin-args", json.dumps(extra))[0] == 1
        again = set(batch.glob("batchscript_*.sh")) - before
        assert again and all("sub_02_task" in p.name for p in again), sorted(again)
        _same_outputs(root / plugin, root / "reference")

    requests = _node_requests(root, plugin)
    recorded = _slurm_requests(root / f"{plugin}_work") if scheduler == "slurm" \
        else _sge_requests(started)
    assert {"load_confounds", "clean_image", "labels_Toy", "write_derivatives"} <= set(recorded)
    for node, asked in recorded.items():
        assert asked == {requests[node].strip()}, node


# -- the helpers, without a scheduler ------------------------------------------------------


def test_logname_is_set_when_missing(monkeypatch):
    monkeypatch.delenv("LOGNAME", raising=False)
    cluster.prepare_environment()
    assert os.environ["LOGNAME"]
    monkeypatch.setenv("LOGNAME", "someone")
    cluster.prepare_environment()
    assert os.environ["LOGNAME"] == "someone"


def test_graph_plugin_args():
    args, timeout = cluster.graph_plugin_args("SLURMGraph", {"sbatch_args": "--time=1:00:00",
                                                             "wait_timeout": 60})
    # SLURMGraph needs the key; the global arguments end with a space because the plugin
    # appends each node's request without one
    assert args == {"sbatch_args": "--time=1:00:00 ", "dont_resubmit_completed_jobs": True}
    assert timeout == 60
    args, timeout = cluster.graph_plugin_args("SGEGraph", {})
    assert args["qsub_args"] == " " and timeout == cluster.DEFAULT_WAIT_TIMEOUT
    for bad in (0, -5, "soon"):
        with pytest.raises(ValueError, match="wait_timeout"):
            cluster.graph_plugin_args("SGEGraph", {"wait_timeout": bad})


def test_submitted_scripts_and_their_nodes(tmp_path):
    batch = tmp_path / "batch"
    batch.mkdir()
    script = batch / ("batchscript_pyscript_20260101_120000_top_wf.sub_01_wf.timeseries_wf"
                      "_labels_Toy.sh")
    (batch / "submit_jobs.sh").write_text(
        "#!/usr/bin/env bash\n# Condense format attempted\n"
        f"j3_labels_Toy=$(sbatch -o {script}.o -e {script}.e  --mem=154M "
        f"--dependency=afterok:${{j1_x}} -J j3_labels_Toy {script} | awk '/^Submitted/ "
        "{print $4}')\n")
    assert cluster.submitted_scripts(batch) == {str(script): "j3_labels_Toy"}
    assert cluster._script_key(str(script)) == "top_wf.sub_01_wf.timeseries_wf_labels_Toy"


def test_wait_cancels_stuck_jobs_and_times_out(monkeypatch, capsys):
    cancelled = []
    monkeypatch.setattr(cluster, "cancel", lambda jobs, plugin: cancelled.extend(jobs))
    queue = [[cluster.Job("1", "a.sh", "RUNNING"), cluster.Job("2", "b.sh", "PENDING", True)],
             [cluster.Job("1", "a.sh", "RUNNING")], []]
    left = cluster.wait_for_jobs(lambda: queue.pop(0), plugin="SLURMGraph", timeout=60,
                                 poll=0.01)
    assert left == [] and [j.id for j in cancelled] == ["2"] and not queue
    running = [cluster.Job("7", "c.sh", "PENDING")]
    started = time.monotonic()
    left = cluster.wait_for_jobs(lambda: running, plugin="SGEGraph", timeout=0.05, poll=0.01)
    assert left == running and time.monotonic() - started < 5
    assert "1 job(s) queued" in capsys.readouterr().out


def test_wait_gives_up_when_the_scheduler_does_not_answer(monkeypatch):
    monkeypatch.setattr(cluster, "MAX_QUERY_FAILURES", 3)

    def broken():
        raise RuntimeError("squeue failed (exit 1): slurm_load_jobs error: Unable to contact")

    with pytest.raises(RuntimeError, match="cannot list the submitted jobs: squeue failed"):
        cluster.wait_for_jobs(broken, plugin="SLURMGraph", timeout=60, poll=0.01)


def test_only_first_failures_are_reported(tmp_path):
    from nipype_maskers.workflows.timeseries import LabelsAtlas

    from nipype_maskers.bids import find_fmriprep_runs
    from nipype_maskers.cli.commands import build_workflow

    write_fmriprep_tree(tmp_path / "fmriprep", subjects=("01",))
    runs = find_fmriprep_runs(tmp_path / "fmriprep")
    options = {"mask_strategy": "fmriprep", "denoise_strategy": "simple", "clean_args": {},
               "smoothing_fwhm": None, "denoised_bold": True, "maps": [], "spheres": [],
               "labels": [LabelsAtlas("Toy", tmp_path / "atlas-Toy_dseg.nii.gz")]}
    workflow, _ = build_workflow(runs, options, tmp_path / "out", tmp_path / "work")
    graph = cluster.GraphJobs(workflow, {})
    run = "nipype_maskers_wf.sub_01_task_rest_space_MNI152NLin2009cAsym_wf"
    failures = {f"{run}.clean_image": "ImageError: x", f"{run}.write_derivatives": "missing",
                f"{run}.timeseries_wf.labels_Toy": "JobError: killed",
                f"{run}.timeseries_wf.merge_timeseries": "missing"}
    assert graph.first_failures(failures) == {
        f"{run}.clean_image": "ImageError: x",
        f"{run}.timeseries_wf.labels_Toy": "JobError: killed"}
    # nothing ran: every step lacks its completion mark, identity nodes excepted
    missing = cluster.unfinished_steps(workflow, tmp_path / "work")
    assert f"{run}.clean_image" in missing and f"{run}.inputnode" not in missing
    assert all(m.startswith("JobError: its job ended without finishing") for m in
               missing.values())
