"""Region maskers as interfaces: labels, maps and spheres to BIDS ``*_timeseries.tsv``, and back.

Every region masker writes ``out_file`` (one column per region, named, ``n/a`` for empty
regions: the same columns for every subject processed with one atlas) and ``regions_file``
(index, name, voxel count, coverage). :class:`SignalsToImage` paints such a table back.
"""

from __future__ import annotations

import warnings

import numpy as np
from nipype.interfaces.base import File, SimpleInterface, TraitedSpec, isdefined, traits

from ..core.io.hashing import hash_reads
from ..core.io.images import load_img, n_volumes
from ..core.io.tables import format_table
from ..core.io.volumes import resolve_volumes
from ..core.regions import inverse as region_images
from ..core.regions import maskers as region_maskers
from ..core.regions.label_names import read_lut
from ..core.regions.spheres import read_seeds
from ..core.signal.censoring import kept_positions, reinsert_censored
from ..files import save_nifti, write_text
from .base import (
    CensoredSpecMixin,
    CleanSpecMixin,
    MaskersInputSpec,
    RegionExtractionSpecMixin,
    ThreadsSpecMixin,
    clean_args_from,
    defined,
    header_t_r,
    parse_volumes,
)
from .io import MASKED_FILE_DESC, output_path, read_masked_run, read_matrix, read_text_table

#: The columns of a region masker's ``regions_file``.
REGIONS_COLUMNS = ("index", "name", "voxel_count", "coverage")


class _RegionMaskerInputSpec(MaskersInputSpec, CleanSpecMixin, CensoredSpecMixin,
                             ThreadsSpecMixin, RegionExtractionSpecMixin):
    in_file = File(exists=True, mandatory=True, desc="3D or 4D image (NIfTI)")
    mask_file = File(exists=True, desc="binary mask: voxels outside it are left out")
    smoothing_fwhm = traits.Either(
        traits.Float, traits.List(traits.Float, minlen=3, maxlen=3),
        desc="Gaussian smoothing FWHM in mm before extraction",
    )
    min_coverage = traits.Range(
        0.0, 1.0, desc="regions with a smaller fraction of their voxels kept become n/a"
    )
    masked_file = File(exists=True, desc=MASKED_FILE_DESC)


class _RegionMaskerOutputSpec(TraitedSpec):
    out_file = File(desc="region signals: TSV, header = region names, one row per kept volume "
                    "(censored='nan': per selected volume, n/a for the censored ones)")
    regions_file = File(desc="TSV: index, name, voxel_count, coverage per region")
    t_r = traits.Either(None, traits.Float, desc="the TR used for cleaning")
    t_r_source = traits.Str(desc="where t_r came from: 'input t_r', 'NIfTI header' or ''")
    volumes = traits.List(traits.Int, desc="the input volume of each output row")
    in_file_sha256 = traits.Str(
        desc="SHA-256 (hex) of in_file's bytes, computed while it was streamed (no second read)"
    )


class _RegionMasker(SimpleInterface):
    """Shared run: common arguments in, the two TSVs out; subclasses call their core."""

    output_spec = _RegionMaskerOutputSpec
    _kind = ""

    def _extract(self, img, common):  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_interface(self, runtime):
        img = load_img(self.inputs.in_file, name="in_file")
        clean_args, provenance = clean_args_from(self.inputs, header_t_r=header_t_r(img))
        masked, masked_sha256 = (read_masked_run(self.inputs.masked_file, self.inputs.in_file)
                                 if isdefined(self.inputs.masked_file) else (None, None))
        common = {
            "masked": masked,
            "mask": defined(self.inputs.mask_file),
            "smoothing_fwhm": defined(self.inputs.smoothing_fwhm),
            "volumes": parse_volumes(defined(self.inputs.volumes)),
            "dtype": self.inputs.dtype,
            "clean_args": clean_args,
            "n_threads": self.inputs.num_threads,
        }
        # hashed as it is streamed; the masked rows know it from their own read
        with hash_reads(self.inputs.in_file, background=self.inputs.num_threads > 1,
                        known=masked_sha256) as digest:
            result = self._extract(img, common)
        signals, volumes = result.signals, result.volumes
        if self.inputs.censored == "nan":
            signals, volumes = _with_censored_rows(result, n_volumes(img), common["volumes"])
        source = self.inputs.in_file
        out = output_path(source, runtime.cwd, desc=self._kind, suffix="timeseries",
                          extension=".tsv")
        regions = output_path(source, runtime.cwd, desc=self._kind, suffix="regions",
                              extension=".tsv")
        rows = zip(np.asarray(result.ids).tolist(), result.names,
                   np.asarray(result.sizes).tolist(), np.asarray(result.coverage).tolist(),
                   strict=True)
        regions_text = format_table(REGIONS_COLUMNS, [(int(i), name, int(n), float(c))
                                                      for i, name, n, c in rows],
                                    name="regions_file")
        signals_text = format_table(result.names, np.atleast_2d(signals),
                                    name="out_file")  # both built before writing
        self._results["regions_file"] = str(write_text(regions_text, regions))
        self._results["out_file"] = str(write_text(signals_text, out))
        self._results["t_r"] = provenance.get("RepetitionTime")
        self._results["t_r_source"] = provenance.get("RepetitionTimeSource", "")
        self._results["volumes"] = [int(v) for v in volumes]
        self._results["in_file_sha256"] = digest.hexdigest()
        return runtime


