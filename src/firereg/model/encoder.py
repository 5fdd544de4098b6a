"""The shared synthesis encoder G (§3.2)."""

from __future__ import annotations

from torch import Tensor, nn

from firereg.nn import ConvBlock, ResBlock, check_ndim

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """G: ``(N, C_in, *S) -> (N, 4w, *S/4)``, the modality-invariant representation.

    A ``stem_kernel``^d conv block with ``w`` channels (stride 1; 7 in the paper), two stride-2
    3^d conv blocks with ``2w`` and ``4w`` channels, and ``num_res_blocks`` residual blocks of
    ``4w`` channels (4 by default). With ``w = 64`` these are the paper's 64, 128 and 256
    channels. Each conv block is conv -> instance norm -> ReLU.
    """

    def __init__(self, ndim: int, in_channels: int, width: int, *,
                 num_res_blocks: int = 4, stem_kernel: int = 7,
                 padding_mode: str = "reflect") -> None:
        super().__init__()
        check_ndim(ndim, "Encoder")
        pm = padding_mode
        self.ndim = ndim
        self.out_channels = 4 * width
        self.stem = ConvBlock(ndim, in_channels, width, stem_kernel, padding_mode=pm)
        self.down = nn.Sequential(
            ConvBlock(ndim, width, 2 * width, 3, stride=2, padding_mode=pm),
            ConvBlock(ndim, 2 * width, 4 * width, 3, stride=2, padding_mode=pm),
        )
        self.res = nn.Sequential(
            *(ResBlock(ndim, 4 * width, padding_mode=pm) for _ in range(num_res_blocks))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res(self.down(self.stem(x)))
