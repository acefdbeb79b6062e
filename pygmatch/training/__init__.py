"""Training the graph network: the run's configuration (``config``), its pairs as labelled
candidate graphs (``data``), the LightningModule with the loss and the validation metrics
(``module``), the callbacks, the curves, and ``run.train(TrainConfig)`` that ``python -m train.run``
calls; the refiner's own small loop (``refiner``, ``minibatch``). Lightning is imported by
``module``, ``callbacks`` and ``run`` only, so ``training.config`` is quick to import."""
