"""M6 benchmark: the visual report of a 300-volume MNI 2 mm run (target: under 10 s).

Usage::

    python benchmarks/bench_reports.py [--volumes 300]

On the synthetic MNI 2 mm float32 ``.nii.gz`` of ``common.bold_file``, with the demo atlases
(50 parcels, 16 maps, 20 seeds; built once in ``benchmarks/_data/report_atlases``), the brain
mask of the simulation and its motion parameters as confounds (FD from them; volumes above
0.5 mm, or above the 95th percentile of FD if higher, censored). Each case runs in a fresh
process (time and peak memory of the work only; the regions tables and stand-in cleaned
region signals are made in the untimed setup):

1. ``summarize_bold``: the one streamed pass over the run (mean image + 600 sampled voxels);
2. the whole report through the functions: that pass, the mask, labels, maps and spheres
   reportlets, the carpet plot and the HTML page;
3. the whole report as the Nipype workflow ``init_report_wf`` (Linear plugin), as the
   prebuilt workflows run it.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import DATA_DIR, bold_file, report, run_case


def inputs(n_volumes: int) -> dict:
    """The run, its mask, confounds, sample mask, FD table and the demo atlases (cached)."""
    import nibabel as nib

    from nipype_maskers.demo.atlases import write_demo_atlases
    from nipype_maskers.demo.data import MNI_2MM_AFFINE, anatomy

    bold = bold_file(n_volumes)
    mask = DATA_DIR / "report_brain_mask.nii.gz"
    if not mask.exists():
        nib.save(nib.Nifti1Image(anatomy().brain.astype(np.uint8), MNI_2MM_AFFINE), mask)
    atlases = write_demo_atlases(DATA_DIR / "report_atlases")
    motion_file = bold.with_suffix("").with_suffix(".motion.tsv")
    motion = np.loadtxt(motion_file, skiprows=1)
    moves = np.abs(np.diff(motion, axis=0))
    fd = np.r_[0.0, moves[:, :3].sum(axis=1) + 50.0 * moves[:, 3:].sum(axis=1)]
    stem = f"report_{n_volumes}"
    confounds = DATA_DIR / f"{stem}_confounds.tsv"
    np.savetxt(confounds, motion, delimiter="\t", comments="",
               header="\t".join(["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]))
    fd_file = DATA_DIR / f"{stem}_fd.tsv"
    np.savetxt(fd_file, fd[:, None], header="framewise_displacement", comments="")
    sample_mask = DATA_DIR / f"{stem}_samplemask.tsv"
    # 0.5 mm, or the 95th percentile when the simulated motion is larger (about 5% censored)
    kept = np.flatnonzero(fd <= max(0.5, float(np.percentile(fd, 95))))
    sample_mask.write_text("sample_mask\n" + "".join(f"{i}\n" for i in kept))
    return {"bold": str(bold), "mask": str(mask), "labels": str(atlases.labels),
            "maps": str(atlases.maps), "seeds": str(atlases.seeds), "confounds": str(confounds),
            "fd": str(fd_file), "sample_mask": str(sample_mask), "n_censored":
            int(n_volumes - kept.size)}


SETUP = """
import os, tempfile
import numpy as np
from nipype_maskers.core.regions import maskers as region_maskers
from nipype_maskers.core.regions.spheres import read_seeds
paths = {paths!r}
work = tempfile.mkdtemp(prefix="bench_reports_")
os.chdir(work)
seeds, seed_names = read_seeds(paths["seeds"])
tables = {{}}
for kind, result in (
        ("labels", region_maskers.labels_masker(paths["bold"], paths["labels"],
                                                mask=paths["mask"], volumes=slice(0, 4))),
        ("maps", region_maskers.maps_masker(paths["bold"], paths["maps"], mask=paths["mask"],
                                            volumes=slice(0, 4))),
        ("spheres", region_maskers.spheres_masker(paths["bold"], seeds, radius=6.0,
                                                  mask=paths["mask"], volumes=slice(0, 4)))):
    path = os.path.join(work, f"sub-01_atlas-{{kind}}_regions.tsv")
    with open(path, "w") as f:
        f.write("index\\tname\\tvoxel_count\\tcoverage\\n" + "".join(
            f"{{int(i)}}\\t{{n}}\\t{{int(c)}}\\t{{float(v)!r}}\\n" for i, n, c, v in
            zip(result.ids, result.names, result.sizes, result.coverage)))
    tables[kind] = path
    # cleaned signals of the kept volumes, as the maskers write them (values are irrelevant)
    n_kept = sum(1 for line in open(paths["sample_mask"]) if line.strip()) - 1
    values = np.random.default_rng(0).normal(size=(n_kept, len(result.names)))
    with open(os.path.join(work, f"sub-01_atlas-{{kind}}_timeseries.tsv"), "w") as f:
        f.write("\\t".join(result.names) + "\\n" + "".join(
            "\\t".join(repr(float(v)) for v in row) + "\\n" for row in values))
{imports}
"""

FUNCTIONS = """
from nipype_maskers.interfaces.io import read_matrix
from nipype_maskers.interfaces.base import read_sample_mask
from nipype_maskers.interfaces.reports import read_regions_table
from nipype_maskers.reporting import atlas, carpet, html, mask as mask_report
"""

FUNCTIONS_BODY = """
summary = carpet.summarize_bold(paths["bold"], paths["mask"])
mean = summary.mean
figures = [mask_report.plot_mask(mean, paths["mask"], strategy="fmriprep"),
           atlas.plot_labels(mean, paths["labels"], mask=paths["mask"]),
           atlas.plot_maps(mean, paths["maps"], mask=paths["mask"]),
           atlas.plot_spheres(mean, seeds, 6.0, mask=paths["mask"])]
