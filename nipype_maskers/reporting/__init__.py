"""Visual reports: masks, atlases and signals over the data, and the per-run HTML report.

Functions here take arrays and nibabel images and return SVG text (or PNG bytes); they never
write files. Plotting goes through matplotlib's object-oriented API (``Figure`` and a canvas
of its own, never ``pyplot``), imported only when a figure is drawn: the package imports
without matplotlib, and :func:`require_matplotlib` says how to install it.

- :mod:`.slices`: orientation, slice choice, mosaics and outlines (numpy only);
- :mod:`.figures`: the shared matplotlib drawing (mosaic panels, saving);
- :mod:`.mask`: the mask over the mean image;
- :mod:`.atlas`: labels, maps and spheres over the mean image, and the regions table;
- :mod:`.carpet`: the carpet plot before and after cleaning, with confounds and censoring;
- :mod:`.surface`: surface and CIFTI runs: the grayordinates' carpet by structure and parcel,
  the structures and coverage tables (no mesh drawn);
- :mod:`.html`: the self-contained HTML report.
"""

from __future__ import annotations

INSTALL_HINT = "pip install nipype-maskers[reports]"


class MissingMatplotlibError(ImportError):
    """A report was asked for and matplotlib, an optional dependency, is not installed."""


def require_matplotlib() -> None:
    """Import matplotlib or raise :class:`MissingMatplotlibError` saying how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingMatplotlibError(
            f"visual reports need matplotlib, which is not installed; install it with "
            f"`{INSTALL_HINT}` (or `pip install matplotlib>=3.6`)"
        ) from exc
