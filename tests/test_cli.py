"""Unit tests for dynamo.nemo_switchyard.cli, run in-process (no server is started)."""

from __future__ import annotations

import os

import pytest

from dynamo.nemo_switchyard import __version__, build, cli, server
from dynamo.nemo_switchyard.config import Settings


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SWITCHYARD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "400")  # one help line per option


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Replace the server with a recorder: the CLI's output is the Settings it would serve."""
    calls: list[Settings] = []

    def fake_run(settings: Settings) -> int:
        calls.append(settings)
        return 0

    monkeypatch.setattr(server, "run", fake_run)
    return calls


def _option_blocks(text: str) -> dict[str, str]:
    """Help text per option: an option line ("  --flag ...") plus its more-indented continuation lines."""
    blocks: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if stripped.startswith("-") and indent <= 4:
            current = stripped.split()[0].rstrip(",")
            blocks[current] = " ".join(stripped.split())
        elif current is not None and stripped and indent > 4:
            blocks[current] += " " + " ".join(stripped.split())
        else:
            current = None
    return blocks


def _help(capsys, entry, argv) -> str:
    with pytest.raises(SystemExit) as info:
        entry(argv)
    assert info.value.code == 0
    return capsys.readouterr().out


# ---------------------------------------------------------------- help and version


@pytest.mark.parametrize(
    "entry,argv,extra", [(cli.serve_main, ["--help"], {"-h", "--version", "--config"}), (cli.main, ["serve", "--help"], {"-h", "--config"})]
)
def test_help_lists_every_setting_with_env(capsys, entry, argv, extra):
    blocks = _option_blocks(_help(capsys, entry, argv))
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        assert flag in blocks, f"{flag} missing from help"
        assert f"env SWITCHYARD_{name.upper()}]" in blocks[flag]
        assert " ".join(field.description.split()) in blocks[flag]
    assert "SWITCHYARD_CONFIG" in blocks["--config"]
    assert set(blocks) == {"--" + name.replace("_", "-") for name in Settings.model_fields} | extra


def test_help_marks_required_and_defaults(capsys):
    blocks = _option_blocks(_help(capsys, cli.serve_main, ["--help"]))
    assert "[required unless --tier is given; env SWITCHYARD_STRONG_MODEL]" in blocks["--strong-model"]
    assert "[required unless --tier is given; env SWITCHYARD_WEAK_MODEL]" in blocks["--weak-model"]
    assert "[default: 0.5; env SWITCHYARD_THRESHOLD]" in blocks["--threshold"]
    assert "[default: None; env SWITCHYARD_FALLBACK_MODEL]" in blocks["--fallback-model"]
    assert "[default: {}; env SWITCHYARD_ROUTER_OPTIONS]" in blocks["--router-options"]
    assert "{last-user,conversation}" in blocks["--prompt-scope"]


def test_top_level_help_lists_serve(capsys):
    text = _help(capsys, cli.main, ["--help"])
    assert "serve" in text


@pytest.mark.parametrize("entry,argv", [(cli.main, ["--version"]), (cli.serve_main, ["--version"])])
def test_version(capsys, entry, argv):
    text = _help(capsys, entry, argv)
    assert text.strip() == f"switchyard {__version__} ({build()})"


