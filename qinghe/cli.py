"""The `qinghe` command line: one verb per capability; each package registers its own verbs.

Exit codes: 0 success, 1 validation or test failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from qinghe import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# Modules exposing `register(subparsers)`; imported lazily so `qinghe --help` stays fast.
VERB_MODULES = (
    "qinghe.demo_cli",
    "qinghe.serve",
    "qinghe.configcheck",
    "edge.cli",
    "ingest.cli",
    "rules.cli",
    "alerting.cli",
    "detectors.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every package's verbs."""
    parser = argparse.ArgumentParser(
        prog="qinghe",
        description="Qinghe: camera and sensor ingestion, rules and alerting for a district command centre.",
    )
    parser.add_argument("--version", action="version", version=f"qinghe {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for module_name in VERB_MODULES:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen verb; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
