"""The docstring examples of the installed modules run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import nipype_maskers.workflows
import pytest

import nipype_maskers

# the workflows are listed on their own: an editable install maps them from another folder
ALL_MODULES = sorted(
    m.name
    for package in (nipype_maskers, nipype_maskers.workflows)
    for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if not m.name.endswith("__main__")
)


def _has_examples(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    with open(spec.origin, encoding="utf-8") as source:
        return ">>> " in source.read()


MODULES = [name for name in ALL_MODULES if _has_examples(name)]


def test_the_examples_are_found():
    # walk_packages must see the sub-packages' modules (a layout change once hid them all)
    assert len(ALL_MODULES) > 50
    assert {"nipype_maskers.core.signal.cleaning", "nipype_maskers.core.io.images",
            "nipype_maskers.core.regions.labels",
            "nipype_maskers.workflows.resources"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    # a module whose source shows examples must run them: doctest skips, without a word, those
    # it cannot reach (a re-exported function, a closure, a string that is not a docstring)
    assert result.attempted > 0, f"{name}: examples in the source, none run"
    assert result.failed == 0
