"""``python -m leafiqa`` is the ``leaf`` command."""

from leafiqa.cli import app

app(prog_name="leaf")
