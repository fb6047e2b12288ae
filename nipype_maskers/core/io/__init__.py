"""Reading images and tables: loading (``images``), volume selection and reading volume by
volume (``volumes``, ``streaming``), the SHA-256 of what is read (``hashing``), text tables
(``tables``)."""
