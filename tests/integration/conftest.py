"""Fixtures of the integration tests; each starts real servers on 127.0.0.1 and stops them by PID."""

from tests.integration.broker import durable_kafka_broker, kafka_broker  # noqa: F401 (fixtures)
from tests.integration.servers import (  # noqa: F401 (fixtures)
    alertmanager_factory,
    prometheus_factory,
    servers,
    worker_factory,
)
