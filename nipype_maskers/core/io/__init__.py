"""Reading images and tables: loading, volume selection, streaming volume by volume."""
