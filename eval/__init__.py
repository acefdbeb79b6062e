"""``python -m eval.coco`` / ``eval.hpatches`` / ``eval.attention`` from a source checkout: shims over pygmatch.commands (not installed)."""
