"""Evaluation: the baselines (``nn``, ``nn-ratio``, ``oracle@PX``), the metrics (also used by
training's validation), the one evaluation core (``evaluate``), the reports, and the attention
analysis of ``python -m eval.attention``."""
