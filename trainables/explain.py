"""Grad-CAM (Selvaraju et al., 2017) on a CNN's last convolution, with forward/backward hooks.

Torch only: no Ray, no MLflow. The heatmap says which image regions raised the model's log-odds of the
positive class (fractured); it is an aid for a reader of the prediction, not a localisation claim. An
ensemble's heatmap is the mean of its members' (each on its own input and last convolution), so every member
counts alike whatever the scale of its gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as functional
from torch import nn

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.ensemble import ProbabilityEnsemble


def last_conv_layer(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The last ``nn.Conv2d`` in registration order (the deepest feature map in a plain CNN)."""
    found: tuple[str, nn.Conv2d] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            found = (name, module)
    if found is None:
        raise FractureTuneError(
            f"Grad-CAM needs a convolutional layer; {type(model).__name__} has none",
            hint="use a CNN model, or run predict without --explain",
        )
    return found


def positive_log_odds(logits: torch.Tensor) -> torch.Tensor:
    """Per-image score to explain: logit(pos) - logit(neg) for 2 outputs, the single logit for 1."""
    if logits.ndim == 2 and logits.shape[1] == 2:
        return logits[:, 1] - logits[:, 0]
    if logits.ndim == 2 and logits.shape[1] == 1:
        return logits[:, 0]
    if logits.ndim == 1:
        return logits
    raise ValueError(f"expected logits of shape [B, 2], [B, 1] or [B]; got {tuple(logits.shape)}")


def grad_cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module | None = None) -> torch.Tensor:
    """Grad-CAM heatmaps in [0, 1], shape [B, H, W] (the input's spatial size).

    ``inputs`` is what the model's forward takes (normalised float [B, C, H, W]). The model is put in eval
    mode for the call and restored afterwards; its parameters' gradients are left untouched. For a
    ``ProbabilityEnsemble`` (and no ``layer``): ``ensemble_grad_cam``.
    """
    if layer is None and isinstance(model, ProbabilityEnsemble):
        return ensemble_grad_cam(model, inputs)
    target_layer = layer if layer is not None else last_conv_layer(model)[1]
    captured: dict[str, torch.Tensor] = {}

    def keep_activation(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        captured["activation"] = output
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    was_training = model.training
    model.eval()
    handle = target_layer.register_forward_hook(keep_activation)
    try:
        with torch.enable_grad():
            batch = inputs.detach().clone().requires_grad_(True)
            score = positive_log_odds(model(batch))
            # autograd.grad (not backward) so parameter .grad fields stay as they were.
            torch.autograd.grad(score.sum(), [batch], retain_graph=False, allow_unused=True)
    finally:
        handle.remove()
        model.train(was_training)
    if "activation" not in captured or "gradient" not in captured:
        raise RuntimeError("Grad-CAM hooks did not fire: is the layer part of the model's forward pass?")
    activation, gradient = captured["activation"].detach(), captured["gradient"].detach()
    channel_weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = functional.relu((channel_weights * activation).sum(dim=1, keepdim=True))
    cam = functional.interpolate(cam, size=inputs.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return _peak_normalised(cam)


def ensemble_grad_cam(ensemble: ProbabilityEnsemble, inputs: torch.Tensor) -> torch.Tensor:
    """The mean of the members' Grad-CAMs, each on the member's own resized input and last convolution and
    brought back to the ensemble's input size; renormalised to [0, 1] per image: [B, H, W]."""
    size = inputs.shape[-2:]
    cams = []
    for index, member in enumerate(ensemble.members):
        cam = grad_cam(member, ensemble.member_input(inputs, index))
        if cam.shape[-2:] != size:
            cam = functional.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        cams.append(cam)
    return _peak_normalised(torch.stack(cams).mean(dim=0))


def _peak_normalised(cam: torch.Tensor) -> torch.Tensor:
    """[B, H, W] non-negative maps divided by each one's peak: [0, 1] per image (all-zero stays zero)."""
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (cam / peak).clamp(0.0, 1.0)
