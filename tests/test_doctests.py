"""The docstring examples of the installed modules run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import nipype_maskers

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(nipype_maskers.__path__, "nipype_maskers.")
    if not m.name.endswith("cli")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
