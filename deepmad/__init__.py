"""deepmad: solver-driven CNN architecture design after DeepMAD (CVPR 2023).

The public API: describe a design (:class:`Architecture`), count its cost
(:func:`costs`) and score it (:func:`score`); read and write TinyNAS
structures (:mod:`deepmad.model.tinynas`); state a problem (:class:`DesignSpace`,
:class:`Problem`, :data:`PRESETS`) and solve it exactly (:func:`design`).
Model files are written by :mod:`generators.pytorch`.
"""

from .errors import DeepmadError, InputError
from .model.accounting import Costs, LayerCost, costs, layer_costs
from .model.architecture import Architecture, Head, Level, Stage, Stem
from .model.blocks import BLOCK_TYPES, BlockLayout, BlockType, Conv
from .model.entropy import Prefix, Score, Scoring, layer_widths, score
from .problem.presets import PRESETS, preset
from .problem.problem import Check, Problem, Violation
from .problem.space import DesignSpace
from .solution import Shortfall, Solution
from .solvers import Settings, solve as design

__version__ = "0.1.0"

__all__ = [
    "Architecture", "Stem", "Stage", "Head", "Level",
    "BLOCK_TYPES", "BlockType", "BlockLayout", "Conv",
    "Costs", "LayerCost", "costs", "layer_costs",
    "Score", "Scoring", "Prefix", "score", "layer_widths",
    "DeepmadError", "InputError",
    "DesignSpace", "Problem", "Check", "Violation", "PRESETS", "preset",
    "design", "Solution", "Shortfall", "Settings",
]
