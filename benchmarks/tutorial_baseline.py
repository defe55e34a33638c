"""The baseline every speed figure is measured against: neural style transfer written the way
the PyTorch tutorial does it (loss modules inserted into a copy of torchvision's VGG19
features, cut after the last loss layer, frozen weights, out-of-place ReLU, NCHW, fp32)."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from nst.backbones.base import IMAGENET_MEAN, IMAGENET_STD

# tutorial names count convolutions globally: relu4_2 is the 10th conv's ReLU
TUTORIAL_NAMES = {
    "relu1_1": "relu_1",
    "relu2_1": "relu_3",
    "relu3_1": "relu_5",
    "relu4_1": "relu_9",
    "relu4_2": "relu_10",
    "relu5_1": "relu_13",
}


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = x.size()
    features = x.view(a * b, c * d)
    return torch.mm(features, features.t()).div(a * b * c * d)


class ContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.target = target.detach()
        self.loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(x, self.target)
        return x


class StyleLoss(nn.Module):
    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.target = gram_matrix(target).detach()
        self.loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(gram_matrix(x), self.target)
        return x


class Normalization(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mean = torch.tensor(IMAGENET_MEAN).view(-1, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(-1, 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


def build(
    cnn: nn.Sequential,
    content: torch.Tensor,
    style: torch.Tensor,
    content_layers: list[str],
    style_layers: list[str],
):  # type: ignore[no-untyped-def]
    content_layers = [TUTORIAL_NAMES[n] for n in content_layers]
    style_layers = [TUTORIAL_NAMES[n] for n in style_layers]
    model = nn.Sequential(Normalization())
    content_losses, style_losses = [], []
    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu_{i}"
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        else:
            name = f"other_{i}"
        model.add_module(name, layer)
        if name in content_layers:
            closs = ContentLoss(model(content).detach())
            model.add_module(f"content_loss_{i}", closs)
            content_losses.append(closs)
        if name in style_layers:
            sloss = StyleLoss(model(style).detach())
            model.add_module(f"style_loss_{i}", sloss)
            style_losses.append(sloss)
    for j in range(len(model) - 1, -1, -1):
        if isinstance(model[j], ContentLoss | StyleLoss):
            break
    model = model[: j + 1]
    model.eval()
    model.requires_grad_(False)
    return model, content_losses, style_losses


def run(
    cnn: nn.Sequential,
    content: torch.Tensor,
    style: torch.Tensor,
    steps: int,
    content_layers: list[str],
    style_layers: list[str],
    alpha: float,
    beta: float,
    lr: float,
) -> tuple[torch.Tensor, list[float], float]:
    """Adam on the pixels; returns image, per-step total loss, seconds per step.
    beta is spread evenly over the style layers, as nst's default layer weights do."""
    model, content_losses, style_losses = build(cnn, content, style, content_layers, style_layers)
    img = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([img], lr=lr)
    losses = []
    t = time.perf_counter()
    for _ in range(steps):
        with torch.no_grad():
            img.clamp_(0, 1)
        optimizer.zero_grad()
        model(img)
        style_score = sum(sl.loss for sl in style_losses) * (beta / len(style_losses))
        content_score = sum(cl.loss for cl in content_losses) * (alpha / len(content_losses))
        loss = style_score + content_score
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    seconds = (time.perf_counter() - t) / steps
    with torch.no_grad():
        img.clamp_(0, 1)
    return img.detach(), losses, seconds
