"""Visual reports as interfaces: reportlets (SVG or PNG) and the per-run HTML report.

- :class:`SummarizeBold`: one streamed pass over a run: its mean image and a sample of voxel
  time series, so the reportlets never read the 4D data again;
- :class:`MaskReport`, :class:`AtlasReport`, :class:`SignalsReport`: the reportlets;
- :class:`RunReport`: reportlets and parameters gathered in one self-contained HTML page;
- :class:`SurfaceSignalsReport`: a surface or CIFTI run's carpet, structures and parcels'
  coverage, one HTML fragment (no mesh drawn).

The reportlets need matplotlib (``pip install nipype-maskers[reports]``); this module imports
without it, and a reportlet asked for without it fails with that instruction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nipype.interfaces.base import (
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..core.io.images import load_img
from ..core.io.tables import read_table
from ..core.spatial.masking import load_mask
from ..core.regions.spheres import read_seeds
from ..files import save_nifti, write_bytes, write_text
from ..reporting import require_matplotlib
from .base import MaskersInputSpec, defined, header_t_r, read_sample_mask
from .io import output_path, read_masked_run, read_matrix, save_npy, split_ext
from .regions import REGIONS_COLUMNS, read_signals

_FD_COLUMN = "framewise_displacement"


def _write_report(content: str | bytes, path: Path) -> str:
    """Write SVG text or PNG bytes atomically."""
    if isinstance(content, bytes):
        return str(write_bytes(content, path))
    return str(write_text(content, path))


class _ReportletInputSpec(MaskersInputSpec):
    out_format = traits.Enum("svg", "png", usedefault=True,
                             desc="'svg' (inlined in the HTML report) or 'png'")


class _ReportletOutputSpec(TraitedSpec):
    out_report = File(desc="the reportlet (SVG or PNG)")


# --------------------------------------------------------------------------------------------
class _SummarizeBoldInputSpec(MaskersInputSpec):
    in_file = File(exists=True, mandatory=True, desc="the run (4D NIfTI)")
    mask_file = File(exists=True, mandatory=True, desc="its brain mask (the run's grid)")
    max_voxels = traits.Range(1, value=600, usedefault=True,
                              desc="voxels sampled (evenly, in file order) for the carpet plot")
    masked_file = File(exists=True, requires=["mean_file"],
                       desc="the run already read: NiftiMasker's unsmoothed out_file of "
                       "in_file in mask_file; with mean_file, no volume is read again (the "
                       "carpet's non-finite values are then 0, as the maskers read them)")
    mean_file = File(exists=True, requires=["masked_file"],
                     desc="NiftiMasker's mean_file of the same read (mean_image=True)")


class _SummarizeBoldOutputSpec(TraitedSpec):
    mean_file = File(desc="the mean image over time (float32 NIfTI)")
    carpet_file = File(desc="(volumes x sampled voxels) time series, .npy float32")
    t_r = traits.Either(None, traits.Float, desc="the TR from the header (None if unknown)")


class SummarizeBold(SimpleInterface):
    """Read a run once, streamed: its mean image and sampled voxel time series."""

    input_spec = _SummarizeBoldInputSpec
    output_spec = _SummarizeBoldOutputSpec

    def _run_interface(self, runtime):
        from ..reporting.carpet import carpet_from_rows, summarize_bold

        img = load_img(self.inputs.in_file, name="in_file", ndim=4)
        source = self.inputs.in_file
        carpet = output_path(source, runtime.cwd, desc="carpet", suffix="timeseries",
                             extension=".npy")
        if isdefined(self.inputs.masked_file):
            run, _ = read_masked_run(self.inputs.masked_file, source)
            run.check_source(img)
            run.check_smoothing(None)
            mask, _ = load_mask(self.inputs.mask_file, name="mask_file")
            rows, _ = carpet_from_rows(run, mask, self.inputs.max_voxels)
            self._results["mean_file"] = self.inputs.mean_file
            self._results["carpet_file"] = str(save_npy(rows, carpet))
        else:
            summary = summarize_bold(img, self.inputs.mask_file,
                                     max_voxels=self.inputs.max_voxels)
            mean = output_path(source, runtime.cwd, desc="mean", suffix="boldref",
                               extension=".nii.gz")
            self._results["mean_file"] = str(save_nifti(summary.mean, mean))
            self._results["carpet_file"] = str(save_npy(summary.carpet, carpet))
        self._results["t_r"] = header_t_r(img)
        return runtime


# --------------------------------------------------------------------------------------------
class _MaskReportInputSpec(_ReportletInputSpec):
    in_file = File(exists=True, mandatory=True,
                   desc="the mean image (3D), or the run (4D: averaged, streamed)")
    mask_file = File(exists=True, mandatory=True, desc="the mask to show")
    mask_strategy = traits.Str(desc="how the mask was made ('epi', 'fmriprep', 'given'...)")
    n_slices = traits.Range(1, 20, value=7, usedefault=True, desc="slices per mosaic")


class MaskReport(SimpleInterface):
    """The mask's outline and kept voxels over the mean image, with its counts."""

    input_spec = _MaskReportInputSpec
    output_spec = _ReportletOutputSpec

    def _run_interface(self, runtime):
        require_matplotlib()
        from ..reporting.mask import plot_mask

        content = plot_mask(self.inputs.in_file, self.inputs.mask_file,
                            strategy=defined(self.inputs.mask_strategy),
                            n_slices=self.inputs.n_slices, fmt=self.inputs.out_format)
        out = output_path(self.inputs.in_file, runtime.cwd, desc="mask", suffix="report",
                          extension=f".{self.inputs.out_format}")
        self._results["out_report"] = _write_report(content, out)
        return runtime


