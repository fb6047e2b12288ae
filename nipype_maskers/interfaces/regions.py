"""Region maskers as interfaces: labels, maps and spheres to BIDS ``*_timeseries.tsv``, and back.

Every region masker writes ``out_file`` (one column per region, named, ``n/a`` for empty
regions: the same columns for every subject processed with one atlas) and ``regions_file``
(index, name, voxel count, coverage). :class:`SignalsToImage` paints such a table back.
"""

from __future__ import annotations

import warnings

import numpy as np
from nipype.interfaces.base import File, SimpleInterface, TraitedSpec, isdefined, traits

from ..core.io.images import load_img
from ..core.regions import inverse as region_images
from ..core.regions import maskers as region_maskers
from ..core.regions.label_names import read_lut
from ..core.regions.spheres import read_seeds
from .base import (
    CleanSpecMixin,
    MaskersInputSpec,
    ThreadsSpecMixin,
    clean_args_from,
    defined,
    header_t_r,
)
from .io import format_tsv, output_path, read_matrix, save_text
from .masking import parse_volumes


class _RegionMaskerInputSpec(MaskersInputSpec, CleanSpecMixin, ThreadsSpecMixin):
    in_file = File(exists=True, mandatory=True, desc="3D or 4D image (NIfTI)")
    mask_file = File(exists=True, desc="binary mask: voxels outside it are left out")
    smoothing_fwhm = traits.Either(
        traits.Float, traits.List(traits.Float, minlen=3, maxlen=3),
        desc="Gaussian smoothing FWHM in mm before extraction",
    )
    volumes = traits.Either(
        traits.Int, traits.List(traits.Int), traits.List(traits.Bool), traits.Str,
        desc="volumes to use: an index, a list, or 'start:stop[:step]'",
    )
    dtype = traits.Enum("float32", "float64", usedefault=True,
                        desc="precision of the extracted signals")
    min_coverage = traits.Range(
        0.0, 1.0, desc="regions with a smaller fraction of their voxels kept become n/a"
    )
    drop_empty = traits.Bool(
        False, usedefault=True,
        desc="drop empty regions' columns, as nilearn does (default: keep them as n/a, so "
        "every subject gets the same columns)",
    )


class _RegionMaskerOutputSpec(TraitedSpec):
    out_file = File(desc="region signals: TSV, header = region names, one row per kept volume")
    regions_file = File(desc="TSV: index, name, voxel_count, coverage per region")
    t_r = traits.Either(None, traits.Float, desc="the TR used for cleaning")
    t_r_source = traits.Str(desc="where t_r came from: 'input t_r', 'NIfTI header' or ''")
    volumes = traits.List(traits.Int, desc="the input volume of each output row")


class _RegionMasker(SimpleInterface):
    """Shared run: common arguments in, the two TSVs out; subclasses call their core."""

    output_spec = _RegionMaskerOutputSpec
    _kind = ""

    def _extract(self, img, common):  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_interface(self, runtime):
        img = load_img(self.inputs.in_file, name="in_file")
        clean_args, provenance = clean_args_from(self.inputs, header_t_r=header_t_r(img))
        common = {
            "mask": defined(self.inputs.mask_file),
            "smoothing_fwhm": defined(self.inputs.smoothing_fwhm),
            "volumes": parse_volumes(defined(self.inputs.volumes)),
            "dtype": self.inputs.dtype,
            "clean_args": clean_args,
            "n_threads": self.inputs.num_threads,
        }
        result = self._extract(img, common)
        source = self.inputs.in_file
        out = output_path(source, f"desc-{self._kind}_timeseries", ".tsv", runtime.cwd)
        regions = output_path(source, f"desc-{self._kind}_regions", ".tsv", runtime.cwd)
        table = np.column_stack([result.ids, result.sizes, result.coverage])
        lines = ["index\tname\tvoxel_count\tcoverage"] + [
            f"{int(i)}\t{name}\t{int(n)}\t{c!r}" for (i, n, c), name in
            zip(table.tolist(), result.names, strict=True)
        ]
        signals_text = format_tsv(result.signals, result.names)  # both built before writing
        self._results["regions_file"] = str(save_text("\n".join(lines) + "\n", regions))
        self._results["out_file"] = str(save_text(signals_text, out))
        self._results["t_r"] = provenance.get("RepetitionTime")
        self._results["t_r_source"] = provenance.get("RepetitionTimeSource", "")
        self._results["volumes"] = [int(v) for v in result.volumes]
        return runtime


