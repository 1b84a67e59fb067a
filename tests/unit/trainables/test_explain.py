"""Grad-CAM follows the image content that drives the positive score."""

from __future__ import annotations

import torch
import torch.nn.functional as functional
from torch import nn

from fracture_tune.trainables.ensemble import ProbabilityEnsemble
from fracture_tune.trainables.explain import grad_cam, last_conv_layer
from fracture_tune.trainables.models import build_model


class BlobDetector(nn.Module):
    """conv(bright-pixel detector) -> ReLU -> global average -> 2 logits (positive = more bright)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(3, 2)
        with torch.no_grad():
            self.features[0].weight.fill_(1.0 / 9)
            self.features[0].bias.fill_(-0.1)
            self.head.weight.copy_(torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
            self.head.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).mean(dim=(2, 3)))


def _image_with_blob(row: slice, col: slice) -> torch.Tensor:
    image = torch.zeros(1, 1, 32, 32)
    image[0, 0, row, col] = 1.0
    return image


def test_heatmap_peaks_where_the_blob_is() -> None:
    model = BlobDetector()
    top_left = _image_with_blob(slice(2, 10), slice(2, 10))
    bottom_right = _image_with_blob(slice(22, 30), slice(22, 30))
    cams = grad_cam(model, torch.cat([top_left, bottom_right]))
    assert cams.shape == (2, 32, 32)
    assert float(cams.min()) >= 0.0 and float(cams.max()) <= 1.0
    assert cams[0, 2:10, 2:10].mean() > 0.5 > cams[0, 20:, 20:].mean()
    assert cams[1, 22:30, 22:30].mean() > 0.5 > cams[1, :12, :12].mean()


def test_model_state_and_gradients_untouched() -> None:
    model = BlobDetector().train()
    grad_cam(model, _image_with_blob(slice(0, 8), slice(0, 8)))
    assert model.training
    assert all(parameter.grad is None for parameter in model.parameters())
    name, layer = last_conv_layer(model)
    assert name == "features.0" and isinstance(layer, nn.Conv2d)


def _resized(images: torch.Tensor, side: int, antialias: bool = True) -> torch.Tensor:
    return functional.interpolate(
        images, size=(side, side), mode="bilinear", antialias=antialias, align_corners=False
    )


def test_an_ensembles_heatmap_is_the_renormalised_mean_of_its_members_own() -> None:
    torch.manual_seed(0)
    members: list[nn.Module] = [BlobDetector(), build_model("tiny_cnn", input_size=32, width=4).eval()]
    ensemble = ProbabilityEnsemble(members, [16, 32], 32)
    images = torch.cat([_image_with_blob(slice(2, 10), slice(2, 10)), torch.randn(2, 1, 32, 32)])
    cams = grad_cam(ensemble, images)
    # Each member's Grad-CAM on its own input size, brought to the ensemble's (32 px).
    small = grad_cam(members[0], ensemble.member_input(images, 0))
    own = [_resized(small[:, None], 32, antialias=False)[:, 0], grad_cam(members[1], images)]
    mean = (own[0] + own[1]) / 2
    expected = mean / mean.flatten(1).amax(dim=1).view(-1, 1, 1)
    assert cams.shape == (3, 32, 32)
    assert float(cams.min()) >= 0.0 and float(cams.max()) <= 1.0
    torch.testing.assert_close(cams, expected)
    assert all(float((cams - cam).abs().max()) > 0.05 for cam in own)  # both members count


def test_an_ensemble_of_blob_detectors_points_at_the_blob() -> None:
    ensemble = ProbabilityEnsemble([BlobDetector(), BlobDetector()], [16, 32], 32)
    cams = grad_cam(ensemble, _image_with_blob(slice(20, 30), slice(20, 30)))
    assert cams[0, 20:30, 20:30].mean() > 0.5 > cams[0, :12, :12].mean()