# --------------------------------------------------------------------------------------------
_ATLAS_KINDS = {"labels_file": "labels", "maps_file": "maps", "seeds_file": "spheres"}


class _AtlasReportInputSpec(_ReportletInputSpec):
    in_file = File(exists=True, mandatory=True,
                   desc="the mean image (3D), or the run (4D: averaged, streamed)")
    labels_file = File(exists=True, xor=["maps_file", "seeds_file"],
                       desc="a labels atlas (3D integer NIfTI)")
    maps_file = File(exists=True, xor=["labels_file", "seeds_file"],
                     desc="a maps atlas (4D NIfTI, one map per volume)")
    seeds_file = File(exists=True, xor=["labels_file", "maps_file"],
                      desc="seeds: TSV/CSV with x, y, z (mm) and an optional name column")
    radius = traits.Float(desc="spheres: radius in mm (unset: the nearest voxel)")
    background_label = traits.Int(0, usedefault=True, desc="labels: the label of 'no region'")
    n_maps = traits.Range(1, value=12, usedefault=True, desc="maps: how many to draw")
    threshold = traits.Range(0.0, 1.0, value=0.5, usedefault=True, exclude_low=True,
                             exclude_high=True,
                             desc="maps: contour at this fraction of each map's maximum")
    regions_file = File(exists=True,
                        desc="the masker's regions TSV (index, name, voxel_count, coverage)")
    mask_file = File(exists=True, desc="the mask used (its outline is drawn)")
    atlas_name = traits.Str(desc="the atlas's name, in the titles")
    n_slices = traits.Range(1, 20, value=7, usedefault=True, desc="slices per mosaic")


class _AtlasReportOutputSpec(_ReportletOutputSpec):
    out_table = File(desc="the regions table, an HTML fragment (with regions_file)")


def read_regions_table(path: str, *, name: str = "regions_file"
                       ) -> list[tuple[int, str, int, float]]:  # fmt: skip
    """A masker's regions TSV as (index, name, voxel_count, coverage) rows."""
    table = read_table(path, name=name, header=True, delimiter="\t", numeric=False)
    if tuple(table.columns[:4]) != REGIONS_COLUMNS:
        raise ValueError(f"{table.source}: the header starts with {table.columns[:4]}; "
                         f"expected {' '.join(REGIONS_COLUMNS)} (a region masker's "
                         "regions_file)")
    integers = ["index", "voxel_count"]
    counts = table.numbers(integers)
    bad = ~np.isfinite(counts) | (counts != np.round(counts))
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        raise ValueError(f"{table.source}: line {table.lines[row]}: {integers[col]} "
                         f"{table.text(integers[col])[row]!r} is not an integer; expected "
                         "integer indices and voxel counts")
    coverage = table.numbers(["coverage"])[:, 0]
    return [(int(i), region, int(n), float(c)) for (i, n), region, c
            in zip(counts.tolist(), table.text("name"), coverage.tolist(), strict=True)]


