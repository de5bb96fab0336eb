"""Unit tests for dynamo.nemo_switchyard.config: sources, precedence and validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dynamo.nemo_switchyard.config import ENV_PREFIX, ConfigError, Settings, load_settings, read_config_file
from dynamo.nemo_switchyard.routers import registry

REQUIRED = {"strong_model": "strong", "weak_model": "weak"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SWITCHYARD_* variable of the outer environment may leak into a test."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(**kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(kwargs.pop("cli", None), kwargs.pop("config_file", None))
    return str(info.value)


# ---------------------------------------------------------------- defaults


def test_defaults_with_only_required_models():
    s = load_settings(dict(REQUIRED))
    assert s.strong_model == "strong" and s.weak_model == "weak"
    assert s.http_host == "0.0.0.0"
    assert s.http_port == 8080
    assert s.backend_url == "http://localhost:8000"
    assert s.router_type == registry.DEFAULT_ROUTER
    assert s.threshold == 0.5
    assert s.virtual_model_name == "auto"
    assert s.prompt_scope == "last-user"
    assert s.router_options == {}
    assert s.checkpoint_path is None
    assert s.log_level == "info"


def test_fallback_defaults_to_strong_model():
    s = load_settings(dict(REQUIRED))
    assert s.fallback_model == "strong"
    assert s.served_models == ["strong", "weak"]


def test_explicit_fallback_is_kept_and_served():
    s = load_settings({**REQUIRED, "fallback_model": "cheap"})
    assert s.fallback_model == "cheap"
    assert s.served_models == ["strong", "weak", "cheap"]


def test_fallback_equal_to_weak_not_listed_twice():
    s = load_settings({**REQUIRED, "fallback_model": "weak"})
    assert s.served_models == ["strong", "weak"]


# ---------------------------------------------------------------- required models


@pytest.mark.parametrize("missing", ["strong_model", "weak_model"])
def test_missing_model_names_flag_and_env(missing: str):
    cli = {k: v for k, v in REQUIRED.items() if k != missing}
    message = _error(cli=cli)
    flag = "--" + missing.replace("_", "-")
    env = ENV_PREFIX + missing.upper()
    assert f"{flag} is required" in message
    assert env in message
    assert "\n" not in message
    other = "--" + ("weak_model" if missing == "strong_model" else "strong_model").replace("_", "-")
    assert other not in message


def test_both_models_missing_reported_together_on_one_line():
    message = _error(cli={})
    assert "--strong-model" in message and "SWITCHYARD_STRONG_MODEL" in message
    assert "--weak-model" in message and "SWITCHYARD_WEAK_MODEL" in message
    assert "\n" not in message


def test_empty_model_name_rejected():
    message = _error(cli={**REQUIRED, "strong_model": ""})
    assert "--strong-model" in message


# ---------------------------------------------------------------- threshold and other ranges


@pytest.mark.parametrize("value", [-0.01, 1.01, 2, float("nan"), "nan"])
def test_threshold_outside_unit_interval_rejected(value):
    message = _error(cli={**REQUIRED, "threshold": value})
    assert message.startswith("invalid configuration: --threshold ")
    assert "\n" not in message


@pytest.mark.parametrize("value", [0.0, 1.0, 0.25, "0.75"])
def test_threshold_bounds_inclusive(value):
    assert load_settings({**REQUIRED, "threshold": value}).threshold == float(value)


@pytest.mark.parametrize(
    "field,value",
    [("http_port", 0), ("http_port", 65536), ("router_timeout", 0), ("router_batch_size", 0), ("workers", 0),
     ("max_body_size", 1023), ("prompt_scope", "everything"), ("log_level", "loud")],
)
def test_out_of_range_values_name_the_flag(field: str, value):
    message = _error(cli={**REQUIRED, field: value})
    assert "--" + field.replace("_", "-") in message
    assert "\n" not in message


def test_log_level_is_case_insensitive():
    assert load_settings({**REQUIRED, "log_level": "WARNING"}).log_level == "warning"


# ---------------------------------------------------------------- router


def test_unknown_router_rejected_with_choices():
    message = _error(cli={**REQUIRED, "router_type": "nope"})
    assert "--router-type" in message
    assert "'nope'" in message
    for name in registry.names():
        assert name in message


@pytest.mark.parametrize("name", registry.names())
def test_known_routers_accepted(name: str):
    assert load_settings({**REQUIRED, "router_type": name}).router_type == name


# ---------------------------------------------------------------- backend URL


@pytest.mark.parametrize(
    "url,expected",
    [
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://localhost:8000/", "http://localhost:8000"),
        ("http://localhost:8000/v1", "http://localhost:8000"),
        ("http://localhost:8000/v1/", "http://localhost:8000"),
        ("https://api.example.com/prefix/v1", "https://api.example.com/prefix"),
        ("https://api.example.com/prefix", "https://api.example.com/prefix"),
        ("http://[::1]:9000/v1", "http://[::1]:9000"),
        ("http://10.0.0.1", "http://10.0.0.1"),
    ],
)
def test_backend_url_normalised(url: str, expected: str):
    assert load_settings({**REQUIRED, "backend_url": url}).backend_url == expected


def test_backend_url_v1_only_stripped_as_whole_segment():
    assert load_settings({**REQUIRED, "backend_url": "http://h/apiv1"}).backend_url == "http://h/apiv1"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://localhost:8000",  # scheme
        "localhost:8000",  # no scheme
        "//localhost:8000",
        "http://",  # missing host
        "http:///v1",
        "http://localhost:99999",  # bad port
        "http://localhost:port",
        "http://localhost:8000/?key=1",  # query
        "http://localhost:8000/v1#frag",  # fragment
    ],
)
def test_malformed_backend_url_rejected(url: str):
    message = _error(cli={**REQUIRED, "backend_url": url})
    assert message.startswith("invalid configuration: --backend-url ")
    assert repr(url) in message
    assert "\n" not in message


# ---------------------------------------------------------------- environment


def test_env_values_used(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHYARD_STRONG_MODEL", "env-strong")
    monkeypatch.setenv("SWITCHYARD_WEAK_MODEL", "env-weak")
    monkeypatch.setenv("SWITCHYARD_THRESHOLD", "0.3")
    monkeypatch.setenv("SWITCHYARD_HTTP_PORT", "9001")
    s = load_settings({})
    assert (s.strong_model, s.weak_model, s.threshold, s.http_port) == ("env-strong", "env-weak", 0.3, 9001)


def test_env_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("switchyard_strong_model", "lower")
    s = load_settings({"weak_model": "w"})
    assert s.strong_model == "lower"


def test_router_options_from_json_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHYARD_ROUTER_OPTIONS", '{"random": {"seed": 7}, "lexical": {"weights_path": "/x"}}')
    s = load_settings(dict(REQUIRED))
    assert s.router_options == {"random": {"seed": 7}, "lexical": {"weights_path": "/x"}}


def test_router_options_env_not_an_object_is_config_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHYARD_ROUTER_OPTIONS", "[1, 2]")
    message = _error(cli=dict(REQUIRED))
    assert "--router-options" in message


def test_router_options_env_invalid_json_is_config_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHYARD_ROUTER_OPTIONS", "{not json")
    message = _error(cli=dict(REQUIRED))
    assert "SWITCHYARD_ROUTER_OPTIONS" in message
    assert "\n" not in message


def test_unrelated_prefixed_env_vars_are_ignored(monkeypatch: pytest.MonkeyPatch):
    # SWITCHYARD_CONFIG is read by the CLI, not a setting; it must not be an "extra" error.
    monkeypatch.setenv("SWITCHYARD_CONFIG", "/nonexistent.yaml")
    monkeypatch.setenv("SWITCHYARD_SOMETHING_ELSE", "1")
    assert load_settings(dict(REQUIRED)).strong_model == "strong"


def test_invalid_env_value_is_config_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHYARD_THRESHOLD", "1.5")
    message = _error(cli=dict(REQUIRED))
    assert "--threshold" in message


# ---------------------------------------------------------------- config files


YAML_DASHED = """\
strong-model: file-strong
weak-model: file-weak
threshold: 0.2
router-type: random
backend-url: http://backend:9000/v1
router-options:
  random:
    seed: 11
