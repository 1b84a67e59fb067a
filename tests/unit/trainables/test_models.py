"""Model registry: shapes, gradients, errors, the seed's exact architectures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.models import build_model, list_models, model_params

SMALL = {
    "base_cnn": ({}, 32),
    "enhanced_cnn": ({}, 32),
    "tunable_cnn": ({"c1": 4, "c2": 8, "c3": 8, "dropout": 0.3}, 32),
    "deep_cnn": ({"depth": 3, "width": 4}, 40),
    "resnet18": ({}, 32),
    "tiny_cnn": ({}, 24),
}


def test_registry_lists_every_model() -> None:
    assert set(SMALL) <= set(list_models())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_shapes_and_gradients_reach_every_parameter(name: str) -> None:
    kwargs, size = SMALL[name]
    torch.manual_seed(0)
    model = build_model(name, input_size=size, **kwargs)
    images = torch.randn(3, 1, size, size)
    logits = model(images)
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 1])).backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


def test_base_cnn_is_the_seed_architecture() -> None:
    model = build_model("base_cnn", input_size=128)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 16, (3, 3)),
        (16, 32, (3, 3)),
        (32, 64, (3, 3)),
    ]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 16 * 16, 128), (128, 2)]
    assert not any(isinstance(m, torch.nn.BatchNorm2d | torch.nn.Dropout) for m in model.modules())


def test_enhanced_and_tunable_cnn_have_norm_and_dropout() -> None:
    enhanced = build_model("enhanced_cnn", input_size=64)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in enhanced.modules()) == 3
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in enhanced.modules()) == 1
    dropouts = [m.p for m in enhanced.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.5]
    tuned = build_model("tunable_cnn", input_size=128, c1=32, c2=128, c3=256, dropout=0.7)
    assert [m.p for m in tuned.modules() if isinstance(m, torch.nn.Dropout)] == [0.7]
    first_linear = next(m for m in tuned.modules() if isinstance(m, torch.nn.Linear))
    assert first_linear.in_features == 256 * 16 * 16


def test_deep_cnn_and_resnet_take_any_input_size() -> None:
    for size in (24, 57, 96):
        images = torch.randn(2, 1, size, size)
        assert build_model("deep_cnn", input_size=size, depth=5, width=2)(images).shape == (2, 2)
        assert build_model("resnet18", input_size=size)(images).shape == (2, 2)


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(FractureTuneError, match="unknown model 'vgg'.*base_cnn.*tiny_cnn"):
        build_model("vgg")


def test_unknown_kwarg_is_named() -> None:
    with pytest.raises(FractureTuneError, match="'c4'.*c1, c2, c3, dropout"):
        build_model("tunable_cnn", c4=8)


def test_model_params_are_the_accepted_kwargs() -> None:
    assert model_params("tunable_cnn") == {"c1": 16, "c2": 32, "c3": 64, "dropout": 0.5}
    assert model_params("base_cnn") == {}
    assert set(model_params("deep_cnn")) == {"depth", "width", "kernel_size", "batch_norm", "dropout"}


def test_seed_cnn_rejects_input_size_it_cannot_flatten() -> None:
    with pytest.raises(FractureTuneError, match="input_size 100"):
        build_model("base_cnn", input_size=100)


def test_resnet18_loads_a_local_three_channel_state_dict(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    torch.manual_seed(1)
    imagenet_like = resnet18(weights=None)  # 3-channel stem, 1000-class head
    path = tmp_path / "weights.pt"
    torch.save(imagenet_like.state_dict(), path)
    model = build_model("resnet18", pretrained_path=str(path))
    summed = imagenet_like.conv1.weight.sum(dim=1, keepdim=True)
    assert torch.equal(model.conv1.weight, summed)
    assert torch.equal(model.layer4[1].conv2.weight, imagenet_like.layer4[1].conv2.weight)
    assert model.fc.out_features == 2
    with pytest.raises(FractureTuneError, match="not a file"):
        build_model("resnet18", pretrained_path=str(tmp_path / "missing.pt"))
