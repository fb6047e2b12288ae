"""Denoising quality control: per-run figures and the group QC-FC.

- :mod:`.denoising`: per run, from the fMRIPrep confounds, the kept volumes and the signals
  before and after cleaning: framewise displacement, censoring, DVARS, the FD-DVARS
  correlation, degrees of freedom lost and the remaining duration.
- :mod:`.qcfc`: at the group level, the correlation across subjects between each edge's
  connectivity and mean framewise displacement (QC-FC), its summaries and its distance
  dependence; region centroids from a labels image.
- :mod:`.stats`: Pearson's r and its p-value, ranks, Benjamini-Hochberg, in closed form.

Pure numpy (``scipy.special`` imported lazily for p-values); nothing here writes files.
"""
