"""How pixels become model input, shared by training and prediction: a user notices if a model scores
images prepared differently from the ones it trained on (resizing, range, normalisation), if a snapshot
changes as training goes on, or if asking for a GPU that is not there fails without saying what to set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables import device as device_module
from fracture_tune.trainables.device import (
    detached_cpu_copy,
    images_to_device,
    normalise,
    resolve_device,
    to_unit_range,
)

CPU = torch.device("cpu")


def test_images_keep_their_pixels_at_the_input_size_and_resize_otherwise() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(3, 8, 8), dtype=np.uint8)
    flat = np.full((2, 12, 12), 77, dtype=np.uint8)

    same = images_to_device(images, 8, CPU)
    resized = images_to_device(torch.from_numpy(flat), 4, CPU)

    assert same.shape == (3, 1, 8, 8) and same.dtype == torch.uint8
    np.testing.assert_array_equal(same[:, 0].numpy(), images)
    assert resized.shape == (2, 1, 4, 4) and resized.dtype == torch.uint8
    assert torch.all(resized == 77)
    assert images_to_device(np.zeros((0, 12, 12), np.uint8), 4, CPU).shape == (0, 1, 4, 4)


def test_images_that_are_not_uint8_stacks_are_refused_with_what_was_given() -> None:
    with pytest.raises(FractureTuneError, match="float32"):
        images_to_device(np.zeros((2, 8, 8), np.float32), 8, CPU)
    with pytest.raises(FractureTuneError, match=r"\(8, 8\)"):
        images_to_device(np.zeros((8, 8), np.uint8), 8, CPU)


def test_pixels_map_to_minus_one_through_one() -> None:
    pixels = torch.tensor([0, 51, 255], dtype=torch.uint8).reshape(1, 1, 1, 3)

    model_input = normalise(to_unit_range(pixels), channels_last=False)

    torch.testing.assert_close(model_input.flatten(), torch.tensor([-1.0, -0.6, 1.0]))
    assert normalise(to_unit_range(pixels), channels_last=True).is_contiguous(
        memory_format=torch.channels_last
    )


def test_snapshot_copy_does_not_follow_later_changes() -> None:
    weights = torch.ones(3)
    state = {"w": weights, "steps": [np.int64(4), (np.float32(0.5), "adam")]}

    copied = detached_cpu_copy(state)
    weights.add_(1.0)

    torch.testing.assert_close(copied["w"], torch.ones(3))
    assert copied["steps"] == [4, (0.5, "adam")]
    assert type(copied["steps"][0]) is int and isinstance(copied["steps"][1], tuple)


def test_cuda_requested_without_one_names_the_settings_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module.torch.cuda, "is_available", lambda: False)

    assert resolve_device("auto") == CPU
    with pytest.raises(FractureTuneError, match="no CUDA device") as raised:
        resolve_device("cuda")
    assert "device=cpu" in (raised.value.hint or "")
