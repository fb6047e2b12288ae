"""The bundled demo: simulated fMRIPrep-like runs on the MNI 2 mm grid, and demo atlases."""
