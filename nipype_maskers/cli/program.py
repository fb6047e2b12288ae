"""The ``nipype-maskers`` program: parse the arguments, run the form they name."""

from __future__ import annotations

import gc
import sys
from typing import NoReturn

from . import commands
from .parser import UsageError, build_parsers


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nipype-maskers``: returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parsers = build_parsers()
    form = argv[0] if argv and argv[0] in ("extract", "demo") else "participant"
    # the group level has its own options: pick its parser by the third positional (or,
    # when options come first, by a "group" without "participant")
    positionals = [arg for arg in argv if not arg.startswith("-")]
    if form == "participant" and (positionals[2:3] == ["group"] or (
            "group" in argv and "participant" not in argv)):
        form = "group"
    parser = parsers[form]
    args = parser.parse_args(argv[1:] if form in ("extract", "demo") else argv)
    try:
        if form == "demo":
            return commands.demo(args)
        if form == "extract":
            return commands.extract(args)
        if form == "group":
            from .group import group

            return group(args)
        return commands.participant(args)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


def run() -> NoReturn:
    """The ``nipype-maskers`` program: :func:`main`, then exit."""
    code = main()
    # The process ends here: its last garbage collection would walk every object of nipype,
    # scipy and the workflow graph (0.3 s) to free memory that exiting frees anyway.
    gc.freeze()
    sys.exit(code)
