"""ContextWindow: the one rule for what the dynamics sees and what a rollout keeps."""

from __future__ import annotations

import pytest
import torch

from worldmodels.context_window import ContextWindow, last_frames


def _frames(b: int, t: int, start: int = 0) -> torch.Tensor:
    return (torch.arange(start, start + t)[None, :, None, None] * torch.ones(b, 1, 2, 2)).long()


def test_step_inputs_end_with_the_new_action_and_see_at_most_frames() -> None:
    window = ContextWindow(_frames(2, 3), torch.tensor([[5, 6], [7, 8]]), frames=2, keep=4)
    tokens, actions = window.step_inputs(torch.tensor([1, 2]))
    assert tokens[0, :, 0, 0].tolist() == [1, 2] and actions.tolist() == [[6, 1], [8, 2]]
    assert len(window) == 3  # reading the inputs changes nothing


def test_push_slides_once_full_and_keeps_actions_between_kept_frames() -> None:
    window = ContextWindow(_frames(1, 1), frames=3, keep=3)
    for step in range(1, 6):
        window.push(_frames(1, 1, start=step)[:, 0], torch.tensor([10 + step]))
        assert len(window) == min(step + 1, 3)
        assert window.actions.shape == (1, len(window) - 1)
    assert window.tokens[0, :, 0, 0].tolist() == [3, 4, 5] and window.actions.tolist() == [[14, 15]]


def test_unbounded_window_keeps_every_frame_and_matches_last_frames() -> None:
    window = ContextWindow(_frames(1, 2), torch.tensor([[9]]), frames=2)
    for step in range(2, 6):
        window.push(_frames(1, 1, start=step)[:, 0], torch.tensor([step]))
    assert len(window) == 6
    tokens, actions = window.step_inputs(torch.tensor([0]))
    expected = last_frames(window.tokens, torch.cat([window.actions, torch.tensor([[0]])], dim=1), 2)
    assert torch.equal(tokens, expected[0]) and torch.equal(actions, expected[1])


def test_bad_windows_are_explained() -> None:
    with pytest.raises(ValueError, match="needs its 2 actions"):
        ContextWindow(_frames(1, 3), frames=2)
    with pytest.raises(ValueError, match="B T-1"):
        ContextWindow(_frames(1, 3), torch.zeros(1, 1, dtype=torch.long), frames=2)
    with pytest.raises(ValueError, match="frames <= keep"):
        ContextWindow(_frames(1, 1), frames=3, keep=2)