class AtlasReport(SimpleInterface):
    """A labels atlas, a maps atlas or spheres over the mean image, and the regions table."""

    input_spec = _AtlasReportInputSpec
    output_spec = _AtlasReportOutputSpec

    def _run_interface(self, runtime):
        given = [name for name in _ATLAS_KINDS if isdefined(getattr(self.inputs, name))]
        if len(given) != 1:
            raise ValueError("AtlasReport: give exactly one of labels_file, maps_file or "
                             f"seeds_file (got {given or 'none'})")
        require_matplotlib()
        from ..reporting import atlas

        kind = _ATLAS_KINDS[given[0]]
        name = defined(self.inputs.atlas_name, "")
        title = f"{kind.capitalize()} atlas" + (f" {name}" if name else "")
        common = {"mask": defined(self.inputs.mask_file), "n_slices": self.inputs.n_slices,
                  "fmt": self.inputs.out_format, "title": title}
        if kind == "labels":
            content = atlas.plot_labels(self.inputs.in_file, self.inputs.labels_file,
                                        background_label=self.inputs.background_label,
                                        **common)
        elif kind == "maps":
            content = atlas.plot_maps(self.inputs.in_file, self.inputs.maps_file,
                                      n_maps=self.inputs.n_maps,
                                      threshold=self.inputs.threshold, **common)
        else:
            seeds, _ = read_seeds(self.inputs.seeds_file)  # its errors name seeds_file
            content = atlas.plot_spheres(self.inputs.in_file, seeds,
                                         defined(self.inputs.radius), **common)
        atlas_entity = {"atlas": name} if name else {}
        out = output_path(self.inputs.in_file, runtime.cwd, desc=kind, suffix="report",
                          extension=f".{self.inputs.out_format}", **atlas_entity)
        self._results["out_report"] = _write_report(content, out)
        if isdefined(self.inputs.regions_file):
            rows = read_regions_table(self.inputs.regions_file)
            table = atlas.regions_table_html(rows, title=f"Regions of the {title[0].lower()}"
                                             f"{title[1:]}")
            out = output_path(self.inputs.in_file, runtime.cwd, desc=f"{kind}regions",
                              suffix="report", extension=".html", **atlas_entity)
            self._results["out_table"] = str(write_text(table, out))
        return runtime


# --------------------------------------------------------------------------------------------
class _SignalsReportInputSpec(_ReportletInputSpec):
    in_file = File(exists=True, mandatory=True,
                   desc="signals before cleaning: the run (4D NIfTI, with mask_file; voxels "
                   "sampled) or a matrix (.npy, or TSV with a header) of volumes x series")
    mask_file = File(exists=True, desc="the run's mask (when in_file is the run)")
    cleaned_files = InputMultiObject(
        File(exists=True),
        desc="cleaned signals (region TSVs or .npy), one panel each; rows: every volume or "
        "the kept ones")
    cleaned_labels = traits.List(traits.Str, desc="a label per cleaned file (default: name)")
    confounds_file = File(exists=True, desc="the confounds regressed out (TSV with header)")
    sample_mask_file = File(exists=True, desc="the kept volumes, one index per line")
    fd_file = File(exists=True, desc="a table with a framewise_displacement column (e.g. "
                   "fMRIPrep's confounds); default: that column of confounds_file, if any")
    fd_threshold = traits.Float(desc="a threshold line on the FD panel (mm)")
    t_r = traits.Either(None, traits.Float,
                        desc="repetition time (s); default: the run's header (None: unknown)")
    max_voxels = traits.Range(1, value=600, usedefault=True,
                              desc="voxels sampled from a 4D in_file")
    raw_label = traits.Str(desc="what in_file's series are (default: 'voxels (sampled)' for "
                           "a 4D image, 'series' for a matrix)")


