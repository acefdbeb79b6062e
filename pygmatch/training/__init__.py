"""Training, in one Lightning loop (``run.train``) for both learned stages: the run's configuration
(``config``: ``TrainConfig`` for the graph network, ``RefinerTrainConfig`` for the refiner), their
examples (``data``: pairs as labelled candidate graphs; ``refiner``: candidates' patches with their
true offsets), the LightningModules with the losses and validation metrics (``module``), the
callbacks and the curves. ``python -m train.run`` and ``python -m train.refiner`` call
``run.train``. Lightning is imported by ``module``, ``callbacks`` and ``run`` only, so
``training.config`` is quick to import."""
