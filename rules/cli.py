"""Command-line verbs of the rules package."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this package's verbs (none yet)."""
    del subparsers
