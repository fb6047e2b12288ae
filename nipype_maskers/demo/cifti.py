"""A synthetic CIFTI-2 run in fMRIPrep's form, and CIFTI atlases on the same grayordinates.

fMRIPrep's ``--cifti-output 91k`` writes ``sub-X_task-Y_space-fsLR_den-91k_bold.dtseries.nii``:
91,282 grayordinates = 29,696 left-cortex vertices (of fsLR's 32,492: the medial wall is left
out) + 29,716 right-cortex vertices + 31,870 voxels of 19 subcortical structures on the 2 mm
MNI152NLin6Asym grid (91 x 109 x 91). :data:`LAYOUT_91K` has exactly these sizes and the
structures' real voxel counts; :data:`LAYOUT_SMALL` is a ~1,500-grayordinate layout of the same
form for fast tests. What is synthetic (and deterministic):

- the vertices' positions: a Fibonacci sphere per hemisphere, stretched to a hemisphere-shaped
  ellipsoid in MNI millimetres (no mesh is needed: positions only give the signals and the
  parcels spatial structure); the medial wall is the cap of vertices facing the midline, so
  the kept vertex indices are plausible but not fsLR's real ones;
- the subcortical voxels: each structure is the ``count`` free voxels nearest (in an ellipsoid
  metric) to its MNI centre, smallest structures first;
- the signals (:func:`simulate_cifti_blocks`): the volume demo's model (networks as band-limited
  Gaussian blobs, physiological noise, head motion, non-steady-state volumes, drift, thermal
  noise; :mod:`nipype_maskers.demo.data`'s pieces) on the grayordinates, with the run's own
  motion (read from the subject's confounds TSV, so the confounds fit the run). The voxels
  under the layout's ``fov_bottom_mm`` (the bottom of the brain stem and the cerebellum,
  outside the field of view) are all zero, as in real runs: the region maskers leave them out
  of their parcels.

Files are streamed through :func:`nipype_maskers.demo.fmriprep.write_nifti` (atomic; the
91k x T matrix is generated and written one block of grayordinates at a time: CIFTI stores
each grayordinate's series contiguously).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
from nibabel import cifti2
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from .data import QUANTUM, _band_limited, _smooth_fields

#: Bumped whenever the CIFTI simulation or atlases change, so that old files are rebuilt.
CIFTI_GENERATOR_VERSION = 1
#: The 2 mm MNI152NLin6Asym grid of the 91k grayordinates' voxels (HCP's Atlas_ROIs.2).
MNI6_2MM_SHAPE = (91, 109, 91)
MNI6_2MM_AFFINE = ((-2.0, 0.0, 0.0, 90.0), (0.0, 2.0, 0.0, -126.0), (0.0, 0.0, 2.0, -72.0),
                   (0.0, 0.0, 0.0, 1.0))  # fmt: skip
_BLOCK = 8192  # grayordinates per generated block
_NOISE_SD = 12.0

#: (structure, centre x y z in mm, radii in mm) of the 19 subcortical structures of the 91k
#: grayordinates, in CIFTI's (alphabetical) order; counts are in the layouts.
_SUBCORTICAL_SHAPES: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]],
                           ...] = (
    ("CIFTI_STRUCTURE_ACCUMBENS_LEFT", (-10, 12, -8), (5, 5, 4)),
    ("CIFTI_STRUCTURE_ACCUMBENS_RIGHT", (10, 12, -8), (5, 5, 4)),
    ("CIFTI_STRUCTURE_AMYGDALA_LEFT", (-23, -5, -18), (7, 7, 7)),
    ("CIFTI_STRUCTURE_AMYGDALA_RIGHT", (23, -5, -18), (7, 7, 7)),
    ("CIFTI_STRUCTURE_BRAIN_STEM", (0, -28, -35), (10, 12, 25)),
    ("CIFTI_STRUCTURE_CAUDATE_LEFT", (-13, 12, 10), (5, 15, 8)),
    ("CIFTI_STRUCTURE_CAUDATE_RIGHT", (13, 12, 10), (5, 15, 8)),
    ("CIFTI_STRUCTURE_CEREBELLUM_LEFT", (-25, -60, -35), (22, 20, 15)),
    ("CIFTI_STRUCTURE_CEREBELLUM_RIGHT", (25, -60, -35), (22, 20, 15)),
    ("CIFTI_STRUCTURE_DIENCEPHALON_VENTRAL_LEFT", (-10, -18, -10), (5, 8, 5)),
    ("CIFTI_STRUCTURE_DIENCEPHALON_VENTRAL_RIGHT", (10, -18, -10), (5, 8, 5)),
    ("CIFTI_STRUCTURE_HIPPOCAMPUS_LEFT", (-27, -25, -12), (6, 15, 6)),
    ("CIFTI_STRUCTURE_HIPPOCAMPUS_RIGHT", (27, -25, -12), (6, 15, 6)),
    ("CIFTI_STRUCTURE_PALLIDUM_LEFT", (-19, -3, 0), (4, 6, 4)),
    ("CIFTI_STRUCTURE_PALLIDUM_RIGHT", (19, -3, 0), (4, 6, 4)),
    ("CIFTI_STRUCTURE_PUTAMEN_LEFT", (-25, 2, 2), (6, 14, 8)),
    ("CIFTI_STRUCTURE_PUTAMEN_RIGHT", (25, 2, 2), (6, 14, 8)),
    ("CIFTI_STRUCTURE_THALAMUS_LEFT", (-11, -18, 7), (7, 11, 7)),
    ("CIFTI_STRUCTURE_THALAMUS_RIGHT", (11, -18, 7), (7, 11, 7)),
)  # fmt: skip
_REAL_COUNTS = (135, 140, 315, 332, 3472, 728, 755, 8709, 9144, 706, 712, 764, 795, 297, 260,
                1060, 1010, 1288, 1248)  # fmt: skip


class CiftiLayout(NamedTuple):
    """The sizes of a grayordinate layout (hashable: layouts key a cache)."""

    name: str
    n_vertices: int  #: vertices of each hemisphere's mesh (fsLR 32k: 32,492)
    n_medial: tuple[int, int]  #: vertices of the medial wall, left and right (left out)
    voxel_counts: tuple[int, ...]  #: voxels of each subcortical structure, CIFTI order
    fov_bottom_mm: float  #: voxels below this height are outside the field of view: all 0

    @property
    def n_grayordinates(self) -> int:
        return 2 * self.n_vertices - sum(self.n_medial) + sum(self.voxel_counts)


#: fMRIPrep's 91k grayordinates: 29,696 + 29,716 vertices + 31,870 voxels = 91,282.
LAYOUT_91K = CiftiLayout("91k", 32492, (32492 - 29696, 32492 - 29716), _REAL_COUNTS, -49.0)
#: A small layout of the same form (1,496 grayordinates) for tests.
LAYOUT_SMALL = CiftiLayout("small", 642, (56, 54), tuple(max(4, c // 100) for c in _REAL_COUNTS),
                           -37.0)


class Grayordinates(NamedTuple):
    """A layout's grayordinates: the CIFTI axis and where each grayordinate is."""

    axis: cifti2.BrainModelAxis
    coords: NDArray[np.float32]  #: (n, 3) MNI mm (vertices: their synthetic positions)
    structure: NDArray[np.intp]  #: (n,) structure number (0, 1: cortex L, R; 2...: voxels)
    structures: tuple[str, ...]  #: the CIFTI structure names, in order


