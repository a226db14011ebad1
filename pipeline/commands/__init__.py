"""One module per ``spikewatch`` subcommand; each defines ``add_parsers`` and ``main``."""
