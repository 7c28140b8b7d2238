"""``worldmodels serve``: a learned world played in the browser, frames over a WebSocket.

One model is shared by every connection; each connection (a :class:`~worldmodels.serve.session.PlaySession`)
has its own rollout, and steps run one at a time (an :class:`asyncio.Lock`), in a worker thread
so the server keeps answering while the model computes. A page that asks while another one's step
runs is told the model is busy. The page (``static/index.html``) needs no build step and no
network: it draws the frame on a canvas, maps the game's keys to latent actions with the
:class:`~worldmodels.serve.keymap.KeyMap`, and offers held-out prompts, an upload and a sketch.

Example:
    >>> from worldmodels.serve import create_app          # doctest: +SKIP
    >>> app = create_app("demo_out/run/dynamics/final", data="demo_out/data")  # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, port=8765)        # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from worldmodels.envs.prompts import frame_to_uint8
from worldmodels.envs.world_model_env import WorldModelEnv, compile_world_model, load_world_model
from worldmodels.serve.keymap import KeyMap, contingency_from_data, keymap_from_report, keymap_from_table
from worldmodels.serve.session import FRAME_ENCODINGS, MAX_MESSAGE_BYTES, PlaySession, png_base64
from worldmodels.world_model import WorldModel

__all__ = ["ServedWorld", "create_app", "is_loopback", "serve"]

MAX_PROMPTS = 12
"""Held-out prompts offered on the page."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServedWorld:
    """The shared state of a server: the model, its key map, the held-out prompts, the step lock.

    Attributes:
        model: the world model (shared; each session has its own rollout).
        name: what the page calls it (the checkpoint or preset).
        keymap: the game's controls bound to latent actions, or ``None`` without data or a report.
        prompts: held-out first frames ``H W 3`` uint8.
        bf16: the environments' precision (``"auto"``, ``True`` or ``False``).
        lock: one step at a time over the shared model.
        worker: the single thread every model call runs on.
    """

    model: WorldModel
    name: str
    keymap: KeyMap | None = None
    prompts: list[np.ndarray] = field(default_factory=list)
    bf16: bool | str = "auto"
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="model"))

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the one model thread (all torch work of the server runs there)."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)

    def info(self) -> dict[str, Any]:
        """What the page needs to know at start (JSON-ready)."""
        h, w = self.model.image_size
        return {
            "name": self.name, "height": h, "width": w, "num_actions": self.model.num_actions,
            "keymap": self.keymap.to_json() if self.keymap is not None else None,
            "prompts": [png_base64(p) for p in self.prompts],
        }

    def new_session(self, encoding: str = "png") -> PlaySession:
        """A session with its own environment over the shared model, answering frames as ``encoding``."""
        return PlaySession(WorldModelEnv(self.model, bf16=self.bf16), prompts=self.prompts, encoding=encoding)


def _held_out_prompts(model: WorldModel, data: str | os.PathLike[str], split: str | None) -> list[np.ndarray]:
    from worldmodels.eval.held_out import load_held_out_clips

    clips = load_held_out_clips(data, model, split, MAX_PROMPTS)
    return [frame_to_uint8(clip[0]) for clip in clips.video]


def _keymap(model: WorldModel, source: str, data: str | None, report: str | None, split: str | None) -> KeyMap | None:
    from worldmodels.play.legend import find_eval_report

    candidates = [report] if report else []
    if Path(source).is_dir():
        found = find_eval_report(source)
        if found is not None:
            candidates.append(str(found))
    for path in candidates:
        keymap = keymap_from_report(path, model.num_actions)
        if keymap is not None:
            return keymap
    if data:
        counted = contingency_from_data(model, data, split)
        if counted is not None:
            return keymap_from_table(counted[0], counted[1], f"{data} ({split or 'all'})")
    return None


