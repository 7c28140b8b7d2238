"""``worldmodels serve``: the key map, the session's checks, the server under abuse, and a real browser."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import worldmodels

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
from websockets.sync.client import connect  # noqa: E402

from worldmodels.data.video_io import read_video  # noqa: E402
from worldmodels.envs import WorldModelEnv  # noqa: E402
from worldmodels.serve.app import create_app, is_loopback  # noqa: E402
from worldmodels.serve.keymap import keymap_from_report, keymap_from_table  # noqa: E402
from worldmodels.serve.session import PlaySession, decode_rgba_frame, rgba_frame  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "_static" / "serve.png"


def _model() -> worldmodels.WorldModel:
    small = dict(encoder_dim=32, encoder_depth=1, encoder_heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2)
    torch.manual_seed(0)
    return worldmodels.build(
        "genie-tiny", image_size=32, num_frames=4, tokenizer=dict(small, name="st-vivit", vocab_size=64),
        action_model=small, dynamics=dict(dim=32, depth=2, num_heads=2, copy_prior=False),
        sampler={"steps": 2, "temperature": 0.0},
    ).eval()


def _report(path: Path, num_actions: int = 8) -> Path:
    """A report.json whose table says: latent 2 is right, 5 is left, 1 is jump, 0 is stay (6 weakly left)."""
    names = ["LEFT", "RIGHT", "UP", "NOOP"]
    table = np.zeros((num_actions, 4))
    table[2, 1], table[5, 0], table[1, 2], table[0, 3] = 40, 30, 25, 50
    table[6, 0], table[6, 1], table[6, 3] = 3, 3, 3
    table[3:5, 3] = 5
    truth = {"available": True, "action_names": names, "contingency_table": table.tolist(),
             "collapsed": {"groups": {"left": ["LEFT"], "right": ["RIGHT"], "jump": ["UP"], "stay": ["NOOP"]}}}
    path.write_text(json.dumps({"latent_actions": {"ground_truth": truth}}))
    return path


def _png(colour: tuple[int, int, int] = (200, 30, 30), size: int = 40) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), colour, np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# ---------------------------------------------------------------------------------------- the key map
def test_keys_go_to_the_latent_action_most_specific_to_each_control(tmp_path) -> None:
    keymap = keymap_from_report(_report(tmp_path / "report.json"), 8)
    assert keymap is not None and keymap.idle == 0
    bound = {b.control: b for b in keymap.bindings}
    assert bound["stay"].action == 0 and "ArrowDown" in bound["stay"].keys
    assert bound["right"].action == 2 and "ArrowRight" in bound["right"].keys and bound["right"].confident
    assert bound["left"].action == 5 and bound["jump"].action == 1 and " " in bound["jump"].keys
    assert keymap.labels[2] == "right (100%)"
    assert keymap_from_report(tmp_path / "report.json", 4) is None  # another model's table
    assert keymap_from_report(tmp_path / "missing.json", 8) is None


def test_a_weak_mapping_is_not_called_confident() -> None:
    table = np.array([[10, 9, 11], [9, 11, 10], [12, 10, 9]], dtype=float)  # no latent action is specific
    keymap = keymap_from_table(table, ["left", "right", "stay"], "test")
    assert keymap.bindings and not any(b.confident for b in keymap.bindings)


# ---------------------------------------------------------------------------------------- the session
def test_malformed_messages_and_bad_uploads_leave_the_session_playable() -> None:
    session = PlaySession(WorldModelEnv(_model()), prompts=[np.zeros((32, 32, 3), np.uint8)])
    assert session.handle(json.dumps({"type": "reset", "prompt": {"kind": "heldout", "index": 0}}))[0]["type"] == "frame"
    garbage = ["", "{", "[]", "null", "42", '{"type": 3}', '{"type": "explode"}', '{"type": "step"}',
               '{"type": "step", "action": "3"}', '{"type": "step", "action": 99}', '{"type": "step", "action": true}',
               '{"type": "step", "action": -1}', '{"type": "reset", "prompt": "/etc/passwd"}',
               '{"type": "reset", "prompt": {"kind": "file", "path": "/etc/passwd"}}',
               '{"type": "reset", "prompt": {"kind": "heldout", "index": 7}}', '{"type": "record", "format": "avi"}',
               b"\xff\xfe\x00", "[" * 100_000]
    for i in range(200):
        answer = session.handle(garbage[i % len(garbage)])
        assert [a["type"] for a in answer] == ["error"] and answer[0]["message"]
    not_images = [base64.b64encode(b"hello, not an image").decode(), "data:image/png;base64,!!!",
                  "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n broken").decode(), "", 5,
                  "data:text/plain;base64," + base64.b64encode(b"GIF89a" + b"\x00" * 40).decode()]
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    not_images.append("data:image/gif;base64," + base64.b64encode(gif.getvalue()).decode())
    for i in range(20):
        prompt = {"kind": "image", "data": not_images[i % len(not_images)]}
        answer = session.handle(json.dumps({"type": "reset", "prompt": prompt}))
        assert answer[0]["type"] == "error", answer
    assert "PNG" in session.handle(json.dumps({"type": "reset", "prompt": {"kind": "image", "data": not_images[-1]}}))[0]["message"]
    frames = [session.handle(json.dumps({"type": "step", "action": a}))[0] for a in (1, 2)]
    assert [f["type"] for f in frames] == ["frame", "frame"] and frames[-1]["step"] == 2
    upload = session.handle(json.dumps({"type": "reset", "prompt": {"kind": "image", "data": _png()}}))[0]
    assert upload["type"] == "frame" and upload["step"] == 0
    record = session.handle(json.dumps({"type": "record", "format": "gif"}))[0]
    assert record["type"] == "recording" and base64.b64decode(record["data"])[:6] == b"GIF89a"


def test_a_session_records_an_mp4_of_its_frames(tmp_path: Path) -> None:
    session = PlaySession(WorldModelEnv(_model()))
    early = session.handle(json.dumps({"type": "step", "action": 0}))[0]
    assert early["type"] == "error" and "prompt first" in early["message"] and not session.env.started
    assert session.handle(json.dumps({"type": "reset", "prompt": {"kind": "image", "data": _png()}}))[0]["type"] == "frame"
    assert session.env.started
    for action in (0, 1, 2, 1):
        assert session.handle(json.dumps({"type": "step", "action": action}))[0]["type"] == "frame"
    record = session.handle(json.dumps({"type": "record", "format": "mp4"}))[0]
    assert record["type"] == "recording" and record["format"] == "mp4" and record["frames"] == 5
    video = tmp_path / "session.mp4"
    video.write_bytes(base64.b64decode(record["data"]))
    frames = read_video(video)
    assert frames.shape == (5, 128, 128, 3)  # 4x the 32x32 model frames
    first = np.asarray(Image.fromarray(session.frames[0]).resize((128, 128), Image.NEAREST), dtype=float)
    assert np.abs(frames[0].astype(float) - first).mean() < 12  # the recorded frame, up to H.264 loss


def test_different_actions_give_different_frames() -> None:
    session = PlaySession(WorldModelEnv(_model()))
    frames = []
    for action in (1, 6):
        session.handle(json.dumps({"type": "reset", "prompt": {"kind": "image", "data": _png((90, 160, 40))}}))
        frames.append(session.handle(json.dumps({"type": "step", "action": action}))[0]["png"])
    assert frames[0] != frames[1]


def test_binary_frames_carry_the_pixels_of_the_png_frames() -> None:
    sessions = {kind: PlaySession(WorldModelEnv(_model()), encoding=kind) for kind in ("png", "rgba")}
    shown: dict[str, list[np.ndarray]] = {"png": [], "rgba": []}
    for kind, session in sessions.items():
        answers = [session.handle(json.dumps({"type": "reset", "prompt": {"kind": "image", "data": _png()}}))[0]]
        answers += [session.handle(json.dumps({"type": "step", "action": a}))[0] for a in (1, 6)]
        for expected_step, answer in enumerate(answers):
            if kind == "rgba":
                assert isinstance(answer, bytes)
                frame, step, ms = decode_rgba_frame(answer)
                assert ms >= 0.0
            else:
                frame, step = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["png"])))), answer["step"]
            assert step == expected_step and frame.shape == (32, 32, 3)
            shown[kind].append(frame)
        bad = session.handle(json.dumps({"type": "step", "action": 99}))[0]
        assert bad["type"] == "error"  # errors stay JSON in either encoding
    np.testing.assert_array_equal(np.stack(shown["png"]), np.stack(shown["rgba"]))  # same seed, same world


def test_a_binary_frame_round_trips_and_a_foreign_message_is_refused() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    message = rgba_frame(frame, step=12, ms=3.5)
    assert len(message) == 16 + 5 * 7 * 4
    decoded, step, ms = decode_rgba_frame(message)
    np.testing.assert_array_equal(decoded, frame)
    assert (step, ms) == (12, 3.5)
    for foreign in (b"", message[:-1], b"XXXX" + message[4:]):
        with pytest.raises(ValueError, match="binary frame"):
            decode_rgba_frame(foreign)
    with pytest.raises(ValueError, match="Frame encoding 'jpeg'"):
        PlaySession(WorldModelEnv(_model()), encoding="jpeg")


def test_loopback_is_recognised() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


# ---------------------------------------------------------------------------------------- a running server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path):
    import uvicorn

    model = _model()
    checkpoint = model.save_pretrained(tmp_path / "model")
    _report(tmp_path / "report.json")
    app = create_app(str(checkpoint), report=str(tmp_path / "report.json"), bf16=False)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=4 * 1024 * 1024)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _until(ws, kind: str) -> dict:
    while True:
        message = json.loads(ws.recv(timeout=60))
        if message["type"] == kind:
            return message


def test_the_server_answers_a_burst_of_malformed_messages_and_bad_uploads(server) -> None:
    with connect(f"ws://{server}/ws", max_size=8 * 1024 * 1024) as ws:
        _until(ws, "status")
        ws.send(json.dumps({"type": "reset"}))
        assert _until(ws, "frame")["step"] == 0
        for i in range(200):
            ws.send(["{", '{"type": "step", "action": 1000}', b"\x00\x01", '{"no": "type"}'][i % 4])
        for _ in range(20):
            ws.send(json.dumps({"type": "reset", "prompt": {"kind": "image", "data": base64.b64encode(b"text").decode()}}))
        errors = [_until(ws, "error") for _ in range(220)]
        assert all(e["message"] for e in errors)
        ws.send(json.dumps({"type": "step", "action": 3}))
        assert _until(ws, "frame")["step"] == 1  # still playable
        with connect(f"ws://{server}/ws") as other:  # a second page shares the model, with its own world
            _until(other, "status")
            other.send(json.dumps({"type": "reset", "prompt": {"kind": "image", "data": _png()}}))
            assert _until(other, "frame")["step"] == 0
        ws.send(json.dumps({"type": "step", "action": 2}))
        assert _until(ws, "frame")["step"] == 2


def test_a_page_that_asks_for_binary_frames_gets_them_and_an_unknown_encoding_is_answered(server) -> None:
    with connect(f"ws://{server}/ws?frames=rgba", max_size=8 * 1024 * 1024) as ws:
        _until(ws, "status")
        ws.send(json.dumps({"type": "reset"}))
        steps = []
        for action in (None, 2, 5):
            if action is not None:
                ws.send(json.dumps({"type": "step", "action": action}))
            while isinstance(message := ws.recv(timeout=60), str):
                assert json.loads(message)["type"] == "status"
            frame, step, _ = decode_rgba_frame(message)
            assert frame.shape == (32, 32, 3)
            steps.append(step)
        assert steps == [0, 1, 2]
        ws.send("not json")
        assert json.loads(ws.recv(timeout=60))["type"] == "error"
    with connect(f"ws://{server}/ws?frames=gif") as ws:
        error = _until(ws, "error")
        assert "frame encoding" in error["message"]
        _until(ws, "status")
        ws.send(json.dumps({"type": "reset"}))
        assert _until(ws, "frame")["step"] == 0  # served as png instead


# ---------------------------------------------------------------------------------------- a real browser
def test_a_person_plays_in_a_browser(server, tmp_path) -> None:
    from cdp_browser import Browser, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium; .ci/run installs it where it can)")
    browser = Browser(executable)
    try:
        browser.navigate(f"http://{server}/")
        browser.wait_for("document.getElementById('status').textContent.startsWith('ready') && "
                         "state.step === 0 && !state.waiting")
        # the page asks for binary frames (no PNG to encode on the server or to decode in the browser)
        assert browser.evaluate("state.ws.binaryType === 'arraybuffer' && state.ws.url.endsWith('?frames=rgba')")
        legend = browser.evaluate("document.getElementById('legend').textContent")
        assert "right" in legend and "confident" in legend and "latent 3" in legend  # ArrowRight -> latent 2 (shown 3)

        def frame_after(key: str) -> tuple[str, int]:
            browser.evaluate("document.getElementById('reset').click()")
            browser.wait_for("state.step === 0 && !state.waiting")
            before = int(browser.evaluate("state.step"))
            browser.key(key, hold=0.3)
            browser.wait_for(f"state.step > {before}")
            time.sleep(0.3)
            return browser.evaluate("document.getElementById('screen').toDataURL()"), int(
                browser.evaluate("state.step"))

        right, steps = frame_after("ArrowRight")
        left, _ = frame_after("ArrowLeft")
        assert steps >= 1 and right != left  # two keys, two different worlds
        not_an_image = tmp_path / "notes.png"
        not_an_image.write_text("this is not an image")
        browser.set_file("#upload", str(not_an_image))
        browser.wait_for("document.getElementById('status').className === 'error'")
        assert "image" in browser.evaluate("document.getElementById('status').textContent")
        before = int(browser.evaluate("state.step"))
        browser.key("2", hold=0.3)  # play goes on after the refused upload
        browser.wait_for(f"state.step > {before}")
        # the HUD (frames/s, step, ms) is drawn on its own canvas: light text on the dark background
        lit = browser.evaluate("(() => { const d = hud.getContext('2d').getImageData(0, 0, hud.width, hud.height).data;"
                               " let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 128; return n; })()")
        assert lit > 20
        shot = browser.screenshot(tmp_path / "serve.png")
        assert shot.stat().st_size > 1000
        if os.environ.get("WORLDMODELS_UPDATE_SCREENSHOT"):
            DOCS_SCREENSHOT.write_bytes(shot.read_bytes())
    finally:
        browser.close()


def test_the_key_map_can_be_counted_from_data_with_true_actions() -> None:
    from worldmodels.serve.keymap import contingency_from_data

    class Recorded:
        """Eight 4-frame clips with true actions 0..2 (left, right, noop) and their groups."""

        num_actions, action_names = 3, ["LEFT", "RIGHT", "NOOP"]
        action_groups = {"left": [0], "right": [1], "stay": [2]}

        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> dict:
            g = torch.Generator().manual_seed(i)
            return {"video": torch.rand(4, 3, 32, 32, generator=g), "actions": torch.tensor([i % 3, (i + 1) % 3, 2])}

    model = _model()
    table, names = contingency_from_data(model, Recorded(), split=None, max_clips=8)
    assert names == ["left", "right", "stay"] and table.shape == (model.num_actions, 3)
    assert table.sum() == 8 * 3  # every transition counted once
    assert table[:, 2].sum() == sum([i % 3, (i + 1) % 3, 2].count(2) for i in range(8))
    keymap = keymap_from_table(table, names, "recorded")
    assert {b.control for b in keymap.bindings} == {"left", "right", "stay"}


def test_the_server_refuses_a_thread_count_below_one() -> None:
    with pytest.raises(ValueError, match="threads must be >= 1"):
        create_app(_model(), threads=0)


def test_a_compiled_server_plays_the_frames_of_an_eager_one() -> None:
    from starlette.testclient import TestClient

    frames = {}
    for compiled in (False, "eager"):  # "eager": traced by dynamo without generating code (fast)
        model = _model()
        app = create_app(model, bf16=False, compile=compiled)
        assert getattr(model, "_compiled_backend", None) == (compiled or None)
        with TestClient(app) as client, client.websocket_connect("/ws") as ws:
            while ws.receive_json().get("state") != "ready":
                pass
            ws.send_json({"type": "reset", "prompt": None})
            shown = [ws.receive_json()["png"]]
            for action in (1, 3, 0):
                ws.send_json({"type": "step", "action": action})
                shown.append(ws.receive_json()["png"])
        frames[compiled] = shown
    assert frames[False] == frames["eager"]
