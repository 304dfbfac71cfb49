"""Layer specs of the five models, after their papers (see ``cherrypick.workloads.cnn.arch``).

AlexNet: Krizhevsky et al. 2012, with the channel counts of Krizhevsky 2014 ("one weird trick",
also torchvision's) and no local response normalisation. VGG: Simonyan & Zisserman 2015,
configurations A (11 layers) and D (16). ResNet: He et al. 2016, with the stride of a bottleneck in
its 3x3 convolution (v1.5). A named layer groups a convolution with its ReLU and pooling, or one
residual block, so that the named layers cover the whole network.
"""

from __future__ import annotations

from cherrypick.workloads.cnn._ops import (
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    LayerSpec,
    Linear,
    MaxPool,
    Op,
    ReLU,
    Residual,
)

VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _spec(name: str, *ops: Op) -> LayerSpec:
    return LayerSpec(name, ops)


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _classifier(hidden: int, num_classes: int) -> list[LayerSpec]:
    return [
        _spec("fc1", Flatten(), Dropout(), Linear(hidden), ReLU()),
        _spec("fc2", Dropout(), Linear(hidden), ReLU()),
        _spec("output", Linear(num_classes)),
    ]


def alexnet(width: float, num_classes: int) -> tuple[LayerSpec, ...]:
    c = [_scaled(n, width) for n in (64, 192, 384, 256, 256)]
    pool = MaxPool(3, 2)
    return (
        _spec("conv1", Conv(c[0], 11, 4, 2), ReLU(), pool),
        _spec("conv2", Conv(c[1], 5, 1, 2), ReLU(), pool),
        _spec("conv3", Conv(c[2], 3, 1, 1), ReLU()),
        _spec("conv4", Conv(c[3], 3, 1, 1), ReLU()),
        _spec("conv5", Conv(c[4], 3, 1, 1), ReLU(), pool),
        *_classifier(_scaled(4096, width), num_classes),
    )


def vgg(config: tuple[int | str, ...], width: float, num_classes: int) -> tuple[LayerSpec, ...]:
    layers: list[LayerSpec] = []
    stage, index = 1, 0
    for i, item in enumerate(config):
        if item == "M":
            stage, index = stage + 1, 0
            continue
        index += 1
        pooled = i + 1 < len(config) and config[i + 1] == "M"
        ops: list[Op] = [Conv(_scaled(int(item), width), 3, 1, 1), ReLU()]
        if pooled:
            ops.append(MaxPool(2, 2))
        name = f"conv{stage}_{index}" if _stage_size(config, stage) > 1 else f"conv{stage}"
        layers.append(_spec(name, *ops))
    return (*layers, *_classifier(_scaled(4096, width), num_classes))


def _stage_size(config: tuple[int | str, ...], stage: int) -> int:
    """How many convolutions VGG stage ``stage`` (1-based) has."""
    sizes = [0]
    for item in config:
        if item == "M":
            sizes.append(0)
        else:
            sizes[-1] += 1
    return sizes[stage - 1]


def resnet(
    blocks: tuple[int, ...], bottleneck: bool, width: float, num_classes: int
) -> tuple[LayerSpec, ...]:
    stem = _scaled(64, width)
    layers = [
        _spec("conv1", Conv(stem, 7, 2, 3, bias=False), BatchNorm(), ReLU(), MaxPool(3, 2, 1))
    ]
    expansion = 4 if bottleneck else 1
    in_channels = stem
    for stage, count in enumerate(blocks, start=1):
        planes = _scaled(64 * 2 ** (stage - 1), width)
        for b in range(count):
            stride = 2 if stage > 1 and b == 0 else 1
            block = _bottleneck(planes, stride) if bottleneck else _basic(planes, stride)
            out_channels = planes * expansion
            shortcut: tuple[Op, ...] = ()
            if stride != 1 or in_channels != out_channels:
                shortcut = (Conv(out_channels, 1, stride, 0, bias=False), BatchNorm())
            layers.append(_spec(f"layer{stage}.{b}", Residual(block, shortcut)))
            in_channels = out_channels
    layers.append(_spec("fc", GlobalAvgPool(), Flatten(), Linear(num_classes)))
    return tuple(layers)


def _basic(planes: int, stride: int) -> tuple[Op, ...]:
    return (
        Conv(planes, 3, stride, 1, bias=False),
        BatchNorm(),
        ReLU(),
        Conv(planes, 3, 1, 1, bias=False),
        BatchNorm(),
    )


def _bottleneck(planes: int, stride: int) -> tuple[Op, ...]:
    return (
        Conv(planes, 1, 1, 0, bias=False),
        BatchNorm(),
        ReLU(),
        Conv(planes, 3, stride, 1, bias=False),
        BatchNorm(),
        ReLU(),
        Conv(planes * 4, 1, 1, 0, bias=False),
        BatchNorm(),
    )
