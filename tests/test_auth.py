"""Unit tests for dynamo.nemo_switchyard.auth and the security settings (keys, open endpoints, targets)."""

from __future__ import annotations

import hmac

import pytest

from dynamo.nemo_switchyard import auth, cli
from dynamo.nemo_switchyard.auth import Authenticator, read_keys_file, unsafe_target
from dynamo.nemo_switchyard.config import ConfigError, load_settings

REQUIRED = {"strong_model": "s", "weak_model": "w"}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SWITCHYARD_"):
            monkeypatch.delenv(name)


# ------------------------------------------------------------------ Authenticator


def test_bearer_and_x_api_key_are_checked_against_every_key():
    guard = Authenticator(["k1", "k2"], ["health"], None)
    assert guard.enabled
    assert guard.allowed([(b"Authorization", b"Bearer k1")])
    assert guard.allowed([(b"authorization", b"bearer   k2 ")])
    assert guard.allowed([(b"X-Api-Key", b"k2")])
    assert guard.allowed([(b"Authorization", b"Bearer nope"), (b"x-api-key", b"k1")])
    for headers in ([], [(b"Authorization", b"k1")], [(b"Authorization", b"Basic k1")], [(b"Authorization", b"Bearer k")],
                    [(b"Authorization", b"Bearer k1x")], [(b"Authorization", b"Bearer ")], [(b"x-api-key", b"")]):
        assert not guard.allowed(headers), headers


def test_comparison_is_constant_time_over_every_key(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    guard = Authenticator(["short", "a-much-longer-key-" * 4, "third"], [], None)
    assert guard.allowed([(b"Authorization", b"Bearer short")])  # matches the first key: still compares all three
    assert len(calls) == 3
    calls.clear()
    assert not guard.allowed([(b"Authorization", b"Bearer x")])
    assert len(calls) == 3
    assert all(lengths == (32, 32) for lengths in calls)  # digests: the key's length does not show either


def test_without_keys_nothing_is_checked_and_headers_are_kept():
    guard = Authenticator([], ["health", "ready"], None)
    assert not guard.enabled and not guard.rewrites
    headers = [(b"Authorization", b"Bearer client"), (b"x-api-key", b"c")]
    assert guard.forwarded(headers) == headers


def test_forwarded_credentials():
    headers = [(b"Authorization", b"Bearer client"), (b"x-api-key", b"c"), (b"Accept", b"*/*")]
    with_keys = Authenticator(["k"], [], None)
    assert with_keys.forwarded(headers) == [(b"Accept", b"*/*")]
    injecting = Authenticator(["k"], [], "backend-secret")
    assert injecting.forwarded(headers) == [(b"Accept", b"*/*"), (b"Authorization", b"Bearer backend-secret")]
    only_backend = Authenticator([], [], "backend-secret")
    assert only_backend.rewrites
    assert only_backend.forwarded(headers) == [(b"x-api-key", b"c"), (b"Accept", b"*/*"), (b"Authorization", b"Bearer backend-secret")]


def test_open_endpoints_are_exact_paths_for_get_only():
    guard = Authenticator(["k"], ["health", "metrics"], None)
    assert guard.is_open("GET", "/health") and guard.is_open("GET", "/metrics")
    assert not guard.is_open("GET", "/ready") and not guard.is_open("GET", "/stats")
    assert not guard.is_open("HEAD", "/health") and not guard.is_open("POST", "/health")
    assert not guard.is_open("GET", "/health/") and not guard.is_open("GET", "/v1/health")


# ------------------------------------------------------------------ request targets


@pytest.mark.parametrize(
    "target",
    [b"http://evil.example/x", b"HTTP://evil.example/v1/chat/completions", b"evil.example:80", b"*", b"", b"//evil.example/x",
     b"/v1/../x", b"/..", b"/v1/./x", b"/v1/%2e%2e/x", b"/v1/%2E%2E/x", b"/v1/.%2e/x", b"/v1/%252e%252e/x", b"/v1/%25252e%25252e/x",
     b"/v1\\..\\x", b"/v1/%5c..%5cx", b"/%2f%2fevil.example/x", b"/\\evil.example/x", b"/v1/%00x"],
)
def test_unsafe_targets(target):
    assert unsafe_target(target) is not None


@pytest.mark.parametrize(
    "target", [b"/", b"/v1/chat/completions", b"/v1/files/a.b.json", b"/v1/x?path=../../etc&y=%2e%2e", b"/v1/a%2Fb", b"/v1/...", b"/v1/.well-known"]
)
def test_safe_targets(target):
    assert unsafe_target(target) is None


# ------------------------------------------------------------------ keys in settings


def test_keys_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# comment\n\nk-one\n  k-two  \n#k-three\n")
    assert read_keys_file(path) == ["k-one", "k-two"]
    settings = load_settings({**REQUIRED, "api_key": ["k-flag"], "api_keys_file": str(path)})
    assert settings.client_api_keys == ["k-flag", "k-one", "k-two"]


@pytest.mark.parametrize("content, fragment", [("# only comments\n\n", "holds no key"), ("good\nhas a space\n", ":2: the key must be")])
def test_bad_keys_file_stops_startup(tmp_path, content, fragment):
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, "api_keys_file": str(path)})
    assert fragment in str(info.value) and "has a space" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot read API keys file"):
        load_settings({**REQUIRED, "api_keys_file": str(tmp_path / "missing")})


