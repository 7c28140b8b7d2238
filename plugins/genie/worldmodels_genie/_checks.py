"""Input checks shared by the Genie components (errors say what was wrong and what to do)."""

from __future__ import annotations

from torch import Tensor

from worldmodels.interfaces import check_video


def check_frames(
    video: Tensor, image_size: tuple[int, int], channels: int, max_frames: int, who: str, min_frames: int = 1
) -> None:
    """Validate a ``B T C H W`` video against the component's configured size and context length.

    Raises:
        ValueError: naming the mismatch and how to fix it.
    """
    check_video(video, "video", min_frames)
    _, t, c, h, w = video.shape
    if (c, h, w) != (channels, *image_size):
        raise ValueError(
            f"{who} was built for {channels}x{image_size[0]}x{image_size[1]} frames (C x H x W) but got "
            f"{c}x{h}x{w}; resize the video or build it with image_size=[{h}, {w}], in_channels={c}."
        )
    if t > max_frames:
        raise ValueError(
            f"{who} handles at most {max_frames} frames (num_frames) but got {t}; split the clip into windows "
            f"of {max_frames} frames or build it with num_frames={t}."
        )
