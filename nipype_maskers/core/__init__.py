"""Pure numpy/scipy/nibabel implementation of the masker operations (no nipype)."""
