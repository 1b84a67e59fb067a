"""The seed notebook's input pipeline and training loop, re-implemented from docs/seed_recipes.md.

This is the baseline the benchmarks compare against: torchvision ``ImageFolder`` decoding every JPEG with
PIL every epoch, ``Resize((128, 128))`` + ``Grayscale(1)`` (+ the seed's augmentation) + ``ToTensor`` +
``Normalize((0.5,), (0.5,))`` per sample, a ``DataLoader`` with ``num_workers=0``, contiguous (NCHW)
tensors, and ``loss.item()`` / ``.sum().item()`` every step. Needs only torch, torchvision and pillow.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms


def seed_transform(augment: bool, image_size: int = 128) -> transforms.Compose:
    steps: list[object] = [transforms.Resize((image_size, image_size)), transforms.Grayscale(1)]
    if augment:
        steps += [
            transforms.RandomHorizontalFlip(0.5),
            transforms.ColorJitter(brightness=0.1, contrast=0.1),
            transforms.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.95, 1.05), shear=5),
            transforms.RandomPerspective(distortion_scale=0.05, p=0.3),
        ]
    steps += [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]
    return transforms.Compose(steps)


def seed_loader(
    root: str | Path, batch_size: int, augment: bool, indices: Sequence[int] | None = None, seed: int = 0
) -> DataLoader:
    """ImageFolder over class sub-folders, shuffled, no loader workers (the seed's defaults)."""
    dataset = datasets.ImageFolder(str(root), transform=seed_transform(augment))
    subset = Subset(dataset, list(indices)) if indices is not None else dataset
    return DataLoader(
        subset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )


def _endless(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from loader


class SeedTrainer:
    """The seed's training loop, run in timed windows (so it can be interleaved with other pipelines)."""

    def __init__(self, model: nn.Module, loader: DataLoader, device: torch.device, lr: float) -> None:
        self.model = model.to(device).train()
        self.device = device
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.criterion = nn.CrossEntropyLoss()
        self.batches = _endless(loader)

    def step(self) -> int:
        images, labels = next(self.batches)
        images, labels = images.to(self.device), labels.to(self.device)
        self.optimizer.zero_grad()
        outputs = self.model(images)
        loss = self.criterion(outputs, labels)
        loss.backward()
        self.optimizer.step()
        running_loss = loss.item()  # the seed's per-step host syncs
        correct = (outputs.argmax(1) == labels).sum().item()
        del running_loss, correct
        return int(labels.shape[0])

    def warmup(self, seconds: float) -> int:
        """Train for ``seconds``; returns the images seen (the size the timed windows then use)."""
        started, seen = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            seen += self.step()
        return seen

    def window(self, images: int) -> float:
        """Train on at least ``images`` images; returns images/s."""
        started, seen = time.perf_counter(), 0
        while seen < images:
            seen += self.step()
        return seen / (time.perf_counter() - started)
