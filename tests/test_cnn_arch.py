"""The layer specs: known parameter counts, analytic FLOPs against torch's counter, shapes."""

from __future__ import annotations

import pytest
import torch
from cherrypick.workloads.cnn.arch import MODELS, analyze, architecture
from cherrypick.workloads.cnn.models import build_model, named_layers
from torch.utils.flop_counter import FlopCounterMode

from cherrypick.errors import InputError, UnknownNameError

# torchvision's counts for the same networks at 1000 classes (AlexNet there pools adaptively to
# 6x6, which a 224x224 input reaches anyway).
TORCHVISION_PARAMS = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg16": 138_357_544,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
}


@pytest.mark.parametrize("model", MODELS)
def test_parameter_counts_match_the_reference_networks(model: str) -> None:
    rows = analyze(architecture(model), batch=1)
    assert sum(row.params for row in rows) == TORCHVISION_PARAMS[model]


def test_layer_names_follow_the_papers() -> None:
    names = [layer.name for layer in architecture("alexnet").layers]
    assert names == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "output"]
    resnet = [layer.name for layer in architecture("resnet18").layers]
    assert resnet[:3] == ["conv1", "layer1.0", "layer1.1"] and resnet[-1] == "fc"
    assert [layer.name for layer in architecture("vgg11").layers][:3] == [
        "conv1",
        "conv2",
        "conv3_1",
    ]


@pytest.mark.parametrize("model", MODELS)
def test_analytic_flops_equal_torch_flop_counter_per_layer(model: str) -> None:
    arch = architecture(model, num_classes=10, image_size=64, width=0.125)
    net = build_model(arch)
    counter = FlopCounterMode(display=False, depth=None)
    with counter:
        logits = net(torch.randn(2, 3, 64, 64))
        torch.nn.functional.cross_entropy(logits, torch.tensor([1, 2])).backward()
    counts = counter.get_flop_counts()
    for row in analyze(arch, batch=2)[:-1]:
        measured = sum(counts.get(f"Sequential.{row.name}", {}).values())
        assert measured == row.forward_flops + row.backward_flops, row.name
        assert row.forward_flops > 0


@pytest.mark.parametrize("model", MODELS)
def test_built_modules_have_the_analysed_shapes_and_parameters(model: str) -> None:
    arch = architecture(model, num_classes=7, image_size=64, width=0.125)
    net = build_model(arch)
    rows = analyze(arch, batch=3)
    x = torch.randn(3, 3, 64, 64)
    for (name, module), row in zip(named_layers(net, arch), rows, strict=False):
        x = module(x)
        assert tuple(x.shape[1:]) == row.output_shape, name
        assert sum(p.numel() for p in module.parameters()) == row.params, name
    assert x.shape == (3, 7)


def test_first_layer_computes_no_input_gradient() -> None:
    first, second = analyze(architecture("vgg11"), batch=1)[:2]
    assert first.backward_flops == first.forward_flops
    assert second.backward_flops == 2 * second.forward_flops


def test_costs_scale_with_batch_and_precision() -> None:
    arch = architecture("resnet18")
    one, eight = analyze(arch, 1), analyze(arch, 8)
    assert eight[3].forward_flops == 8 * one[3].forward_flops
    half = analyze(arch, 8, "bf16")
    # Activations halve; batch norm's saved statistics (mean and inverse std per channel of
    # layer2.0's three 128-channel norms) stay fp32.
    stats = 3 * 2 * 128 * 4
    assert half[3].saved_bytes - stats == (eight[3].saved_bytes - stats) // 2
    assert half[3].bytes < eight[3].bytes


def test_too_small_images_say_the_smallest_that_works() -> None:
    with pytest.raises(InputError, match="image size 32 is too small for alexnet; use at least 63"):
        architecture("alexnet", image_size=32)
    architecture("alexnet", image_size=63)


def test_unknown_model() -> None:
    with pytest.raises(UnknownNameError, match="unknown model 'lenet'"):
        architecture("lenet")
