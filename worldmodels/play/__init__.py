"""Play learned worlds: an interactive window, headless rollouts, and GIF/MP4 export.

* :mod:`worldmodels.play.window`: :class:`~worldmodels.play.window.PlayWindow`, the pygame window
  (keys 1-9 and arrows play latent actions, R resets, S saves a GIF, Esc quits).
* :mod:`worldmodels.play.headless`: :func:`~worldmodels.play.headless.play_headless`, a fixed
  action sequence written to a file.
* :mod:`worldmodels.play.legend`: what each latent action does (from an eval report, or measured).
* :mod:`worldmodels.play.export`: :func:`~worldmodels.play.export.save_rollout` and
  :func:`~worldmodels.play.export.save_generation` (GIF or MP4 by suffix).

pygame is imported only when a window opens.
"""

from worldmodels.play.export import output_format, save_generation, save_rollout, to_uint8_frames, video_grid
from worldmodels.play.headless import parse_actions, play_headless, rollout
from worldmodels.play.legend import (
    ActionEffect,
    MotionEstimate,
    action_legend,
    arrow_bindings,
    describe_motion,
    estimate_action_effects,
    find_eval_report,
    labels_from_eval_report,
    phase_correlation,
)
from worldmodels.play.window import PlayWindow

__all__ = [
    "ActionEffect",
    "MotionEstimate",
    "PlayWindow",
    "action_legend",
    "arrow_bindings",
    "describe_motion",
    "estimate_action_effects",
    "find_eval_report",
    "labels_from_eval_report",
    "output_format",
    "parse_actions",
    "phase_correlation",
    "play_headless",
    "rollout",
    "save_generation",
    "save_rollout",
    "to_uint8_frames",
    "video_grid",
]
