"""The command-line tools, one module per command, each with ``main(argv)`` (and ``parser()``
where the tests or other tools use it) and ``cli()``, the installed console script:

- ``match``: ``python -m pygmatch match`` / ``graph`` from a checkout, ``pygmatch`` installed
- ``train_run``: ``python -m train.run`` from a checkout, ``pygmatch-train`` installed: the graph network
- ``train_bank``: ``python -m train.bank``, ``pygmatch-bank``
- ``train_export``: ``python -m train.export``, ``pygmatch-export``
- ``train_refiner``: ``python -m train.refiner``, ``pygmatch-refiner``: the refiner, in ``train_run``'s loop and flags
- ``eval_coco``: ``python -m eval.coco``, ``pygmatch-eval``
- ``eval_hpatches``: ``python -m eval.hpatches``, ``pygmatch-hpatches``
- ``eval_attention``: ``python -m eval.attention``, ``pygmatch-attention``
- ``eval_sfm``: ``python -m eval.sfm``, ``pygmatch-sfm``

``train/`` and ``eval/`` of the source checkout are thin shims over these modules and are not
installed; ``python -m pygmatch.commands.eval_coco`` (etc.) works wherever pygmatch is installed.
"""
