"""Controllability: the Genie paper's Delta_t PSNR (Bruce et al. 2024, section 3).

Axis legend: ``B`` clips in a batch, ``T`` frames of a clip, ``C H W`` pixels, ``N`` generated
frames (the horizon, ``N <= T - 1``), ``A`` latent actions.

For each held-out clip ``x_0 .. x_N`` the model generates frames from the real first frame
``x_0`` twice: once with the latent actions its action model infers from the real clip
(``x^_t``) and once with uniformly random latent actions (``x^'_t``). Then

    Delta_t PSNR = PSNR(x_t, x^_t) - PSNR(x_t, x^'_t).

A model whose generations follow its latent actions scores clearly above 0; one that ignores
them scores 0. The paper reports ``t = 4``; :class:`ControllabilityResult` keeps every ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from worldmodels.eval.image_metrics import psnr
from worldmodels.interfaces import check_video


@runtime_checkable
class ControllableModel(Protocol):
    """What :func:`delta_psnr` needs of a model; :class:`worldmodels.WorldModel` provides it.

    Shapes:
        ``infer_actions``: ``B T C H W`` -> ``B T-1`` int64; ``generate``: prompt ``B C H W`` and
        actions ``B N`` -> ``B (1 + N) C H W``.
    """

    @property
    def num_actions(self) -> int:
        """How many actions the model takes."""
        ...

    def infer_actions(self, video: Tensor) -> Tensor:
        """The latent action of every transition of ``video``."""
        ...

    def generate(self, prompt: Tensor, actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The prompt frame followed by one generated frame per action."""
        ...


