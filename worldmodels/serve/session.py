"""One browser session of a served world: its own rollout over the shared model, its frames, its recording.

Axis legend: ``H W`` pixels.

Every message a page sends is a JSON object with a ``type``; :meth:`PlaySession.handle` answers
each with a list of JSON messages and never raises: a malformed message gets an ``error`` answer
and the session stays as it was. What a message may carry is checked before anything runs:
actions must be integers in range, prompts a held-out index or an image (PNG or JPEG, at most
:data:`MAX_UPLOAD_BYTES`) sent inline; no message can name a file on the server.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from worldmodels.envs.world_model_env import WorldModelEnv
from worldmodels.play.export import save_rollout

__all__ = ["FRAME_ENCODINGS", "MAX_MESSAGE_BYTES", "MAX_UPLOAD_BYTES", "MAX_RECORDED_FRAMES", "RECORDING_FORMATS",
           "PlaySession", "SessionError", "decode_rgba_frame", "rgba_frame"]

MAX_UPLOAD_BYTES = 2 * 1024 * 1024
"""The largest prompt image accepted (decoded bytes)."""

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""The largest WebSocket message read (a base64 image is 4/3 of its bytes)."""

MAX_RECORDED_FRAMES = 1800
"""Frames kept for "record" (the oldest are dropped beyond it: two minutes at 15 frames/s)."""

IMAGE_FORMATS = ("PNG", "JPEG")

RECORDING_FORMATS = ("gif", "mp4")
"""What "record" can download: an animated GIF or an H.264 MP4."""

RECORDING_FPS = 15.0
"""Frames per second of a recording (a session plays at its own pace; the file replays at this one)."""


FRAME_ENCODINGS = ("png", "rgba")
"""How a session sends its frames: ``png`` (a JSON ``frame`` message, the image base64 PNG) or ``rgba``
(a binary message: :data:`RGBA_HEADER` then the pixels, ready for a canvas's ``putImageData``)."""

RGBA_MAGIC = b"WMF1"
"""The first 4 bytes of a binary frame."""

RGBA_HEADER = struct.Struct("<4sIfHH")
"""The 16 bytes before a binary frame's pixels: :data:`RGBA_MAGIC`, step (uint32), milliseconds the step took
(float32), width and height (uint16), little-endian; then ``height * width * 4`` bytes RGBA, row by row."""


class SessionError(ValueError):
    """A message the session cannot act on; its text is shown on the page."""


def png_base64(frame_HW3: np.ndarray) -> str:
    """A frame ``H W 3`` uint8 as base64 PNG (for the page's canvas)."""
    buffer = io.BytesIO()
    Image.fromarray(frame_HW3).save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def rgba_frame(frame_HW3: np.ndarray, step: int, ms: float) -> bytes:
    """A frame ``H W 3`` uint8 as one binary message: :data:`RGBA_HEADER` and the RGBA pixels (alpha 255)."""
    h, w, _ = frame_HW3.shape
    rgba_HW4 = np.empty((h, w, 4), dtype=np.uint8)
    rgba_HW4[..., :3] = frame_HW3
    rgba_HW4[..., 3] = 255
    return RGBA_HEADER.pack(RGBA_MAGIC, step, ms, w, h) + rgba_HW4.tobytes()


def decode_rgba_frame(message: bytes) -> tuple[np.ndarray, int, float]:
    """The inverse of :func:`rgba_frame`: ``(frame H W 3 uint8, step, ms)`` (for clients and tests).

    Raises:
        ValueError: when ``message`` is not a binary frame of this layout.
    """
    if len(message) < RGBA_HEADER.size:
        raise ValueError(f"A binary frame starts with a {RGBA_HEADER.size}-byte header; got {len(message)} bytes.")
    magic, step, ms, w, h = RGBA_HEADER.unpack_from(message)
    if magic != RGBA_MAGIC or len(message) != RGBA_HEADER.size + h * w * 4:
        raise ValueError(f"Not a worldmodels binary frame (magic {magic!r}, {len(message)} bytes for {w}x{h}).")
    pixels = np.frombuffer(message, dtype=np.uint8, offset=RGBA_HEADER.size).reshape(h, w, 4)
    return pixels[..., :3].copy(), step, ms


def decode_image(data: Any) -> np.ndarray:
    """A prompt image sent by the page (a ``data:`` URL or bare base64 of PNG/JPEG bytes) -> ``H W 3`` uint8.

    Raises:
        SessionError: for anything that is not a PNG or JPEG image within :data:`MAX_UPLOAD_BYTES`.
    """
    if not isinstance(data, str) or not data:
        raise SessionError("An uploaded prompt must be an image sent as a data URL (PNG or JPEG).")
    if data.startswith("data:"):
        _, _, data = data.partition(",")
    if len(data) > MAX_UPLOAD_BYTES * 4 // 3 + 8:
        raise SessionError(f"The image is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; send a smaller one.")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SessionError("The upload is not valid base64 image data.") from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.format not in IMAGE_FORMATS:
                raise SessionError(f"Only PNG and JPEG images are accepted as prompts, got {image.format or 'unknown'}.")
            if image.width * image.height > 16_000_000:
                raise SessionError(f"The image is {image.width}x{image.height} pixels; send one under 16 megapixels.")
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise SessionError("The upload is not an image this server can read: send a PNG or JPEG file.") from None


