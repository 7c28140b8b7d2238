"""An interactive pygame window to play a learned world.

Axis legend: ``H W`` pixels of the model's frames.

Keys: ``1``-``9`` play latent actions 0-8 (as many as the model has), the arrow keys play the
latent actions bound to them (:func:`~worldmodels.play.legend.arrow_bindings`), holding a key
keeps playing it, ``R`` resets to the prompt, ``S`` saves the episode so far as a GIF, ``Esc``
(or closing the window) quits. A legend beside the (scaled-up) frame says what each latent action
was observed to do, and a counter shows the frames per second the model generates.

Needs ``pygame-ce`` (``pip install 'worldmodels[play]'``); on a server without a display run it
with ``SDL_VIDEODRIVER=dummy`` or use the headless mode (:mod:`worldmodels.play.headless`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.envs.prompts import PromptLike
from worldmodels.envs.world_model_env import WorldModelEnv
from worldmodels.play.export import save_rollout
from worldmodels.play.legend import ARROWS, ActionEffect

__all__ = ["PlayWindow"]

_PANEL_WIDTH = 300
_LINE_HEIGHT = 18
_BACKGROUND = (24, 24, 28)
_TEXT = (225, 225, 225)
_DIM = (150, 150, 160)
_ACCENT = (255, 200, 90)


def _import_pygame() -> Any:
    try:
        import pygame
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "The play window needs pygame-ce: pip install 'worldmodels[play]' (or pygame-ce). Without a screen, "
            "play headless: worldmodels play CKPT --actions 0,1,2 --out run.gif"
        ) from exc
    return pygame


class PlayWindow:
    """Play a :class:`~worldmodels.envs.WorldModelEnv` with the keyboard.

    Shapes:
        frames ``H W 3`` uint8, shown ``scale`` times larger.

    Args:
        env: the environment.
        legend: what each latent action does (:func:`~worldmodels.play.legend.action_legend`);
            ``None`` shows the bare indices.
        arrows: ``{"left": a, "right": a, "up": a, "down": a}`` latent actions of the arrow keys.
        prompt: the prompt of every reset (``None``: the env's default prompt).
        seed: seed of the first reset (later resets continue the env's random stream).
        scale: integer upscaling of the frame on screen.
        save_path: where ``S`` writes the GIF (``None``: ``worldmodels-play-<time>.gif`` in the
            working directory).
        fps: frame rate of saved GIFs.
        max_fps: cap on the window's redraw rate while idle.
        title: window caption.
    """

    def __init__(
        self,
        env: WorldModelEnv,
        *,
        legend: Sequence[ActionEffect] | None = None,
        arrows: Mapping[str, int] | None = None,
        prompt: PromptLike = None,
        seed: int | None = None,
        scale: int = 6,
        save_path: str | os.PathLike[str] | None = None,
        fps: float = 15.0,
        max_fps: int = 60,
        title: str = "worldmodels play",
    ) -> None:
        if scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}.")
        self.env = env
        self.legend = list(legend) if legend is not None else None
        self.arrows = dict(arrows or {})
        bad = {k: v for k, v in self.arrows.items() if k not in ARROWS or not 0 <= v < env.num_actions}
        if bad:
            raise ValueError(f"Bad arrow bindings {bad}: keys are {ARROWS}, actions 0..{env.num_actions - 1}.")
        self.prompt = prompt
        self.seed = seed
        self.scale = int(scale)
        self.save_path = Path(save_path) if save_path is not None else None
        self.fps = float(fps)
        self.max_fps = int(max_fps)
        self.title = title
        self.frames: list[np.ndarray] = []
        """The frames of the current episode, the prompt's first."""
        self.steps_played = 0
        """Frames generated since the window opened (over all resets)."""
        self.saved: list[Path] = []
        """The GIFs written with ``S``."""
        self._frames_per_second = 0.0
        self._status = ""
        self._status_until = 0.0

    # ------------------------------------------------------------------ actions
    def _reset(self, seed: int | None = None) -> None:
        options = None if self.prompt is None else {"prompt": self.prompt}
        frame, _ = self.env.reset(seed=seed, options=options)
        self.frames = [frame]

    def _step(self, action: int) -> None:
        start = time.perf_counter()
        frame, *_ = self.env.step(action)
        elapsed = max(time.perf_counter() - start, 1e-6)
        rate = 1.0 / elapsed
        self._frames_per_second = rate if self._frames_per_second == 0 else 0.8 * self._frames_per_second + 0.2 * rate
        self.frames.append(frame)
        self.steps_played += 1

    def _save(self) -> Path:
        path = self.save_path or Path.cwd() / f"worldmodels-play-{time.strftime('%Y%m%d-%H%M%S')}.gif"
        written = save_rollout(self.frames, path, fps=self.fps)
        self.saved.append(written)
        self._set_status(f"saved {written.name} ({len(self.frames)} frames)")
        return written

    def _set_status(self, text: str, seconds: float = 4.0) -> None:
        self._status, self._status_until = text, time.monotonic() + seconds

    # ------------------------------------------------------------------ keys
    def key_actions(self, pygame: Any) -> dict[int, int]:
        """pygame key code -> latent action: digits 1-9 (and the keypad's) and the bound arrows.

        Shapes:
            not applicable.
        """
        keys: dict[int, int] = {}
        for action in range(min(9, self.env.num_actions)):
            keys[getattr(pygame, f"K_{action + 1}")] = action
            keys[getattr(pygame, f"K_KP{action + 1}")] = action
        arrow_keys = {"left": pygame.K_LEFT, "right": pygame.K_RIGHT, "up": pygame.K_UP, "down": pygame.K_DOWN}
        for arrow, action in self.arrows.items():
            keys[arrow_keys[arrow]] = action
        return keys

    # ------------------------------------------------------------------ drawing
    def _legend_lines(self) -> list[tuple[str, tuple[int, int, int]]]:
        lines: list[tuple[str, tuple[int, int, int]]] = [("latent actions", _ACCENT)]
        source = self.legend[0].source if self.legend else None
        for action in range(self.env.num_actions):
            key = str(action + 1) if action < 9 else "-"
            label = self.legend[action].label if self.legend and action < len(self.legend) else ""
            lines.append((f" {key}  #{action}  {label}", _TEXT))
        if source:
            lines.append((f" (labels from {source})", _DIM))
        if self.arrows:
            names = {"left": "Left", "right": "Right", "up": "Up", "down": "Down"}
            arrow_text = "  ".join(f"{names[a]} #{self.arrows[a]}" for a in ARROWS if a in self.arrows)
            lines.append((f" arrows: {arrow_text}", _TEXT))
        lines.append(("", _TEXT))
        lines.append(("R reset   S save GIF   Esc quit", _DIM))
        timings = self.env.last_timings
        lines.append((f"frame {self.env.frame_index}   {self._frames_per_second:5.1f} frames/s", _ACCENT))
        if "dynamics_s" in timings:
            lines.append(
                (f"dynamics {1e3 * timings['dynamics_s']:.0f} ms   decode {1e3 * timings['decode_s']:.0f} ms", _DIM)
            )
        if self._status and time.monotonic() < self._status_until:
            lines.append((self._status, _ACCENT))
        return lines

    def _draw(self, pygame: Any, screen: Any, font: Any) -> None:
        screen.fill(_BACKGROUND)
        frame = self.frames[-1]
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        height, width = frame.shape[:2]
        screen.blit(pygame.transform.scale(surface, (width * self.scale, height * self.scale)), (0, 0))
        x, y = width * self.scale + 12, 10
        for text, colour in self._legend_lines():
            screen.blit(font.render(text, True, colour), (x, y))
            y += _LINE_HEIGHT
        pygame.display.flip()

    # ------------------------------------------------------------------ the loop
    def run(self, max_steps: int | None = None) -> list[np.ndarray]:
        """Open the window and play until ``Esc``, a quit event or ``max_steps`` generated frames.

        Events already in pygame's queue (e.g. posted by a test) are handled in order: each key
        press plays one step; a held action key keeps stepping.

        Args:
            max_steps: stop after generating this many frames (``None``: until quit).

        Returns:
            The frames of the last episode, the prompt's first.

        Shapes:
            frames ``H W 3`` uint8.
        """
        pygame = _import_pygame()
        pygame.display.init()  # display and fonts only: no audio device is opened
        pygame.font.init()
        try:
            self._reset(self.seed)
            height, width = self.frames[0].shape[:2]
            lines = len(self._legend_lines()) + 2
            size = (width * self.scale + _PANEL_WIDTH, max(height * self.scale, lines * _LINE_HEIGHT + 20))
            screen = pygame.display.set_mode(size)
            pygame.display.set_caption(self.title)
            font = pygame.font.Font(None, 20)
            clock = pygame.time.Clock()
            keys = self.key_actions(pygame)
            running = max_steps is None or max_steps > 0
            while running:
                stepped = False
                for event in pygame.event.get():
                    if event.type == pygame.QUIT:
                        running = False
                    elif event.type == pygame.KEYDOWN:
                        if event.key == pygame.K_ESCAPE:
                            running = False
                        elif event.key == pygame.K_r:
                            self._reset()
                            self._set_status("reset to the prompt")
                        elif event.key == pygame.K_s:
                            self._save()
                        elif event.key in keys:
                            self._step(keys[event.key])
                            stepped = True
                    if not running or (max_steps is not None and self.steps_played >= max_steps):
                        running = False
                        break
                if running and not stepped:
                    pressed = pygame.key.get_pressed()
                    held = [action for key, action in keys.items() if pressed[key]]
                    if held:
                        self._step(held[0])
                        stepped = True
                if max_steps is not None and self.steps_played >= max_steps:
                    running = False
                self._draw(pygame, screen, font)
                if not stepped:
                    clock.tick(self.max_fps)
        finally:
            pygame.display.quit()
            pygame.quit()
        return self.frames
