"""``python -m cli ...`` runs the ``curate`` command line (the service's job drivers use it)."""

from cli.main import app

app(prog_name="curate")
