"""The FIRE model: G, F_AB, F_BA, T_AB and T_BA wired as in Fig. 1 (§3.1)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from firereg.config import ModelConfig
from firereg.model.decoder import Decoder
from firereg.model.encoder import Encoder
from firereg.model.transformation import TransformationNet, TransformParts
from firereg.spatial import compose, warp

__all__ = ["FireModel", "FireOutput", "Registration", "MIN_SIZE"]

# Each spatial size must be a multiple of 4 (two stride-2 convs). At 20 the feature grid has 5
# voxels per axis: T_af's first two stride-2 convolutions leave 2 per axis, the fewest on which
# their instance norm is defined, and the Laplacian of Eq. (10) has interior voxels.
MIN_SIZE = 20
# Images are normalized to [-1, 1] with the background near -1: outside the field of view the
# border value is repeated rather than inventing a mid-grey 0.
PADDING = "border"


@dataclass
class FireOutput:
    """Every quantity the losses of §3.5-3.7 need, by name. ``a``/``b`` are the modalities.

    Images are ``(N, C, *S)``, features ``(N, 4w, *S/4)``, affines ``(N, d, d+1)``, non-rigid
    displacements ``(N, d, *S/4)`` (normalized units, feature grid). ``phi_ab`` registers A onto B:
    ``x_a o phi_ab`` lives on B's grid.
    """

    feat_a: Tensor  # G(x^A)
    feat_b: Tensor  # G(x^B)
    synth_b: Tensor  # x_hat^B = F_AB(G(x^A))
    synth_a: Tensor  # x_hat^A = F_BA(G(x^B))
    feat_synth_b: Tensor  # G(x_hat^B)
    feat_synth_a: Tensor  # G(x_hat^A)
    cycle_a: Tensor  # F_BA(G(x_hat^B))
    cycle_b: Tensor  # F_AB(G(x_hat^A))
    affine_ab: Tensor  # phi_af^{A->B}
    affine_ba: Tensor  # phi_af^{B->A}
    nonrigid_ab: Tensor  # phi_nr^{A->B}, feature grid
    nonrigid_ba: Tensor  # phi_nr^{B->A}, feature grid
    feat_a_warped: Tensor  # G(x^A) o phi_ab
    feat_b_warped: Tensor  # G(x^B) o phi_ba
    synth_b_warped: Tensor  # x_hat_T^B = F_AB(G(x^A) o phi_ab)
    synth_a_warped: Tensor  # x_hat_T^A = F_BA(G(x^B) o phi_ba)
    synth_b_feat_affine: Tensor  # F_AB(G(x^A) o phi_af^{A->B})      (Eq. 11)
    synth_a_feat_affine: Tensor  # F_BA(G(x^B) o phi_af^{B->A})      (Eq. 11)
    image_a_warped: Tensor  # x^A o phi_ab, on B's grid
    image_b_warped: Tensor  # x^B o phi_ba, on A's grid
    synth_b_image_warped: Tensor  # F_AB(G(x^A o phi_ab))           (Eq. 7)
    synth_a_image_warped: Tensor  # F_BA(G(x^B o phi_ba))           (Eq. 7)
    synth_b_image_affine: Tensor  # F_AB(G(x^A o phi_af^{A->B}))    (Eq. 12)
    synth_a_image_affine: Tensor  # F_BA(G(x^B o phi_af^{B->A}))    (Eq. 12)
    image_a_cycle: Tensor  # x^A o phi_ab o phi_ba                  (Eq. 8)
    image_b_cycle: Tensor  # x^B o phi_ba o phi_ab                  (Eq. 8)
    phi_ab: Tensor  # phi_af o phi_nr, (N, d, *S) on the image grid
    phi_ba: Tensor  # the same for B -> A

    def as_dict(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Registration:
    """Result of registering a moving image onto a fixed one with G and one T (§3.4).

    Attributes:
        affine: ``phi_af`` ``(N, d, d+1)``, normalized coordinates of the fixed and moving grids.
        nonrigid: ``phi_nr`` ``(N, d, *S/4)`` on the feature grid.
        displacement: the full ``phi = phi_af o phi_nr`` as ``(N, d, *S)`` on the fixed grid.
        warped: the moving image sampled at ``phi``, ``(N, C, *S)``.
        warped_affine: the moving image sampled at ``phi_af`` only, ``(N, C, *S)``.
    """

    affine: Tensor
    nonrigid: Tensor
    displacement: Tensor
    warped: Tensor
    warped_affine: Tensor


def _split(x: Tensor, parts: int) -> tuple[Tensor, ...]:
    return tuple(torch.chunk(x, parts, dim=0))


class FireModel(nn.Module):
    """FIRE for one pair of modalities A, B (A = B for intra-modal data).

    Attributes:
        encoder: G, shared by both modalities.
        decoder_ab, decoder_ba: F_AB (synthesizes B from G's features), F_BA.
        transform_ab, transform_ba: T_AB (registers A onto B), T_BA.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder(c.ndim, c.in_channels, c.width, num_res_blocks=c.res_blocks,
                               stem_kernel=c.stem_kernel, padding_mode=c.padding_mode)
        self.decoder_ab = Decoder(c.ndim, c.width, c.in_channels,
                                  synthesis_channels=c.synthesis_channels,
                                  head_kernel=c.stem_kernel, padding_mode=c.padding_mode)
        self.decoder_ba = Decoder(c.ndim, c.width, c.in_channels,
                                  synthesis_channels=c.synthesis_channels,
                                  head_kernel=c.stem_kernel, padding_mode=c.padding_mode)
        self.transform_ab = TransformationNet(c)
        self.transform_ba = TransformationNet(c)

    # ------------------------------------------------------------------ checks
    def check_inputs(self, x_a: Tensor, x_b: Tensor, caller: str) -> None:
        """Raise a ``ValueError`` naming ``caller`` unless ``x_a`` and ``x_b`` fit this model."""
        c = self.config
        for name, x in (("first image", x_a), ("second image", x_b)):
            if not isinstance(x, Tensor):
                raise ValueError(f"{caller}: {name} must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() != c.ndim + 2 or x.shape[1] != c.in_channels:
                raise ValueError(
                    f"{caller}: expected {name} of shape (N, {c.in_channels}, "
                    f"{', '.join(['S'] * c.ndim)}) for this {c.ndim}D model, got {tuple(x.shape)}")
            if not x.is_floating_point():
                raise ValueError(f"{caller}: {name} must be floating point, got {x.dtype}")
            bad = [s for s in x.shape[2:] if s % 4 or s < MIN_SIZE]
            if bad:
                raise ValueError(
                    f"{caller}: every spatial size must be a multiple of 4 and at least "
                    f"{MIN_SIZE} (the encoder downsamples twice), got {tuple(x.shape[2:])}")
        if x_a.shape != x_b.shape:
            raise ValueError(f"{caller}: both images must have the same shape, got "
                             f"{tuple(x_a.shape)} and {tuple(x_b.shape)}")

    # ---------------------------------------------------------------- training
    def forward(self, x_a: Tensor, x_b: Tensor) -> FireOutput:
        """Run every path of Fig. 1 on a batch of pairs ``(N, C, *S)`` each.

        Passes through G and the decoders are batched (instance norm keeps samples independent),
        so G runs twice and each decoder twice per call.
        """
        self.check_inputs(x_a, x_b, "FireModel.forward")
        size = x_a.shape[2:]
        feat_a, feat_b = _split(self.encoder(torch.cat([x_a, x_b])), 2)

        parts_ab: TransformParts = self.transform_ab(feat_a, feat_b)
        parts_ba: TransformParts = self.transform_ba(feat_b, feat_a)
        phi_ab_feat, phi_ba_feat = parts_ab.full(), parts_ba.full()
        phi_ab, phi_ba = parts_ab.full(size), parts_ba.full(size)

        feat_a_warped = warp(feat_a, phi_ab_feat, padding_mode=PADDING)
        feat_b_warped = warp(feat_b, phi_ba_feat, padding_mode=PADDING)
        image_a_warped = warp(x_a, phi_ab, padding_mode=PADDING)
        image_b_warped = warp(x_b, phi_ba, padding_mode=PADDING)
        image_a_affine = warp(x_a, parts_ab.affine, padding_mode=PADDING)
        image_b_affine = warp(x_b, parts_ba.affine, padding_mode=PADDING)
        # Eq. (8): compose the transforms and resample each image once.
        image_a_cycle = warp(x_a, compose(phi_ab, phi_ba), padding_mode=PADDING)
        image_b_cycle = warp(x_b, compose(phi_ba, phi_ab), padding_mode=PADDING)

        synth_b, synth_b_warped, synth_b_feat_affine = _split(self.decoder_ab(
            torch.cat([feat_a, feat_a_warped, parts_ab.moving_features_affine])), 3)
        synth_a, synth_a_warped, synth_a_feat_affine = _split(self.decoder_ba(
            torch.cat([feat_b, feat_b_warped, parts_ba.moving_features_affine])), 3)

        (feat_synth_b, feat_synth_a, feat_img_a_warped, feat_img_b_warped, feat_img_a_affine,
         feat_img_b_affine) = _split(self.encoder(torch.cat(
             [synth_b, synth_a, image_a_warped, image_b_warped, image_a_affine, image_b_affine])), 6)

        cycle_b, synth_b_image_warped, synth_b_image_affine = _split(self.decoder_ab(
            torch.cat([feat_synth_a, feat_img_a_warped, feat_img_a_affine])), 3)
        cycle_a, synth_a_image_warped, synth_a_image_affine = _split(self.decoder_ba(
            torch.cat([feat_synth_b, feat_img_b_warped, feat_img_b_affine])), 3)

        return FireOutput(
            feat_a=feat_a, feat_b=feat_b, synth_b=synth_b, synth_a=synth_a,
            feat_synth_b=feat_synth_b, feat_synth_a=feat_synth_a,
            cycle_a=cycle_a, cycle_b=cycle_b,
            affine_ab=parts_ab.affine, affine_ba=parts_ba.affine,
            nonrigid_ab=parts_ab.nonrigid, nonrigid_ba=parts_ba.nonrigid,
            feat_a_warped=feat_a_warped, feat_b_warped=feat_b_warped,
            synth_b_warped=synth_b_warped, synth_a_warped=synth_a_warped,
            synth_b_feat_affine=synth_b_feat_affine, synth_a_feat_affine=synth_a_feat_affine,
            image_a_warped=image_a_warped, image_b_warped=image_b_warped,
            synth_b_image_warped=synth_b_image_warped, synth_a_image_warped=synth_a_image_warped,
            synth_b_image_affine=synth_b_image_affine, synth_a_image_affine=synth_a_image_affine,
            image_a_cycle=image_a_cycle, image_b_cycle=image_b_cycle, phi_ab=phi_ab, phi_ba=phi_ba,
        )

    # --------------------------------------------------------------- inference
    def ready_for_inference(self, device: str | torch.device) -> FireModel:
        """This model on ``device`` in eval mode; moves nothing when it is already there (walking
        every module costs milliseconds, a tenth of a 2D registration)."""
        target = torch.device(device)
        param = next(self.parameters())
        if param.device.type != target.type or (target.index is not None and param.device != target):
            self.to(target)
        if self.training:
            self.eval()
        return self

    def transformation_net(self, direction: str) -> TransformationNet:
        """T_AB for ``direction="ab"`` (moving is modality A), T_BA for ``"ba"``."""
        if direction not in ("ab", "ba"):
            raise ValueError(f"FireModel: direction must be 'ab' or 'ba', got {direction!r}")
        return self.transform_ab if direction == "ab" else self.transform_ba

    def register(self, moving: Tensor, fixed: Tensor, direction: str = "ab") -> Registration:
        """Register ``moving`` onto ``fixed`` with G and one transformation network only (§3.4).

        The decoders are never run. ``direction="ab"`` means ``moving`` is of modality A and
        ``fixed`` of modality B; ``"ba"`` the reverse.

        Args:
            moving, fixed: ``(N, C, *S)`` on the same preprocessed grid.
        """
        net = self.transformation_net(direction)
        self.check_inputs(moving, fixed, "FireModel.register")
        feat_moving, feat_fixed = _split(self.encoder(torch.cat([moving, fixed])), 2)
        return self._registration(net, feat_moving, feat_fixed, moving)

    def encode_pair(self, moving: Tensor, fixed: Tensor) -> tuple[Tensor, Tensor]:
        """``(G(moving), G(fixed))``, each ``(N, 4w, *S/4)``, from one batched pass of G."""
        return _split(self.encoder(torch.cat([moving, fixed])), 2)

    def register_both(self, moving: Tensor, fixed: Tensor, direction: str = "ab", *,
                      features: tuple[Tensor, Tensor] | None = None,
                      affines: tuple[Tensor, Tensor] | None = None) -> tuple[Registration, Registration]:
        """``(moving onto fixed, fixed onto moving)`` with G run once for both directions.

        The second uses the other transformation network (T_BA when ``direction="ab"``).
        ``features``: :meth:`encode_pair`'s output when the caller already has it (G is not run).
        ``affines``: given ``(phi_af forward, phi_af backward)`` in place of the affine subnets'
        (the non-rigid subnets then predict their fields after these matrices).
        """
        forward_net = self.transformation_net(direction)
        backward_net = self.transformation_net("ba" if direction == "ab" else "ab")
        self.check_inputs(moving, fixed, "FireModel.register_both")
        feat_moving, feat_fixed = features if features is not None else self.encode_pair(moving, fixed)
        fwd_affine, bwd_affine = affines if affines is not None else (None, None)
        return (self._registration(forward_net, feat_moving, feat_fixed, moving, fwd_affine),
                self._registration(backward_net, feat_fixed, feat_moving, fixed, bwd_affine))

    def affines_both(self, direction: str, features: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """``(phi_af forward, phi_af backward)``, each ``(N, d, d+1)``, from the affine subnets alone
        (no non-rigid pass), for :meth:`encode_pair`'s ``features`` of ``(moving, fixed)``."""
        feat_moving, feat_fixed = features
        backward = "ba" if direction == "ab" else "ab"
        return (self.transformation_net(direction).affine(feat_moving, feat_fixed),
                self.transformation_net(backward).affine(feat_fixed, feat_moving))

    def _registration(self, net: TransformationNet, feat_moving: Tensor, feat_fixed: Tensor,
                      moving: Tensor, affine: Tensor | None = None) -> Registration:
        parts: TransformParts = net(feat_moving, feat_fixed, affine)
        displacement = parts.full(moving.shape[2:])
        return Registration(
            affine=parts.affine,
            nonrigid=parts.nonrigid,
            displacement=displacement,
            warped=warp(moving, displacement, padding_mode=PADDING),
            warped_affine=warp(moving, parts.affine, padding_mode=PADDING),
        )

    # ------------------------------------------------------------ param groups
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The three disjoint groups of §3.9: ``affine`` (both T_af), ``nonrigid`` (both T_nr)
        and ``synthesis`` (G, F_AB, F_BA)."""
        return {
            "affine": [*self.transform_ab.affine.parameters(),
                       *self.transform_ba.affine.parameters()],
            "nonrigid": [*self.transform_ab.nonrigid.parameters(),
                         *self.transform_ba.nonrigid.parameters()],
            "synthesis": [*self.encoder.parameters(), *self.decoder_ab.parameters(),
                          *self.decoder_ba.parameters()],
        }
