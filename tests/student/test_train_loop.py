"""The one training loop (``distill.train_loop``) behind the head's training and tail tuning."""

from __future__ import annotations

import torch

from leafiqa.student.distill import train_loop


def _fit(validation_values: list[float | None], best: tuple[float, object] | None = None,
         patience: int = 2) -> tuple[torch.nn.Parameter, list[float], int]:
    weight = torch.nn.Parameter(torch.tensor([0.0]))
    values = iter(validation_values)
    steps_run = 0

    def step_loss(step: int) -> torch.Tensor:
        nonlocal steps_run
        steps_run += 1
        return ((weight - 1.0) ** 2).sum()

    def restore(state: object) -> None:
        with torch.no_grad():
            weight.copy_(state)  # type: ignore[arg-type]

    history = train_loop([weight], step_loss, steps=len(validation_values), lr=0.1,
                         weight_decay=0.0, snapshot=lambda: weight.detach().clone(),
                         restore=restore, validation=lambda: next(values), eval_every=1,
                         patience=patience, best=best)
    return weight, history, steps_run


def test_the_best_validation_state_is_restored_and_patience_stops_training() -> None:
    weight, history, steps_run = _fit([3.0, 1.0, 2.0, 2.0, 0.5])
    assert history == [3.0, 1.0, 2.0, 2.0] and steps_run == 4  # stopped after 2 bad evals
    trained, _, _ = _fit([5.0, 4.0, 3.0, 2.0, 1.0])  # always better: the last state
    assert 0.0 < float(weight.detach()) < float(trained.detach()) < 1.0


def test_a_seeded_best_that_never_improves_is_restored() -> None:
    before = torch.tensor([0.0])
    weight, history, _ = _fit([2.0, 2.0], best=(1.0, before))
    assert history == [2.0, 2.0] and torch.equal(weight.detach(), before)


def test_steps_without_a_validation_value_keep_training() -> None:
    weight, history, steps_run = _fit([None, None, None])
    assert history == [] and steps_run == 3 and float(weight.detach()) > 0.0