class _LabelsInputSpec(_RegionMaskerInputSpec):
    labels_file = File(exists=True, mandatory=True, desc="3D integer atlas (NIfTI)")
    labels = traits.List(
        traits.Str, xor=["lut_file"],
        desc="region names in ascending label order: one per region, or one per label value "
        "with the background's at its position (another count is an error: nilearn pads "
        "with 'unknown', which would give duplicate TSV columns)",
    )
    lut_file = File(exists=True, xor=["labels"],
                    desc="BIDS dseg.tsv look-up table with 'index' and 'name' columns")
    background_label = traits.Int(0, usedefault=True, desc="the label of 'no region'")
    resampling_target = traits.Enum(
        "data", "labels", None, usedefault=True,
        desc="'data': atlas and mask onto the data; 'labels': data and mask onto the atlas; "
        "None: grids must match",
    )
    strategy = traits.Enum(
        "mean", "median", "sum", "minimum", "maximum", "standard_deviation", "variance",
        usedefault=True, desc="reduction over each region's voxels",
    )


class NiftiLabelsMasker(_RegionMasker):
    """nilearn's ``NiftiLabelsMasker.fit_transform``: one signal per atlas label."""

    input_spec = _LabelsInputSpec
    _kind = "labels"

    def _extract(self, img, common):
        lut = read_lut(self.inputs.lut_file) if isdefined(self.inputs.lut_file) else None
        with warnings.catch_warnings():
            # The core warns and pads or drops names (nilearn's rule); a TSV header must not.
            warnings.filterwarnings("error", message="labels has ", category=UserWarning)
            try:
                return region_maskers.labels_masker(
                    img, self.inputs.labels_file, background_label=self.inputs.background_label,
                    resampling_target=self.inputs.resampling_target,
                    strategy=self.inputs.strategy, names=defined(self.inputs.labels), lut=lut,
                    min_coverage=defined(self.inputs.min_coverage),
                    drop_empty=self.inputs.drop_empty, **common,
                )
            except UserWarning as exc:
                counts = str(exc).split(";")[0]
                raise ValueError(f"{counts}; {_expected_names(counts)}") from None


def _expected_names(counts: str) -> str:
    """What a ``labels`` list should hold, from the core's '... (background and N regions)'."""
    n_regions = counts.rsplit("background and ", 1)[-1].split(" ")[0]
    return (f"expected {n_regions} names (one per region, in ascending label order), or one "
            "more with the background's name at its position; or give lut_file")


class _MapsInputSpec(_RegionMaskerInputSpec):
    maps_file = File(exists=True, mandatory=True, desc="4D maps (NIfTI), one map per volume")
    labels = traits.List(traits.Str, desc="one name per map (default: the map's index)")
    allow_overlap = traits.Bool(True, usedefault=True,
                                desc="allow maps to overlap (False: error naming the pair)")
    resampling_target = traits.Enum(
        "data", "mask", "maps", None, usedefault=True,
        desc="grid to work on: the data's, the mask's, the maps', or None (must match)",
    )


class NiftiMapsMasker(_RegionMasker):
    """nilearn's ``NiftiMapsMasker.fit_transform``: least-squares signals of the maps."""

    input_spec = _MapsInputSpec
    _kind = "maps"

    def _extract(self, img, common):
        return region_maskers.maps_masker(
            img, self.inputs.maps_file, allow_overlap=self.inputs.allow_overlap,
            resampling_target=self.inputs.resampling_target, names=defined(self.inputs.labels),
            min_coverage=defined(self.inputs.min_coverage), drop_empty=self.inputs.drop_empty,
            **common,
        )


class _SpheresSpecMixin(traits.HasTraits):
    seeds = traits.List(traits.Tuple(traits.Float, traits.Float, traits.Float), xor=["seeds_file"],
                        desc="sphere centres (x, y, z) in mm, world coordinates")
    seeds_file = File(exists=True, xor=["seeds"],
                      desc="TSV/CSV with x, y, z columns and an optional name column")
    radius = traits.Float(desc="sphere radius in mm (unset: the single nearest voxel)")


def seeds_from(inputs) -> tuple[np.ndarray, list[str] | None]:
    """Seeds and their names from ``seeds`` or ``seeds_file`` (exactly one)."""
    if isdefined(inputs.seeds_file):
        try:
            return read_seeds(inputs.seeds_file)
        except ValueError as exc:
            raise ValueError(f"seeds_file: {exc}") from exc
    if isdefined(inputs.seeds) and inputs.seeds:
        return np.asarray(inputs.seeds, dtype=np.float64), None
    raise ValueError("seeds: give seeds (a list of (x, y, z) in mm) or seeds_file")


