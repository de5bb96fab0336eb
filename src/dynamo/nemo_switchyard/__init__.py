"""Switchyard: an OpenAI-compatible proxy that routes each prompt to a strong or a weak model."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dynamo-nemo-switchyard")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"


def build() -> str:
    """How the request path runs in this install: ``compiled`` (the mypyc C extensions a regular
    install builds, see setup.py) or ``pure Python`` (editable installs, no C compiler)."""
    from importlib.util import find_spec

    spec = find_spec(__name__ + ".app")
    origin = spec.origin if spec is not None else None
    return "compiled" if origin is not None and not origin.endswith(".py") else "pure Python"
