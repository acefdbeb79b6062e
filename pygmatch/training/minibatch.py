"""The training loop of the learned refiner, fitted from a feature bank's examples (the
candidates' patches): shuffled minibatches of example indices, a
one-cycle learning rate, a progress bar, a hook after each epoch. The graph network trains under
Lightning instead (``pygmatch.training.module``): its examples are whole pairs of graphs."""
from __future__ import annotations

from typing import Callable

import torch
from tqdm import tqdm


def fit_minibatches(model: torch.nn.Module, loss_of: Callable[[torch.Tensor], torch.Tensor], examples: int,
                    optimizer: torch.optim.Optimizer, lr: float, epochs: int, batch: int, seed: int = 0,
                    pct_start: float = 0.1, desc: str = "training", progress: bool = True,
                    after_epoch: Callable[[int], None] | None = None, loss_digits: int = 3) -> torch.nn.Module:
    """Train ``model`` for ``epochs`` passes over ``examples`` examples in shuffled minibatches of
    ``batch``: ``loss_of(indices)`` gives a minibatch's loss. The learning rate follows a one-cycle
    schedule peaking at ``lr`` (``pct_start`` of the steps warming up). ``after_epoch(epoch)`` runs
    after each epoch (1-based), e.g. a held-out measure; the model is put back in training mode
    after it. Returns the model, in training mode."""
    steps = epochs * ((examples + batch - 1) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=pct_start)
    order = torch.Generator().manual_seed(seed)
    model.train()
    with tqdm(total=steps, desc=desc, unit="step", disable=not progress) as bar:
        for epoch in range(epochs):
            for idx in torch.split(torch.randperm(examples, generator=order), batch):
                loss = loss_of(idx)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.{loss_digits}f}")
            if after_epoch is not None:
                after_epoch(epoch + 1)
                model.train()
    return model
