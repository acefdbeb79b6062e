"""One exception type for every user-facing mistake.

The command-line tools print ``error: <message>`` for it and exit with status 2,
so a bad input never ends in a traceback from deep inside the library.
"""


class PygmatchError(ValueError):
    """A bad input (file, flag, checkpoint) described in one line."""


class Interrupted(Exception):
    """A run stopped by a signal after saving its state; ``code`` is the shell's 128 + signal."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code
