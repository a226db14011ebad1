"""Configuration: the TOML file, its schema and its validation.

Every option lives in one section of ``config.toml``. Validation runs at start and stops with a
:class:`ConfigError` that names the key, the value and what is allowed, so a typo never falls back
silently to a default.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spikewatch.errors import ConfigError


def parse_host_port(address: str, *, option: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` and check the port, raising ValueError that names ``option``."""
    host, sep, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # an IPv6 literal, as in [::1]:9108
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{option} = {address!r} is not HOST:PORT with a port in 0..65535")
    return host, int(port)



#: Peaks over the initial threshold that a SPOT calibration must expect to leave, at least.
SPOT_MIN_PEAKS = 5


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Section):
    kind: Literal["demo", "csv", "jsonl", "stdin", "kafka"] = "demo"
    path: str = ""
    key_field: str = ""
    default_key: str = Field("default", min_length=1)
    timestamp_field: str = Field("timestamp", min_length=1)
    label_field: str = ""
    ignore_fields: list[str] = []
    speed: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _file_kinds_need_path(self) -> SourceConfig:
        if self.kind in ("csv", "jsonl") and not self.path:
            raise ValueError(f"source.path is required when source.kind = {self.kind!r}")
        return self


class ValidationConfig(_Section):
    channels: list[str] = []
    max_future_s: float = Field(86400.0, gt=0.0)
    max_lateness_s: float = Field(0.0, ge=0.0)


class LogsConfig(_Section):
    format: str = ""
    timestamp_format: str = ""
    key_field: str = ""
    normal_label: str = "-"
    bucket_seconds: float = Field(60.0, gt=0.0)
    max_empty_buckets: int = Field(0, ge=0)
    template_channels: int = Field(32, ge=1, le=4096)
    similarity_threshold: float = Field(0.4, gt=0.0, le=1.0)
    tree_depth: int = Field(4, ge=3)

    @model_validator(mode="after")
    def _format_parses(self) -> LogsConfig:
        if self.format:
            from spikewatch.logs.formats import LogFormat

            fields = LogFormat(self.format).fields
            if self.key_field and self.key_field not in fields:
                raise ValueError(
                    f"logs.key_field = {self.key_field!r} is not a field of logs.format; "
                    f"choose one of {fields}"
                )
        return self


class WindowConfig(_Section):
    length: int = Field(32, ge=2, le=4096)
    stride: int = Field(8, ge=1)
    stride_s: float = Field(0.0, ge=0.0)
    max_keys: int = Field(100_000, ge=1)

    @model_validator(mode="after")
    def _stride_within_length(self) -> WindowConfig:
        if self.stride > self.length:
            raise ValueError(
                f"windows.stride = {self.stride} is larger than windows.length = {self.length}; "
                "records between windows would never be scored"
            )
        return self


class EncodingConfig(_Section):
    kind: Literal["direct", "rate", "delta"] = "direct"
    time_steps: int = Field(4, ge=1, le=64)
    delta_threshold: float = Field(0.5, gt=0.0)
    seed: int = Field(0, ge=0)


class EncoderConfig(_Section):
    kind: Literal["spikformer", "ann", "none"] = "spikformer"
    embed_dim: int = Field(32, ge=2)
    patch_size: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    depth: int = Field(1, ge=1, le=8)
    mlp_ratio: float = Field(2.0, gt=0.0)
    beta: float = Field(0.5, gt=0.0, lt=1.0)
    v_threshold: float = Field(1.0, gt=0.0)
    surrogate_alpha: float = Field(2.0, gt=0.0)
    amplitude_features: bool = True

    @model_validator(mode="after")
    def _heads_divide_width(self) -> EncoderConfig:
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"encoder.num_heads = {self.num_heads} must divide "
                f"encoder.embed_dim = {self.embed_dim}"
            )
        return self


class DetectorConfig(_Section):
    kind: Literal["deep_svdd", "neutral_ad", "goad"] = "deep_svdd"
    objective: Literal["one-class", "soft-boundary"] = "one-class"
    nu: float = Field(0.05, gt=0.0, le=1.0)
    rep_dim: int = Field(16, ge=1)
    hidden_dim: int = Field(64, ge=1)
    neutral_transformations: int = Field(11, ge=2)
    neutral_transformation_kind: Literal["residual", "feed-forward", "multiplicative"] = "residual"
    temperature: float = Field(0.1, gt=0.0)
    goad_transformations: int = Field(32, ge=2)
    goad_transform_dim: int = Field(16, ge=1)
    goad_margin: float = Field(1.0, ge=0.0)
    goad_triplet_weight: float = Field(0.1, ge=0.0)


