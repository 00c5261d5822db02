"""Design a small network with deepmad, write its model file, import it and train it on real data.

The data is scikit-learn's bundled handwritten digits (1,797 images of 8x8
pixels, 10 classes; no download), upsampled to 32x32. A fifth of the images,
stratified by class, is held out and never seen in training. On a 2-core CPU
the whole run (design, file, training) takes under a minute.

    pip install -e '.[examples]'          # scikit-learn
    python examples/train_digits.py [--epochs 30] [--time-limit 20] [--out digits_model.py]

``--init-check`` instead measures what the generated files' initialisation
does for a deep network: the deepmad-r18 budget's design (solved for
``--time-limit`` seconds), built with and without zero-initialised residual
branches, one forward pass of random images in training mode; it prints the
standard deviation of each stage's output relative to the stem's.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from deepmad import DesignSpace, Problem, design  # noqa: E402
from generators import pytorch  # noqa: E402

SIDE = 32


def digits(seed: int = 0):
    """(train x, train y, test x, test y): images as float tensors (N, 1, 32, 32), normalised."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = nn.functional.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    x = (x - x.mean()) / x.std()
    y = torch.tensor(data.target)
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed, stratify=data.target)
    return x[train], y[train], x[test], y[test]


def designed(time_limit: float):
    """The best basic-block network of three stages at 32x32 within 4 MFLOPs and 150k parameters."""
    space = DesignSpace(block="basic", resolution=SIDE, strides=(1, 2, 2), depths=((1, 3),) * 3, stem_channels=(16, 32),
                        channels=(16, 128), kernels=(3, 5))
    solution = design(Problem(space, flops=4e6, params=150e3, rho=0.5, name="digits"), time_limit=time_limit)
    print(f"designed: {solution.status}, objective {solution.objective:,.1f}, gap {solution.gap:.1e}")
    # the space is stated for RGB input; these images have one channel, and 10 classes
    return dataclasses.replace(solution.architecture, in_channels=1, num_classes=10)


def import_model_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shifted(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image moved by up to 2 pixels in each direction (the only augmentation)."""
    dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def train(model: nn.Module, data, *, epochs: int, seed: int = 0) -> float:
    """Train with SGD (momentum 0.9, cosine learning rate from 0.1, label smoothing 0.1); the test accuracy."""
    x, y, xt, yt = data
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            batch = order[i:i + 64]
            opt.zero_grad()
            loss_fn(model(shifted(x[batch], g)), y[batch]).backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        return (model(xt).argmax(1) == yt).float().mean().item()


def init_check(time_limit: float) -> None:
    solution = design("deepmad-r18", time_limit=time_limit)
    arch = solution.architecture
    module = pytorch.load(pytorch.render(arch))
    x = torch.randn(8, 3, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(0))
    blocks = sum(s.depth for s in arch.stages)
    print(f"deepmad-r18 budget design: {len(arch.stages)} stages, {blocks} blocks; std of each stage's output / the stem's")
    for zero in (True, False):
        torch.manual_seed(0)
        model = module.build_model(zero_init_residual=zero).train()
        stds = []
        with torch.no_grad():
            h = model.stem(x)
            stem = h.std().item()
            for stage in model.stages:
                h = stage(h)
                stds.append(h.std().item() / stem)
        shown = "  ".join(f"{s:.3g}" for s in stds)
        print(f"  zero_init_residual={zero!s:5}: {shown}   (last / stem {stds[-1]:.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds for the design (default 20)")
    parser.add_argument("--out", default="digits_model.py", help="model file to write (default digits_model.py)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--init-check", action="store_true", help="measure the initialisation on the deepmad-r18 design instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    if args.init_check:
        init_check(args.time_limit)
        return
    arch = designed(args.time_limit)
    out = pytorch.write(arch, args.out, verify=True)
    torch.manual_seed(0)
    model = import_model_file(out).build_model()
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{sum(s.depth for s in arch.stages)} blocks")
    accuracy = train(model, digits(), epochs=args.epochs)
    print(f"test accuracy {accuracy:.2%} on the 360 held-out digits; {time.perf_counter() - began:.0f} s in all")


if __name__ == "__main__":
    main()
