"""Shared data of the report tests: the test grid, and helpers that read figures back (SVG
parsing, embedded images, outline paths mapped to pixels)."""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET

import numpy as np

SVG = "{http://www.w3.org/2000/svg}"
SHAPE = (23, 27, 19)
#: Axis-aligned RAS+ grid with anisotropic voxels: displayed pixels are voxels as stored.
AFFINE = np.array([[2.5, 0, 0, -28.0], [0, 2.0, 0, -26.0], [0, 0, 3.0, -27.0], [0, 0, 0, 1]])


def displayed(volume, axis, k):
    """What the report must show at slice k (RAS+ grid): the subject's left on the left,
    superior (axial: anterior) at the top; sagittal: posterior on the left."""
    if axis == 2:
        plane = volume[:, :, k]  # (x, y): columns x ascending, rows y descending
    elif axis == 1:
        plane = volume[:, k, :]  # (x, z)
    else:
        plane = volume[k, :, :]  # (y, z)
    return plane.T[::-1]



def parse(svg):
    return ET.fromstring(svg.encode("utf-8"))


def groups(root, prefix):
    return {g.get("id"): g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith(prefix)}


def embedded_image(group):
    """The panel's image as an RGB array and its placement (sx, sy, tx, ty) in SVG units."""
    image = next(group.iter(f"{SVG}image"))
    href = image.get("{http://www.w3.org/1999/xlink}href") or image.get("href")
    data = base64.b64decode(href.split(",", 1)[1])
    from PIL import Image  # with matplotlib, which the report tests need

    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert (int(image.get("width")), int(image.get("height"))) == (rgb.shape[1], rgb.shape[0])
    a, b, c, d, e, f = (float(v) for v in re.findall(r"[-\d.e]+", image.get("transform")))
    assert b == c == 0
    return rgb, (a, d, e, f)


def path_segments(group):
    """The line segments of a path of moves and lines, in SVG units (zero-length ones,
    which matplotlib may append, dropped)."""
    d = next(group.iter(f"{SVG}path")).get("d")
    commands = re.findall(r"([A-Za-z])\s*([-\d.e]+)\s+([-\d.e]+)", d)
    assert {cmd for cmd, _, _ in commands} <= {"M", "L"}, "only straight segments expected"
    segments, current = [], None
    for cmd, x, y in commands:
        point = (float(x), float(y))
        if cmd == "L" and point != current:
            segments.append((current, point))
        current = point
    return np.array(segments)


def unit_edges(segments, placement):
    """Segments in image pixel units, split into unit edges ('v'|'h', column, row)."""
    sx, sy, tx, ty = placement
    uv = np.stack([(segments[..., 0] - tx) / sx, (segments[..., 1] - ty) / sy], axis=-1)
    assert np.allclose(uv, np.rint(uv), atol=2e-3), "outline vertices must lie on pixel edges"
    uv = np.rint(uv).astype(int)
    out = set()
    for (u0, v0), (u1, v1) in uv:
        if u0 == u1:
            out.update(("v", u0, v) for v in range(min(v0, v1), max(v0, v1)))
        else:
            assert v0 == v1
            out.update(("h", u, v0) for u in range(min(u0, u1), max(u0, u1)))
    return out


def boundary_edges(region):
    """Unit edges between pixels in and out of ``region`` (outside the image is out)."""
    padded = np.pad(region, 1)
    rows, cols = np.nonzero(padded[1:-1, 1:] != padded[1:-1, :-1])
    edges = {("v", c, r) for r, c in zip(rows, cols, strict=True)}
    rows, cols = np.nonzero(padded[1:, 1:-1] != padded[:-1, 1:-1])
    return edges | {("h", c, r) for r, c in zip(rows, cols, strict=True)}


def tinted(rgb):
    """Pixels tinted with the kept-voxel blue (grey pixels have R == B)."""
    return rgb[..., 2].astype(int) - rgb[..., 0].astype(int) > 40


def tiles(rgb):
    """Column ranges of the tiles (separated by all-white columns)."""
    content = ~(rgb == 255).all(axis=(0, 2))
    step = np.diff(np.r_[0, content.astype(int), 0])
    return list(zip(np.flatnonzero(step == 1), np.flatnonzero(step == -1), strict=True))


def slice_labels(group):
    return [(m.group(1), float(m.group(2))) for t in group.iter(f"{SVG}text")
            if (m := re.fullmatch(r"([xyz]) = (-?\d+) mm", "".join(t.itertext()).strip()))]


def texts(root):
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]

