"""Training pairs made from the bank, in batches, on the training device.

A pair ``k`` of the batch of step ``s`` is a pure function of ``(seed, s, k)`` and the curriculum
state: every random number is drawn from a CPU generator seeded by ``(seed, s)`` in a fixed
order, then the images are built on the device. So a resumed run sees exactly the batches an
uninterrupted one would, on any device.

How a pair is made (docs/training.md has the why of each step):

1. a base subject for the moving image: a co-registered template (both modalities) or a parcel
   map rendered in both modalities (:mod:`.render`); the fixed image's base subject is the same
   one with probability ``p_same_subject``, else drawn independently (in 2D its slice then lies
   up to ``slice_offset`` slices away);
2. an anatomy ``D`` per image (:func:`.fields.random_anatomy`): a same-subject pair shares it with
   probability ``anatomy.p_same``; otherwise the two images are two different "subjects";
3. a pose ``P`` per image, the paper's random affine + non-rigid misalignment (§4.1,
   :func:`firereg.data.augmentation.sample_params`) at the curriculum's strength (the same pose
   for both while the curriculum keeps pairs aligned);
4. both modalities of each image are sampled once at ``D o P`` and normalized; the network gets
   the moving image in modality A and the fixed one in modality B, each with its own appearance
   (:mod:`.appearance`); the clean other-modality partners are the targets of the
   known-transform term (:func:`firereg.losses.supervision.l_known`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from firereg.data.augmentation import AugmentationConfig, derive_seed, params_to_transform, sample_params
from firereg.data.synthesis.appearance import apply_appearance, normalize_percentiles, sample_appearance
from firereg.data.synthesis.bank import ModelGridBank
from firereg.data.synthesis.config import SynthesisConfig
from firereg.data.synthesis.fields import random_anatomy
from firereg.data.synthesis.render import render_parcels
from firereg.spatial import compose, warp, warp_labels

__all__ = ["SynthBatch", "SynthPairSource"]


@dataclass
class SynthBatch:
    """One batch of synthesized pairs, every tensor ``(N, 1, *S)`` on the training device.

    Attributes:
        x_a, x_b: the network's inputs: moving image in modality A, fixed image in modality B,
            each with its own random appearance, in [-1, 1].
        clean_a, clean_b: the same two images without appearance changes.
        partner_b: the moving image's co-registered partner in modality B (clean): registered
            onto the fixed image by the true ``phi_AB`` it equals ``clean_b`` when both images
            come from one subject and one anatomy.
        partner_a: the fixed image's partner in modality A (clean), the same for ``phi_BA``.
        labels_a, labels_b: tissue classes (parcel-map subjects) or SPM structure labels
            (templates) of the two images, int64 (0 outside).
        same_anatomy: ``(N,)`` bool, pairs whose true transform is exactly known (one subject).
    """

    x_a: Tensor
    x_b: Tensor
    clean_a: Tensor
    clean_b: Tensor
    partner_a: Tensor
    partner_b: Tensor
    labels_a: Tensor
    labels_b: Tensor
    same_anatomy: Tensor


@dataclass(frozen=True)
class _Pick:
    kind: str  # "template" or "tissue"
    index: int
    slice: int | None


class SynthPairSource:
    """Makes :class:`SynthBatch` es for a 2D or 3D FIRE model from a :class:`ModelGridBank`.

    Args:
        bank: on the training device (``bank.to(device)``).
        ndim: 2 (axial slices, axis Z of the bank) or 3 (whole volumes).
    """

    def __init__(self, bank: ModelGridBank, config: SynthesisConfig, augmentation: AugmentationConfig,
                 ndim: int, seed: int) -> None:
        if ndim not in (2, 3):
            raise ValueError(f"SynthPairSource: ndim must be 2 or 3, got {ndim!r}")
        self.bank, self.config, self.augmentation = bank, config, augmentation
        self.ndim, self.seed = ndim, seed
        if ndim == 2:
            empty = [n for n, s in zip(bank.template_names + bank.tissue_names,
                                       bank.template_slices + bank.tissue_slices, strict=True) if not s]
            if empty:
                raise ValueError(f"SynthPairSource: no usable axial slice in {empty}")

    @property
    def device(self) -> torch.device:
        return self.bank.parcels.device if len(self.bank.tissue_names) else self.bank.templates.device

    # -------------------------------------------------------------- drawing
    def _pick(self, gen: torch.Generator, near: _Pick | None = None) -> _Pick:
        b, c = self.bank, self.config
        tissue = float(torch.rand(1, generator=gen)) < c.p_tissues
        kind = "tissue" if tissue and b.tissue_names else ("template" if b.template_names else "tissue")
        count = len(b.tissue_names) if kind == "tissue" else len(b.template_names)
        index = int(torch.randint(count, (1,), generator=gen))
        offset = int(torch.randint(-c.slice_offset, c.slice_offset + 1, (1,), generator=gen))
        if self.ndim == 3:
            return _Pick(kind, index, None)
        slices = (b.tissue_slices if kind == "tissue" else b.template_slices)[index]
        if near is None:
            return _Pick(kind, index, slices[int(torch.randint(len(slices), (1,), generator=gen))])
        target = near.slice + offset
        return _Pick(kind, index, min(slices, key=lambda z: (abs(z - target), z)))

    def _base(self, pick: _Pick) -> tuple[Tensor | None, Tensor | None, Tensor]:
        """(template stack (2, *S) or None, parcels (1, *S) or None, labels (1, *S))."""
        b = self.bank

        def cut(x: Tensor) -> Tensor:
            return x if pick.slice is None else x[..., pick.slice]

        if pick.kind == "template":
            return cut(b.templates[pick.index]), None, cut(b.template_labels)
        return None, cut(b.parcels[pick.index]), cut(b.classes[pick.index])

    # -------------------------------------------------------------- the batch
    def batch(self, step: int, batch_size: int, *, strength: float = 1.0, aligned: bool = False,
              indices: range | None = None) -> SynthBatch:
        """The batch of ``step`` (``indices``: this process's share of it; default all)."""
        c = self.config
        gen = torch.Generator().manual_seed(derive_seed(self.seed, step))
        picks, same, same_anatomy = [], [], []
        for _ in range(batch_size):
            moving = self._pick(gen)
            fixed_draw = self._pick(gen, near=moving)
            is_same = float(torch.rand(1, generator=gen)) < c.p_same_subject
            shares = is_same and float(torch.rand(1, generator=gen)) < c.anatomy.p_same
            fixed = moving if is_same else fixed_draw
            picks.append((moving, fixed))
            same.append(is_same)
            same_anatomy.append(shares)
        size = self.bank.shape if self.ndim == 3 else self.bank.shape[:2]
        dev = self.device
        d_moving = random_anatomy(batch_size, size, c.anatomy, gen, device=dev)
        d_fixed = random_anatomy(batch_size, size, c.anatomy, gen, device=dev)
        shared = torch.tensor(same_anatomy, device=dev)
        d_fixed = torch.where(shared.view(-1, *[1] * (self.ndim + 1)), d_moving, d_fixed)
        pose_config = _scaled(self.augmentation, strength)
        appearance_m = sample_appearance(batch_size, self.ndim, c.appearance, gen)
        appearance_f = sample_appearance(batch_size, self.ndim, c.appearance, gen)
        render_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        keep = list(indices if indices is not None else range(batch_size))

        stacks_m, stacks_f, labels_m, labels_f = [], [], [], []
        for k in keep:
            moving, fixed = picks[k]
            pose_m = self._pose(step, k, 0, pose_config, size)
            pose_f = pose_m if aligned else self._pose(step, k, 1, pose_config, size)
            phi_m = compose(d_moving[k:k + 1], pose_m)
            phi_f = compose(d_fixed[k:k + 1], pose_f)
            render_gen = torch.Generator().manual_seed(derive_seed(render_seed, k))
            stack_m, stack_f = self._render_pair(moving, fixed, render_gen)
            stacks_m.append(warp(stack_m, phi_m, padding_mode="border"))
            stacks_f.append(warp(stack_f, phi_f, padding_mode="border"))
            labels_m.append(warp_labels(self._base(moving)[2][None], phi_m, method="nearest"))
            labels_f.append(warp_labels(self._base(fixed)[2][None], phi_f, method="nearest"))
        m = _normalize_channels(torch.cat(stacks_m))
        f = _normalize_channels(torch.cat(stacks_f))
        clean_a, partner_b = m[:, :1], m[:, 1:]
        partner_a, clean_b = f[:, :1], f[:, 1:]

        def rows(params):
            return type(params)(**{k: v[keep] for k, v in vars(params).items()})

        return SynthBatch(
            x_a=apply_appearance(clean_a, rows(appearance_m)),
            x_b=apply_appearance(clean_b, rows(appearance_f)),
            clean_a=clean_a, clean_b=clean_b, partner_a=partner_a, partner_b=partner_b,
            labels_a=torch.cat(labels_m), labels_b=torch.cat(labels_f),
            same_anatomy=torch.tensor([same_anatomy[k] for k in keep], device=dev))

    def _pose(self, step: int, k: int, role: int, config: AugmentationConfig, size) -> Tensor:
        if config.strength == 0:
            return torch.zeros((1, self.ndim, *size), device=self.device)
        params = sample_params(self.ndim, config, derive_seed(self.seed, step, k, role), size=size)
        return params_to_transform(params, size, device=self.device)

    def _render_pair(self, moving: _Pick, fixed: _Pick, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Both modalities ``(1, 2, *S)`` of the two base images; parcel maps of one pair share
        their intensity draws, so one subject renders alike in both images."""
        bases = [self._base(moving), self._base(fixed)]
        parcels = [p for _, p, _ in bases if p is not None]
        rendered: list[Tensor] = []
        if parcels:
            stacked = torch.stack(parcels)
            group = torch.zeros(len(parcels), dtype=torch.int64)
            channels = [render_parcels(stacked, self.bank.parcel_class, self.bank.stats[m],
                                       self.config.render, gen, groups=group)
                        for m in self.bank.modalities]
            rendered = list(torch.cat(channels, dim=1).unbind(0))
        out = []
        for stack, p, _ in bases:
            out.append((stack if p is None else rendered.pop(0))[None])
        return out[0], out[1]


def _scaled(config: AugmentationConfig, strength: float) -> AugmentationConfig:
    from dataclasses import replace

    return replace(config, strength=config.strength * float(strength))


def _normalize_channels(x: Tensor) -> Tensor:
    """Normalize every image and channel of ``(N, C, *S)`` on its own, as the preprocessing would."""
    n, ch = x.shape[:2]
    return normalize_percentiles(x.reshape(n * ch, 1, *x.shape[2:])).reshape(x.shape)
