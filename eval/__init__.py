"""Command-line evaluation tools (``python -m eval.coco``); the library code is in pygmatch."""
