"""The data pipeline: synthetic tensors, a generated JPEG dataset, or a folder of class folders.

Everything goes through a torch ``DataLoader`` with ``config.workers`` worker processes. JPEG
images are decoded and augmented on the CPU (random resized crop, horizontal flip, normalisation),
so the machine's vCPU count matters here as it does in the cloud. No torchvision: PIL and numpy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from cherrypick.workloads.cnn.config import IMAGENET_TRAIN_IMAGES, TrainConfig
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cherrypick.errors import InputError

__all__ = [
    "ImageFolder",
    "SyntheticImages",
    "build_dataset",
    "endless",
    "generate_jpeg_dataset",
    "make_loader",
]

Sample = tuple[torch.Tensor, int]
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet channel statistics
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_SUFFIXES = {".jpg", ".jpeg", ".png"}


class SyntheticImages(Dataset[Sample]):
    """``size`` random images that cost nothing to load: views into a small fixed pool."""

    def __init__(self, size: int, classes: int, image_size: int, seed: int, pool: int = 16) -> None:
        gen = torch.Generator().manual_seed(seed)
        self._pool = torch.randn(min(pool, size), 3, image_size, image_size, generator=gen)
        self._size = size
        self._classes = classes

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> Sample:
        return self._pool[index % len(self._pool)], index % self._classes


class ImageFolder(Dataset[Sample]):
    """Images in ``root/<class>/<file>`` (ImageNet's layout), decoded and augmented per sample."""

    def __init__(self, root: Path, image_size: int, classes: int) -> None:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        if not folders or len(folders) > classes:
            raise InputError(f"{root}: found {len(folders)} class folders; need 1 to {classes}")
        self.files = [
            (path, label)
            for label, folder in enumerate(folders)
            for path in sorted(folder.iterdir())
            if path.suffix.lower() in _SUFFIXES
        ]
        if not self.files:
            raise InputError(f"{root}: no images ({', '.join(sorted(_SUFFIXES))}) in class folders")
        self._size = image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Sample:
        path, label = self.files[index]
        with Image.open(path) as img:
            rgb = _random_resized_crop(img.convert("RGB"), self._size)
        if random.random() < 0.5:
            rgb = rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = (np.asarray(rgb, dtype=np.float32) / 255.0 - _MEAN) / _STD
        return torch.from_numpy(pixels.transpose(2, 0, 1).copy()), label


def _random_resized_crop(img: Image.Image, size: int) -> Image.Image:
    """A crop of 8-100% of the area with aspect ratio 3/4 to 4/3, resized to size x size."""
    width, height = img.size
    for _ in range(10):
        area = width * height * random.uniform(0.08, 1.0)
        ratio = math.exp(random.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            left, top = random.randint(0, width - w), random.randint(0, height - h)
            return img.resize(
                (size, size), Image.Resampling.BILINEAR, (left, top, left + w, top + h)
            )
    return img.resize((size, size), Image.Resampling.BILINEAR)


def generate_jpeg_dataset(
    root: Path, classes: int, per_class: int, image_size: int, seed: int
) -> Path:
    """Write ``per_class`` JPEGs per class, a bit larger than the crop, as ImageNet's are."""
    rng = np.random.default_rng(seed)
    side = round(image_size * 256 / 224)
    for label in range(classes):
        folder = root / f"class{label:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
            img = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
            noise = rng.integers(-12, 13, size=(side, side, 3))
            pixels = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{n:05d}.jpg", quality=90)
    return root


def build_dataset(config: TrainConfig, jpeg_root: Path | None = None) -> Dataset[Sample]:
    """The config's dataset; ``jpeg`` data needs the folder where the images were generated."""
    if config.data_kind == "synthetic":
        size = config.samples_per_epoch() or IMAGENET_TRAIN_IMAGES
        return SyntheticImages(size, config.classes, config.image_size, config.seed)
    root = jpeg_root if config.data_kind == "jpeg" else Path(config.data)
    if root is None:
        raise ValueError("jpeg data needs the folder the images were generated into")
    if not root.is_dir():
        raise InputError(f"data folder {root} does not exist")
    return ImageFolder(root, config.image_size, config.classes)


def make_loader(
    dataset: Dataset[Sample], config: TrainConfig, rank: int, world_size: int, pin: bool
) -> DataLoader[Sample]:
    """Shuffled batches of ``config.batch_size``; under DDP each rank gets its own share."""
    sampler: DistributedSampler[Sample] | None = None
    if world_size > 1:
        sampler = DistributedSampler(dataset, world_size, rank, seed=config.seed, drop_last=True)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=config.workers,
        pin_memory=pin,
        drop_last=True,
        persistent_workers=config.workers > 0,
        generator=torch.Generator().manual_seed(config.seed),
    )


def endless(loader: DataLoader[Sample]) -> Iterator[list[torch.Tensor]]:
    """Batches over as many epochs as asked for (reshuffled each epoch)."""
    epoch = 0
    while True:
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise InputError("the dataset has fewer samples than one batch")
        epoch += 1