@dataclass
class PlaySession:
    """What one page plays: an environment over the shared model and the frames shown so far.

    Args:
        env: this session's environment (its own rollout; the model is shared).
        prompts: held-out prompt frames ``H W 3`` uint8 the page may choose by index.
        seed: the sampling seed of each reset.
        encoding: how frames are answered (:data:`FRAME_ENCODINGS`): ``png`` as JSON ``frame``
            messages, ``rgba`` as binary messages (:func:`rgba_frame`; what the page asks for: no
            image to encode on the server or decode in the browser).
    """

    env: WorldModelEnv
    prompts: list[np.ndarray] = field(default_factory=list)
    seed: int = 0
    encoding: str = "png"
    frames: list[np.ndarray] = field(default_factory=list)
    steps: int = 0

    def __post_init__(self) -> None:
        if self.encoding not in FRAME_ENCODINGS:
            raise ValueError(f"Frame encoding {self.encoding!r} is unknown: use one of {', '.join(FRAME_ENCODINGS)}.")

    def handle(self, text: str | bytes) -> list[dict[str, Any] | bytes]:
        """Answer one message from the page; never raises (errors become ``error`` messages).

        Frames are JSON objects, or binary messages (``bytes``) when the session's ``encoding`` is ``rgba``.
        """
        try:
            message = self._parse(text)
            kind = message["type"]
            if kind == "reset":
                return [self.reset(message.get("prompt"))]
            if kind == "step":
                return [self.step(message.get("action"))]
            if kind == "record":
                return [self.record(message.get("format", "gif"))]
            if kind == "ping":
                return [{"type": "pong"}]
            raise SessionError(f"Unknown message type {kind!r}: send reset, step, record or ping.")
        except SessionError as exc:
            return [{"type": "error", "message": str(exc)}]

    # ------------------------------------------------------------------ messages
    def reset(self, prompt: Any) -> dict[str, Any] | bytes:
        """Start again from a prompt: ``{"kind": "heldout", "index": i}``, ``{"kind": "image", "data": URL}``,
        ``{"kind": "sketch", "data": URL}`` or ``None`` / ``{"kind": "blank"}`` (a black frame)."""
        frames = self._prompt(prompt)
        start = time.perf_counter()
        frame, _ = self.env.reset(seed=self.seed, options={"prompt": frames})
        self.frames, self.steps = [frame], 0
        return self._frame_message(frame, time.perf_counter() - start)

    def step(self, action: Any) -> dict[str, Any] | bytes:
        """One frame under latent ``action`` (an integer in ``0 .. A-1``)."""
        if not self.env.started:
            raise SessionError("Choose a prompt first (reset), then step.")
        if isinstance(action, bool) or not isinstance(action, int):
            raise SessionError(f"A step needs an integer latent action, got {action!r}.")
        if not 0 <= action < self.env.num_actions:
            raise SessionError(f"Latent action {action} is out of range 0..{self.env.num_actions - 1}.")
        start = time.perf_counter()
        frame, *_ = self.env.step(action)
        self.steps += 1
        self.frames.append(frame)
        del self.frames[:-MAX_RECORDED_FRAMES]
        return self._frame_message(frame, time.perf_counter() - start)

    def record(self, kind: Any) -> dict[str, Any]:
        """The frames since the last reset as a GIF (model resolution) or an H.264 MP4 (4x larger,
        nearest-neighbour: chroma subsampling would smear a 64x64 frame), base64, for the page to download."""
        if kind not in RECORDING_FORMATS:
            raise SessionError(f"Recordings are {' or '.join(RECORDING_FORMATS)}: send format 'gif' or 'mp4', "
                               f"got {kind!r}.")
        if not self.frames:
            raise SessionError("Nothing to record yet: choose a prompt and play a few frames.")
        with tempfile.TemporaryDirectory(prefix="worldmodels-record-") as folder:
            path = Path(folder) / f"session.{kind}"
            save_rollout(np.stack(self.frames), path, fps=RECORDING_FPS, scale=1 if kind == "gif" else 4)
            data = path.read_bytes()
        return {"type": "recording", "format": kind, "frames": len(self.frames),
                "data": base64.b64encode(data).decode("ascii")}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _parse(text: str | bytes) -> dict[str, Any]:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                raise SessionError("Messages are JSON text; this one is not UTF-8.") from None
        if len(text) > MAX_MESSAGE_BYTES:
            raise SessionError("The message is too large.")
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            raise SessionError("The message is not valid JSON.") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise SessionError('A message is a JSON object with a "type", e.g. {"type": "step", "action": 3}.')
        return message

    def _prompt(self, prompt: Any) -> np.ndarray | None:
        if prompt is None:
            return None
        if not isinstance(prompt, dict):
            raise SessionError('A prompt is {"kind": "heldout", "index": i}, {"kind": "image", "data": ...}, '
                               '{"kind": "sketch", "data": ...} or {"kind": "blank"}.')
        kind = prompt.get("kind")
        if kind == "blank":
            return None
        if kind == "heldout":
            index = prompt.get("index")
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.prompts):
                raise SessionError(f"Held-out prompt {index!r} does not exist: choose 0..{len(self.prompts) - 1}"
                                   if self.prompts else "This server has no held-out prompts (start it with --data).")
            return self.prompts[index]
        if kind in ("image", "sketch"):
            return decode_image(prompt.get("data"))
        raise SessionError(f"Unknown prompt kind {kind!r}: use heldout, image, sketch or blank.")

    def _frame_message(self, frame: np.ndarray, seconds: float) -> dict[str, Any] | bytes:
        if self.encoding == "rgba":
            return rgba_frame(frame, self.steps, 1e3 * seconds)
        return {"type": "frame", "png": png_base64(frame), "step": self.steps, "ms": round(1e3 * seconds, 1)}
