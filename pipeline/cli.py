"""The ``spikewatch`` command line: parses arguments, configures logging, dispatches."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from spikewatch.errors import ConfigError, SpikewatchError

#: Subcommand modules under spikewatch.commands, in the order ``--help`` lists them.
COMMANDS = ["run", "check_config", "produce", "evaluate"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikewatch",
        description="Streaming anomaly monitor: spike-encoded windows, a stateful Spikformer "
        "encoder and online detectors.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"spikewatch.commands.{name}").add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"spikewatch: {error}", file=sys.stderr)
        return 2
    except SpikewatchError as error:
        print(f"spikewatch: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A second Ctrl-C while the first one's checkpoint is being written.
        print("spikewatch: interrupted twice; stopped without a final checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
