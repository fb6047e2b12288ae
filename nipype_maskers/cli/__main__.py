"""``python -m nipype_maskers.cli``: the same as the ``nipype-maskers`` program."""

from .program import run

run()