def _fd_column(table: np.ndarray, header: list[str] | None) -> np.ndarray | None:
    """The framewise_displacement column of a table read by ``read_matrix``, if it has one."""
    if header is None or _FD_COLUMN not in header:
        return None
    return np.atleast_2d(table.T).T[:, header.index(_FD_COLUMN)]


class SignalsReport(SimpleInterface):
    """Carpet plots before and after cleaning, with the confounds, censoring and FD.

    With confounds or a sample mask, a first 'after' panel shows the same raw signals with
    their trend and the confounds regressed out and the censored volumes dropped (what the
    denoising does, without filters), computed here for display; then one panel per
    ``cleaned_files`` (the signals the maskers wrote).
    """

    input_spec = _SignalsReportInputSpec
    output_spec = _ReportletOutputSpec

    def _run_interface(self, runtime):
        require_matplotlib()
        from ..reporting.carpet import clean_for_display, plot_carpet, summarize_bold

        source = self.inputs.in_file
        t_r = defined(self.inputs.t_r)
        if source.endswith((".nii", ".nii.gz")):
            if not isdefined(self.inputs.mask_file):
                raise ValueError("mask_file: needed when in_file is a 4D image (the voxels "
                                 "are sampled inside it)")
            img = load_img(source, name="in_file", ndim=4)
            raw = summarize_bold(img, self.inputs.mask_file,
                                 max_voxels=self.inputs.max_voxels).carpet
            raw_label = "voxels (sampled)"
            t_r = t_r or header_t_r(img)
        else:
            raw = (read_signals(source) if source.endswith((".tsv", ".csv"))
                   else read_matrix(source)[0])
            raw_label = "series"
        raw_label = defined(self.inputs.raw_label, raw_label)
        confounds, header = None, None
        if isdefined(self.inputs.confounds_file):
            confounds, header = read_matrix(self.inputs.confounds_file, name="confounds_file")
        names = header or ()
        sample_mask = (read_sample_mask(self.inputs.sample_mask_file)
                       if isdefined(self.inputs.sample_mask_file) else None)
        fd = None
        if isdefined(self.inputs.fd_file):
            fd = _fd_column(*read_matrix(self.inputs.fd_file, name="fd_file"))
        if fd is None and confounds is not None:  # the table read above, not a second read
            fd = _fd_column(confounds, header)
        cleaned = []
        if confounds is not None or sample_mask is not None:
            cleaned.append(("after: trend, confounds\nout (display only)",
                            clean_for_display(raw, confounds=confounds,
                                              sample_mask=sample_mask)))
        files = list(defined(self.inputs.cleaned_files, []))
        labels = list(defined(self.inputs.cleaned_labels, []))
        if files and labels and len(labels) != len(files):
            raise ValueError(f"cleaned_labels: {len(labels)} labels for {len(files)} "
                             "cleaned_files; give one per file")
        for number, path in enumerate(files):
            matrix = read_signals(path, name="cleaned_files")  # .npy or a masker's TSV
            label = labels[number] if labels else split_ext(path)[0]
            cleaned.append((f"after: {label}", matrix))  # the masker's cleaned output
        content = plot_carpet(raw, cleaned=cleaned, confounds=confounds, confound_names=names,
                              sample_mask=sample_mask, fd=fd,
                              fd_threshold=defined(self.inputs.fd_threshold), t_r=t_r,
                              raw_label=raw_label, fmt=self.inputs.out_format)
        out = output_path(source, runtime.cwd, desc="signals", suffix="report",
                          extension=f".{self.inputs.out_format}")
        self._results["out_report"] = _write_report(content, out)
        return runtime


