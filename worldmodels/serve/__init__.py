"""Play a learned world in the browser: ``worldmodels serve CHECKPOINT``.

* :mod:`worldmodels.serve.app`: the Starlette app (the page, ``/api/info``, the ``/ws`` WebSocket)
  and :func:`~worldmodels.serve.app.serve` (uvicorn, loopback by default);
* :mod:`worldmodels.serve.session`: one page's rollout, its messages, checks and recording;
* :mod:`worldmodels.serve.keymap`: the game's keys bound to latent actions from recorded true actions.

Needs the ``serve`` extra (``pip install worldmodels[serve]``: Starlette, uvicorn, websockets).
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:  # Starlette is imported only when the server is used
    if name in __all__:
        from worldmodels.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'worldmodels.serve' has no attribute {name!r}")
