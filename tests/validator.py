"""Run the official BIDS validator (``bids-validator-deno``, in the test extra) from tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: Validator issues that are not ours to fix: a single author is what a generated
#: dataset_description.json has (GeneratedBy names the software; the people are the user's).
NOT_OURS = {"TOO_FEW_AUTHORS"}


def _validator() -> str:
    """The validator's command, or skip the test saying why it cannot run."""
    command = shutil.which("bids-validator-deno") or str(
        Path(sys.executable).parent / "bids-validator-deno")
    try:
        probe = subprocess.run([command, "--version"], capture_output=True, text=True,
                               timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"bids-validator-deno cannot run: {error}")
    if probe.returncode != 0:
        pytest.skip(f"bids-validator-deno cannot run: {probe.stderr.strip()[-300:]}")
    return command


def validate(folder: Path) -> tuple[list[dict], list[dict]]:
    """Run the BIDS validator on ``folder``: its errors, and its warnings that are ours."""
    done = subprocess.run([_validator(), "--format", "json", str(folder)], capture_output=True,
                          text=True, timeout=300)
    try:
        issues = json.loads(done.stdout)["issues"]["issues"]
    except (ValueError, KeyError, TypeError):
        pytest.fail(f"bids-validator-deno gave no JSON report (exit {done.returncode}): "
                    f"{done.stderr.strip()[-500:]}")
    errors = [i for i in issues if i["severity"] == "error"]
    warnings = [i for i in issues if i["severity"] == "warning" and i["code"] not in NOT_OURS]
    return errors, warnings


def brief(issues: list[dict]) -> list[tuple]:
    """(code, sub-code, file) of each issue: what an assertion failure should show."""
    return [(i["code"], i.get("subCode"), i.get("location")) for i in issues]
