"""Temporal shift (TSM, Lin et al.): mixes neighbouring frames at zero cost by shifting channels in time.

Written with slicing + `torch.cat` (no in-place slice assignment) so that ONNX and TensorRT export it as
plain concat/slice ops. Frames are grouped as rows ``b * T + t`` (the released code's layout).
"""
from __future__ import annotations

import torch
from torch import nn


def temporal_shift(x: torch.Tensor, n_segment: int, shift_div: int, past_first: bool = True) -> torch.Tensor:
    """Shift ``channels // shift_div`` channels one frame each way, zero padded at the clip ends.

    With ``past_first`` (the released code) channels ``[0, fold)`` take frame t-1 and ``[fold, 2 fold)``
    take frame t+1; otherwise (the TSM repository) the first fold takes t+1 and the second t-1.
    """
    nt, c, h, w = x.shape
    fold = c // shift_div
    x = x.view(nt // n_segment, n_segment, c, h, w)
    zeros = x.new_zeros(x.shape[0], 1, fold, h, w)
    first, second = x[:, :, :fold], x[:, :, fold:2 * fold]
    take_past = lambda y: torch.cat((zeros, y[:, :-1]), dim=1)  # noqa: E731  frame t <- t-1
    take_future = lambda y: torch.cat((y[:, 1:], zeros), dim=1)  # noqa: E731  frame t <- t+1
    if past_first:
        first, second = take_past(first), take_future(second)
    else:
        first, second = take_future(first), take_past(second)
    out = torch.cat((first, second, x[:, :, 2 * fold:]), dim=2)
    return out.view(nt, c, h, w)


class TemporalShift(nn.Module):
    """`temporal_shift` as a module; holds no weights so it never changes a state_dict."""

    def __init__(self, n_segment: int, shift_div: int, past_first: bool = True) -> None:
        super().__init__()
        self.n_segment, self.shift_div, self.past_first = n_segment, shift_div, past_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self.n_segment, self.shift_div, self.past_first)

    def extra_repr(self) -> str:
        return f"n_segment={self.n_segment}, fold=1/{self.shift_div}+1/{self.shift_div}, past_first={self.past_first}"
