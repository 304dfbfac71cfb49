"""Per-layer timing: the autograd order it relies on, hooks only when sampled, the accounting."""

from __future__ import annotations

import time

import pytest
import torch
from cherrypick.workloads.cnn._clock import CpuClock
from cherrypick.workloads.cnn.config import TrainConfig
from cherrypick.workloads.cnn.models import build_model, named_layers
from cherrypick.workloads.cnn.profiler import LayerProfiler
from cherrypick.workloads.cnn.runner import local_trainer
from torch import nn

TINY = {
    "image_size": 32,
    "width": 0.125,
    "classes": 10,
    "batch_size": 4,
    "workers": 0,
    "dataset_size": 64,
    "warmup": 1,
    "iterations": 6,
    "threads": 1,
}


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_autograd_accumulates_a_layers_weights_before_the_next_layer_starts() -> None:
    """The profiler's premise: the input-gradient hook fires after the weight accumulation."""
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 1))
    order: list[str] = []
    for i, layer in enumerate(net):
        for param in layer.parameters():
            param.register_post_accumulate_grad_hook(lambda p, i=i: order.append(f"acc{i}"))
    x = torch.randn(2, 4)
    h = net[0](x)
    h.register_hook(lambda g: order.append("grad of layer 1's input"))
    net[3](net[2](net[1](h))).sum().backward()
    assert order.index("grad of layer 1's input") > order.index("acc2")
    assert order.index("grad of layer 1's input") < order.index("acc0")


def test_hooks_exist_only_between_attach_and_detach() -> None:
    config = TrainConfig(model="alexnet", image_size=64, width=0.125, classes=10)
    arch = config.architecture()
    net = build_model(arch)
    profiler = LayerProfiler(named_layers(net, arch), CpuClock())
    first_weight = net.get_submodule("conv1.0").weight
    profiler.attach()
    assert _hook_count(net) == 2 * len(arch.layers)
    assert first_weight._post_accumulate_grad_hooks
    net(torch.randn(2, 3, 64, 64)).sum().backward()
    sample = profiler.detach()
    assert _hook_count(net) == 0 and not first_weight._post_accumulate_grad_hooks
    times = profiler.resolve(sample, sample.fwd_start[0])
    assert all(t > 0 for t in times.forward) and all(t > 0 for t in times.backward)


def test_first_layer_backward_includes_its_weight_accumulation() -> None:
    slow = nn.Linear(8, 8)
    profiler = LayerProfiler([("first", slow), ("second", nn.Linear(8, 8))], CpuClock())
    slow.weight.register_post_accumulate_grad_hook(lambda p: time.sleep(0.02))
    profiler.attach()
    net = nn.Sequential(slow, profiler._modules[1])
    net(torch.randn(2, 8)).sum().backward()
    times = profiler.resolve(profiler.detach(), 0)
    assert times.backward[0] >= 20.0  # the sleep runs during the weight's accumulation


@pytest.mark.parametrize("model", ["alexnet", "resnet18"])
def test_profiled_iterations_have_layer_times_that_add_up(model: str) -> None:
    size = 64 if model == "alexnet" else 32
    config = TrainConfig(model=model, **{**TINY, "image_size": size})
    with local_trainer(config) as trainer:
        iterations = trainer.run(6, lambda i: i % 2 == 1)
    assert [it.layers is not None for it in iterations] == [False, True] * 3
    assert _hook_count(trainer.model) == 0
    for it in iterations:
        assert it.wall_ms == pytest.approx(sum(it.phases.values()))
        parts = it.breakdown(distributed=False)
        assert sum(parts.values()) == pytest.approx(it.wall_ms)
        assert parts["communication"] == 0.0
        if it.layers is not None:
            assert len(it.layers.forward) == len(trainer.layer_names)
            assert parts["forward"] <= it.phases["forward"]
            assert parts["backward"] <= it.phases["backward"]
            assert parts["unattributed"] >= 0
