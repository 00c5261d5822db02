"""Design an ImageNet-scale backbone of a block family that TinyNAS does not have, and write its model file.

One problem per family, each at the budget of a well-known network of that
family (FLOPs as multiply-accumulates, parameters without the classifier, at
224x224, five stages with output strides 4, 8, 16, 16, 32):

* ``plain``: conv kxk, BN, ReLU, no shortcut (VGG; RepVGG as deployed), at
  RepVGG-A0's budget (1.4 GMACs, 8.3M parameters);
* ``large_kernel``: depthwise kxk (k up to 31) then a pointwise MLP with an
  identity shortcut (RepLKNet, ConvNeXt), at ConvNeXt-T's budget (4.5 GMACs,
  28M parameters).

    python examples/imagenet_families.py --block plain [--time-limit 30] [--out plain_model.py]

The model file is checked with torch before it is written (its parameters and
MACs must equal the accounting's); the command prints the certificate and
the design.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from deepmad import DesignSpace, Problem, design  # noqa: E402
from deepmad.problem.report import metrics, table  # noqa: E402
from deepmad.solution import record  # noqa: E402
from generators import pytorch  # noqa: E402

STRIDES = (2, 2, 2, 1, 2)

PROBLEMS = {
    "plain": Problem(
        DesignSpace(block="plain", resolution=224, strides=STRIDES, depths=((1, 16),) * 5, kernels=(3, 5)),
        flops=1.4e9, params=8.3e6, rho=0.3, flops_convention="macs", name="plain-repvgg-a0-budget",
    ),
    "large_kernel": Problem(
        DesignSpace(block="large_kernel", resolution=224, strides=STRIDES, depths=((1, 16),) * 5, kernels=(7, 13, 31)),
        flops=4.5e9, params=28e6, rho=0.5, flops_convention="macs", name="large-kernel-convnext-t-budget",
    ),
}
"""The family's problem, by block type."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--block", choices=tuple(PROBLEMS), required=True)
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds for the solve (default 30)")
    parser.add_argument("--out", default=None, help="model file to write (default BLOCK_model.py)")
    args = parser.parse_args(argv)
    problem = PROBLEMS[args.block]
    solution = design(problem, time_limit=args.time_limit)
    if solution.architecture is None:
        print(f"{problem.name}: {solution.status}", file=sys.stderr)
        return 1
    kept = record(problem, solution, command=" ".join(["python", "examples/imagenet_families.py", *sys.argv[1:]]))
    path = pytorch.write(solution.architecture, args.out or f"{args.block}_model.py", verify=True, record=kept)
    gap = "no bound" if solution.gap is None else f"gap {solution.gap:.2%}"
    print(f"{problem.name}: {solution.status}, objective {solution.objective:,.1f}, {gap}; wrote {path}")
    print(table(solution.architecture, metrics(solution.architecture, problem.scoring)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
