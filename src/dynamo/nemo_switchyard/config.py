"""Settings: one definition, read from flags, environment, a config file and defaults.

Precedence is flag > ``SWITCHYARD_*`` environment variable > config file (YAML or
TOML) > default. The command line is generated from these fields (see ``cli.py``),
so a setting exists exactly once.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from .routers import registry

ENV_PREFIX = "SWITCHYARD_"


class ConfigError(Exception):
    """Configuration that cannot work; the message says what to change."""


class Settings(BaseSettings):
    """Every knob of the server. Field descriptions become ``--help`` text."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    http_host: str = Field("0.0.0.0", description="Address to listen on.")
    http_port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    backend_url: str = Field(
        "http://localhost:8000",
        description="Root URL of the OpenAI-compatible backend (e.g. Dynamo's frontend); requests keep their path.",
    )
    strong_model: str = Field(..., min_length=1, description="Backend model name for prompts that need the strong model.")
    weak_model: str = Field(..., min_length=1, description="Backend model name for the other prompts.")
    router_type: str = Field(registry.DEFAULT_ROUTER, description="Router that scores prompts: " + ", ".join(registry.names()) + ", or package.module:RouterClass for your own.")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Score at or above which a prompt goes to the strong model.")
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
    workers: int = Field(1, ge=1, le=256, description="Server processes sharing the port (for multi-core machines).")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")

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

    @model_validator(mode="after")
    def _default_fallback(self) -> "Settings":
        if self.fallback_model is None:
            self.fallback_model = self.strong_model
        return self

    @property
    def served_models(self) -> list[str]:
        """The backend models this configuration routes to, strongest first."""
        models = [self.strong_model, self.weak_model]
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


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "configuration"
        flag = "--" + name.replace("_", "-")
        env = ENV_PREFIX + name.upper()
        if error["type"] == "missing":
            problems.append(f"{flag} is required (or set {env})")
        elif error["type"] == "extra_forbidden":
            problems.append(f"unknown setting {name!r} in the config file")
        else:
            message = error["msg"].removeprefix("Value error, ")
            got = "" if "got" in message else f" (got {error.get('input')!r})"
            problems.append(f"{flag} / {env}: {message[:1].lower()}{message[1:]}{got}")
    return "invalid configuration: " + "; ".join(problems)
