"""``python -m train.run`` / ``train.bank`` / ``train.export`` from a source checkout: shims over pygmatch.commands (not installed)."""
