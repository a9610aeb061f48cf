"""ResNet-18 for the studies and benchmarks: torchvision's constructor where torchvision is installed,
else the same network built here (He et al. 2016: a 7x7 stem, four stages of two basic blocks, global
average pooling, one linear layer). `width` scales every stage (64: the standard network), so tests
and CPU runs can take a narrow one."""

from __future__ import annotations

from typing import Any


def resnet18(num_classes: int = 10, width: int = 64, seed: int | None = None) -> Any:
    """A ResNet-18 with `num_classes` outputs and stage widths width, 2 width, 4 width, 8 width."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    if width == 64:
        try:
            import torchvision

            return torchvision.models.resnet18(num_classes=num_classes)
        except ImportError:
            pass
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    layers = [nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = width
    for cout, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)
