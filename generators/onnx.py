"""ONNX generator: a network as an ``.onnx`` file for ONNX Runtime and other deployment runtimes.

The graph is the one the PyTorch model file builds (:mod:`generators.pytorch`),
exported with torch's exporter (``torch.onnx.export(dynamo=True)``: torch.export
and onnxscript), in eval mode (BatchNorm folded into running statistics), with
input ``input`` of shape ``(batch, in_channels, H, W)``, the batch dimension
dynamic, and output ``logits``. Every export is checked with ONNX Runtime
before the file is written, on a random input against torch in float64: its
largest absolute error must be at most ``tolerance`` or twice torch's own in
float32 (over a hundred layers float32 rounding alone reaches 1e-3; ONNX
Runtime is then as close to exact as torch). Files are written whole or not
at all.

Needs the ``onnx`` extra: ``pip install 'deepmad[onnx]'`` (onnx, onnxruntime,
onnxscript).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
import warnings
from pathlib import Path

from deepmad.errors import DeepmadError
from deepmad.files import atomic_write_bytes
from deepmad.model.architecture import Architecture

from . import pytorch

OPSET = 18
TOLERANCE = 1e-4
"""Largest absolute error of ONNX Runtime's outputs (float32) that always passes."""


def _needed():
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise DeepmadError(f"ONNX export needs onnx, onnxruntime and onnxscript ({exc.name} is missing): "
                           "pip install 'deepmad[onnx]'") from None
    return onnxruntime


def to_bytes(model, *, resolution: int, in_channels: int = 3, tolerance: float = TOLERANCE, seed: int = 0) -> bytes:
    """The ONNX file of ``model`` (an ``nn.Module`` from a deepmad model file, e.g. trained; exported
    in eval mode, its own mode restored after), checked on a random batch of 2 at ``resolution`` as
    the module docstring says; a failed check raises :class:`~deepmad.errors.DeepmadError`."""
    ort = _needed()
    import numpy as np
    import torch

    was_training = model.training
    model.eval()
    x = torch.randn(2, in_channels, resolution, resolution, generator=torch.Generator().manual_seed(seed))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        with torch.no_grad(), _quiet():
            torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=OPSET, input_names=["input"],
                              output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), external_data=False,
                              verbose=False)
        data = path.read_bytes()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = model(x)
        exact = copy.deepcopy(model).double()(x.double())
    model.train(was_training)
    got = session.run(None, {"input": x.numpy()})[0]
    own = float((want.double() - exact).abs().max())  # torch's own float32 rounding, through the whole depth
    error = float(np.abs(got - exact.numpy()).max())
    if got.shape != tuple(want.shape) or not error <= max(tolerance, 2 * own):
        raise DeepmadError(f"the ONNX export does not match torch: largest difference from float64 {error:.3g}, "
                           f"torch's own in float32 {own:.3g} (tolerance {tolerance:g})")
    return data


def placeholder_model(arch: Architecture, *, seed: int = 0):
    """The network of ``arch`` as its model file builds it (initialised from ``seed``: the same
    weights every time), in eval mode, with every residual branch live (``zero_init_residual=False``),
    random BatchNorm affine terms, and BatchNorm statistics taken from a forward pass of random
    images (so that activations stay of order one through any depth): a check of the export
    then exercises every layer. Its weights are placeholders, not trained."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = pytorch.load(pytorch.render(arch)).build_model(zero_init_residual=False)
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        with torch.no_grad():
            for m in norms:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.reset_running_stats()
                m.momentum = None  # a cumulative average: the statistics of the images below
            model.train()(torch.randn(4, arch.in_channels, arch.resolution, arch.resolution))
        for m in norms:
            m.momentum = 0.1
    return model.eval()


def write(arch: Architecture, path: str | Path, *, force: bool = True, tolerance: float = TOLERANCE) -> Path:
    """Write ``arch``'s network as an ONNX file (:func:`placeholder_model`'s weights: for deployment
    and latency checks; export a trained model with :func:`to_bytes`), checked with ONNX Runtime."""
    data = to_bytes(placeholder_model(arch), resolution=arch.resolution, in_channels=arch.in_channels, tolerance=tolerance)
    atomic_write_bytes(path, data, force=force)
    return Path(path)


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's progress prints (on standard output), warnings and log lines (such as
    the operators of torchvision it skips where torchvision is not installed)."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)