def _hemisphere(n_vertices: int, n_medial: int, side: float
                ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Kept vertex indices and their MNI positions for one hemisphere (side -1: left)."""
    k = np.arange(n_vertices) + 0.5
    polar = np.arccos(1 - 2 * k / n_vertices)
    azimuth = np.pi * (1 + 5**0.5) * k
    unit = np.column_stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar),
                            np.cos(polar)])  # fmt: skip
    # the medial wall: the cap facing the midline, a little below the equator
    towards_midline = np.array([-side, 0.0, -0.25]) / np.hypot(1.0, 0.25)
    medial = np.argsort(-(unit @ towards_midline), kind="stable")[:n_medial]
    kept = np.setdiff1d(np.arange(n_vertices), medial)
    positions = unit[kept] * [32.0, 68.0, 48.0] + [side * 36.0, -18.0, 14.0]
    return kept, positions


@lru_cache(maxsize=4)
def grayordinates(layout: CiftiLayout = LAYOUT_91K) -> Grayordinates:
    """The grayordinates of ``layout`` (cached: computed once per layout and process)."""
    if len(layout.voxel_counts) != len(_SUBCORTICAL_SHAPES):
        raise ValueError(f"layout: {len(layout.voxel_counts)} voxel counts; expected one per "
                         f"subcortical structure ({len(_SUBCORTICAL_SHAPES)})")
    affine = np.array(MNI6_2MM_AFFINE)
    coords, structure, vertex, voxel = [], [], [], []
    names = ["CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT"]
    for number, side in enumerate((-1.0, 1.0)):
        kept, positions = _hemisphere(layout.n_vertices, layout.n_medial[number], side)
        coords.append(positions)
        structure.append(np.full(kept.size, number))
        vertex.append(kept)
        voxel.append(np.full((kept.size, 3), -1))
    # subcortical voxels: smallest structures first take the voxels nearest their centre
    ijk = np.indices(MNI6_2MM_SHAPE).reshape(3, -1).T
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    free = np.ones(len(ijk), dtype=bool)
    chosen = {}
    for number in np.argsort(layout.voxel_counts, kind="stable"):
        _, centre, radii = _SUBCORTICAL_SHAPES[number]
        distance = np.sum(((world - centre) / radii) ** 2, axis=1)
        distance[~free] = np.inf
        take = np.argpartition(distance, layout.voxel_counts[number])[
            : layout.voxel_counts[number]]
        free[take] = False
        chosen[number] = np.sort(take)  # C order of (i, j, k), as from_mask gives
    for number in range(len(_SUBCORTICAL_SHAPES)):
        coords.append(world[chosen[number]])
        structure.append(np.full(chosen[number].size, number + 2))
        vertex.append(np.full(chosen[number].size, -1))
        voxel.append(ijk[chosen[number]])
    structure = np.concatenate(structure)
    structures = tuple(names + [s[0] for s in _SUBCORTICAL_SHAPES])
    # one constructor call: adding 21 axes (nibabel's +) takes seconds at 91k
    axis = cifti2.BrainModelAxis(np.array(structures)[structure], voxel=np.concatenate(voxel),
                                 vertex=np.concatenate(vertex), affine=affine,
                                 volume_shape=MNI6_2MM_SHAPE,
                                 nvertices={name: layout.n_vertices for name in names})
    return Grayordinates(axis, np.concatenate(coords).astype(np.float32), structure,
                         structures)


# --------------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------------
def simulate_cifti_blocks(layout: CiftiLayout, motion: NDArray, *, t_r: float, seed: int
                          | Sequence[int] = 0, n_dummy: int = 0,
                          spikes: Sequence[int] = ()) -> Iterator[NDArray[np.float32]]:
    """The run's ``(n_volumes, n_grayordinates)`` matrix, one block of columns at a time.

    Parameters
    ----------
    layout : CiftiLayout
    motion : array (n_volumes, 6)
        trans_x/y/z (mm) and rot_x/y/z (rad): the run's head motion, whose artefacts are added.
    t_r : float
        Repetition time (s).
    seed : int or sequence of int
        Seed of :func:`numpy.random.default_rng`.
    n_dummy : int
        Non-steady-state volumes at the start (brighter).
    spikes : sequence of int
        Volumes with a sudden head jerk (a small signal drop).

    Yields
    ------
    ndarray of float32, (n_volumes, <= 8192)
        Consecutive grayordinates' series, multiples of :data:`~.data.QUANTUM`; the voxels
        under ``layout.fov_bottom_mm`` are 0.
    """
    motion = np.asarray(motion, dtype=np.float64)
    if motion.ndim != 2 or motion.shape[1] != 6 or motion.shape[0] < 2:
        raise ValueError(f"motion: expected (n_volumes >= 2, 6) parameters, got "
                         f"{motion.shape}")
    if not t_r > 0:
        raise ValueError(f"t_r must be > 0 seconds; got {t_r!r}")
    n_volumes = motion.shape[0]
    grid = grayordinates(layout)
    coords, cortex = grid.coords, grid.structure < 2
    rng = np.random.default_rng(seed)
    times = np.arange(n_volumes) * t_r
    baseline = (800.0 + 120.0 * _smooth_fields(rng, coords, 1, sd=30.0)[0]
                - 150.0 * (~cortex)).astype(np.float32)
    centres = coords[rng.choice(np.flatnonzero(cortex), 6, replace=False)]
    weights = np.stack([np.exp(-np.sum((coords - c) ** 2, axis=1) / (2 * 25.0**2))
                        for c in centres]) * np.where(cortex, 1.0, 0.6)  # fmt: skip
    courses = 18.0 * _band_limited(rng, n_volumes, t_r, 6, 0.01, 0.1)
    f_card, f_resp = rng.uniform(0.9, 1.3), rng.uniform(0.2, 0.35)
    phase = np.cumsum(rng.normal(0.0, 0.3, size=(n_volumes, 2)), axis=0)
    cycles = [2 * np.pi * f * times + phase[:, i] for i, f in enumerate((f_card, f_resp))]
    physio = np.column_stack([
        np.sin(cycles[0]), np.sin(2 * cycles[0]), np.sin(cycles[1]), np.sin(2 * cycles[1]),
        _band_limited(rng, n_volumes, t_r, 1, 0.005, 0.05)[:, 0],
    ]) * [20.0, 10.0, 16.0, 8.0, 10.0]
    # brain stem and cerebellum (near the arteries and the fourth ventricle) pulsate most
    pulsatile = np.isin(grid.structure, [grid.structures.index(f"CIFTI_STRUCTURE_{name}") for
                                         name in ("BRAIN_STEM", "CEREBELLUM_LEFT",
                                                  "CEREBELLUM_RIGHT")])
    physio_maps = _smooth_fields(rng, coords, 5) * np.where(pulsatile, 2.0, 0.6)
    # motion artefacts: intensity change per mm (and per radian at a 50 mm lever arm)
    motion_maps = _smooth_fields(rng, coords, 6, sd=40.0) * np.array(
        [[60.0]] * 3 + [[60.0 * 50.0]] * 3)
    scale = rng.uniform(0.9, 1.1) * (1.0 + 0.01 * (times / max(times[-1], 1.0)) ** 2)
    scale[:n_dummy] *= 1.0 + 0.6 * np.exp(-1.2 * np.arange(n_dummy))
    scale[np.asarray(spikes, dtype=np.intp)] *= 0.98
    left = np.column_stack([scale, courses, physio, -0.3 * (motion - motion[n_dummy])])
    right = np.vstack([baseline, weights, physio_maps, motion_maps]).astype(np.float32)
    left = left.astype(np.float32)
    outside = coords[:, 2] < layout.fov_bottom_mm
    outside &= ~cortex  # only voxels: the cortex mesh is sampled where there is signal
    noise_sd = np.float32(_NOISE_SD * scale[min(n_dummy, n_volumes - 1)])
    for start in range(0, coords.shape[0], _BLOCK):
        block = left @ right[:, start:start + _BLOCK]
        noise = rng.standard_normal(block.shape, dtype=np.float32)
        noise *= noise_sd
        block += noise
        block *= np.float32(1.0 / QUANTUM)
        np.rint(block, out=block)
        block *= np.float32(QUANTUM)
        block[:, outside[start:start + _BLOCK]] = 0.0
        yield block


# --------------------------------------------------------------------------------------------
# Headers and files
# --------------------------------------------------------------------------------------------
def cifti_header(axes: Sequence[cifti2.Axis], dtype: np.dtype, intent: str,
                 metadata: dict[str, str] | None = None) -> nib.Nifti2Header:
    """The NIfTI-2 header (CIFTI XML extension included) of a CIFTI file with these axes.

    The header is what nibabel would write; with it, the data can be streamed after it in
    file order (:func:`nipype_maskers.demo.fmriprep.write_nifti`).
    """
    shape = tuple(len(axis) for axis in axes)
    cifti_hdr = cifti2.Cifti2Header.from_axes(axes)
    if metadata:
        cifti_hdr.matrix.metadata = cifti2.Cifti2MetaData(metadata)
    img = cifti2.Cifti2Image(np.broadcast_to(np.zeros((), dtype=dtype), shape), cifti_hdr)
    img.update_headers()
    header = img.nifti_header.copy()
    header.extensions.clear()
    header.extensions.append(cifti2.Cifti2Extension.from_bytes(cifti_hdr.to_xml()))
    header.set_intent(intent)
    header.set_data_dtype(dtype)
    header.set_data_shape((1, 1, 1, 1, *shape))
    header["pixdim"][:4] = 1  # no qform: NIfTI-2 needs positive spacings
    return header


def generator_metadata(path: Path) -> dict | None:
    """The ``SyntheticDataParameters`` a demo CIFTI atlas records; None if missing/unreadable."""
    try:
        meta = nib.load(path).header.matrix.metadata
        return json.loads(meta["SyntheticDataParameters"])
    except Exception:  # missing, truncated, not CIFTI, no such key: rewrite it
        return None


def write_dtseries(path: Path, layout: CiftiLayout, motion: NDArray, *, t_r: float,
                   seed: int | Sequence[int], n_dummy: int, spikes: Sequence[int] = ()
                   ) -> Path:
    """Simulate and write a ``.dtseries.nii`` (float32), streamed, atomically."""
    from .fmriprep import write_nifti

    grid = grayordinates(layout)
    series = cifti2.SeriesAxis(start=0.0, step=float(t_r), size=len(motion), unit="SECOND")
    header = cifti_header((series, grid.axis), np.dtype(np.float32),
                          "NIFTI_INTENT_CONNECTIVITY_DENSE_SERIES")
    blocks = simulate_cifti_blocks(layout, motion, t_r=t_r, seed=seed, n_dummy=n_dummy,
                                   spikes=spikes)
    return write_nifti(path, header, blocks)


def dtseries_sidecar(t_r: float, layout: CiftiLayout, params: dict) -> dict:
    """fMRIPrep's sidecar of a CIFTI run, with the demo's parameters (written last)."""
    return {"RepetitionTime": float(t_r), "TaskName": "rest", "grayordinates": layout.name,
            "space": "HCP grayordinates", "surface": "fsLR", "surface_density": "32k",
            "volume": "MNI152NLin6Asym", "SyntheticDataParameters": params}


# --------------------------------------------------------------------------------------------
# Atlases: a dlabel of parcels and a dscalar of smooth maps
# --------------------------------------------------------------------------------------------
def _colour(number: int) -> tuple[float, float, float, float]:
    """A distinct opaque colour per parcel number (golden-ratio hues, three lightnesses)."""
    import colorsys

    hue = (number * 0.6180339887) % 1.0
    red, green, blue = colorsys.hls_to_rgb(hue, (0.45, 0.6, 0.35)[number % 3], 0.75)
    return (round(red, 4), round(green, 4), round(blue, 4), 1.0)


def _structure_label(structure: str) -> str:
    """``CIFTI_STRUCTURE_THALAMUS_LEFT`` -> ``L_thalamus``; ``..._BRAIN_STEM`` -> ``brain_stem``.
    """
    from ..core.surface.cifti import structure_parts

    words, side = structure_parts(structure)
    return (f"{side}_" if side else "") + "_".join(words)


def cifti_atlas_data(layout: CiftiLayout = LAYOUT_91K, *, n_cortical: int = 80,
                     n_maps: int = 8) -> tuple[NDArray[np.int32], dict, NDArray[np.float32],
                                               list[str]]:
    """The demo CIFTI atlases' data: parcels (label table) and smooth maps.

    Parameters
    ----------
    layout : CiftiLayout
    n_cortical : int
        Cortical parcels, half per hemisphere (mirrored Voronoi cells of k-means centres of the
        left cortex), numbered 1..n_cortical; then one parcel per subcortical structure.
    n_maps : int
        Smooth maps (mirrored pairs of Gaussians of 15 mm SD), in [0, 1], 0 under 0.05.

    Returns
    -------
    labels : ndarray of int32 (n_grayordinates,)
        The parcel of each grayordinate (every grayordinate has one: no 0 left).
    table : dict
        key -> (name, RGBA): CIFTI's label table (key 0: ``???``, transparent).
    maps : ndarray of float32 (n_maps, n_grayordinates)
    map_names : list of str
    """
    from .atlases import _kmeans_centres, _mirrored

    for name, value in (("n_cortical", n_cortical), ("n_maps", n_maps)):
        if int(value) != value or value < 2 or value % 2:
            raise ValueError(f"{name} must be an even integer >= 2; got {value!r}")
    grid = grayordinates(layout)
    coords = grid.coords.astype(np.float64)
    left = grid.structure == 0
    cortex = grid.structure < 2
    half = n_cortical // 2
    centres = _mirrored(_kmeans_centres(coords[left], half))
    labels = np.zeros(coords.shape[0], dtype=np.int32)
    for side, offset in ((0, 0), (1, half)):  # each hemisphere's vertices to its own centres
        where = grid.structure == side
        _, nearest = cKDTree(centres[offset:offset + half]).query(coords[where])
        labels[where] = nearest + 1 + offset
    labels[~cortex] = grid.structure[~cortex] - 2 + n_cortical + 1
    table = {0: ("???", (1.0, 1.0, 1.0, 0.0))}
    for key in range(1, n_cortical + 1):
        side = "L" if key <= half else "R"
        table[key] = (f"{side}_parcel_{(key - 1) % half + 1:02d}", _colour(key))
    for number, structure in enumerate(grid.structures[2:]):
        key = n_cortical + 1 + number
        table[key] = (_structure_label(structure), _colour(key))

    map_centres = _mirrored(_kmeans_centres(coords[left], n_maps // 2))
    maps = np.zeros((n_maps, coords.shape[0]), dtype=np.float32)
    for k, centre in enumerate(map_centres):
        value = np.exp(-np.sum((coords - centre) ** 2, axis=1) / (2 * 15.0**2))
        value /= value.max()
        maps[k] = np.where(value >= 0.05, value, 0.0)
    return labels, table, maps, _map_names(n_maps)


def _map_names(n_maps: int) -> list[str]:
    """``L_map_01``... then ``R_map_01``...: mirrored pairs, the left ones first."""
    return [f"{h}_map_{i:02d}" for h in "LR" for i in range(1, n_maps // 2 + 1)]


class CiftiAtlases(NamedTuple):
    """The written CIFTI atlases (named ``DemoCifti...``: the CLI wants every atlas's
    ``atlas-`` name distinct from the volume demo atlases' ``DemoParcels`` and ``DemoMaps``)."""

    labels: Path  #: ``tpl-fsLR_den-91k_atlas-DemoCiftiParcels_dseg.dlabel.nii``
    maps: Path  #: ``tpl-fsLR_den-91k_atlas-DemoCiftiMaps_probseg.dscalar.nii``
    maps_names: list[str]


def write_cifti_atlases(folder: str | Path, layout: CiftiLayout = LAYOUT_91K) -> CiftiAtlases:
    """Write the demo dlabel and dscalar atlases in ``folder``, unless already there.

    A file is rewritten only when its CIFTI metadata's ``SyntheticDataParameters`` (the
    generator version and the layout) differ or it cannot be read; writing is atomic.
    """
    from .fmriprep import write_nifti

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = CiftiAtlases(folder / "tpl-fsLR_den-91k_atlas-DemoCiftiParcels_dseg.dlabel.nii",
                       folder / "tpl-fsLR_den-91k_atlas-DemoCiftiMaps_probseg.dscalar.nii", [])
    params = {"generator_version": CIFTI_GENERATOR_VERSION, "layout": list(layout)}
    params = json.loads(json.dumps(params))  # tuples as lists: as read back
    todo = [path for path in out[:2] if generator_metadata(path) != params]
    out = out._replace(maps_names=_map_names(8))
    if not todo:
        return out
    labels, table, maps, _ = cifti_atlas_data(layout, n_maps=8)
    brain_models = grayordinates(layout).axis
    metadata = {"SyntheticDataParameters": json.dumps(params, sort_keys=True)}
    if out.labels in todo:
        axis = cifti2.LabelAxis(["DemoCiftiParcels"], [table])
        header = cifti_header((axis, brain_models), np.dtype(np.float32),
                              "NIFTI_INTENT_CONNECTIVITY_DENSE_LABELS", metadata)
        write_nifti(out.labels, header, [labels[None, :].astype(np.float32)])
    if out.maps in todo:
        axis = cifti2.ScalarAxis(out.maps_names)
        header = cifti_header((axis, brain_models), np.dtype(np.float32),
                              "NIFTI_INTENT_CONNECTIVITY_DENSE_SCALARS", metadata)
        write_nifti(out.maps, header, [maps])
    return out


# --------------------------------------------------------------------------------------------
# The subject's CIFTI run in the fMRIPrep-like dataset
# --------------------------------------------------------------------------------------------
def cifti_run_path(root: str | Path, subject: str, task: str = "rest") -> Path:
    """fMRIPrep's name of a subject's CIFTI run (``--cifti-output 91k``)."""
    return (Path(root) / f"sub-{subject}" / "func"
            / f"sub-{subject}_task-{task}_space-fsLR_den-91k_bold.dtseries.nii")


def read_run_motion(confounds: Path) -> tuple[NDArray[np.float64], int]:
    """The six motion parameters and the number of non-steady-state volumes of a confounds
    TSV (fMRIPrep's columns)."""
    from ..core.io.tables import read_table

    table = read_table(confounds, name="confounds", header=True, delimiter="\t",
                       numeric=False)
    motion = table.numbers(["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"])
    n_dummy = sum(1 for c in table.columns if c.startswith("non_steady_state_outlier"))
    return motion, n_dummy


def write_cifti_run(root: str | Path, subject: str, *, seed: int, t_r: float,
                    layout: CiftiLayout = LAYOUT_91K) -> Path:
    """Write (unless up to date) a subject's ``.dtseries.nii`` and its JSON sidecar.

    The run has the volumes and the head motion of the subject's confounds TSV (which must be
    written already); the sidecar, written last, records the parameters: a run whose sidecar
    matches and whose file has the expected shape is left untouched.
    """
    from .confounds import framewise_displacement
    from .data import GENERATOR_VERSION
    from .fmriprep import _read_json, subject_files, write_json

    files = subject_files(root, subject)
    path = cifti_run_path(root, subject)
    sidecar = path.with_name(path.name.replace(".dtseries.nii", ".json"))
    motion, n_dummy = read_run_motion(files.confounds)
    params = {"subject": subject, "seed": int(seed), "t_r": float(t_r),
              "n_volumes": int(motion.shape[0]), "n_dummy": int(n_dummy),
              "layout": list(layout), "generator_version": GENERATOR_VERSION,
              "cifti_generator_version": CIFTI_GENERATOR_VERSION}  # fmt: skip
    params = json.loads(json.dumps(params))
    expected = (motion.shape[0], layout.n_grayordinates)
    if (_read_json(sidecar) or {}).get("SyntheticDataParameters") == params:
        try:
            if nib.load(path).shape == expected:
                return path
        except Exception:  # missing, truncated, not CIFTI: rewrite it
            pass
    sidecar.unlink(missing_ok=True)
    spikes = np.flatnonzero(np.nan_to_num(framewise_displacement(motion)) > 0.5)
    seed_sequence = [int(seed), zlib.crc32(subject.encode()), 91]  # not the volume's stream
    write_dtseries(path, layout, motion, t_r=t_r, seed=seed_sequence, n_dummy=n_dummy,
                   spikes=spikes)
    write_json(dtseries_sidecar(t_r, layout, params), sidecar)
    return path
