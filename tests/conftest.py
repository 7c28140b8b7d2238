"""Shared test set-up: the toy components, tiny seeded data, and thread limits for a 2-core CI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
sys.path.insert(0, str(TESTS_DIR))

import toy_components  # noqa: E402,F401  (registers the toy-* components)

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine two threads wait on each other's busy core (often 10x slower).

    Modules that step models one frame at a time use it for every test:
    ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def sprite_clips():
    """Eight 4-frame 16x16 clips of the sprite world with true actions."""
    from worldmodels.data.synthetic import moving_sprites

    return moving_sprites(8, num_frames=4, image_size=16, seed=0)
