"""Frames/s of a learned world played in the browser page against the pygame window, on one machine.

Three ways to play the same checkpoint, each for ``--seconds`` with one latent action held, each
in its own process (torch's thread pool belongs to the thread that first used it, and the server
runs the model on a worker thread):

* ``window``: :class:`~worldmodels.play.PlayWindow` (SDL's dummy video driver, so nothing is
  shown; each loop steps once and redraws, as with a key held down);
* ``page``: ``worldmodels serve``'s app under uvicorn and headless Chromium playing its page with a
  key held (frames/s = steps the page counted / seconds held; also the CPU cores the browser's
  processes used meanwhile);
* ``socket``: the same server with a WebSocket client instead of a browser, two steps in flight as
  the page keeps them (what the server gives when nothing else wants the CPU);
* ``page-png`` (not run unless named): the page asking for JSON frames with a base64 PNG
  (``/?frames=png``) instead of its binary RGBA frames, to see what the binary frames save.
* ``page-1`` (not run unless named): the page asking for one step at a time (``/?inflight=1``)
  instead of two, so that the browser draws while the model waits rather than beside it.

The rounds alternate (window, page, socket, window, page, socket, ...) so that a machine whose
speed drifts treats each alike; every figure is printed, then the mean of each and the mean of the
per-round ratios to the window (each round's page against the window just before it). ``--threads``
sets torch's threads in the server and the window (default: torch's own choice); ``--compile``
compiles the model's generation in both (:func:`~worldmodels.envs.compile_world_model`; the
compile happens before the timed seconds).

Usage::

    python benchmarks/bench_serve.py demo_out/run/dynamics/final --seconds 15 --rounds 2
    python benchmarks/bench_serve.py demo_out/run/dynamics/final --modes page --threads 1
    python benchmarks/bench_serve.py demo_out/run/dynamics/final --modes window,page --compile
    python benchmarks/bench_serve.py genie-tiny --modes window,page,page-png   # the demo's size, random weights
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the browser driver of the browser test

MODES = ("window", "page", "socket", "page-png", "page-1")

BROWSER_CORES: list[float] = []
"""CPU cores the browser's processes used while a key was held (filled by :func:`page_fps`)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def window_fps(checkpoint: str, seconds: float, precision: str, compile: bool = False) -> float:  # noqa: A002
    """Steps/s of the pygame window with one action key pressed at every loop."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import pygame

    from worldmodels.envs import WorldModelEnv
    from worldmodels.envs.world_model_env import compile_world_model, load_world_model
    from worldmodels.play.window import PlayWindow

    model = load_world_model(checkpoint)
    if compile:
        compile_world_model(model)
    env = WorldModelEnv(model, bf16={"auto": "auto", "fp32": False, "bf16": True}[precision])
    done: list[float] = []
    step = env.step

    def timed_step(action):  # type: ignore[no-untyped-def]
        out = step(action)
        done.append(time.perf_counter())
        return out

    env.step = timed_step  # type: ignore[method-assign]
    real_get = pygame.event.get

    def one_press(*args, **kwargs):  # type: ignore[no-untyped-def]
        events = real_get(*args, **kwargs)
        if done and done[-1] - done[0] > seconds + (20.0 if compile else 0.0):
            return [*events, pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE)]
        return [*events, pygame.event.Event(pygame.KEYDOWN, key=pygame.K_1)]

    pygame.event.get = one_press
    PlayWindow(env, seed=0).run()
    warm = [t for t in done if t - done[0] > (20.0 if compile else 1.0)]  # warm-up (and tracing)
    return (len(warm) - 1) / (warm[-1] - warm[0])


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its descendants (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        todo.extend(children.get(current, []))
    return total


def _start_server(checkpoint: str, precision: str, threads: int | None, compile: bool = False):  # type: ignore[no-untyped-def]  # noqa: A002
    import uvicorn

    from worldmodels.serve.app import create_app
    from worldmodels.serve.session import MAX_MESSAGE_BYTES

    app = create_app(checkpoint, bf16={"auto": "auto", "fp32": False, "bf16": True}[precision], threads=threads,
                     compile=compile)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ws_max_size=MAX_MESSAGE_BYTES))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, port


def page_fps(checkpoint: str, seconds: float, precision: str, threads: int | None = None,
             compile: bool = False, frames: str = "rgba", inflight: int = 2) -> float:  # noqa: A002
    """Steps/s the page counts while headless Chromium holds the key of latent action 1 (``frames``: the
    encoding the page asks for; ``inflight``: the steps it keeps asked for)."""
    from cdp_browser import Browser, find_chromium

    executable = find_chromium()
    if executable is None:
        raise SystemExit("no Chromium on PATH: apt-get install chromium")
    server, thread, port = _start_server(checkpoint, precision, threads, compile)
    browser = Browser(executable)
    try:
        query = "&".join(([] if frames == "rgba" else [f"frames={frames}"]) + ([] if inflight == 2 else [f"inflight={inflight}"]))
        browser.navigate(f"http://127.0.0.1:{port}/" + (f"?{query}" if query else ""))
        browser.wait_for("document.getElementById('status').textContent.startsWith('ready') && "
                         "state.step === 0 && !state.waiting", timeout=120)
        browser.key("1", hold=20.0 if compile else 1.0)  # warm-up (and tracing)
        step = "state.step"  # the page's own count (its HUD is redrawn only 4 times a second)
        cpu_before = _tree_cpu_seconds(browser.process.pid)
        before, start = int(browser.evaluate(step)), time.perf_counter()
        browser.key("1", hold=seconds)
        after, elapsed = int(browser.evaluate(step)), time.perf_counter() - start
        BROWSER_CORES.append((_tree_cpu_seconds(browser.process.pid) - cpu_before) / elapsed)
        return (after - before) / elapsed
    finally:
        browser.close()
        server.should_exit = True
        thread.join(timeout=10)


def socket_fps(checkpoint: str, seconds: float, precision: str, threads: int | None = None,
               compile: bool = False) -> float:  # noqa: A002
    """Steps/s of a WebSocket client keeping two steps in flight (no browser)."""
    from websockets.sync.client import connect

    server, thread, port = _start_server(checkpoint, precision, threads, compile)
    try:
        with connect(f"ws://127.0.0.1:{port}/ws", max_size=8 * 1024 * 1024) as ws:

            def until(kind: str) -> dict:
                while True:
                    message = json.loads(ws.recv(timeout=120))
                    if message["type"] == kind:
                        return message

            until("status")
            ws.send(json.dumps({"type": "reset"}))
            until("frame")
            ws.send(json.dumps({"type": "step", "action": 0}))
            ws.send(json.dumps({"type": "step", "action": 0}))
            frames, start, counted = 0, time.perf_counter(), None
            while True:
                until("frame")
                frames += 1
                now = time.perf_counter()
                if counted is None and now - start > (20.0 if compile else 1.0):  # warm-up (and tracing)
                    counted, start, frames = 0, now, 0
                if counted is not None and now - start > seconds:
                    until("frame")  # the one still in flight
                    return frames / (now - start)
                ws.send(json.dumps({"type": "step", "action": 0}))
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _child(args: argparse.Namespace) -> None:
    threads = args.threads or None
    if args.child == "window":
        if threads:
            import torch

            torch.set_num_threads(threads)
        fps = window_fps(args.checkpoint, args.seconds, args.precision, args.compile)
    elif args.child == "socket":  # the server sets the threads on its model thread
        fps = socket_fps(args.checkpoint, args.seconds, args.precision, threads, args.compile)
    else:
        fps = page_fps(args.checkpoint, args.seconds, args.precision, threads, args.compile,
                       frames="png" if args.child == "page-png" else "rgba", inflight=1 if args.child == "page-1" else 2)
    print(json.dumps({"fps": fps, "browser_cores": BROWSER_CORES[-1] if BROWSER_CORES else None}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a trained world, e.g. demo_out/run/dynamics/final")
    parser.add_argument("--seconds", type=float, default=15.0, help="timed seconds per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", default="window,page,socket", help="comma-separated: window, page, socket, page-png, page-1")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--server-threads", type=int, default=None,
                        help="torch threads in the server only (page, socket); default: --threads")
    parser.add_argument("--compile", action="store_true", help="compile the model's generation (window and server)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes takes a comma-separated subset of {', '.join(MODES)}, got {args.modes!r}")
    print(f"checkpoint {args.checkpoint}; {args.seconds:g} s per round, {args.rounds} rounds, precision "
          f"{args.precision}, torch threads {args.threads or 'default'}"
          f"{'' if args.server_threads is None else f' (server {args.server_threads})'}, {'compiled' if args.compile else 'eager'}; "
          f"{os.cpu_count()} CPUs", flush=True)
    results: dict[str, list[float]] = {m: [] for m in modes}
    browser_ms: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for mode in modes:
            threads = args.threads if mode == "window" or args.server_threads is None else args.server_threads
            cmd = [sys.executable, __file__, args.checkpoint, "--child", mode, "--seconds", str(args.seconds),
                   "--precision", args.precision, "--threads", str(threads)] + (["--compile"] if args.compile else [])
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600 + 4 * args.seconds)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if out.returncode or not lines:
                raise SystemExit(f"{mode} failed (exit {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
            answer = json.loads(lines[-1])
            results[mode].append(answer["fps"])
            cores, extra = answer.get("browser_cores"), ""
            if cores is not None:
                ms = 1e3 * cores / answer["fps"]
                browser_ms.setdefault(mode, []).append(ms)
                extra = f"  (the browser used {cores:.2f} cores, {ms:.1f} ms of CPU a frame)"
            print(f"round {round_ + 1}  {mode:>8}: {answer['fps']:5.1f} frames/s{extra}", flush=True)
    for mode, values in results.items():
        spread = f" (sd {statistics.stdev(values):.1f})" if len(values) > 1 else ""
        print(f"{mode:>8}: mean {statistics.mean(values):5.1f} frames/s over {len(values)} rounds{spread}")
    for mode, values in browser_ms.items():
        spread = f" (sd {statistics.stdev(values):.1f})" if len(values) > 1 else ""
        print(f"{mode:>8}: the browser's CPU per frame {statistics.mean(values):.1f} ms{spread}")
    for mode in ("page", "socket", "page-png", "page-1"):
        if "window" in results and mode in results:
            # each round's ratio to the window's round just before it: the machine's drift cancels
            ratios = [m / w for m, w in zip(results[mode], results["window"], strict=True)]
            spread = f", sd {statistics.stdev(ratios):.2f} over {len(ratios)} rounds" if len(ratios) > 1 else ""
            print(f"{mode} / window: {statistics.mean(results[mode]) / statistics.mean(results['window']):.2f} "
                  f"(ratio of the means); per round {statistics.mean(ratios):.2f}{spread}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
