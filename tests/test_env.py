"""WorldModelEnv: the Gymnasium contract, prompts, errors, the sliding context, caching and seeding."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from PIL import Image

import worldmodels
from worldmodels.envs import ENV_ID, PromptError, WorldModelEnv, frame_to_uint8, load_world_model, prompt_to_video

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def toy_model() -> worldmodels.WorldModel:
    """16x16 frames, 4x4 tokens, 4 latent actions, context of 4 frames (tests/toy_components.py)."""
    return worldmodels.build("toy-world")


def tiny_genie(num_frames: int = 4, steps: int = 4) -> worldmodels.WorldModel:
    """genie-tiny shrunk to test size: 32x32 frames, 4x4 st-vivit tokens (2x2 per dynamics position), MaskGIT."""
    if "genie-tiny" not in worldmodels.list_components("model"):
        pytest.skip("the Genie plug-in (genie-tiny) is not installed")
    small = dict(encoder_dim=32, encoder_depth=1, encoder_heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2)
    return worldmodels.build(
        "genie-tiny",
        image_size=32,
        num_frames=num_frames,
        tokenizer=dict(small, name="st-vivit", vocab_size=64),
        action_model=small,
        dynamics=dict(dim=32, depth=2, num_heads=2),
        sampler={"steps": steps},
    ).eval()


@pytest.fixture
def genie_model() -> worldmodels.WorldModel:
    return tiny_genie()


def _image(path, size_hw: tuple[int, int], colour: tuple[int, int, int]) -> str:
    Image.fromarray(np.full((*size_hw, 3), colour, np.uint8)).save(path)
    return str(path)


# ---------------------------------------------------------------------------------------- contract
@pytest.mark.parametrize("which", ["toy", "genie"])
def test_check_env_passes_without_warnings(which: str, toy_model) -> None:
    model = toy_model if which == "toy" else tiny_genie(steps=2)
    env = gym.make(ENV_ID, model=model, render_mode="rgb_array", max_episode_steps=50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    messages = [str(w.message) for w in caught if "gymnasium" in str(w.filename) or "env_checker" in str(w.message)]
    assert messages == []


def test_spaces_and_step_results(toy_model) -> None:
    env = WorldModelEnv(toy_model, max_episode_steps=3, render_mode="rgb_array")
    assert env.action_space == gym.spaces.Discrete(4)
    assert env.observation_space.shape == (16, 16, 3) and env.observation_space.dtype == np.uint8
    obs, info = env.reset(seed=0)
    assert obs.shape == (16, 16, 3) and obs.dtype == np.uint8 and info["frame_index"] == 0
    results = [env.step(a) for a in (0, 1, 2)]
    assert [r[1] for r in results] == [0.0, 0.0, 0.0]
    assert [r[2] for r in results] == [False, False, False]  # never terminates by itself
    assert [r[3] for r in results] == [False, False, True]  # truncated after max_episode_steps
    np.testing.assert_array_equal(env.render(), results[-1][0])
    assert set(env.last_timings) == {"dynamics_s", "decode_s"}


def test_gym_make_from_checkpoint_matches_model_object(toy_model, tmp_path) -> None:
    toy_model.save_pretrained(tmp_path / "ckpt")
    from_ckpt = gym.make(ENV_ID, checkpoint=str(tmp_path / "ckpt"))
    from_model = WorldModelEnv(toy_model)
    a, _ = from_ckpt.reset(seed=1)
    b, _ = from_model.reset(seed=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(from_ckpt.step(2)[0], from_model.step(2)[0])


def test_constructor_errors(toy_model) -> None:
    with pytest.raises(ValueError, match="exactly one of model="):
        WorldModelEnv()
    with pytest.raises(ValueError, match="exactly one of model="):
        WorldModelEnv(toy_model, checkpoint="somewhere")
    with pytest.raises(ValueError, match="render_mode='human' is not supported"):
        WorldModelEnv(toy_model, render_mode="human")
    with pytest.raises(ValueError, match="decode_window must lie in 1..4"):
        WorldModelEnv(toy_model, decode_window=5)
    with pytest.raises(ValueError, match="context_frames must lie in 1..3"):
        WorldModelEnv(toy_model, context_frames=4)
    with pytest.raises(FileNotFoundError, match="neither a checkpoint directory nor a registered .*toy-world"):
        load_world_model("toy-wrold")


# ---------------------------------------------------------------------------------------- prompts
def test_reset_with_prompt_file_of_another_size(toy_model, tmp_path) -> None:
    path = _image(tmp_path / "wide.png", (40, 24), (200, 40, 10))
    video = prompt_to_video(path, toy_model.image_size)
    assert video.shape == (1, 3, 16, 16)
    torch.testing.assert_close(video[0, :, 8, 8], torch.tensor([200, 40, 10]) / 255.0, atol=1e-3, rtol=0)
    env = WorldModelEnv(toy_model)
    obs, info = env.reset(seed=0, options={"prompt": path})
    assert obs.shape == (16, 16, 3) and info["prompt_frames"] == 1
    expected = frame_to_uint8(toy_model.decode(toy_model.encode(video[None]))[0, -1])
    np.testing.assert_array_equal(obs, expected)  # the prompt's reconstruction, not a default frame


def test_prompt_formats_agree(toy_model) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    as_array = prompt_to_video(rgb, (16, 16))
    as_tensor = prompt_to_video(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255, (16, 16))
    as_pil = prompt_to_video(Image.fromarray(rgb), (16, 16))
    as_rgba = prompt_to_video(np.concatenate([rgb, np.full((16, 16, 1), 255, np.uint8)], -1), (16, 16))
    for other in (as_tensor, as_pil, as_rgba):
        torch.testing.assert_close(other, as_array)
    grey = prompt_to_video(rgb[..., 0], (16, 16))
    assert grey.shape == (1, 3, 16, 16) and torch.equal(grey[0, 0], grey[0, 2])
    video = prompt_to_video(torch.rand(6, 3, 20, 20), (16, 16), max_frames=4)
    assert video.shape == (4, 3, 16, 16)
    assert prompt_to_video(None, (16, 16)).abs().sum() == 0  # the documented default: a black frame


def test_default_prompt_from_constructor_and_multi_frame_prompt(toy_model) -> None:
    prompt = torch.rand(3, 3, 16, 16)
    env = WorldModelEnv(toy_model, prompt=prompt)
    obs, info = env.reset(seed=0)
    assert info["prompt_frames"] == 3
    assert env.context_tokens.shape == (1, 3, 4, 4) and env.context_actions.shape == (1, 2)
    torch.testing.assert_close(env.context_actions, toy_model.infer_actions(prompt[None]))
    assert torch.equal(env.context_tokens, toy_model.encode(prompt[None]))


def test_prompt_errors_name_the_problem(toy_model, tmp_path) -> None:
    env = WorldModelEnv(toy_model)
    missing = tmp_path / "nowhere" / "level.png"
    with pytest.raises(FileNotFoundError, match=f"Prompt image {missing} does not exist"):
        env.reset(options={"prompt": str(missing)})
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not an image")
    with pytest.raises(PromptError, match=f"Cannot read prompt image {broken}"):
        env.reset(options={"prompt": broken})
    with pytest.raises(PromptError, match="values in \\[0, 1\\]"):
        env.reset(options={"prompt": torch.full((3, 16, 16), 2.0)})
    with pytest.raises(PromptError, match="channels-last"):
        env.reset(options={"prompt": np.zeros((3, 16, 16, 16, 2), np.uint8)})
    with pytest.raises(ValueError, match="Unknown reset option"):
        env.reset(options={"promt": str(broken)})
    with pytest.raises(FileNotFoundError, match=f"Prompt image {missing} does not exist"):
        WorldModelEnv(toy_model, prompt=missing)  # a bad default prompt fails at construction


# ---------------------------------------------------------------------------------------- actions
def test_action_errors(toy_model) -> None:
    env = WorldModelEnv(toy_model)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="Latent action 4 is out of range.*4 latent actions.*0..3"):
        env.step(4)
    with pytest.raises(ValueError, match="Latent action -1 is out of range"):
        env.step(-1)
    with pytest.raises(TypeError, match="integer index"):
        env.step(1.5)
    with pytest.raises(TypeError, match="bool"):
        env.step(True)
    env.step(np.int64(3))
    env.step(torch.tensor(2))
    assert env.frame_index == 2


# ---------------------------------------------------------------------------------------- context
def test_window_slides_beyond_num_frames_without_reencoding(toy_model, monkeypatch) -> None:
    env = WorldModelEnv(toy_model)
    env.reset(seed=0)
    encodes, contexts, decodes = [], [], []
    monkeypatch.setattr(toy_model.tokenizer, "encode", lambda video: encodes.append(video) or None)
    predict = toy_model.predict_next_tokens

    def spy_predict(tokens, actions, **kwargs):
        contexts.append((tokens.clone(), actions.clone()))
        return predict(tokens, actions, **kwargs)

    monkeypatch.setattr(toy_model, "predict_next_tokens", spy_predict)
    decode = toy_model.tokenizer.decode
    monkeypatch.setattr(toy_model.tokenizer, "decode", lambda tokens: decodes.append(tokens.shape[1]) or decode(tokens))
    played = [0, 1, 2, 3, 0, 1, 2]  # 7 steps, T = 4
    for action in played:
        env.step(action)
    assert encodes == []  # the past is never re-encoded
    assert env.context_tokens.shape == (1, 4, 4, 4)  # the last T frames
    assert env.context_actions.tolist() == [played[-3:]]  # the actions between them
    assert [c[0].shape[1] for c in contexts] == [1, 2, 3, 3, 3, 3, 3]  # the dynamics sees at most T-1 frames
    assert [c[1][0, -1].item() for c in contexts] == played  # the last action leads into the new frame
    assert contexts[-1][1][0, :-1].tolist() == played[-3:-1]
    assert decodes == [2, 3, 4, 4, 4, 4, 4]  # only the window of the newest frame is decoded


def test_decode_window_context_frames_and_decode_last_hook(toy_model, monkeypatch) -> None:
    env = WorldModelEnv(toy_model, decode_window=1, context_frames=1)
    env.reset(seed=0)
    seen = []
    monkeypatch.setattr(toy_model.tokenizer, "decode_last", lambda tokens: seen.append(tuple(tokens.shape)) or
                        toy_model.tokenizer.decode(tokens)[:, -1], raising=False)
    predict = toy_model.predict_next_tokens
    frames = []
    monkeypatch.setattr(toy_model, "predict_next_tokens",
                        lambda tokens, actions, **kw: frames.append(tokens.shape[1]) or predict(tokens, actions, **kw))
    for action in (0, 1, 2):
        env.step(action)
    assert seen == [(1, 1, 4, 4)] * 3 and frames == [1, 1, 1]


# ---------------------------------------------------------------------------------------- cache and seeds
def test_cached_and_uncached_give_identical_tokens(genie_model) -> None:
    cached, uncached = WorldModelEnv(genie_model), WorldModelEnv(genie_model, use_cache=False)
    prompt = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for env in (cached, uncached):
        env.reset(seed=7, options={"prompt": prompt})
    for action in [0, 5, 2, 7, 1, 1, 3]:  # beyond T = 4: the window slides
        a, b = cached.step(action)[0], uncached.step(action)[0]
        assert torch.equal(cached.context_tokens, uncached.context_tokens)
        np.testing.assert_array_equal(a, b)
    assert cached.context_tokens.unique().numel() > 4  # sampled tokens, not a constant frame


def test_step_uses_the_kv_cache_under_inference_mode(genie_model, monkeypatch) -> None:
    dynamics = genie_model.dynamics
    calls = {"forward": 0, "prefill": 0, "next_logits": 0, "inference": []}

    def spy(name):
        original = getattr(dynamics, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            calls["inference"].append(torch.is_inference_mode_enabled())
            return original(*args, **kwargs)

        return wrapper

    calls["open_stream"] = 0
    for name in ("forward", "prefill", "next_logits", "open_stream"):
        monkeypatch.setattr(dynamics, name, spy(name))
    env = WorldModelEnv(genie_model)  # 4 MaskGIT steps, rotary time: the episode keeps one stream
    env.reset(seed=0)
    for action in (1, 2, 3, 4, 5, 6):  # beyond num_frames = 4: the window slides, nothing is recomputed
        env.step(action)
    assert calls["open_stream"] == 1 and calls["prefill"] == 0 and calls["forward"] == 0
    assert calls["next_logits"] == 6 * 4
    assert all(calls["inference"])
    calls.update(forward=0, prefill=0, next_logits=0)
    env = WorldModelEnv(genie_model, use_cache=False)
    env.reset(seed=0)
    env.step(1)
    assert calls["prefill"] == 0 and calls["forward"] == 4  # the whole context at every iteration


def test_env_frames_equal_generate(genie_model) -> None:
    env = WorldModelEnv(genie_model)
    prompt = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(2))
    env.reset(seed=5, options={"prompt": prompt})
    generator = torch.Generator()
    generator.set_state(env.generator.get_state())
    actions = [1, 6, 3, 0, 2, 7]
    frames = [env.step(a)[0] for a in actions]
    video = genie_model.generate(prompt[None], torch.tensor([actions]), generator=generator)
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, frame_to_uint8(video[0, i + 1]))


def test_seeding(genie_model) -> None:
    def play(seed):
        env = WorldModelEnv(genie_model)
        env.reset(seed=seed)
        return [env.step(a)[0] for a in (1, 2, 3)]

    first, again, other = play(3), play(3), play(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")  # rms_norm's unfused bf16 path
def test_sampler_steps_and_bf16_options(genie_model, monkeypatch) -> None:
    with pytest.warns(DeprecationWarning, match="sampler_steps"):  # the former name still works
        assert WorldModelEnv(genie_model, maskgit_steps=3).model.sampler.get_config()["steps"] == 3
    with pytest.raises(ValueError, match="disagree"), pytest.warns(DeprecationWarning):
        WorldModelEnv(genie_model, sampler_steps=2, maskgit_steps=3)
    env = WorldModelEnv(genie_model, sampler_steps=2, bf16=True)
    assert genie_model.sampler.steps == 2
    decode_last, under_autocast = genie_model.tokenizer.decode_last, []

    def recording(tokens):
        under_autocast.append(torch.is_autocast_enabled("cpu"))
        return decode_last(tokens)

    monkeypatch.setattr(genie_model.tokenizer, "decode_last", recording)
    obs, _ = env.reset(seed=0)
    frame = env.step(1)[0]
    assert frame.shape == obs.shape == (32, 32, 3) and frame.dtype == np.uint8
    assert under_autocast == [True, True]  # bf16=True decodes in bf16 as well (reset's frame and the step's)
    env, under_autocast[:] = WorldModelEnv(genie_model, bf16=False), []
    env.reset(seed=0)
    env.step(1)
    assert under_autocast == [False, False]


def _compiled_matches_eager(model: worldmodels.WorldModel, reference: worldmodels.WorldModel) -> None:
    reference.load_state_dict(model.state_dict())
    compiled_env = WorldModelEnv(model, compile="eager")  # traced by dynamo, no code generation
    assert model._compiled_backend == "eager"
    stream_compiled = getattr(getattr(model.dynamics, "transformer", None), "_compiled_stream", None) is not None
    # a stream compiles its blocks; otherwise next_logits is replaced on the instance
    assert stream_compiled or type(model.dynamics).next_logits is not model.dynamics.next_logits
    eager_env = WorldModelEnv(reference)
    for env in (eager_env, compiled_env):
        env.reset(seed=1)
    for action in (3, 2, 1, 0, 3):
        np.testing.assert_array_equal(eager_env.step(action)[0], compiled_env.step(action)[0])


def test_compile_option_toy(toy_model) -> None:
    _compiled_matches_eager(toy_model, worldmodels.build("toy-world"))


@pytest.mark.slow
def test_compile_option_genie(genie_model) -> None:
    _compiled_matches_eager(genie_model, tiny_genie())