def _with_censored_rows(result, n_input: int, volumes) -> tuple[np.ndarray, np.ndarray]:
    """The signals with one row per selected volume, NaN (``n/a``) for the censored ones, and
    the input volume of each row (``censored='nan'``)."""
    selected = resolve_volumes(volumes, n_input)
    positions = kept_positions(result.volumes, selected)
    return reinsert_censored(result.signals, positions, selected.size), selected


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
        return read_seeds(inputs.seeds_file)  # its errors name seeds_file
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
    labels_file = traits.Either(
        File(exists=True), traits.List(File(exists=True), minlen=2, maxlen=2),
        xor=["maps_file", "seeds", "seeds_file"],
        desc="the labels atlas the signals came from (GIFTI: a [hemi-L, hemi-R] pair)")
    maps_file = traits.Either(
        File(exists=True), traits.List(File(exists=True), minlen=2, maxlen=2),
        xor=["labels_file", "seeds", "seeds_file"],
        desc="the maps the signals came from (GIFTI: a [hemi-L, hemi-R] pair)")
    mask_file = traits.Either(
        File(exists=True), traits.List(File(exists=True), minlen=2, maxlen=2),
        desc="mask (required for spheres: the output grid; GIFTI: a [hemi-L, hemi-R] pair, "
        "alone it takes SurfaceMasker's .npy back to the pair)")
    background_label = traits.Int(0, usedefault=True, desc="labels: the label of 'no region'")
    allow_overlap = traits.Bool(False, usedefault=True, desc="spheres: allow shared voxels")
    t_r = traits.Float(desc="surfaces: the TR in seconds of the output .dtseries.nii (default "
                       "1) or of the GIFTI pair's TimeStep (default: none written)")


def read_signals(path: str, *, name: str = "in_file") -> np.ndarray:
    """Region signals, shape (volumes, regions), from a ``.npy`` or a region masker's TSV.

    A ``.tsv``'s first row is always its header, even when the region names are numbers (the
    default names are the label values or the indices); ``n/a`` is NaN. See
    :func:`~nipype_maskers.interfaces.io.read_text_table` for other text files.
    """
    if path.endswith(".npy"):
        return read_matrix(path, name=name)[0]
    table = read_text_table(path, name=name)
    if not table.cells:
        raise ValueError(f"{table.source}: no row of signals; expected a header row of region "
                         "names and one row per volume (a region masker's TSV)")
    return table.values


class _SignalsToImageOutputSpec(TraitedSpec):
    out_file = traits.Either(
        File(), traits.List(File()),
        desc="3D/4D NIfTI: labels and maps on the atlas grid, spheres on the mask's "
        "(a .dtseries.nii on the grayordinates of a .dlabel.nii or .dscalar.nii; for GIFTI "
        "pairs a list: [hemi-L, hemi-R] .func.gii, one data array per row of in_file)")


class SignalsToImage(SimpleInterface):
    """The region maskers' ``inverse_transform``: region signals painted back on a grid."""

    input_spec = _SignalsToImageInputSpec
    output_spec = _SignalsToImageOutputSpec

    def _run_interface(self, runtime):
        signals = read_signals(self.inputs.in_file)
        from .surface import gifti_signals_images  # here: interfaces.surface imports this module

        gifti = gifti_signals_images(signals, self.inputs, runtime.cwd)
        if gifti is not None:  # GIFTI pairs: back to a [hemi-L, hemi-R] pair of .func.gii
            self._results["out_file"] = gifti
            return runtime
        from .cifti import cifti_signals_image  # here: interfaces.cifti imports this module

        cifti = cifti_signals_image(signals, self.inputs, runtime.cwd)
        if cifti is not None:  # a .dlabel.nii or .dscalar.nii atlas: back to a .dtseries.nii
            self._results["out_file"] = str(cifti)
            return runtime
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
        # the inverse of a masker, as Unmask is: same suffix
        out = output_path(self.inputs.in_file, runtime.cwd, suffix="unmasked",
                          extension=".nii.gz")
        self._results["out_file"] = str(save_nifti(img, out))
        return runtime
