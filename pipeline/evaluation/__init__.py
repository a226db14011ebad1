"""Replay evaluation of detectors on labeled benchmarks (``spikewatch evaluate``).

Benchmarks and their protocols are in :mod:`.benchmarks`; :mod:`.runner` replays each file
through the pipeline and the baselines (:mod:`.detectors`, :mod:`.baselines`); the metrics are
in :mod:`.nab`, :mod:`.skab` and :mod:`.ranges`, combined per detector by :mod:`.scoring`; and
:mod:`.report` and :mod:`.plots` write the results.
"""
