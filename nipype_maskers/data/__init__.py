"""Small data shipped with the package (see the LICENSE-* notices beside each file)."""

from pathlib import Path

DATA_DIR = Path(__file__).parent

#: The MNI ICBM152 2009a templates behind the template mask strategies.
MNI152_TEMPLATES = {
    "whole-brain": DATA_DIR / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": DATA_DIR / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": DATA_DIR / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