@pytest.mark.parametrize("value, keys", [("a,b , c", ["a", "b", "c"]), ('["a", "b,c"]', ["a", "b,c"]), ("single", ["single"]), ("", [])])
def test_api_key_from_the_environment(monkeypatch, value, keys):
    monkeypatch.setenv("SWITCHYARD_API_KEY", value)
    assert load_settings(REQUIRED).client_api_keys == keys


def test_api_key_from_a_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("strong-model: s\nweak-model: w\napi-key: [k1, k2]\nopen-endpoints: [health, metrics]\nbackend-api-key: bk\n")
    settings = load_settings({}, path)
    assert settings.client_api_keys == ["k1", "k2"]
    assert settings.open_endpoints == ["health", "metrics"]
    assert settings.backend_api_key is not None and settings.backend_api_key.get_secret_value() == "bk"


def test_secrets_are_hidden_in_repr_and_errors(monkeypatch):
    settings = load_settings({**REQUIRED, "api_key": ["client-secret-1"], "backend_api_key": "backend-secret-2"})
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "client-secret-1" not in text and "backend-secret-2" not in text
    for bad in ({"api_key": ["bad secret-x"]}, {"backend_api_key": "bad secret-y"}, {"api_key": ["ok", ""]}):
        with pytest.raises(ConfigError) as info:
            load_settings({**REQUIRED, **bad})
        assert "secret-" not in str(info.value) and "--" in str(info.value)
    monkeypatch.setenv("SWITCHYARD_API_KEY", '["unterminated secret-z"')
    with pytest.raises(ConfigError) as info:
        load_settings(REQUIRED)
    assert "secret-z" not in str(info.value)


@pytest.mark.parametrize("value, expected", [(["metrics,stats"], ["metrics", "stats"]), (["none"], []), ([""], []),
                                             (["/Health", "ready"], ["health", "ready"]), ("ready", ["ready"])])
def test_open_endpoints_setting(value, expected):
    assert load_settings({**REQUIRED, "open_endpoints": value}).open_endpoints == expected


def test_unknown_open_endpoint_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown endpoint 'v1/models'"):
        load_settings({**REQUIRED, "open_endpoints": ["v1/models"]})


def test_defaults():
    settings = load_settings(REQUIRED)
    assert settings.client_api_keys == [] and settings.backend_api_key is None
    assert settings.open_endpoints == ["health", "ready", "dashboard"]
    assert settings.log_format == "text" and settings.log_prompts is False


def test_cli_flags(tmp_path):
    args = cli.build_parser().parse_args(
        ["serve", "--strong-model", "s", "--weak-model", "w", "--api-key", "k1", "--api-key", "k2", "--backend-api-key", "bk",
         "--open-endpoints", "health", "--open-endpoints", "metrics", "--log-format", "JSON", "--log-prompts"]
    )
    settings = cli.settings_from_args(args)
    assert settings.client_api_keys == ["k1", "k2"]
    assert settings.backend_api_key.get_secret_value() == "bk"
    assert settings.open_endpoints == ["health", "metrics"]
    assert settings.log_format == "json" and settings.log_prompts is True
    args = cli.build_parser().parse_args(["serve", "--strong-model", "s", "--weak-model", "w", "--no-log-prompts"])
    assert cli.settings_from_args(args).log_prompts is False


def test_backend_url_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(ConfigError) as info:
        load_settings({**REQUIRED, "backend_url": "http://user:pa55word@backend:8000"})
    assert "--backend-api-key" in str(info.value) and "pa55word" not in str(info.value)


def test_the_backends_own_request_id_is_replaced_on_the_response():
    from dynamo.nemo_switchyard.wire import with_header

    headers = [(b"Content-Type", b"application/json"), (b"X-Request-Id", b"backend-id")]
    assert with_header(headers, b"x-request-id", b"ours") == [(b"Content-Type", b"application/json"), (b"x-request-id", b"ours")]
