"""Speed and quality measurements of pygmatch: thin configurations of the library and its commands
(``python -m train.run``, ``python -m eval.coco``, ``python -m eval.hpatches``), each writing its
markdown table (and json, small plots) under ``benchmarks/results/``.

Run them from the repository root as modules, e.g. ``python -m benchmarks.graphs --help``; each
script's docstring gives its command. Data and run folders are arguments, never fixed paths.
"""
