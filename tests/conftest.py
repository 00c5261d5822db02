"""Shared test helpers: where the published TinyNAS structures are, and how to
import a generated model file.

The published reference structures live in ``../shared`` beside the checkout
(``shared/data/tinynas/published``); the project does not copy them.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import pytest

from deepmad import BLOCK_TYPES, Architecture, Head, Stage, Stem

PUBLISHED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinynas" / "published"


def session_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this test session that its test workers (pytest-xdist) share."""
    import os

    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(autouse=True, scope="session")
def _engine_cache(tmp_path_factory):
    """The solver's engines and fitted latency models on disk go to a folder of this test session,
    not the user's cache; the test workers share it (its files are written whole, then renamed),
    so an engine or a model is built once per session."""
    import os

    os.environ["DEEPMAD_CACHE"] = str(session_folder(tmp_path_factory, "cache"))
    yield

#: The published structures, by file name. Every one is designed at 224 but ``deepmad-29M-288``.
PUBLISHED_NAMES = (
    "R152-like.txt",
    "R18-like.txt",
    "R50-like.txt",
    "deepmad-29M-224.txt",
    "deepmad-29M-288.txt",
    "deepmad-50M.txt",
    "deepmad-89M.txt",
    "deepmad-R18.txt",
    "deepmad-R34.txt",
    "deepmad-R50.txt",
)
_DESIGN_RESOLUTION = {"deepmad-29M-288.txt": 288}


def design_resolution(path: str | Path) -> int:
    """The input side a published structure was designed at."""
    return _DESIGN_RESOLUTION.get(Path(path).name, 224)


def published_files() -> list[Path]:
    return sorted(PUBLISHED.glob("*.txt"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that takes ``published_file`` over the published structures.

    When the data is missing the test still runs (and fails on the missing
    file) rather than being collected as an empty, skipped parameter set.
    """
    if "published_file" in metafunc.fixturenames:
        files = published_files() or [PUBLISHED / "no-published-structures-found.txt"]
        metafunc.parametrize("published_file", files, ids=[f.name for f in files])


@pytest.fixture
def published_dir() -> Path:
    assert PUBLISHED.is_dir(), f"published TinyNAS structures not found at {PUBLISHED}"
    return PUBLISHED


_module_ids = itertools.count()


def import_file(path: str | Path) -> ModuleType:
    """Import a generated model file under a fresh module name (not put in sys.modules)."""
    name = f"_deepmad_generated_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def import_model():
    return import_file


def inner_kept(make, **fields):
    """``make(**fields)`` (a :class:`Stage`, or its JSON object with ``make=dict``) with ``inner`` set to
    ``channels`` where the block type has no inner width (a drawn inner width is then meaningless)."""
    if not BLOCK_TYPES[fields["block"]].has_inner:
        fields["inner"] = fields["channels"]
    return make(**fields)


def small_arch(block: str, *, head: bool = True, num_classes: int = 10, name: str = "") -> Architecture:
    """A small 4-stage design of one block type, total stride 16, designed at 64.

    Stage strides (2, 1, 2, 2): the stride-1 stage merges into the level of
    the stage before it. Widths change between stages (projections / no
    shortcut) and stay equal within (identity shortcuts); depth 2 exercises
    the non-first blocks.
    """
    inner_range = BLOCK_TYPES[block].inner_range
    widths = (8, 12, 16, 24)
    strides = (2, 1, 2, 2)
    depths = (1, 2, 2, 1)

    def inner(c: int) -> int:  # expanded blocks twice the width, bottlenecked ones half, none the width
        return c if inner_range is None else 2 * c if inner_range[1] > 1 else max(4, c // 2)

    stages = tuple(
        Stage(block=block, channels=c, inner=inner(c), kernel=k, depth=d, stride=s)
        for c, s, d, k in zip(widths, strides, depths, (3, 5, 3, 3))
    )
    return Architecture(
        stem=Stem(channels=8, kernel=3, stride=2),
        stages=stages,
        head=Head(channels=32) if head else None,
        resolution=64,
        num_classes=num_classes,
        name=name,
    )


def analytic_ms(u) -> float:
    """Latency of a unit on a made-up but plausible device: it grows with the work, plus a fixed cost."""
    side = -(-int(u.size) // u.stride)
    work = int(u.c_in) * int(u.c_out) * u.kernel**2 * side**2 / (int(u.c_in) if u.op == "dwconv" else 1)
    return 0.01 + work * 1e-8 + (0.002 if u.fused_add else 0.0)


def synthetic_table(problem, calibration=None):
    """A cost table of the made-up device covering ``problem``'s space (as ``deepmad profile`` would measure it)."""
    from deepmad.hardware.profiling import profile_units
    from hwmodels.table import CostTable, Row, TableMeta

    rows = tuple(Row(u, 1, analytic_ms(u), 0.0, 5) for u in profile_units(problem))
    return CostTable(TableMeta("test device", "analytic", calibration=calibration), rows)
