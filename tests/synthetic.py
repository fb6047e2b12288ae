"""Synthetic NIfTI data for the tests: odd shapes, non-identity affines."""

from __future__ import annotations

import numpy as np

SHAPE = (17, 19, 15)


def oblique_affine() -> np.ndarray:
    """Anisotropic voxels, a small rotation and an offset: swapped axes cannot hide."""
    angle = 0.1
    rotation = np.array([
        [np.cos(angle), -np.sin(angle), 0],
        [np.sin(angle), np.cos(angle), 0],
        [0, 0, 1],
    ])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([3.0, 2.5, 3.5])
    affine[:3, 3] = [-25.0, -30.0, -20.0]
    return affine


def make_epi(shape=SHAPE, n_volumes=12, *, dtype=np.float32, seed=0, background=0.0):
    """An EPI-like 4D array: a bright ellipsoidal 'brain' with structure, noise and a drift.

    The background is exactly ``background`` so that nilearn's background strategy finds it.
    """
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    radius = (grid[0] / 0.75) ** 2 + (grid[1] / 0.8) ** 2 + (grid[2] / 0.7) ** 2
    brain = radius < 1
    base = np.where(brain, 600 + 300 * np.cos(2 * grid[0]) * np.sin(3 * grid[1]), background)
    data = np.empty(shape + (n_volumes,), dtype=np.float64, order="F")
    for t in range(n_volumes):
        noise = rng.normal(0, 15, shape)
        data[..., t] = np.where(brain, base * (1 + 0.01 * np.sin(t / 3)) + noise, background)
    if np.issubdtype(dtype, np.integer):
        data = np.round(data)
    return np.asfortranarray(data.astype(dtype)), brain


def write_fmriprep_tree(root, subjects=("01", "02"), n_volumes=30, seed=0):
    """A small fMRIPrep-like derivatives tree (shape (17, 19, 15), TR 2 s) for workflow runs.

    Each subject has a preproc BOLD, its brain mask and a confounds TSV with the columns of
    nilearn's 'simple' strategy (motion with expansions, csf, white_matter, cosines), with
    fMRIPrep's ``n/a`` first row in the derivative columns.
    """
    from pathlib import Path

    import nibabel as nib

    root = Path(root)
    rng = np.random.default_rng(seed)
    runs = []
    for i, subject in enumerate(subjects):
        func = root / f"sub-{subject}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        data, brain = make_epi(n_volumes=n_volumes, seed=seed + i)
        img = nib.Nifti1Image(data, oblique_affine())
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = 2.0
        stem = f"sub-{subject}_task-rest_space-MNI152NLin2009cAsym"
        bold = func / f"{stem}_desc-preproc_bold.nii.gz"
        nib.save(img, bold)
        nib.save(nib.Nifti1Image(brain.astype(np.uint8), oblique_affine()),
                 func / f"{stem}_desc-brain_mask.nii.gz")
        columns, values = [], []
        for name in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"):
            x = np.cumsum(rng.normal(0, 0.05, n_volumes))
            d = np.concatenate([[np.nan], np.diff(x)])
            for suffix, v in (("", x), ("_derivative1", d), ("_power2", x**2),
                              ("_derivative1_power2", d**2)):
                columns.append(name + suffix)
                values.append(v)
        for name in ("csf", "white_matter", "global_signal"):
            columns.append(name)
            values.append(rng.normal(0, 1, n_volumes))
        t = np.arange(n_volumes)
        for k in range(1, 3):
            columns.append(f"cosine{k - 1:02d}")
            values.append(np.sqrt(2 / n_volumes) * np.cos(np.pi / n_volumes * (t + 0.5) * k))
        table = np.column_stack(values)
        lines = ["\t".join(columns)] + [
            "\t".join("n/a" if np.isnan(v) else repr(float(v)) for v in row) for row in table]
        (func / f"sub-{subject}_task-rest_desc-confounds_timeseries.tsv").write_text(
            "\n".join(lines) + "\n")
        runs.append(bold)
    labels = np.zeros(data.shape[:3], np.int16)
    labels[2:8, 3:10, 2:8] = 1
    labels[8:14, 3:10, 2:8] = 5
    labels[4:12, 10:16, 7:12] = 17
    nib.save(nib.Nifti1Image(labels, oblique_affine()), root.parent / "atlas-Toy_dseg.nii.gz")
    seeds = [oblique_affine()[:3] @ [*ijk, 1] for ijk in ((5, 5, 5), (11, 12, 8))]
    (root.parent / "atlas-Balls_seeds.tsv").write_text(
        "x\ty\tz\tname\n" + "".join(f"{x}\t{y}\t{z}\tseed{i}\n"
                                    for i, (x, y, z) in enumerate(seeds)))
    return runs


def run_in(interface, folder):
    """Run a Nipype interface in ``folder`` (created), its warnings silenced; its outputs.

    A masker writes its outputs in the current directory, as a node's would be in its own.
    """
    import os
    import warnings
    from pathlib import Path

    Path(folder).mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return interface.run().outputs
    finally:
        os.chdir(cwd)
