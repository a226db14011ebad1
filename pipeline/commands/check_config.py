"""``spikewatch check-config``: validate a configuration file."""

from __future__ import annotations

import argparse

from spikewatch.config import load_config


def add_parsers(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("path", nargs="?", default="config.toml", help="file to check (default: config.toml)")
    check.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    load_config(args.path)
    print(f"{args.path}: valid")
    return 0