class LearningConfig(_Section):
    warmup_windows: int = Field(256, ge=1)
    warmup_epochs: int = Field(10, ge=0)
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-6, ge=0.0)
    batch_size: int = Field(32, ge=1)
    update_every_windows: int = Field(256, ge=0)
    replay_buffer_size: int = Field(1024, ge=1)
    contamination: float = Field(0.05, ge=0.0, lt=1.0)
    max_grad_norm: float = Field(5.0, gt=0.0)
    reconstruction_weight: float = Field(1.0, ge=0.0)
    drift_detection: bool = True
    drift_delta: float = Field(0.002, gt=0.0, lt=1.0)
    drift_adaptation_windows: int = Field(512, ge=0)
    drift_steps_per_update: int = Field(4, ge=1)


class ThresholdConfig(_Section):
    kind: Literal["quantile", "spot", "dspot", "conformal"] = "quantile"
    quantile: float = Field(0.99, gt=0.0, lt=1.0)
    history: int = Field(512, ge=2)
    min_history: int = Field(32, ge=1)
    margin: float = Field(1.0, gt=0.0)
    risk: float = Field(0.001, gt=0.0, lt=1.0)
    peaks_level: float = Field(0.98, gt=0.0, lt=1.0)
    dspot_depth: int = Field(16, ge=1)
    false_alarms_per_day: float = Field(1.0, gt=0.0)
    window_interval_s: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _min_history_fits(self) -> ThresholdConfig:
        if self.min_history > self.history:
            raise ValueError(
                f"threshold.min_history = {self.min_history} exceeds "
                f"threshold.history = {self.history}"
            )
        return self

    @model_validator(mode="after")
    def _spot_has_a_tail(self) -> ThresholdConfig:
        if self.kind not in ("spot", "dspot"):
            return self
        if self.risk >= 1.0 - self.peaks_level:
            raise ValueError(
                f"threshold.risk = {self.risk} must be below 1 - threshold.peaks_level = "
                f"{1.0 - self.peaks_level:g}: SPOT reads the threshold from the tail above that level"
            )
        calibration = self.min_history - (self.dspot_depth if self.kind == "dspot" else 0)
        needed = math.ceil(SPOT_MIN_PEAKS / (1.0 - self.peaks_level)) + (
            self.dspot_depth if self.kind == "dspot" else 0
        )
        if calibration * (1.0 - self.peaks_level) < SPOT_MIN_PEAKS - 1e-9:
            raise ValueError(
                f"threshold.min_history = {self.min_history} leaves fewer than {SPOT_MIN_PEAKS} "
                f"calibration scores over the {self.peaks_level:g} quantile for threshold.kind = "
                f"{self.kind!r}; set min_history to at least {needed} (and history at least as large)"
            )
        return self


class AlertConfig(_Section):
    open_after: int = Field(2, ge=1)
    resolve_after: int = Field(4, ge=1)
    path: str = "alerts.jsonl"
    top_channels: int = Field(3, ge=0)


class DeadLetterConfig(_Section):
    path: str = "dead_letters.jsonl"


class MetricsConfig(_Section):
    enabled: bool = True
    address: str = "127.0.0.1:9108"
    worker: str = ""
    key_series_max: int = Field(20, ge=0)
    key_series_allow: list[str] = []
    key_series_refresh_s: float = Field(15.0, gt=0.0)

    @model_validator(mode="after")
    def _address_is_host_port(self) -> MetricsConfig:
        parse_host_port(self.address, option="metrics.address")
        return self


class AlertmanagerConfig(_Section):
    url: str = ""
    severity: str = Field("warning", min_length=1)
    resend_interval_s: float = Field(60.0, gt=0.0)
    timeout_s: float = Field(5.0, gt=0.0)
    retry_backoff_s: float = Field(1.0, gt=0.0)
    retry_backoff_max_s: float = Field(60.0, gt=0.0)
    queue_size: int = Field(10_000, ge=1)
    state_path: str = ""

    @model_validator(mode="after")
    def _url_is_http(self) -> AlertmanagerConfig:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(
                f"alertmanager.url = {self.url!r} must start with http:// or https:// "
                "(or be empty to disable the Alertmanager sink)"
            )
        if self.retry_backoff_max_s < self.retry_backoff_s:
            raise ValueError(
                f"alertmanager.retry_backoff_max_s = {self.retry_backoff_max_s} is below "
                f"alertmanager.retry_backoff_s = {self.retry_backoff_s}"
            )
        return self


