"""spikewatch: a streaming anomaly monitor with a stateful Spikformer encoder and online detectors.

The streaming runtime lives in this package (``spikewatch``); the detectors in
``spikewatch.detectors``. Run ``spikewatch --help`` for the command line.
"""

import logging

__version__ = "0.1.0"

# One package logger; only the command line configures handlers.
logging.getLogger(__name__).addHandler(logging.NullHandler())
