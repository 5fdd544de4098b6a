"""A synthesis decoder F (§3.2); F_AB and F_BA are two instances."""

from __future__ import annotations

from torch import Tensor, nn

from firereg.nn import ConvBlock, ResBlock, UpsampleConvBlock, check_ndim, conv

__all__ = ["Decoder"]


class Decoder(nn.Module):
    """F: ``(N, 4w, *S/4) -> (N, C_out, *S)`` with values in (-1, 1).

    Four residual blocks of ``4w`` channels, two upsampling conv blocks with ``2w`` and ``w``
    channels (x2 upsampling then a stride-1 3^d conv), a ``head_kernel``^d conv block (7 in the
    paper) with ``synthesis_channels`` channels (3 in the paper), a 1x1 conv to ``out_channels``
    and a Tanh.
    """

    def __init__(self, ndim: int, width: int, out_channels: int, *, synthesis_channels: int = 3,
                 num_res_blocks: int = 4, head_kernel: int = 7,
                 padding_mode: str = "reflect") -> None:
        super().__init__()
        check_ndim(ndim, "Decoder")
        pm = padding_mode
        self.res = nn.Sequential(
            *(ResBlock(ndim, 4 * width, padding_mode=pm) for _ in range(num_res_blocks))
        )
        self.up = nn.Sequential(
            UpsampleConvBlock(ndim, 4 * width, 2 * width, padding_mode=pm),
            UpsampleConvBlock(ndim, 2 * width, width, padding_mode=pm),
        )
        self.head = nn.Sequential(
            ConvBlock(ndim, width, synthesis_channels, head_kernel, padding_mode=pm),
            conv(ndim, synthesis_channels, out_channels, 1),
            nn.Tanh(),
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.head(self.up(self.res(features)))