# --------------------------------------------------------------------------------------------
class _RunReportInputSpec(MaskersInputSpec):
    reportlets = InputMultiObject(File(exists=True), mandatory=True,
                                  desc="reportlets in order: .svg, .png or .html fragments")
    parameters = traits.Dict(traits.Str, traits.Any,
                             desc="the parameters of the run, shown as a table")
    title = traits.Str(desc="the page's title (default: from source_file)")
    source_file = File(desc="the run the report is about: names the output (need not exist)")


class _RunReportOutputSpec(TraitedSpec):
    out_report = File(desc="the self-contained HTML report (..._report.html)")


class RunReport(SimpleInterface):
    """Reportlets and the parameters table gathered in one self-contained HTML page."""

    input_spec = _RunReportInputSpec
    output_spec = _RunReportOutputSpec

    def _run_interface(self, runtime):
        from .. import __version__
        from ..reporting.html import assemble_report, read_reportlet

        source = defined(self.inputs.source_file, "run")
        sections = [read_reportlet(path, number)
                    for number, path in enumerate(self.inputs.reportlets, start=1)]
        out = output_path(source, runtime.cwd, desc=None, suffix="report", extension=".html")
        default = out.name[: -len("_report.html")]
        title = defined(self.inputs.title) or f"Report: {default}"
        page = assemble_report(title, sections, defined(self.inputs.parameters, {}),
                               subtitle=f"{Path(source).name} - nipype-maskers {__version__}")
        self._results["out_report"] = str(write_text(page, out))
        return runtime


# --------------------------------------------------------------------------------------------
# Surface and CIFTI runs
# --------------------------------------------------------------------------------------------
class _SurfaceSignalsReportInputSpec(_ReportletInputSpec):
    in_file = InputMultiObject(File(exists=True), mandatory=True,
                               desc="the run before cleaning: one .dtseries.nii, or the pair "
                               "[hemi-L .func.gii, hemi-R .func.gii]")
    labels_file = InputMultiObject(
        File(exists=True), desc="an atlas ordering the carpet's rows parcel by parcel: a "
        ".dlabel.nii, or a pair of GIFTI label files (hemi-L, hemi-R)")
    timeseries_files = InputMultiObject(
        File(exists=True), desc="the region maskers' cleaned *_timeseries.tsv (or .npy), one "
        "carpet panel each")
    regions_files = InputMultiObject(File(exists=True),
                                     desc="the region maskers' *_regions.tsv, one coverage "
                                     "table each (same order as timeseries_files)")
    atlas_names = traits.List(traits.Str, desc="one name per timeseries/regions file")
    confounds_file = File(exists=True, desc="the confounds regressed out (TSV with header)")
    sample_mask_file = File(exists=True, desc="the kept volumes, one index per line")
    fd_file = File(exists=True, desc="a table with a framewise_displacement column (e.g. "
                   "fMRIPrep's confounds); default: that column of confounds_file, if any")
    fd_threshold = traits.Float(desc="a threshold line on the FD panel (mm)")
    t_r = traits.Either(None, traits.Float, desc="repetition time (s); default: the file's "
                        "(CIFTI SeriesAxis step, GIFTI TimeStep)")
    max_grayordinates = traits.Range(1, value=600, usedefault=True,
                                     desc="grayordinates/vertices sampled for the carpet")


class _SurfaceSignalsReportOutputSpec(_ReportletOutputSpec):
    source_file = traits.Str(desc="the run's name without its hemi- entity (for RunReport's "
                             "source_file: names the page after the run, not a hemisphere)")