def create_app(
    source: str | os.PathLike[str] | WorldModel,
    *,
    data: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
    split: str | None = "test",
    bf16: bool | str = "auto",
    sampler_steps: int | None = None,
    threads: int | None = None,
    compile: bool | str = False,  # noqa: A002 - mirrors torch.compile
) -> Starlette:
    """The web app that plays ``source`` (a checkpoint directory, a preset name or a model).

    Args:
        source: the world to serve.
        data: a recorded data set: held-out prompts, and the key map when no eval report has one.
        report: a ``worldmodels eval`` ``report.json`` for the key map (default: the checkpoint's).
        split: the data set split the prompts and the counted key map come from.
        bf16: the environments' precision (see :class:`~worldmodels.envs.WorldModelEnv`).
        sampler_steps: override the sampler's steps per frame.
        threads: torch's CPU threads on the model thread (``None``: torch's choice). With a browser
            on the same few cores, one thread fewer than the cores can be faster: a parallel
            kernel waits for its slowest thread, and the browser takes a core now and then.
        compile: compile the model's generation with :func:`torch.compile`
            (:func:`~worldmodels.envs.compile_world_model`) before serving; the first steps of
            the first session are slow while it compiles. A string names the backend.

    Returns:
        A Starlette app: ``/`` (the page), ``/api/info`` (model, key map, prompts), ``/ws`` (play;
        ``/ws?frames=rgba`` answers frames as binary messages, see
        :data:`~worldmodels.serve.session.FRAME_ENCODINGS`).
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 (or None for torch's choice), got {threads}.")
    worker = ThreadPoolExecutor(1, thread_name_prefix="model")

    def load() -> ServedWorld:
        if threads is not None:
            torch.set_num_threads(threads)
        model = load_world_model(source if not isinstance(source, os.PathLike) else str(source),
                                 sampler_steps=sampler_steps)
        name = str(source) if not isinstance(source, WorldModel) else "model"
        if compile:
            compile_world_model(model, backend=compile if isinstance(compile, str) else "inductor")
        with torch.no_grad():
            keymap = _keymap(model, name, str(data) if data else None, str(report) if report else None, split)
            prompts = _held_out_prompts(model, data, split) if data else []
        return ServedWorld(model, name, keymap, prompts, bf16, worker=worker)

    # every torch call on one thread, from the first: torch's CPU thread pool belongs to the thread that
    # first used it, and a model run from another thread afterwards is measured 2.5x slower per step
    world = worker.submit(load).result()
    page = resources.files("worldmodels.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def info(request: Request) -> Response:
        return JSONResponse(world.info())

    async def play(websocket: WebSocket) -> None:
        await websocket.accept()
        encoding = websocket.query_params.get("frames", "png")
        if encoding not in FRAME_ENCODINGS:
            await websocket.send_json({"type": "error", "message": f"Unknown frame encoding {encoding!r} "
                                       f"(ws?frames={' or '.join(FRAME_ENCODINGS)}); sending png frames."})
            encoding = "png"
        await websocket.send_json({"type": "status", "state": "loading"})
        session = await world.run(world.new_session, encoding)
        await websocket.send_json({"type": "status", "state": "ready"})
        try:
            while True:
                received = await websocket.receive()
                if received["type"] == "websocket.disconnect":
                    return
                text = received.get("text")
                payload = text if text is not None else received.get("bytes") or b""
                if len(payload) > MAX_MESSAGE_BYTES:
                    await websocket.send_json({"type": "error", "message": "The message is too large."})
                    continue
                if world.lock.locked():
                    await websocket.send_json({"type": "status", "state": "busy"})
                async with world.lock:
                    try:
                        answers = await world.run(session.handle, payload)
                    except Exception as exc:  # noqa: BLE001 - a failed step must not end the session
                        answers = [{"type": "error", "message": f"The model failed on this step: {exc}"}]
                for answer in answers:
                    if isinstance(answer, bytes):
                        await websocket.send_bytes(answer)
                    else:
                        await websocket.send_json(answer)
        except WebSocketDisconnect:
            return

    return Starlette(routes=[Route("/", index), Route("/api/info", info), WebSocketRoute("/ws", play)])


def serve(
    source: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    **kwargs: Any,
) -> None:
    """Run :func:`create_app` under uvicorn until interrupted (binds the loopback address unless told otherwise)."""
    import uvicorn

    if not is_loopback(host):
        warnings.warn(
            f"worldmodels serve is listening on {host}: anyone who can reach this machine can play the model and "
            "use its CPU. Bind 127.0.0.1 (the default) unless that is what you want.", stacklevel=2,
        )
    app = create_app(source, **kwargs)
    print(f"worldmodels serve: open http://{host if is_loopback(host) else host}:{port}/ in a browser", flush=True)
    uvicorn.run(app, host=host, port=port, ws_max_size=MAX_MESSAGE_BYTES, log_level="warning")
