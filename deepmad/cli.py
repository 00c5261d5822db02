"""The ``deepmad`` command line.

Every failure ends with one line on standard error, ``deepmad: error: ...``,
and exit status 2 for bad input (files, fields, options) or 1 for other
failures; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from . import tinynas
from .architecture import Architecture
from .entropy import Scoring
from .errors import DeepmadError, InputError, shown
from .files import atomic_write_text
from .report import metrics, table


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError("", f"{message} (see '{self.prog} --help')")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_architecture_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", nargs="?", metavar="ARCH", help="architecture JSON file")
    p.add_argument("--tinynas", metavar="FILE", help="read a TinyNAS structure file instead of ARCH")
    p.add_argument("--resolution", type=_positive_int, metavar="N", help="input side for --tinynas (required with it)")


def _load_architecture(args: argparse.Namespace) -> Architecture:
    if args.tinynas is not None:
        if args.arch is not None:
            raise InputError("ARCH", "give either an architecture JSON file or --tinynas FILE, not both")
        if args.resolution is None:
            raise InputError("--resolution", "required with --tinynas (the format does not hold the input size), e.g. --resolution 224")
        return tinynas.load(args.tinynas, resolution=args.resolution)
    if args.arch is None:
        raise InputError("ARCH", "missing: give an architecture JSON file, or --tinynas FILE --resolution N")
    if args.resolution is not None:
        raise InputError("--resolution", "only used with --tinynas; an architecture JSON file holds its own resolution")
    return Architecture.load(args.arch)


_SCORING_OPTIONS = {"alpha": "--alpha", "beta": "--beta", "penalty_stages": "--penalty-stages", "resolution": "--score-resolution"}


def _cmd_score(args: argparse.Namespace) -> int:
    arch = _load_architecture(args)
    try:
        m = metrics(arch, Scoring(alpha=args.alpha, beta=args.beta, penalty_stages=args.penalty_stages, resolution=args.score_resolution))
    except InputError as exc:  # name the option the user typed
        raise InputError(_SCORING_OPTIONS.get(exc.field, exc.field), exc.message) from None
    print(json.dumps(m, indent=2) if args.json else table(arch, m))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from generators import pytorch  # torch is imported only where a model is built

    arch = _load_architecture(args)
    path = pytorch.write(arch, args.out, verify=args.verify)
    print(f"wrote {path}" + (" (verified with torch)" if args.verify else ""))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    arch = _load_architecture(args)
    text = tinynas.dumps(arch) if args.to == "tinynas" else arch.to_json()
    if args.out == "-":
        sys.stdout.write(text)
    else:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepmad", description="Solver-driven CNN architecture design after DeepMAD.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (accepted anywhere on the line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("score", help="costs and DeepMAD score of an architecture")
    _add_architecture_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--score-resolution", type=_positive_int, metavar="N", help="take r_i at this input side (the reference code uses 224); default the design resolution")
    p.add_argument("--alpha", type=_float_list, metavar="A,B,..", help="prefix weights, one per scoring prefix (default 1,..,1,8)")
    p.add_argument("--beta", type=float, default=10.0, help="depth penalty weight (default 10)")
    p.add_argument("--penalty-stages", type=_int_list, metavar="J,K,..", help="0-based stages the depth penalty covers (default: last three for bottleneck/basic, all for inverted residuals)")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("generate", help="write a standalone PyTorch model file")
    _add_architecture_args(p)
    p.add_argument("-o", "--out", required=True, metavar="PATH", help="model file to write (.py)")
    p.add_argument("--verify", action="store_true", help="build the model with torch and check params and MACs before writing")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("convert", help="convert between architecture JSON and the TinyNAS structure format")
    _add_architecture_args(p)
    p.add_argument("--to", choices=("json", "tinynas"), required=True, help="output format")
    p.add_argument("-o", "--out", default="-", metavar="PATH", help="output file (default: standard output)")
    p.set_defaults(func=_cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except DeepmadError as exc:
        if debug:
            raise
        print(f"deepmad: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("deepmad: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an environment failure: still one line, unless --debug
        if debug:
            raise
        print(f"deepmad: error: unexpected {type(exc).__name__}: {shown(str(exc), 200)} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
