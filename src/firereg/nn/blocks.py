"""Convolutional building blocks shared by the encoder, decoders and transformation networks."""

from __future__ import annotations

from torch import Tensor, nn

from firereg.nn.factories import conv, instance_norm

__all__ = ["activation", "ConvBlock", "ResBlock", "UpsampleConvBlock"]


def activation(name: str | None) -> nn.Module:
    """``"relu"``, ``"leaky"`` (slope 0.2), ``"tanh"`` or ``None`` (identity)."""
    if name is None:
        return nn.Identity()
    table = {"relu": lambda: nn.ReLU(inplace=True), "leaky": lambda: nn.LeakyReLU(0.2, inplace=True),
             "tanh": nn.Tanh}
    if name not in table:
        raise ValueError(f"activation: unknown activation {name!r}, expected one of {sorted(table)}")
    return table[name]()


class ConvBlock(nn.Sequential):
    """Convolution, optional instance norm, activation: ``(N, C_in, *S) -> (N, C_out, *S/stride)``."""

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int | None = None,
        norm: bool = True,
        act: str | None = "relu",
        padding_mode: str = "zeros",
    ) -> None:
        layers: list[nn.Module] = [
            conv(ndim, in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                 padding_mode=padding_mode, bias=not norm)
        ]
        if norm:
            layers.append(instance_norm(ndim, out_channels))
        layers.append(activation(act))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Residual block of two 3^d convolutions with instance norm: ``(N, C, *S) -> (N, C, *S)``.

    ``x + norm(conv(act(norm(conv(x)))))``, as in the CycleGAN generator that §3.2 builds on.
    """

    def __init__(self, ndim: int, channels: int, *, act: str = "relu",
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBlock(ndim, channels, channels, 3, act=act, padding_mode=padding_mode),
            ConvBlock(ndim, channels, channels, 3, act=None, padding_mode=padding_mode),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class UpsampleConvBlock(nn.Sequential):
    """Nearest-neighbour x2 upsampling, then a stride-1 :class:`ConvBlock` (§3.2's upsampling convs).

    ``(N, C_in, *S) -> (N, C_out, *2S)``. Upsample-then-convolve avoids the checkerboard pattern of
    transposed convolutions.
    """

    def __init__(self, ndim: int, in_channels: int, out_channels: int, *,
                 padding_mode: str = "zeros") -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvBlock(ndim, in_channels, out_channels, 3, padding_mode=padding_mode),
        )
