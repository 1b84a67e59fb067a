"""The seed notebook's input pipeline and training loop, re-implemented from SEED_RECIPES.md.

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


def seed_loader(root: str | Path, batch_size: int, augment: bool, indices: Sequence[int] | None = None,
                seed: int = 0) -> DataLoader:
    """ImageFolder over class sub-folders, shuffled, no loader workers (the seed's defaults)."""
    dataset = datasets.ImageFolder(str(root), transform=seed_transform(augment))
    subset = Subset(dataset, list(indices)) if indices is not None else dataset
    return DataLoader(subset, batch_size=batch_size, shuffle=True, num_workers=0,
                      generator=torch.Generator().manual_seed(seed))


def _endless(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from loader


def seed_train_windows(model: nn.Module, loader: DataLoader, device: torch.device, *, lr: float,
                       warmup_seconds: float, windows: int) -> tuple[int, list[float]]:
    """Train with the seed's loop; returns (images per window, images/s of each timed window).

    The warm-up window runs for ``warmup_seconds``; its image count becomes the size of every timed
    window, so the engine can be timed on the same amount of work.
    """
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    batches = _endless(loader)

    def step() -> int:
        images, labels = next(batches)
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss = loss.item()  # the seed's per-step host sync
        correct = (outputs.argmax(1) == labels).sum().item()
        del running_loss, correct
        return int(labels.shape[0])

    started, window_images = time.perf_counter(), 0
    while time.perf_counter() - started < warmup_seconds:
        window_images += step()
    rates = []
    for _ in range(windows):
        started, done = time.perf_counter(), 0
        while done < window_images:
            done += step()
        rates.append(done / (time.perf_counter() - started))
    return window_images, rates