def test_main_requires_command(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("entry,argv", [(cli.serve_main, []), (cli.main, ["serve"])])
def test_missing_models_exit_2_with_one_line(capsys, served, entry, argv):
    assert entry(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.endswith("\n")
    assert err.startswith("switchyard: error: ")
    assert "--strong-model" in err and "SWITCHYARD_STRONG_MODEL" in err
    assert "--weak-model" in err and "SWITCHYARD_WEAK_MODEL" in err
    assert captured.out == ""
    assert served == []


def test_invalid_value_exit_2(capsys, served):
    assert cli.serve_main(["--strong-model", "s", "--weak-model", "w", "--threshold", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threshold" in err
    assert served == []


def test_missing_config_file_exit_2(capsys, served, tmp_path):
    assert cli.serve_main(["--config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--threshold", "abc"], ["--http-port", "x"], ["--prompt-scope", "all"],
                                  ["--router-options", "[1]"], ["--router-options", "{bad"], ["--no-such-flag"]])
def test_argparse_errors_exit_2(capsys, served, argv):
    with pytest.raises(SystemExit) as info:
        cli.serve_main(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert served == []


def test_router_error_exit_2(capsys, monkeypatch: pytest.MonkeyPatch):
    from dynamo.nemo_switchyard.routers.base import RouterError

    def failing_run(settings):
        raise RouterError("cannot load router 'lexical': broken weights")

    monkeypatch.setattr(server, "run", failing_run)
    assert cli.serve_main(["--strong-model", "s", "--weak-model", "w"]) == 2
    assert capsys.readouterr().err == "switchyard: error: cannot load router 'lexical': broken weights\n"


def test_keyboard_interrupt_exit_130(monkeypatch: pytest.MonkeyPatch):
    def interrupted(settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(server, "run", interrupted)
    assert cli.serve_main(["--strong-model", "s", "--weak-model", "w"]) == 130


# ---------------------------------------------------------------- flags become settings


def test_flags_become_settings(served):
    code = cli.serve_main([
        "--strong-model", "big", "--weak-model", "small", "--threshold", "0.25", "--http-port", "9999",
        "--router-type", "random", "--router-options", '{"random": {"seed": 4}}', "--prompt-scope", "conversation",
        "--backend-url", "http://b:1/v1", "--router-timeout", "0.5", "--fallback-model", "fb",
    ])
    assert code == 0
    (s,) = served
    assert (s.strong_model, s.weak_model, s.threshold, s.http_port) == ("big", "small", 0.25, 9999)
    assert s.router_type == "random" and s.router_options == {"random": {"seed": 4}}
    assert s.prompt_scope == "conversation" and s.backend_url == "http://b:1"
    assert s.router_timeout == 0.5 and s.fallback_model == "fb"


def test_main_serve_passes_handler_result(served, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(server, "run", lambda settings: 7)
    assert cli.main(["serve", "--strong-model", "a", "--weak-model", "b"]) == 7


def test_untyped_flags_let_env_and_file_through(served, monkeypatch: pytest.MonkeyPatch, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("strong-model: file-strong\nweak-model: file-weak\nthreshold: 0.1\nhttp-port: 1111\n")
    monkeypatch.setenv("SWITCHYARD_THRESHOLD", "0.2")
    monkeypatch.setenv("SWITCHYARD_WEAK_MODEL", "env-weak")
    assert cli.serve_main(["--config", str(config), "--strong-model", "flag-strong"]) == 0
    (s,) = served
    assert s.strong_model == "flag-strong"
    assert s.weak_model == "env-weak"
    assert s.threshold == 0.2
    assert s.http_port == 1111
    assert s.http_host == "0.0.0.0"  # default: no flag value shadows it


def test_flag_beats_env(served, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHYARD_THRESHOLD", "0.2")
    assert cli.serve_main(["--strong-model", "s", "--weak-model", "w", "--threshold", "0.9"]) == 0
    assert served[0].threshold == 0.9


def test_config_from_env(served, monkeypatch: pytest.MonkeyPatch, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[switchyard]\nstrong_model = "ts"\nweak_model = "tw"\n')
    monkeypatch.setenv("SWITCHYARD_CONFIG", str(config))
    assert cli.main(["serve"]) == 0
    assert (served[0].strong_model, served[0].weak_model) == ("ts", "tw")


def test_optional_field_accepts_value(served):
    assert cli.serve_main(["--strong-model", "s", "--weak-model", "w", "--checkpoint-path", "/ckpt"]) == 0
    assert served[0].checkpoint_path == "/ckpt"


def test_log_level_flag_case_insensitive_like_env(served):
    assert cli.serve_main(["--strong-model", "s", "--weak-model", "w", "--log-level", "INFO"]) == 0
    assert served[0].log_level == "info"


def test_log_level_env_case_insensitive(served, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHYARD_LOG_LEVEL", "DEBUG")
    assert cli.serve_main(["--strong-model", "s", "--weak-model", "w"]) == 0
    assert served[0].log_level == "debug"


def test_settings_from_args_only_passes_typed_flags():
    args = cli.build_parser().parse_args(["serve", "--strong-model", "s"])
    assert vars(args).keys() - {"config", "command", "handler"} == {"strong_model"}


def test_router_options_env_invalid_json_exit_2(capsys, served, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SWITCHYARD_ROUTER_OPTIONS", "{bad json")
    assert cli.serve_main(["--strong-model", "s", "--weak-model", "w"]) == 2
    assert "SWITCHYARD_ROUTER_OPTIONS" in capsys.readouterr().err
