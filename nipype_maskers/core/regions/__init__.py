"""Region signals from labels, maps and spheres atlases, and region signals back to images."""
