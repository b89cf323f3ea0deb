"""Built-in exporters: each writes one file format and loads it back for the export check."""