class KafkaConfig(_Section):
    bootstrap_servers: list[str] = Field(["127.0.0.1:9092"], min_length=1)
    topics: list[str] = Field(["spikewatch-records"], min_length=1)
    group_id: str = Field("spikewatch", min_length=1)
    key_from: Literal["message_key", "record"] = "message_key"
    alerts_topic: str = ""
    dead_letter_topic: str = ""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_interval_ms: int = Field(300_000, ge=1000)
    session_timeout_ms: int = Field(45_000, ge=1000)
    heartbeat_interval_ms: int = Field(3000, ge=100)
    poll_timeout_ms: int = Field(500, ge=10)
    max_poll_records: int = Field(500, ge=1)
    idle_timeout_s: float = Field(0.0, ge=0.0)
    request_timeout_ms: int = Field(30_000, ge=1000)
    backoff_initial_ms: int = Field(500, ge=1)
    backoff_max_ms: int = Field(30_000, ge=1)
    delivery_timeout_s: float = Field(120.0, gt=0.0)
    worker_id: str = ""

    @model_validator(mode="after")
    def _consistent_timeouts(self) -> KafkaConfig:
        for address in self.bootstrap_servers:
            parse_host_port(address, option="kafka.bootstrap_servers")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError(
                f"kafka.heartbeat_interval_ms = {self.heartbeat_interval_ms} must be below "
                f"kafka.session_timeout_ms = {self.session_timeout_ms} (a third of it is usual)"
            )
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ValueError(
                f"kafka.backoff_max_ms = {self.backoff_max_ms} is below "
                f"kafka.backoff_initial_ms = {self.backoff_initial_ms}"
            )
        if any(not topic for topic in self.topics):
            raise ValueError(f"kafka.topics = {self.topics!r} contains an empty topic name")
        return self


class CheckpointConfig(_Section):
    path: str = "checkpoints/spikewatch.ckpt"
    interval_s: float = Field(60.0, ge=0.0)


class RuntimeConfig(_Section):
    max_batch_windows: int = Field(64, ge=1)
    torch_threads: int = Field(1, ge=0)
    progress: bool = True


class Config(_Section):
    """The whole configuration; each field is one ``[section]`` of ``config.toml``."""

    source: SourceConfig = SourceConfig()
    validation: ValidationConfig = ValidationConfig()
    logs: LogsConfig = LogsConfig()
    windows: WindowConfig = WindowConfig()
    encoding: EncodingConfig = EncodingConfig()
    encoder: EncoderConfig = EncoderConfig()
    detector: DetectorConfig = DetectorConfig()
    learning: LearningConfig = LearningConfig()
    threshold: ThresholdConfig = ThresholdConfig()
    alerts: AlertConfig = AlertConfig()
    dead_letter: DeadLetterConfig = DeadLetterConfig()
    metrics: MetricsConfig = MetricsConfig()
    alertmanager: AlertmanagerConfig = AlertmanagerConfig()
    kafka: KafkaConfig = KafkaConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    @model_validator(mode="after")
    def _patches_tile_window(self) -> Config:
        if self.encoder.kind != "none" and self.windows.length % self.encoder.patch_size:
            raise ValueError(
                f"encoder.patch_size = {self.encoder.patch_size} must divide "
                f"windows.length = {self.windows.length}"
            )
        return self

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> Config:
        """Return a copy with ``{section: {key: value}}`` replaced, validated again."""
        data = self.model_dump()
        for section, values in overrides.items():
            data.setdefault(section, {}).update(values)
        return config_from_dict(data)


def _format_validation_error(error: ValidationError, data: dict[str, Any]) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            section = item["loc"][0] if len(item["loc"]) > 1 else None
            model = Config.model_fields[section].annotation if section else Config
            allowed = ", ".join(model.model_fields)
            lines.append(f"unknown key {key!r}; allowed keys here: {allowed}")
        elif not item["loc"] or item["type"] == "value_error":
            lines.append(item["msg"].removeprefix("Value error, "))
        else:
            lines.append(f"{key} = {item['input']!r}: {item['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Validate a parsed configuration mapping, raising :class:`ConfigError` on any problem."""
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, data)) from None


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a TOML configuration; ``None`` gives the built-in defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration path {path} is a directory; give a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"configuration file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from None
    return config_from_dict(data)
