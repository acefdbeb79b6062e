"""``python -m pygmatch match A B``: the ``pygmatch`` command."""
from pygmatch.commands.match import cli

cli()
