"""``python -m core.cli`` runs the command line (the same as the ``personae`` script)."""

from . import main

main()
