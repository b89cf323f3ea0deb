"""``python -m pipeline_core`` is the ``pipeline`` command."""

from pipeline_core.cli import main

main()
