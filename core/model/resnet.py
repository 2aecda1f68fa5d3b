"""ResNet-18/34/50 with a temporal shift at the start of every residual branch (TSM).

Parameter names follow torchvision/the released code (`conv1`, `bn1`, `layerN.i.conv1`, `downsample.0/1`),
so ImageNet ResNet weights and the authors' checkpoints map onto it key for key. The shift lives in the
block's forward, on the residual branch only; the identity/downsample path sees the unshifted input, exactly
as in the released code.
"""
from __future__ import annotations

import torch
from torch import nn

from core.model.temporal_shift import temporal_shift

_LAYERS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class _ShiftMixin:
    n_segment: int
    shift_div: int
    past_first: bool

    def _shift(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift_div <= 0 or self.n_segment <= 1:
            return x
        return temporal_shift(x, self.n_segment, self.shift_div, self.past_first)


class BasicBlock(nn.Module, _ShiftMixin):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 n_segment: int, shift_div: int, past_first: bool) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.n_segment, self.shift_div, self.past_first = n_segment, shift_div, past_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(self._shift(x))))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module, _ShiftMixin):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 n_segment: int, shift_div: int, past_first: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.n_segment, self.shift_div, self.past_first = n_segment, shift_div, past_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(self._shift(x))))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class TSMResNet(nn.Module):
    """A ResNet trunk over frames laid out as rows ``b * n_segment + t``.

    ``with_stem=False`` builds the pose-stream trunk: the paper skips the stride-2 7x7 conv and the max
    pool so that 56x56 pose maps give the same 7x7 output as 224x224 RGB frames.
    """

    def __init__(self, depth: int = 18, n_segment: int = 8, shift_div: int = 8, past_first: bool = True,
                 width: int = 64, with_stem: bool = True, in_channels: int = 3) -> None:
        super().__init__()
        kind, counts = _LAYERS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth, self.n_segment, self.with_stem = depth, n_segment, with_stem
        self.inplanes = width
        if with_stem:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        for i, count in enumerate(counts):
            planes, stride = width * 2 ** i, 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", self._make_layer(block, planes, count, stride, n_segment, shift_div, past_first))
        self.out_channels = width * 8 * block.expansion
        self._init_weights()

    def _make_layer(self, block, planes, count, stride, n_segment, shift_div, past_first) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, n_segment, shift_div, past_first)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, None, n_segment, shift_div, past_first) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N*T, C, H, W) -> (N*T, out_channels, H/32, W/32) with the stem, H/8 without."""
        if self.with_stem:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
