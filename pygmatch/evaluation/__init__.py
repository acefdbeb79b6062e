"""Evaluation: the metrics (also used by training's validation), the one evaluation core
(``evaluate``: pipelines on pairs), the reports, and the attention analysis of
``python -m eval.attention``."""
