"""The data pipeline: synthetic tensors, generated JPEGs decoded on workers, class folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cherrypick.workloads.cnn.config import TrainConfig
from cherrypick.workloads.cnn.data import (
    ImageFolder,
    SyntheticImages,
    build_dataset,
    endless,
    generate_jpeg_dataset,
    make_loader,
)

from cherrypick.errors import InputError


def test_synthetic_images_have_the_size_and_cycle_labels() -> None:
    data = SyntheticImages(size=50, classes=7, image_size=16, seed=0)
    image, label = data[9]
    assert len(data) == 50 and image.shape == (3, 16, 16) and label == 2


def test_generated_jpegs_decode_augmented_and_normalised(tmp_path: Path) -> None:
    generate_jpeg_dataset(tmp_path, classes=3, per_class=2, image_size=24, seed=1)
    assert len(list(tmp_path.glob("class*/*.jpg"))) == 6
    data = ImageFolder(tmp_path, image_size=24, classes=3)
    image, label = data[5]
    assert image.shape == (3, 24, 24) and image.dtype == torch.float32 and label == 2
    assert -3 < float(image.mean()) < 3 and float(image.std()) > 0.1


def test_jpeg_batches_come_from_worker_processes(tmp_path: Path) -> None:
    config = TrainConfig(
        data="jpeg",
        classes=2,
        images_per_class=4,
        image_size=24,
        batch_size=4,
        workers=2,
        model="resnet18",
    )
    generate_jpeg_dataset(tmp_path, 2, 4, 24, 0)
    loader = make_loader(build_dataset(config, tmp_path), config, 0, 1, pin=False)
    batches = endless(loader)
    shapes = [tuple(next(batches)[0].shape) for _ in range(3)]  # crosses an epoch boundary
    assert shapes == [(4, 3, 24, 24)] * 3


def test_ranks_get_disjoint_shares() -> None:
    config = TrainConfig(batch_size=2, workers=0, dataset_size=8, classes=8, image_size=16)
    dataset = build_dataset(config)
    labels = [
        sorted(
            int(v) for batch in make_loader(dataset, config, rank, 2, pin=False) for v in batch[1]
        )
        for rank in (0, 1)
    ]
    assert sorted(labels[0] + labels[1]) == list(range(8))


def test_folder_problems_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        build_dataset(TrainConfig(data=str(tmp_path / "nope")))
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    with pytest.raises(InputError, match="found 3 class folders; need 1 to 2"):
        ImageFolder(tmp_path, 16, classes=2)
    with pytest.raises(InputError, match="no images"):
        ImageFolder(tmp_path, 16, classes=3)
