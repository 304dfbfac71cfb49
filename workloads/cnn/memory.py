"""What autograd saves for backward in one training forward pass, measured on a built model.

The check on the analytic saved bytes of ``cherrypick.workloads.cnn.arch``. The model is built and
run as ``cherrypick profile`` runs it (``Trainer``: ``build_model``, train mode, the loss of
``nn.CrossEntropyLoss`` inside ``torch.autocast`` for fp16/bf16), and every tensor that autograd
saves passes through the pack hook of ``torch.autograd.graph.saved_tensors_hooks``. Counted once
per storage (``untyped_storage().data_ptr()``: a ReLU's output that the next convolution saves
too is one tensor in memory), leaving out the model's parameters and buffers and autocast's
low-precision copies of the parameters, which the memory model counts per parameter.

fp16 is measured on CUDA only: CPU autocast has op lists of its own, so a CPU fp16 run would not
show what a GPU saves. On CUDA, ``aten/src/ATen/autocast_mode.cpp`` registers one list for both
half types (the ``lower_precision_fp`` cast policy, the dtype read from ``torch.get_autocast_dtype``
when the op runs), so fp16 and bf16 save the same tensors at 2 bytes each, and the prediction is
one number for both. For these models the CPU bf16 run stands for them: on both devices
convolutions and linear layers run in the low precision, ``log_softmax`` and ``nll_loss`` in fp32
(measured on CPU; on CUDA's fp32 list), and batch norm, ReLU, pooling and the residual sum are on
no list. The one device difference is dropout's saved mask (see ``arch._save_for_backward``).

``python -m cherrypick.workloads.cnn.memory`` prints measured against predicted bytes per sample.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cherrypick.workloads.cnn.config import TrainConfig
from cherrypick.workloads.cnn.workload import CNNWorkload

from cherrypick.errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["SavedBytes", "measure_saved_bytes", "predicted_bytes_per_sample", "table"]

_AUTOCAST_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class SavedBytes:
    """Measured bytes autograd keeps for backward after one forward pass and loss."""

    activation_bytes_per_sample: float
    weight_copy_bytes: int  # autocast's low-precision parameter copies that backward keeps


def measure_saved_bytes(config: TrainConfig, device: str = "cpu") -> SavedBytes:
    """The saved bytes of one forward pass of ``config``'s model at its batch and precision."""
    import torch
    from cherrypick.workloads.cnn.models import build_model

    if config.precision == "fp16" and device != "cuda":
        raise InputError("fp16 is measured on CUDA only; on CPU measure bf16 (the same CUDA ops)")
    torch.manual_seed(config.seed)
    net = build_model(config.architecture()).to(device)
    net.train()
    x, y = _batch(config, device)
    recorder = _SavedStorages(net)
    with (
        torch.autograd.graph.saved_tensors_hooks(recorder.pack, _unpack),
        _autocast(config.precision, device),
    ):
        torch.nn.CrossEntropyLoss()(net(x), y)
    per_sample = recorder.activation_bytes / config.batch_size
    return SavedBytes(per_sample, recorder.weight_copy_bytes)


def predicted_bytes_per_sample(config: TrainConfig) -> float:
    """The workload's ``activation_bytes_per_sample`` for ``config`` (the memory model's input)."""
    return CNNWorkload(config.to_dict()).simulation_profile().activation_bytes_per_sample


class _SavedStorages:
    """The pack hook: sums each saved storage once, apart from the model's own tensors."""

    def __init__(self, model: nn.Module) -> None:
        state = (*model.parameters(), *model.buffers())
        self._model_storages = {t.untyped_storage().data_ptr() for t in state}
        self._parameters = {id(p) for p in model.parameters()}
        self._seen: set[int] = set()
        self.activation_bytes = 0
        self.weight_copy_bytes = 0

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        # Returning the tensor keeps it alive until backward, so no storage is freed and its
        # address reused by another during the pass: the address identifies the storage.
        storage = tensor.untyped_storage()
        address = storage.data_ptr()
        if address in self._seen or address in self._model_storages:
            return tensor
        self._seen.add(address)
        if self._is_parameter_copy(tensor):
            self.weight_copy_bytes += storage.nbytes()
        else:
            self.activation_bytes += storage.nbytes()
        return tensor

    def _is_parameter_copy(self, tensor: torch.Tensor) -> bool:
        """Whether ``tensor`` is (a view of) autocast's cast of a parameter.

        The cast is recorded in the autograd graph: ``_to_copy``'s backward node whose one input
        is the parameter's gradient accumulator. Exact where a rule of shape and dtype could
        mistake an activation for a weight; ``linear`` saves the cast's transpose, a view.
        """
        base = tensor._base if tensor._base is not None else tensor
        node = base.grad_fn
        if node is None or type(node).__name__ != "ToCopyBackward0":
            return False
        source = node.next_functions[0][0]
        return id(getattr(source, "variable", None)) in self._parameters


def _unpack(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _batch(config: TrainConfig, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    size = config.image_size
    x = torch.randn(config.batch_size, 3, size, size, device=device)
    return x, torch.randint(config.classes, (config.batch_size,), device=device)


def _autocast(precision: str, device: str) -> contextlib.AbstractContextManager[None]:
    """As ``Trainer`` casts: autocast for fp16/bf16 around the model and the loss."""
    import torch

    name = _AUTOCAST_DTYPES.get(precision)
    if name is None:
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=getattr(torch, name))


def table(models: Sequence[str], image_size: int, batch: int) -> list[str]:
    """Measured (CPU) against predicted saved MB per sample, fp32 and half precision."""
    lines = [
        f"{'model':<10} {'measured fp32':>14} {'predicted fp32':>15}"
        f" {'measured bf16':>14} {'predicted fp16/bf16':>20}"
    ]
    for model in models:
        fp32, bf16 = (
            TrainConfig(model=model, image_size=image_size, batch_size=batch, precision=p)
            for p in ("fp32", "bf16")
        )
        cells = [
            measure_saved_bytes(fp32).activation_bytes_per_sample,
            predicted_bytes_per_sample(fp32),
            measure_saved_bytes(bf16).activation_bytes_per_sample,
            predicted_bytes_per_sample(bf16),
        ]
        mb = [f"{value / 1e6:.2f}" for value in cells]
        lines.append(f"{model:<10} {mb[0]:>14} {mb[1]:>15} {mb[2]:>14} {mb[3]:>20}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cherrypick.workloads.cnn.memory",
        description="Saved activations per sample (MB), measured on CPU against predicted.",
    )
    parser.add_argument("--models", nargs="+", default=["resnet50", "vgg11", "alexnet"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    print("\n".join(table(args.models, args.image_size, args.batch_size)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
