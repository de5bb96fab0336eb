"""Settings: one definition, read from flags, environment, a config file and defaults.

Precedence is flag > ``SWITCHYARD_*`` environment variable > config file (YAML or
TOML) > default. The command line is generated from these fields (see ``cli.py``),
so a setting exists exactly once.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from . import auth
from .routers import registry

ENV_PREFIX = "SWITCHYARD_"


class ConfigError(Exception):
    """Configuration that cannot work; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Tier:
    """A backend model and the lowest score that reaches it."""

    model: str
    cut: float


def parse_tiers(items: list[str]) -> list[Tier]:
    """``MODEL=CUTPOINT`` items as tiers, strongest (highest cut-point) first; ValueError says what is wrong."""
    tiers = []
    for item in items:
        model, sep, cut = str(item).rpartition("=")
        if not sep or not model.strip():
            raise ValueError(f"{item!r} is not MODEL=CUTPOINT, e.g. big-model=0.7")
        try:
            value = float(cut)
        except ValueError:
            raise ValueError(f"the cut-point in {item!r} is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"the cut-point in {item!r} must be between 0 and 1")
        tiers.append(Tier(model.strip(), value))
    if len(tiers) < 2:
        raise ValueError("give at least two tiers (e.g. --tier big=0.5 --tier small=0)")
    models = [tier.model for tier in tiers]
    if len(set(models)) != len(models):
        raise ValueError(f"a model appears in two tiers: {', '.join(sorted({m for m in models if models.count(m) > 1}))}")
    cuts = [tier.cut for tier in tiers]
    if len(set(cuts)) != len(cuts):
        raise ValueError("two tiers have the same cut-point; each tier needs its own")
    return sorted(tiers, key=lambda tier: -tier.cut)


class Settings(BaseSettings):
    """Every knob of the server. Field descriptions become ``--help`` text."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    http_host: str = Field("0.0.0.0", description="Address to listen on.")
    http_port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    backend_url: str = Field(
        "http://localhost:8000",
        description="Root URL of the OpenAI-compatible backend (e.g. Dynamo's frontend); requests keep their path.",
    )
    strong_model: str = Field(
        None, min_length=1, validate_default=False, json_schema_extra={"required": "required unless --tier is given"},
        description="Backend model name for prompts that need the strong model.",
    )  # type: ignore[assignment]  # set from the tiers when absent
    weak_model: str = Field(
        None, min_length=1, validate_default=False, json_schema_extra={"required": "required unless --tier is given"},
        description="Backend model name for the other prompts.",
    )  # type: ignore[assignment]
    router_type: str = Field(registry.DEFAULT_ROUTER, description="Router that scores prompts: " + ", ".join(registry.names()) + ", or package.module:RouterClass for your own.")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Score at or above which a prompt goes to the strong model.")
    # -- routing beyond one threshold (see decision.py) --
    tier: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="A model tier as MODEL=CUTPOINT, repeated, e.g. --tier big=0.7 --tier mid=0.3 --tier small=0: a prompt goes to "
        "the strongest tier whose cut-point its score reaches (below every cut-point: the weakest). Takes precedence over "
        "--strong-model/--weak-model/--threshold; the top tier is 'strong', the lowest 'weak'.",
    )
    affinity: Literal["off", "sticky", "escalate"] = Field(
        "off",
        description="Conversation affinity: off (every turn routed afresh), sticky (a conversation keeps the model of its first turn), "
        "escalate (it may move to a stronger model, never back down).",
    )
    session_header: str | None = Field(
        None, description="Header naming a conversation, tried before x-dynamo-session-id and x-session-id (else a hash of its first messages)."
    )
    affinity_max_entries: int = Field(100_000, ge=1, description="Conversations remembered per process (least recently used ones go first).")
    affinity_ttl: float = Field(3600.0, gt=0, description="Seconds a conversation is remembered after its last turn.")
    target_strong_fraction: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Hold this share of strong calls: the threshold adapts to the recent scores (a sliding window) as the prompt mix drifts.",
    )
    budget_window: int = Field(1000, ge=10, le=1_000_000, description="Recent scores the adaptive threshold is computed from.")
    budget_min_threshold: float = Field(0.0, ge=0.0, le=1.0, description="Lowest threshold the strong-share budget may set.")
    budget_max_threshold: float = Field(1.0, ge=0.0, le=1.0, description="Highest threshold the strong-share budget may set.")
    load_aware: bool = Field(
        False,
        description="Read the backend's load from its Prometheus metrics and move prompts within --load-margin of the threshold "
        "off a saturated pool (strong -> weak, or weak -> strong).",
    )
    load_metrics_url: str | None = Field(None, description="Where the backend's Prometheus metrics are (default: BACKEND_URL/metrics).")
    load_interval: float = Field(2.0, gt=0, le=300, description="Seconds between reads of the backend's metrics.")
    load_max_queue: int | None = Field(None, ge=0, description="A pool with more queued requests than this is saturated.")
    load_max_ttft: float | None = Field(None, gt=0, description="A pool whose recent time-to-first-token p90 (seconds) is above this is saturated.")
    load_margin: float = Field(0.1, ge=0.0, le=1.0, description="How far from the threshold a score may be and still move off a saturated pool.")
    allow_threshold_header: bool = Field(False, description="Let a request set its own threshold with x-switchyard-threshold: T.")
    allow_model_header: bool = Field(
        False, description="Let a request pin its model with x-switchyard-model: strong, weak or a tier's model name."
    )
    checkpoint_path: str | None = Field(None, description="Router checkpoint: a local folder (or a hub id, for routers that accept one).")
    router_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-router options, keyed by router name (config file or JSON in the environment).",
    )
    fallback_model: str | None = Field(None, min_length=1, description="Model for requests the router cannot score (default: the strong model).")
    virtual_model_name: str = Field("auto", min_length=1, description="Model name that asks for routing.")
    prompt_scope: Literal["last-user", "conversation"] = Field(
        "last-user", description="What the router scores: the last user message, or the whole conversation."
    )
    random_seed: int = Field(0, ge=-(2**63), lt=2**63, description="Seed of the random router.")
    router_timeout: float = Field(1.0, gt=0, description="Seconds the router may take before the request goes to the fallback model.")
    router_batch_size: int = Field(64, ge=1, description="Most prompts a router scores in one batch.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect to the backend (then 502).")
    first_byte_timeout: float = Field(600.0, gt=0, description="Seconds to wait for the backend's response headers (then 504).")
    idle_timeout: float = Field(300.0, gt=0, description="Seconds to wait between chunks of a backend response body.")
    max_body_size: int = Field(32 * 1024 * 1024, ge=1024, description="Largest request body in bytes (larger: 413).")
    # -- reliability: retries, failover, shutdown --
    retries: int = Field(
        1, ge=0, le=10,
        description="Retries of a backend request whose connection failed before the response head (refused, connect timeout, "
        "closed before answering); never once a byte reached the client. 0: none.",
    )
    retry_backoff: float = Field(
        0.1, ge=0, le=60, description="Base seconds of the exponential backoff between retries (doubled each time, jittered, at most 5 s)."
    )
    failover: bool = Field(
        False,
        description="When a routed request's model fails before its first byte (after retries; or the backend answers 502/503/504), "
        "send it to the other model (strong <-> weak).",
    )
    drain_timeout: float = Field(30.0, ge=0, description="Seconds in-flight requests may take to finish after SIGTERM; then they are cut.")
    shutdown_delay: float = Field(
        0.0, ge=0, description="Seconds between SIGTERM (/ready turns 503) and closing the listener, so load balancers notice."
    )
    # -- end of reliability --
    workers: int = Field(1, ge=1, le=256, description="Server processes sharing the port (for multi-core machines).")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    # -- security and logs (see auth.py, logs.py) --
    api_key: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Client API key that requests must present (Authorization: Bearer KEY or x-api-key: KEY); repeat the flag "
        "for several; environment: a JSON list or comma-separated. None: no client authentication.",
    )
    api_keys_file: str | None = Field(None, description="File of client API keys, one per line (# comments), in addition to --api-key.")
    open_endpoints: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(auth.DEFAULT_OPEN_ENDPOINTS),
        description="Which of switchyard's own endpoints answer without a client key: health, ready, metrics, stats, dashboard "
        "(comma-separated or repeated; none for none).",
    )
    backend_api_key: SecretStr | None = Field(
        None, description="Key sent to the backend as Authorization: Bearer KEY, replacing the client's Authorization header."
    )
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text or as one JSON object per line.")
    log_prompts: bool = Field(False, description="Write the prompt text in the access log (off: prompts and completions are never logged).")
    # -- operations: cost accounting, tracing --
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='US dollars per million tokens by model, for cost and saving metrics: JSON such as '
        '{"strong-model": {"input": 3, "output": 15}, "weak-model": [0.2, 0.6]} (a pair is input, output).',
    )
    tracing: bool = Field(
        False,
        description="OpenTelemetry spans for routing and the backend call, with trace context sent to the backend "
        "(needs the tracing extra; exporter from OTEL_TRACES_EXPORTER: otlp, console or none, and the usual OTEL_* variables).",
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return _json_or_commas(value, ("[",), "is not a valid JSON list of keys")

    @field_validator("api_key")
    @classmethod
    def _check_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            auth.check_key(key.get_secret_value(), "each key")
        return value

    @field_validator("api_keys_file")
    @classmethod
    def _check_keys_file(cls, value: str | None) -> str | None:
        if value is not None:
            auth.read_keys_file(value)
        return value

    @field_validator("open_endpoints", mode="before")
    @classmethod
    def _split_endpoints(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            return value
        names = [part.strip().lower().lstrip("/") for item in items for part in str(item).split(",")]
        names = [name for name in names if name and name != "none"]
        unknown = [name for name in names if name not in auth.OWN_ENDPOINTS]
        if unknown:
            raise ValueError(f"unknown endpoint {unknown[0]!r}; choose from {', '.join(auth.OWN_ENDPOINTS)} (or none)")
        return list(dict.fromkeys(names))

    @field_validator("backend_api_key")
    @classmethod
    def _check_backend_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            auth.check_key(value.get_secret_value())
        return value

    @property
    def client_api_keys(self) -> list[str]:
        """Every client key: --api-key and --api-keys-file (read now)."""
        keys = [key.get_secret_value() for key in self.api_key]
        if self.api_keys_file is not None:
            keys += auth.read_keys_file(self.api_keys_file)
        return keys
    # -- end of security and logs --

    @field_validator("prices", mode="before")
    @classmethod
    def _price_pairs(cls, value: Any) -> Any:
        if isinstance(value, str):  # the environment or a config-file string: JSON
            value = _from_json(value, 'must be JSON such as {"strong-model": {"input": 3, "output": 15}}')
        if not isinstance(value, dict):
            return value
        prices = {}
        for model, price in value.items():
            if isinstance(price, (list, tuple)) and len(price) == 2:
                price = {"input": price[0], "output": price[1]}
            if not isinstance(price, dict) or set(price) != {"input", "output"}:
                raise ValueError(f"the price of {model!r} must be {{\"input\": USD, \"output\": USD}} per million tokens, or [input, output]")
            for kind, amount in price.items():
                if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0 <= amount < 1e9:
                    raise ValueError(f"the {kind} price of {model!r} must be a number of US dollars >= 0 per million tokens")
            prices[str(model)] = {"input": float(price["input"]), "output": float(price["output"])}
        return prices

    @field_validator("tracing")
    @classmethod
    def _check_tracing(cls, value: bool) -> bool:
        """Fail at start-up, in the parent process, rather than in each worker."""
        if value:
            from . import tracing

            tracing.check()
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("backend_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL such as http://localhost:8000, got {value!r}")
        if parts.username is not None or parts.password is not None:  # it would show in /health and the logs
            raise ValueError("must not hold credentials (user:password@); use --backend-api-key (got a URL with credentials)")
        try:
            parts.port
        except ValueError:
            raise ValueError(f"has an invalid port: {value!r}") from None
        if parts.query or parts.fragment:
            raise ValueError(f"must not have a query or fragment: {value!r}")
        path = parts.path.rstrip("/")
        if path.endswith("/v1"):
            # OpenAI clients take base URLs ending in /v1; the proxy keeps request paths, so strip it.
            path = path[: -len("/v1")]
        return f"{parts.scheme}://{parts.netloc}{path}"

    @field_validator("router_type")
    @classmethod
    def _check_router(cls, value: str) -> str:
        if not registry.is_known(value):
            raise ValueError(f"unknown router {value!r}; choose one of: {', '.join(registry.names())}, or give package.module:RouterClass")
        return value

    @field_validator("tier", mode="before")
    @classmethod
    def _tier_forms(cls, value: Any) -> Any:
        value = _json_or_commas(value, ("[", "{"), "is not valid JSON")  # the environment: JSON or MODEL=CUTPOINT,...
        if isinstance(value, dict):  # a config file's mapping {model: cut-point}
            return [f"{model}={cut}" for model, cut in value.items()]
        return value

    @field_validator("tier")
    @classmethod
    def _check_tiers(cls, value: list[str]) -> list[str]:
        if value:
            parse_tiers(value)
        return value

    @model_validator(mode="after")
    def _default_fallback(self) -> Settings:
        if self.tier:
            tiers = parse_tiers(self.tier)
            self.strong_model, self.weak_model = tiers[0].model, tiers[-1].model
            self.threshold = tiers[0].cut
        else:
            missing = [name for name in ("strong_model", "weak_model") if getattr(self, name) is None]
            if missing:
                raise ValueError("; ".join(f"--{name.replace('_', '-')} is required (or set {ENV_PREFIX}{name.upper()})" for name in missing)
                                 + " unless tiers are given with --tier MODEL=CUTPOINT")
        if self.fallback_model is None:
            self.fallback_model = self.strong_model
        if self.budget_min_threshold > self.budget_max_threshold:
            raise ValueError("--budget-min-threshold must not be above --budget-max-threshold")
        if self.load_aware and self.load_max_queue is None and self.load_max_ttft is None:
            raise ValueError("--load-aware needs a limit: --load-max-queue N and/or --load-max-ttft SECONDS")
        return self

    @property
    def tiers(self) -> list[Tier]:
        """The routing tiers, strongest first (two from --strong-model/--weak-model/--threshold without --tier)."""
        if self.tier:
            return parse_tiers(self.tier)
        return [Tier(self.strong_model, self.threshold), Tier(self.weak_model, 0.0)]

    @property
    def served_models(self) -> list[str]:
        """The backend models this configuration routes to, strongest first."""
        models = [tier.model for tier in self.tiers]
        if self.fallback_model not in models:
            models.append(self.fallback_model)  # type: ignore[arg-type]
        return models

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))


def _from_json(text: str, error: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(error) from None


def _json_or_commas(value: Any, openings: tuple[str, ...], error: str) -> Any:
    """A string from the environment or a config file as JSON (when it opens like it) or as a
    comma-separated list; anything else unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith(openings):
        return _from_json(text, error)
    return [part.strip() for part in text.split(",") if part.strip()]


class _FileSource(PydanticBaseSettingsSource):
    """Values from the config file named by ``load_settings`` (held in a class attribute for the call)."""

    values: dict[str, Any] = {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or TOML config file into setting names (dashes or underscores both accepted)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:  # the parsers' messages name the line; keep them on one line
        message = " ".join(str(exc).split())
        raise ConfigError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {message}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting names to values")
    data = data.get("switchyard", data) if isinstance(data.get("switchyard"), dict) else data
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def load_settings(cli_values: dict[str, Any] | None = None, config_file: str | Path | None = None) -> Settings:
    """Build validated settings, or raise ConfigError with a one-line fix-it message."""
    _FileSource.values = read_config_file(config_file) if config_file else {}
    try:
        return Settings(**(cli_values or {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except SettingsError as exc:  # an environment value that is not valid JSON for a structured setting
        raise ConfigError(f"invalid configuration: {exc} (structured settings take JSON, e.g. {ENV_PREFIX}ROUTER_OPTIONS='{{\"random\": {{}}}}')") from None
    finally:
        _FileSource.values = {}


_SECRET_FIELDS = frozenset({"api_key", "backend_api_key"})  # their values never appear in error messages


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        if not error["loc"]:  # a check across settings: its message names the flags
            problems.append(error["msg"].removeprefix("Value error, "))
            continue
        name = str(error["loc"][0])
        flag = "--" + name.replace("_", "-")
        env = ENV_PREFIX + name.upper()
        if error["type"] == "missing":
            problems.append(f"{flag} is required (or set {env})")
        elif error["type"] == "extra_forbidden":
            problems.append(f"unknown setting {name!r} in the config file")
        else:
            message = error["msg"].removeprefix("Value error, ")
            got = "" if "got" in message or name in _SECRET_FIELDS else f" (got {error.get('input')!r})"
            if message[1:2].islower():  # "Input should be..." reads on after the colon; "OTEL_..." stays as it is
                message = message[:1].lower() + message[1:]
            problems.append(f"{flag} / {env}: {message}{got}")
    return "invalid configuration: " + "; ".join(problems)