tables_html = [atlas.regions_table_html(read_regions_table(tables[k]), title=k)
               for k in ("labels", "maps", "spheres")]
confounds, names = read_matrix(paths["confounds"])
kept = read_sample_mask(paths["sample_mask"])
fd = read_matrix(paths["fd"])[0]
cleaned = [("after", carpet.clean_for_display(summary.carpet, confounds=confounds,
                                               sample_mask=kept))]
from nipype_maskers.interfaces.regions import read_signals
cleaned += [(k, read_signals(tables[k].replace("_regions", "_timeseries")))
            for k in ("labels", "maps", "spheres")]
figures.append(carpet.plot_carpet(summary.carpet, cleaned=cleaned,
                                  confounds=confounds, confound_names=names, sample_mask=kept,
                                  fd=fd, fd_threshold=0.5, t_r=2.0))
sections = [html.Section(f"figure {i}", html.inline_svg(svg, f"r{i}-"))
            for i, svg in enumerate(figures)] + [html.Section("t", t) for t in tables_html]
page = html.assemble_report("bench", sections, {"a": 1})
open(os.path.join(work, "report.html"), "w").write(page)
print("report size", len(page))
"""

WORKFLOW = """
from nipype_maskers.workflows.reports import init_report_wf
from nipype_maskers.workflows.timeseries import LabelsAtlas, MapsAtlas, SpheresAtlas
from nipype import config
config.set("execution", "remove_unnecessary_outputs", "false")
wf = init_report_wf(labels=[LabelsAtlas("parcels", paths["labels"])],
                    maps=[MapsAtlas("maps", paths["maps"])],
                    spheres=[SpheresAtlas("seeds", paths["seeds"], 6.0)])
wf.base_dir = work
node = wf.inputs.inputnode
node.bold_file, node.mask_file, node.mask_strategy = paths["bold"], paths["mask"], "fmriprep"
node.regressors_file, node.sample_mask_file = paths["confounds"], paths["sample_mask"]
node.fd_file, node.parameters = paths["fd"], {"MaskStrategy": "fmriprep"}
node.regions_files = [tables[k] for k in ("labels", "maps", "spheres")]
node.timeseries_files = [tables[k].replace("_regions", "_timeseries")
                         for k in ("labels", "maps", "spheres")]
"""

WORKFLOW_BODY = """
wf.run()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=300)
    args = parser.parse_args()
    paths = inputs(args.volumes)
    print(f"# visual report benchmark: {args.volumes} volumes, MNI 2 mm float32 .nii.gz, "
          f"{paths['n_censored']} censored volumes")
    rows = [
        ("summarize_bold (one streamed pass: mean + 600 voxels)", run_case(
            SETUP.format(paths=paths, imports="from nipype_maskers.reporting import carpet"),
            "carpet.summarize_bold(paths['bold'], paths['mask'])")),
        ("whole report, functions (pass + 5 figures + 3 tables + HTML)", run_case(
            SETUP.format(paths=paths, imports=FUNCTIONS), FUNCTIONS_BODY)),
        ("whole report, Nipype init_report_wf (Linear plugin)", run_case(
            SETUP.format(paths=paths, imports=WORKFLOW), WORKFLOW_BODY)),
    ]
    report("visual report (target: under 10 s)", rows)


if __name__ == "__main__":
    main()
