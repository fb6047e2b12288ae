"""The BOLD run's shape at build time, which the memory estimates (and sidecars) are made from.

A parent pipeline building one workflow per run knows the run's file when it builds: the
factories take ``bold_file`` and read its header (nibabel reads the header only, not the
data), or the shape itself (``bold_shape``) when the file does not exist yet.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

#: The shape assumed when a factory that only needs memory estimates gets neither
#: ``bold_shape`` nor ``bold_file``: a 300-volume run on the MNI 2 mm grid (97 x 115 x 97),
#: fMRIPrep's most common output space.
DEFAULT_BOLD_SHAPE = (97, 115, 97, 300)


def _checked_shape(shape: Sequence[int], owner: str, what: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(size) for size in shape)
        valid = len(dims) in (3, 4) and all(
            size > 0 and size == given for size, given in zip(dims, shape, strict=True))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{owner}: {what} {shape!r} is not the shape of a run; expected "
                         "(x, y, z) or (x, y, z, volumes), positive integers")
    return dims


def resolve_bold_shape(
    bold_shape: Sequence[int] | None = None,
    bold_file: str | os.PathLike | None = None,
    *,
    owner: str,
    default: Sequence[int] | None = DEFAULT_BOLD_SHAPE,
) -> tuple[int, ...]:
    """The run's shape: ``bold_shape`` if given, else ``bold_file``'s header, else ``default``.

    Parameters
    ----------
    bold_shape : (x, y, z[, volumes]), optional
        The shape, when known (e.g. the file is produced by the parent pipeline).
    bold_file : path, optional
        The run itself: its NIfTI header is read (cheap: not the data).
    owner : str
        The factory asking, named in the errors.
    default : shape or None
        Used when neither is given; None makes that an error (for a factory whose outputs,
        not only its memory estimates, depend on the shape).

    Raises
    ------
    ValueError
        An invalid shape, an unreadable file, a shape that disagrees with the file's header,
        or neither given while ``default`` is None.

    Examples
    --------
    >>> resolve_bold_shape((17, 19, 15, 30), owner='init_denoise_wf')
    (17, 19, 15, 30)
    >>> resolve_bold_shape(owner='init_denoise_wf')
    (97, 115, 97, 300)
    >>> resolve_bold_shape(owner='init_maskers_wf', default=None)
    Traceback (most recent call last):
    ...
    ValueError: init_maskers_wf: give bold_file (the run, its header gives the shape) or \
bold_shape (x, y, z, volumes); the memory estimates and the sidecars' censored volumes need it
    """
    shape = None if bold_shape is None else _checked_shape(bold_shape, owner, "bold_shape")
    if bold_file is not None:
        import nibabel as nib

        try:
            file_shape = tuple(int(size) for size in nib.load(os.fspath(bold_file)).shape)
        except Exception as exc:  # nibabel raises several types for unreadable files
            raise ValueError(f"{owner}: bold_file '{os.fspath(bold_file)}' is not a readable "
                             f"NIfTI image ({exc})") from None
        file_shape = _checked_shape(file_shape, owner, f"bold_file's shape ('{bold_file}')")
        if shape is not None and shape != file_shape:
            raise ValueError(f"{owner}: bold_shape {shape} disagrees with bold_file "
                             f"'{os.fspath(bold_file)}', whose header says {file_shape}; give "
                             "one of them")
        shape = file_shape
    if shape is None:
        if default is None:
            raise ValueError(f"{owner}: give bold_file (the run, its header gives the shape) or "
                             "bold_shape (x, y, z, volumes); the memory estimates and the "
                             "sidecars' censored volumes need it")
        shape = tuple(default)
    return shape
