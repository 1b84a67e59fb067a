"""`ProbabilityEnsemble`: several trained classifiers served as one, scoring the mean of their probabilities.

Torch only: no Ray, no MLflow. The ensemble takes what a single model takes — the normalised float batch
[B, 1, S, S] (``trainables/device.py``) at its own side S, the prepared images' side — and gives each member
that batch resized to the member's own side (bilinear, antialiased: the resize training used). Its output is
logits [B, 2] whose softmax column 1 is the mean of the members' P(positive), so everything that reads a
single model's logits (``predict``, the exports, Grad-CAM's caller) reads an ensemble's the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as functional
from torch import nn

from fracture_tune.errors import FractureTuneError


class ProbabilityEnsemble(nn.Module):
    """Members (each with its own input side) whose positive-class probabilities are averaged."""

    def __init__(self, members: Sequence[nn.Module], input_sizes: Sequence[int], input_size: int) -> None:
        super().__init__()
        if not members or len(members) != len(input_sizes):
            raise FractureTuneError(
                f"an ensemble needs one input size per member and at least one member; got {len(members)} "
                f"member(s) and {len(input_sizes)} input size(s)"
            )
        sizes = [int(size) for size in input_sizes]
        if min(sizes) < 1 or int(input_size) < 1:
            raise FractureTuneError(f"input sizes must be positive, got members {sizes} and {input_size}")
        self.members = nn.ModuleList(members)
        self.input_sizes = tuple(sizes)
        self.input_size = int(input_size)

    def member_input(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """``x`` (at the ensemble's side) resized to member ``index``'s side, unchanged when the two are
        equal: decided on the stored sides, never on the data, so an export traces one fixed graph.

        The resize is training's own (``device.images_to_device``): back to pixel values, bilinear with
        antialiasing, rounded to whole pixel values, normalised again, so a member sees exactly the pixels
        it would see on its own.
        """
        size = self.input_sizes[index]
        if size == self.input_size:
            return x
        pixels = ((x * 0.5 + 0.5) * 255.0).round()
        resized = functional.interpolate(
            pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        return (resized.round().clamp(0.0, 255.0) / 255.0 - 0.5) / 0.5

    def member_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """P(positive) per member and image: [M, B]."""
        return torch.stack(
            [
                torch.softmax(member(self.member_input(x, index)).float(), dim=1)[:, 1]
                for index, member in enumerate(self.members)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, 2]: log(1 - p), log(p) with p the members' mean P(positive); softmax gives back p."""
        positive = self.member_probabilities(x).mean(dim=0)
        probabilities = torch.stack([1.0 - positive, positive], dim=1)
        return torch.log(probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny))