class SurfaceSignalsReport(SimpleInterface):
    """The report of a surface or CIFTI run, as one HTML fragment for :class:`RunReport`.

    The carpet of the grayordinates (or vertices) ordered by structure, then parcel, before
    cleaning and after it (as :class:`SignalsReport`: the display-only cleaning of the same
    rows, then one panel per region masker output), the structures table (sizes and empty
    grayordinates) and each atlas's coverage table. No mesh is drawn.
    """

    input_spec = _SurfaceSignalsReportInputSpec
    output_spec = _SurfaceSignalsReportOutputSpec

    def _run_interface(self, runtime):
        import base64
        import hashlib
        import html

        require_matplotlib()
        from ..reporting.atlas import regions_table_html
        from ..reporting.carpet import clean_for_display
        from ..reporting.html import inline_svg
        from ..reporting.surface import (
            dlabel_colours,
            plot_surface_carpet,
            read_surface_regions_table,
            structures_table_html,
            summarize_surface_run,
        )

        in_files = list(self.inputs.in_file)
        summary = summarize_surface_run(in_files, labels_file=defined(self.inputs.labels_file),
                                        max_rows=self.inputs.max_grayordinates)
        files = list(defined(self.inputs.timeseries_files, []))
        tables = list(defined(self.inputs.regions_files, []))
        names = list(defined(self.inputs.atlas_names, []))
        for what, given in (("timeseries_files", files), ("regions_files", tables)):
            if names and given and len(names) != len(given):
                raise ValueError(f"atlas_names: {len(names)} names for {len(given)} {what}; "
                                 "give one per file")
        confounds, header = None, None
        if isdefined(self.inputs.confounds_file):
            confounds, header = read_matrix(self.inputs.confounds_file, name="confounds_file")
        sample_mask = (read_sample_mask(self.inputs.sample_mask_file)
                       if isdefined(self.inputs.sample_mask_file) else None)
        fd = None
        if isdefined(self.inputs.fd_file):
            fd = _fd_column(*read_matrix(self.inputs.fd_file, name="fd_file"))
        if fd is None and confounds is not None:
            fd = _fd_column(confounds, header)
        cleaned = []
        if summary.carpet.size and (confounds is not None or sample_mask is not None):
            cleaned.append(("after: trend, confounds\nout (display only)",
                            clean_for_display(summary.carpet, confounds=confounds,
                                              sample_mask=sample_mask)))
        for number, path in enumerate(files):
            label = names[number] if names else split_ext(path)[0]
            cleaned.append((f"after: {label}", read_signals(path, name="timeseries_files")))
        t_r = defined(self.inputs.t_r) or summary.t_r
        content = plot_surface_carpet(summary._replace(t_r=t_r), cleaned=cleaned,
                                      confounds=confounds, confound_names=header or (),
                                      sample_mask=sample_mask, fd=fd,
                                      fd_threshold=defined(self.inputs.fd_threshold),
                                      fmt=self.inputs.out_format)
        source = in_files[0]
        prefix = "s" + hashlib.sha256(str(source).encode()).hexdigest()[:8] + "-"
        if isinstance(content, bytes):
            figure = (f'<img alt="carpet" src="data:image/png;base64,'
                      f'{base64.b64encode(content).decode("ascii")}">')
        else:
            figure = inline_svg(content, prefix)
        unit = "grayordinates" if summary.kind == "CIFTI" else "vertices"
        parts = [f"<h3>Signals of the {unit} ({html.escape(summary.kind)})</h3>",
                 f'<div class="reportlet">{figure}</div>',
                 structures_table_html(summary, title=f"Structures of the {unit}")]
        label_table = {}
        labels_files = list(defined(self.inputs.labels_file, []))
        if len(labels_files) == 1 and labels_files[0].endswith(".dlabel.nii"):
            label_table = dlabel_colours(labels_files[0])
        for number, path in enumerate(tables):
            name = names[number] if names else split_ext(path)[0]
            rows = read_surface_regions_table(path)
            # the dlabel's own colours for its parcels (same index and name)
            colours = {index: label_table[index][1] for index, region, _, _ in rows
                       if label_table.get(index, ("",))[0] == region}
            parts.append(regions_table_html(
                rows, title=f"Parcels of the atlas {name}", unit=unit,
                covered="with signal (not all zero or non-finite)", colours=colours))
        out = output_path(source, runtime.cwd, desc="signals", suffix="report",
                          extension=".html", hemi=None)
        self._results["out_report"] = str(write_text("\n".join(parts) + "\n", out))
        self._results["source_file"] = str(Path(source).with_name(
            output_path(source, ".", hemi=None).name))
        return runtime
