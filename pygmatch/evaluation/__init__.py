"""Evaluation: the metrics (also used by training's validation), the one evaluation core
(``evaluate``: pipelines on pairs), the reports, the attention analysis of
``python -m eval.attention``, and structure from motion as an evaluation (``sfm``: several methods
through ``pygmatch.sfm``, one report)."""