class _SpheresInputSpec(_RegionMaskerInputSpec, _SpheresSpecMixin):
    labels = traits.List(traits.Str, desc="one name per seed (default: the file's names, or "
                         "the seed's index)")
    allow_overlap = traits.Bool(
        False, usedefault=True, desc="allow spheres to share voxels (False: error naming the pair)"
    )


class NiftiSpheresMasker(_RegionMasker):
    """nilearn's ``NiftiSpheresMasker.fit_transform``: the mean of each sphere's voxels."""

    input_spec = _SpheresInputSpec
    _kind = "spheres"

    def _extract(self, img, common):
        seeds, names = seeds_from(self.inputs)
        return region_maskers.spheres_masker(
            img, seeds, radius=defined(self.inputs.radius),
            allow_overlap=self.inputs.allow_overlap, names=defined(self.inputs.labels, names),
            **common,
        )


class _SignalsToImageInputSpec(MaskersInputSpec, _SpheresSpecMixin):
    in_file = File(exists=True, mandatory=True,
                   desc="region signals: a TSV written by a region masker (its first row is "
                   "the header), or a .npy")
    labels_file = File(exists=True, xor=["maps_file", "seeds", "seeds_file"],
                       desc="the labels atlas the signals came from")
    maps_file = File(exists=True, xor=["labels_file", "seeds", "seeds_file"],
                     desc="the maps the signals came from")
    mask_file = File(exists=True, desc="mask (required for spheres: the output grid)")
    background_label = traits.Int(0, usedefault=True, desc="labels: the label of 'no region'")
    allow_overlap = traits.Bool(False, usedefault=True, desc="spheres: allow shared voxels")


def read_signals(path: str) -> np.ndarray:
    """Region signals from a ``.npy`` or from a region masker's TSV.

    The TSV's first row is always its header, even when the region names are numbers (the
    default names are the label values or the indices, which ``read_matrix`` would take for a
    row of data); ``n/a`` is NaN.
    """
    if path.endswith(".npy"):
        return read_matrix(path)[0]
    delimiter = "," if path.endswith(".csv") else "\t"
    with open(path, encoding="utf-8") as stream:
        rows = [line.rstrip("\r\n").split(delimiter) for line in stream if line.strip()]
    if len(rows) < 2:
        raise ValueError(f"in_file: '{path}' has no row of signals; expected a header row of "
                         "region names and one row per volume (a region masker's TSV)")
    width = len(rows[0])
    bad = next((n for n, row in enumerate(rows[1:], start=2) if len(row) != width), None)
    if bad is not None:
        raise ValueError(f"in_file: '{path}' line {bad} has {len(rows[bad - 1])} values; the "
                         f"header names {width} regions")
    try:
        return np.array([[np.nan if v.strip() in ("n/a", "NaN", "nan", "") else float(v)
                          for v in row] for row in rows[1:]])
    except ValueError as exc:
        raise ValueError(f"in_file: '{path}' has a non-numeric value ({exc}); expected "
                         "numbers or n/a below the header") from None


class _SignalsToImageOutputSpec(TraitedSpec):
    out_file = File(desc="3D/4D NIfTI: labels and maps on the atlas grid, spheres on the mask's")


class SignalsToImage(SimpleInterface):
    """The region maskers' ``inverse_transform``: region signals painted back on a grid."""

    input_spec = _SignalsToImageInputSpec
    output_spec = _SignalsToImageOutputSpec

    def _run_interface(self, runtime):
        signals = read_signals(self.inputs.in_file)
        mask = defined(self.inputs.mask_file)
        if isdefined(self.inputs.labels_file):
            img = region_images.labels_image(signals, self.inputs.labels_file, mask=mask,
                                             background_label=self.inputs.background_label)
        elif isdefined(self.inputs.maps_file):
            img = region_images.maps_image(signals, self.inputs.maps_file, mask=mask)
        else:
            seeds, _ = seeds_from(self.inputs)
            img = region_images.spheres_image(
                signals, seeds, mask, radius=defined(self.inputs.radius),
                allow_overlap=self.inputs.allow_overlap,
            )
        out = output_path(self.inputs.in_file, "regions_image", ".nii.gz", runtime.cwd)
        from .io import save_nifti

        self._results["out_file"] = str(save_nifti(img, out))
        return runtime
