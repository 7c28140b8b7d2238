"""Prompts: what a user starts a learned world from, turned into frames the model reads.

A prompt is an image file, a PIL image, a numpy array, a torch tensor or ``None`` (a black
frame); :func:`prompt_to_video` checks its shape and value range and resizes it to the model's
frames, with an error that says what was wrong. :func:`frame_to_uint8` turns a generated frame
back into an ``H W C`` uint8 picture.

Axis legend: ``T`` frames, ``C H W`` pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    import PIL.Image

__all__ = ["PromptError", "PromptLike", "frame_to_uint8", "prompt_to_video"]

PromptLike = Union[str, os.PathLike, np.ndarray, Tensor, "PIL.Image.Image", None]
"""What a prompt can be: an image file path, a PIL image, a numpy array (channels last,
``H W C`` or ``T H W C``, uint8 or float in ``[0, 1]``), a torch tensor (channels first,
``C H W`` or ``T C H W``, float in ``[0, 1]`` or uint8), or ``None`` (a black frame)."""


class PromptError(ValueError):
    """A prompt that cannot be turned into frames (unreadable file, wrong shape or value range)."""


def _read_image_file(path: Path) -> np.ndarray:
    """All frames of an image file as ``T H W 3`` uint8 (animated GIF/PNG/WebP give several)."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    if not path.exists():
        raise FileNotFoundError(
            f"Prompt image {path} does not exist. Pass the path of an image file (PNG, JPEG, GIF, ...), a "
            "uint8 H x W x 3 array or a float C x H x W tensor."
        )
    if path.is_dir():
        raise PromptError(f"Prompt {path} is a directory; pass one image file.")
    try:
        with Image.open(path) as image:
            frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PromptError(
            f"Cannot read prompt image {path}: {exc}. Pass an image file Pillow can open (PNG, JPEG, GIF, "
            "BMP, WebP, ...)."
        ) from exc
    if not frames:
        raise PromptError(f"Prompt image {path} holds no frames; pass a non-empty image file.")
    return np.stack(frames)


def _to_float_tchw(prompt: Any) -> Tensor:
    """Any supported prompt (except paths and None) as a ``T C H W`` float tensor in ``[0, 1]``."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a core dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(prompt, Image.Image):
        prompt = np.asarray(prompt.convert("RGB"))
    if isinstance(prompt, np.ndarray):
        array = prompt
        if array.ndim == 2:  # H W grayscale
            array = array[..., None]
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
            raise PromptError(
                f"A numpy prompt must be channels-last, H x W x C or T x H x W x C with C in (1, 3, 4), got shape "
                f"{prompt.shape}. Convert a C x H x W image with array.transpose(1, 2, 0)."
            )
        video = torch.from_numpy(np.array(array, order="C", copy=True)).permute(0, 3, 1, 2)  # owns writable memory
    elif isinstance(prompt, Tensor):
        video = prompt.detach()
        if video.ndim == 5 and video.shape[0] == 1:  # 1 T C H W
            video = video[0]
        if video.ndim == 3:
            video = video[None]
        if video.ndim != 4 or video.shape[1] not in (1, 3, 4):
            raise PromptError(
                f"A tensor prompt must be channels-first, C x H x W or T x C x H x W with C in (1, 3, 4), got shape "
                f"{tuple(prompt.shape)}. Convert an H x W x C image with tensor.permute(2, 0, 1)."
            )
    else:
        raise PromptError(
            f"Unsupported prompt of type {type(prompt).__name__}: pass an image path, a PIL image, a numpy array "
            "(H x W x 3 uint8) or a torch tensor (C x H x W float in [0, 1])."
        )
    if video.dtype == torch.uint8:
        video = video.float() / 255.0
    elif video.is_floating_point():
        video = video.float()
        if video.numel() and (float(video.min()) < 0.0 or float(video.max()) > 1.0):
            raise PromptError(
                f"A float prompt must hold values in [0, 1], got [{float(video.min()):.3g}, {float(video.max()):.3g}]. "
                "Divide 0..255 values by 255, or pass uint8."
            )
    else:
        raise PromptError(f"A prompt must be uint8 (0..255) or float (0..1), got dtype {video.dtype}.")
    if video.shape[-2] < 1 or video.shape[-1] < 1:
        raise PromptError(f"A prompt image must be at least 1x1 pixels, got shape {tuple(video.shape)}.")
    return video.cpu()


def prompt_to_video(
    prompt: PromptLike,
    image_size: tuple[int, int],
    in_channels: int = 3,
    max_frames: int | None = None,
) -> Tensor:
    """Turn a prompt into frames of the model's size.

    Any image size is resized (bilinear, antialiased; the aspect ratio is not kept) to
    ``image_size``; an alpha channel is dropped; grey images are repeated to RGB and RGB
    images averaged to grey for a one-channel model.

    Args:
        prompt: an image file path (animated images give several frames), a PIL image, a numpy
            array ``H W C`` / ``T H W C`` (uint8, or float in ``[0, 1]``), a tensor ``C H W`` /
            ``T C H W`` (float in ``[0, 1]``, or uint8), or ``None`` for one black frame.
        image_size: the model's ``(H, W)``.
        in_channels: the model's ``C`` (1 or 3).
        max_frames: keep only the last ``max_frames`` frames.

    Returns:
        ``T C H W`` float32 in ``[0, 1]`` on the CPU.

    Raises:
        FileNotFoundError: for a path that does not exist (the message names it).
        PromptError: for an unreadable file or an array of the wrong shape, dtype or range.

    Shapes:
        returns ``T C H W``.
    """
    height, width = int(image_size[0]), int(image_size[1])
    if prompt is None:
        return torch.zeros(1, in_channels, height, width)
    if isinstance(prompt, (str, os.PathLike)):
        video = _to_float_tchw(_read_image_file(Path(prompt)))
    else:
        video = _to_float_tchw(prompt)
    if max_frames is not None:
        video = video[-max_frames:]
    channels = video.shape[1]
    if channels == 4:
        video, channels = video[:, :3], 3
    if in_channels == 3 and channels == 1:
        video = video.expand(-1, 3, -1, -1)
    elif in_channels == 1 and channels == 3:
        video = video.mean(dim=1, keepdim=True)
    elif channels != in_channels:
        raise PromptError(f"Cannot turn a {channels}-channel prompt into the model's {in_channels} channels.")
    if tuple(video.shape[-2:]) != (height, width):
        video = F.interpolate(video, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return video.clamp(0.0, 1.0).contiguous()


def frame_to_uint8(frame: Tensor) -> np.ndarray:
    """A ``C H W`` float frame in ``[0, 1]`` as an ``H W 3`` uint8 array (grey repeated to RGB).

    Shapes:
        ``C H W`` -> ``H W 3``.
    """
    image = (frame.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
