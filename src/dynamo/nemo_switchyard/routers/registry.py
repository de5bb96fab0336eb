"""Router names and how to build them; imports happen only when a router is chosen.

Lazy imports keep start-up fast and keep heavy optional dependencies (torch,
RouteLLM, ONNX) out of processes that do not use them.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Router, RouterError

DEFAULT_ROUTER = "lexical"

# name -> "module:Class", relative to this package.
_ROUTERS: dict[str, str] = {
    "lexical": ".lexical:LexicalRouter",
    "random": ".random:RandomRouter",
}


def names() -> list[str]:
    """All router names, in a stable order."""
    return list(_ROUTERS)


def router_class(name: str) -> type[Router]:
    """Import and return the class registered under ``name``."""
    try:
        target = _ROUTERS[name]
    except KeyError:
        raise RouterError(f"unknown router {name!r}; choose one of: {', '.join(names())}") from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name, __package__)
    return getattr(module, class_name)


def build(name: str, *, checkpoint_path: str | None = None, options: dict[str, Any] | None = None) -> Router:
    """Build a router by name from its checkpoint and options."""
    return router_class(name).from_config(checkpoint_path=checkpoint_path, options=options)