"""

TOML_UNDERSCORED = """\
strong_model = "file-strong"
weak_model = "file-weak"
threshold = 0.2
router_type = "random"
backend_url = "http://backend:9000/v1"

[router_options.random]
seed = 11
"""


@pytest.mark.parametrize("name,text", [("c.yaml", YAML_DASHED), ("c.yml", YAML_DASHED), ("c.toml", TOML_UNDERSCORED)])
def test_config_file_values(tmp_path: Path, name: str, text: str):
    s = load_settings({}, _write(tmp_path, name, text))
    assert s.strong_model == "file-strong"
    assert s.weak_model == "file-weak"
    assert s.threshold == 0.2
    assert s.router_type == "random"
    assert s.backend_url == "http://backend:9000"
    assert s.router_options == {"random": {"seed": 11}}


def test_yaml_underscored_and_toml_dashed_keys(tmp_path: Path):
    yaml_file = _write(tmp_path, "a.yaml", "strong_model: a\nweak_model: b\nhttp_port: 1234\n")
    toml_file = _write(tmp_path, "a.toml", '"strong-model" = "a"\nweak-model = "b"\nhttp-port = 1234\n')
    for path in (yaml_file, toml_file):
        s = load_settings({}, path)
        assert (s.strong_model, s.weak_model, s.http_port) == ("a", "b", 1234)


def test_switchyard_section_yaml(tmp_path: Path):
    path = _write(tmp_path, "c.yaml", "other_tool:\n  x: 1\nswitchyard:\n  strong-model: s\n  weak_model: w\n  threshold: 0.9\n")
    s = load_settings({}, path)
    assert (s.strong_model, s.weak_model, s.threshold) == ("s", "w", 0.9)


def test_switchyard_section_toml(tmp_path: Path):
    path = _write(tmp_path, "c.toml", '[other]\nx = 1\n\n[switchyard]\nstrong-model = "s"\nweak_model = "w"\n')
    s = load_settings({}, path)
    assert (s.strong_model, s.weak_model) == ("s", "w")


def test_read_config_file_normalises_dashes(tmp_path: Path):
    path = _write(tmp_path, "c.yaml", "strong-model: s\nfirst-byte-timeout: 3\n")
    assert read_config_file(path) == {"strong_model": "s", "first_byte_timeout": 3}


def test_empty_yaml_file_is_empty_mapping(tmp_path: Path):
    assert read_config_file(_write(tmp_path, "e.yaml", "")) == {}


@pytest.mark.parametrize("name,text", [("c.yaml", "strong_model: s\nweak_model: w\nthreshhold: 0.3\n"),
                                       ("c.toml", 'strong_model = "s"\nweak_model = "w"\nthreshhold = 0.3\n')])
def test_unknown_key_in_config_file_is_error(tmp_path: Path, name: str, text: str):
    message = _error(cli={}, config_file=_write(tmp_path, name, text))
    assert "threshhold" in message
    assert "config file" in message
    assert "\n" not in message


def test_unknown_key_in_switchyard_section_is_error(tmp_path: Path):
    path = _write(tmp_path, "c.yaml", "switchyard:\n  strong_model: s\n  weak_model: w\n  bogus: 1\n")
    assert "bogus" in _error(cli={}, config_file=path)


def test_config_file_not_a_mapping(tmp_path: Path):
    with pytest.raises(ConfigError, match="mapping"):
        read_config_file(_write(tmp_path, "c.yaml", "- a\n- b\n"))


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config file") as info:
        load_settings(dict(REQUIRED), tmp_path / "absent.yaml")
    assert "\n" not in str(info.value)


def test_invalid_toml_is_one_line_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        read_config_file(_write(tmp_path, "c.toml", "strong_model = \n"))
    assert "\n" not in str(info.value)


def test_invalid_yaml_is_one_line_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        read_config_file(_write(tmp_path, "c.yaml", "strong_model: a\n  weak: : b\n"))
    assert "\n" not in str(info.value)


def test_invalid_yaml_is_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_config_file(_write(tmp_path, "c.yaml", "strong_model: [unclosed\n"))


def test_invalid_value_in_file_names_flag(tmp_path: Path):
    path = _write(tmp_path, "c.yaml", "strong_model: s\nweak_model: w\nthreshold: 3\n")
    message = _error(cli={}, config_file=path)
    assert "--threshold" in message


def test_file_values_do_not_leak_into_next_load(tmp_path: Path):
    load_settings({}, _write(tmp_path, "c.yaml", "strong_model: s\nweak_model: w\nthreshold: 0.1\n"))
    assert load_settings(dict(REQUIRED)).threshold == 0.5


def test_file_values_cleared_after_failure(tmp_path: Path):
    with pytest.raises(ConfigError):
        load_settings({}, _write(tmp_path, "c.yaml", "strong_model: s\nthreshold: 7\n"))
    # Only the models given now; the failed file's threshold must not reappear.
    assert load_settings(dict(REQUIRED)).threshold == 0.5


# ---------------------------------------------------------------- precedence


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = _write(
        tmp_path,
        "c.yaml",
        "strong-model: file-strong\nweak-model: file-weak\nthreshold: 0.1\nhttp-port: 1111\nvirtual-model-name: file-auto\n",
    )
    monkeypatch.setenv("SWITCHYARD_THRESHOLD", "0.2")
    monkeypatch.setenv("SWITCHYARD_HTTP_PORT", "2222")
    monkeypatch.setenv("SWITCHYARD_WEAK_MODEL", "env-weak")
    s = load_settings({"threshold": 0.3, "strong_model": "flag-strong"}, path)
    assert s.threshold == 0.3  # flag beats env and file
    assert s.strong_model == "flag-strong"  # flag beats file
    assert s.http_port == 2222  # env beats file
    assert s.weak_model == "env-weak"  # env beats file
    assert s.virtual_model_name == "file-auto"  # file beats default
    assert s.prompt_scope == "last-user"  # default
    assert s.fallback_model == "flag-strong"  # fallback follows the winning strong model


def test_env_beats_file_for_router_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = _write(tmp_path, "c.toml", 'strong_model = "s"\nweak_model = "w"\n[router_options.random]\nseed = 1\n')
    monkeypatch.setenv("SWITCHYARD_ROUTER_OPTIONS", '{"random": {"seed": 2}}')
    assert load_settings({}, path).router_options == {"random": {"seed": 2}}


def test_settings_model_forbids_extra_init_values():
    message = _error(cli={**REQUIRED, "no_such_setting": 1})
    assert "no_such_setting" in message


def test_settings_fields_have_descriptions():
    for name, field in Settings.model_fields.items():
        assert field.description, name
