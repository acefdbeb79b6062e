"""Command-line training (``python -m train.run``); the library code is in pygmatch.training."""