@dataclass
class ControllabilityResult:
    """Delta_t PSNR and the two PSNR curves behind it, for each generated frame ``t`` from 1 to ``N``.

    Entry ``i`` of every ``*_t`` tensor is frame ``t = i + 1`` of the clip (frame 0 is the real
    prompt); use :meth:`at` to index by ``t``. PSNRs are in dB (identical frames cap at 100 dB,
    see :data:`worldmodels.eval.image_metrics.PSNR_EPS`).

    Attributes:
        delta_psnr_t: ``N`` mean over clips of ``PSNR(x_t, x^_t) - PSNR(x_t, x^'_t)``.
        delta_psnr_std_t: ``N`` standard deviation of the per-clip deltas (``n - 1`` in the
            denominator; NaN for a single clip).
        delta_psnr_sem_t: ``N`` standard error of the mean, ``std / sqrt(num_clips)``.
        psnr_inferred_t: ``N`` mean PSNR of the frames generated with the inferred actions.
        psnr_random_t: ``N`` mean PSNR of the frames generated with random actions.
        delta_psnr_per_clip: ``num_clips N`` the per-clip deltas (for other statistics).
        num_clips: clips evaluated.
        seed: seed of the random actions and of the sampler.
    """

    delta_psnr_t: Tensor
    delta_psnr_std_t: Tensor
    delta_psnr_sem_t: Tensor
    psnr_inferred_t: Tensor
    psnr_random_t: Tensor
    delta_psnr_per_clip: Tensor
    num_clips: int
    seed: int

    @property
    def horizon(self) -> int:
        """``N``, the number of generated frames per clip."""
        return int(self.delta_psnr_t.shape[0])

    def at(self, t: int) -> float:
        """Mean Delta_t PSNR at frame ``t`` (``1 <= t <= N``; the paper reports ``t = 4``)."""
        if not 1 <= t <= self.horizon:
            raise ValueError(
                f"Frame t={t} was not generated: this result covers t = 1 .. {self.horizon} (frame 0 is the "
                "prompt). Evaluate clips with more frames or a larger horizon."
            )
        return float(self.delta_psnr_t[t - 1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (lists indexed by ``t - 1``), for reports."""
        return {
            "delta_psnr_t": self.delta_psnr_t.tolist(),
            "delta_psnr_std_t": self.delta_psnr_std_t.tolist(),
            "delta_psnr_sem_t": self.delta_psnr_sem_t.tolist(),
            "psnr_inferred_t": self.psnr_inferred_t.tolist(),
            "psnr_random_t": self.psnr_random_t.tolist(),
            "num_clips": self.num_clips,
            "horizon": self.horizon,
            "seed": self.seed,
        }


def _model_device(model: object, fallback: torch.device) -> torch.device:
    if isinstance(model, nn.Module):
        for tensor in model.parameters():
            return tensor.device
        for buffer in model.buffers():
            return buffer.device
    return fallback


def _batches(clips: Tensor | Iterable[Tensor] | Iterable[Mapping[str, Tensor]]) -> Iterable[Any]:
    if isinstance(clips, Tensor):
        return [clips]
    return clips


def _video_and_actions(batch: Any) -> tuple[Tensor, Tensor | None]:
    """A batch is a video tensor, or a dict with ``video`` and optionally the recorded ``actions``."""
    if isinstance(batch, Mapping):
        return batch["video"], batch.get("actions")
    return batch, None


@torch.no_grad()
def delta_psnr(
    model: ControllableModel,
    clips: Tensor | Iterable[Tensor] | Iterable[Mapping[str, Tensor]],
    *,
    horizon: int | None = None,
    seed: int = 0,
    data_range: float = 1.0,
    max_clips: int | None = None,
) -> ControllabilityResult:
    """Delta_t PSNR of a world model on held-out clips.

    For every clip the model generates ``N`` frames from the real first frame twice, with the
    actions it infers from the real clip (for a recorded-action model: the recorded actions,
    which the batches must then carry) and with uniformly random actions; both
    rollouts use the same sampler seed, so the actions are the only difference between them.
    Random actions and sampler seeds come from ``seed``, so a call is reproducible. The model is
    put in eval mode for the call and its mode restored afterwards. ``infer_actions`` sees the
    first ``N + 1`` frames of each clip at once, so keep ``N + 1 <= model.num_frames`` unless the
    action model handles clips longer than its training context.

    Shapes:
        ``clips``: ``B T C H W`` in ``[0, data_range]`` (or an iterable of such batches, e.g.
        ``(batch["video"] for batch in loader)``, or of dicts with ``video`` and the recorded
        ``actions`` ``B T-1``, e.g. the loader's batches themselves), ``T >= N + 1``.

    Args:
        model: a :class:`worldmodels.WorldModel` (or anything with ``num_actions``,
            ``infer_actions`` and ``generate``, see :class:`ControllableModel`).
        clips: held-out clips; moved to the model's device batch by batch.
        horizon: ``N``, frames to generate per clip (default: ``T - 1`` of the first batch).
        seed: seed of the random actions and of the sampler's generator.
        data_range: pixel value span for PSNR.
        max_clips: stop after this many clips (default: all).

    Returns:
        :class:`ControllabilityResult`.

    Raises:
        ValueError: on clips with too few frames, no clips at all, or a model whose output does
            not have the documented shape.
    """
    num_actions = int(model.num_actions)
    if horizon is not None and horizon < 1:
        raise ValueError(f"horizon must be at least 1 generated frame, got {horizon}.")
    action_generator = torch.Generator().manual_seed(seed)
    psnr_inferred: list[Tensor] = []
    psnr_random: list[Tensor] = []
    seen = 0
    was_training: bool | None = model.training if isinstance(model, nn.Module) else None
    if isinstance(model, nn.Module):
        model.eval()
    try:
        for batch_index, batch in enumerate(_batches(clips)):
            video, recorded = _video_and_actions(batch)
            if max_clips is not None and seen >= max_clips:
                break
            check_video(video, "clips", min_frames=2)
            if horizon is None:
                horizon = video.shape[1] - 1
            if video.shape[1] < horizon + 1:
                raise ValueError(
                    f"Clips need horizon + 1 = {horizon + 1} frames (a prompt and {horizon} targets) but batch "
                    f"{batch_index} has shape {tuple(video.shape)}; pass horizon={video.shape[1] - 1} or longer clips."
                )
            if max_clips is not None:
                video = video[: max_clips - seen]
                recorded = recorded[: max_clips - seen] if recorded is not None else None
            video = video[:, : horizon + 1].to(_model_device(model, video.device))
            b = video.shape[0]
            if getattr(getattr(model, "action_model", None), "uses_recorded_actions", False):
                if recorded is None:
                    raise ValueError(
                        "This model is conditioned on recorded actions: pass batches as dicts with 'video' and "
                        "'actions' (B T-1), e.g. the data loader's batches."
                    )
                inferred_BN = model.infer_actions(video, recorded[:, :horizon].to(video.device)).long()  # type: ignore[call-arg]
            else:
                inferred_BN = model.infer_actions(video).long()
            if inferred_BN.shape != (b, horizon):
                raise ValueError(
                    f"model.infer_actions(video of shape {tuple(video.shape)}) returned shape "
                    f"{tuple(inferred_BN.shape)}; expected B T-1 = ({b}, {horizon})."
                )
            random_BN = torch.randint(0, num_actions, (b, horizon), generator=action_generator)
            random_BN = random_BN.to(video.device)
            sampler_seed = seed + 1 + batch_index

            real_BNCHW = video[:, 1:]
            for actions_BN, out in ((inferred_BN, psnr_inferred), (random_BN, psnr_random)):
                generator = torch.Generator(device=video.device).manual_seed(sampler_seed)
                generated = model.generate(video[:, 0], actions_BN, generator=generator)
                if generated.shape != video.shape:
                    raise ValueError(
                        f"model.generate(prompt B C H W, actions B N) returned shape {tuple(generated.shape)}; "
                        f"expected the prompt plus N = {horizon} frames, {tuple(video.shape)}."
                    )
                out.append(psnr(real_BNCHW, generated[:, 1:], data_range=data_range, reduction="none").cpu())
            seen += b
    finally:
        if was_training is not None and isinstance(model, nn.Module):
            model.train(was_training)

    if seen == 0:
        raise ValueError("No clips to evaluate: clips was empty (or max_clips was 0).")
    psnr_inferred_BN = torch.cat(psnr_inferred).double()
    psnr_random_BN = torch.cat(psnr_random).double()
    delta_BN = psnr_inferred_BN - psnr_random_BN
    if seen > 1:
        std_N = delta_BN.std(dim=0, correction=1)
    else:
        std_N = torch.full((delta_BN.shape[1],), math.nan, dtype=torch.float64)
    return ControllabilityResult(
        delta_psnr_t=delta_BN.mean(dim=0),
        delta_psnr_std_t=std_N,
        delta_psnr_sem_t=std_N / math.sqrt(seen),
        psnr_inferred_t=psnr_inferred_BN.mean(dim=0),
        psnr_random_t=psnr_random_BN.mean(dim=0),
        delta_psnr_per_clip=delta_BN,
        num_clips=seen,
        seed=seed,
    )
