"""Layout and layering: what the user installs, and which way the imports point."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_does_not_import_nipype_or_nilearn():
    code = (
        "import sys, importlib, pkgutil, nipype_maskers.core as core\n"
        "for m in pkgutil.iter_modules(core.__path__):\n"
        "    importlib.import_module('nipype_maskers.core.' + m.name)\n"
        "bad = [m for m in ('nipype', 'traits', 'nilearn', 'pandas', 'sklearn')\n"
        "       if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_package_folder_is_listed_in_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = {"nipype_maskers.workflows"}
    for init in (ROOT / "nipype_maskers").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    assert found == listed


def test_installed_package_ships_workflows_and_templates():
    import nipype_maskers.workflows

    from nipype_maskers.data import DATA_DIR, MNI152_TEMPLATES

    assert nipype_maskers.workflows.__file__
    assert all(path.is_file() for path in MNI152_TEMPLATES.values())
    assert (DATA_DIR / "LICENSE-MNI-ICBM152.txt").is_file()
