"""The learned latency model and the lattice that uses it (hwmodels.learned, hwmodels.predict)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwmodels import learned
from hwmodels.learned import LearnerSettings
from hwmodels.predict import Predictor, held_out
from hwmodels.table import CostTable, Row, TableMeta
from hwmodels.units import Unit

FAST = LearnerSettings(trees=200, learning_rate=0.2, leaves=31, min_rows=3)


def stepped_ms(c_in: int, c_out: int, kernel: int, size: int) -> float:
    """A made-up device with a runtime's step: convs whose widths are not multiples of 16 run
    a slower kernel (1.6x), on top of the work and a fixed cost."""
    slow = 1.6 if (c_in % 16 or c_out % 16) else 1.0
    return 0.01 + slow * c_in * c_out * kernel**2 * size**2 * 1e-8


def stepped_table() -> CostTable:
    rows = []
    widths = [8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128]
    for kernel in (1, 3, 5):
        for c_in in widths:
            for c_out in widths:
                for size in (7, 14, 28):
                    rows.append(Row(Unit("conv", c_in, c_out, kernel, 1, size, False, "relu"), 1, stepped_ms(c_in, c_out, kernel, size)))
    return CostTable(TableMeta("stepped device", "analytic"), tuple(rows))


def test_the_model_learns_a_step_that_interpolation_would_smear():
    table = stepped_table()
    rel = held_out(table, fraction=0.2, seed=0, settings=FAST)
    assert len(rel) > 150
    assert np.median(rel) < 0.02 and np.mean(rel <= 0.1) > 0.95
    # A unit between measured neighbours 16 and 32 (24 is not a multiple of 16): the step, not their mean.
    kept = [r for r in table.rows if (r.unit.c_in, r.unit.c_out, r.unit.kernel) != (24, 64, 3)]
    p = Predictor(kept, batch=1, settings=FAST)
    got = float(p.ms(Unit("conv", 24, 64, 3, 1, 14, False, "relu")))
    want = stepped_ms(24, 64, 3, 14)
    smeared = float(np.exp(0.5 * (np.log(stepped_ms(16, 64, 3, 14)) + np.log(stepped_ms(32, 64, 3, 14)))))
    assert abs(got / want - 1) < 0.1 < abs(smeared / want - 1)


def test_measured_points_are_kept_exactly_and_the_model_fills_the_rest():
    table = stepped_table()
    p = Predictor(table.rows, batch=1, settings=FAST)
    for r in table.rows[::37]:
        assert float(p.ms(r.unit)) == pytest.approx(r.ms, rel=1e-9)
    assert p._model is None  # every lattice point asked for was measured: nothing fitted
    asked = {(8, 128, 7), (40, 24, 28), (96, 48, 14)}
    sparse = Predictor([r for r in table.rows if (r.unit.c_in, r.unit.c_out, r.unit.size) not in asked or r.unit.kernel != 5],
                       batch=1, settings=FAST)
    unit = Unit("conv", np.array([8, 40, 96]), np.array([128, 24, 48]), 5, 1, np.array([7, 28, 14]), False, "relu")
    got = sparse.ms(unit)
    want = [stepped_ms(int(a), int(b), 5, int(s)) for a, b, s in zip(unit.c_in, unit.c_out, unit.size)]
    assert sparse._model is not None and np.all(np.abs(got / want - 1) < 0.15)


def test_fitting_is_deterministic_and_a_kept_model_is_read_back(tmp_path):
    x, y = learned.training_set(stepped_table().rows)
    first = learned.fitted(x, y, FAST, folder=tmp_path)
    files = list(tmp_path.glob("*.txt"))
    assert len(files) == 1
    again = learned.fit(x, y, FAST)
    read = learned.fitted(x, y, FAST, folder=tmp_path)
    assert np.array_equal(first.ln_ms(x), again.ln_ms(x)) and np.array_equal(first.ln_ms(x), read.ln_ms(x))
    header = json.loads(files[0].read_text().splitlines()[0])
    assert header["format"] == learned.FORMAT and header["key"] == learned.digest(x, y, FAST)
    # A kept file whose text does not match its digest is fitted again and replaced.
    files[0].write_text(files[0].read_text().replace("tree_sizes", "tree_sizez", 1))
    fixed = learned.fitted(x, y, FAST, folder=tmp_path)
    assert np.array_equal(fixed.ln_ms(x), first.ln_ms(x))
    assert "tree_sizes" in files[0].read_text()
    # Other settings, another model file.
    learned.fitted(x, y, LearnerSettings(trees=50, leaves=7, min_rows=3), folder=tmp_path)
    assert len(list(tmp_path.glob("*.txt"))) == 2


@pytest.mark.parametrize("field,value", [("trees", 0), ("leaves", 1), ("min_rows", 0), ("learning_rate", 0.0), ("linear_lambda", -1.0)])
def test_learner_settings_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        LearnerSettings(**{field: value})


def test_features_name_the_tiles_and_the_work():
    x = learned.features("conv", 3, 2, True, "relu", 1, [24, 32], [64, 64], [56, 56])
    assert x.shape == (2, 14 + 8)
    assert x[0, 14] == 1 and x[0, 16] == 0 and x[1, 16] == 1  # 24 is a multiple of 8, not of 16; 32 of both
    assert x[0, 10] == pytest.approx(np.log2(24 * 64 * 9 * 28 * 28))  # MACs at the strided output side
