"""One exception type for every user-facing mistake.

The command-line tools print ``error: <message>`` for it and exit with status 2,
so a bad input never ends in a traceback from deep inside the library.
"""


class PygmatchError(ValueError):
    """A bad input (file, flag, checkpoint) described in one line."""
