"""Training: the run's configuration (``config``), its datasets (``dataset``), the LightningModule
with the loss and the validation metrics (``module``), the callbacks, the curves, and
``run.train(TrainConfig)`` that ``python -m train.run`` calls. Lightning is imported by ``module``,
``callbacks`` and ``run`` only, so ``training.config`` is quick to import."""
