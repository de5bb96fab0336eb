"""Router names and how to build them; imports happen only when a router is chosen.

Lazy imports keep start-up fast and keep heavy optional dependencies (torch,
RouteLLM, ONNX) out of processes that do not use them.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Router, RouterError

DEFAULT_ROUTER = "learned"

# name -> "module:Class", relative to this package.
_ROUTERS: dict[str, str] = {
    "lexical": ".lexical:LexicalRouter",
    "random": ".random:RandomRouter",
    "learned": ".learned:LearnedRouter",
    # RouteLLM's routers: the "routellm" extra (RouteLLM 0.2.0, torch), imported only when chosen.
    "mf": ".routellm:MatrixFactorizationRouter",
    "causal_llm": ".routellm:CausalLLMRouter",
    "bert": ".routellm:BertRouter",
    "sw_ranking": ".routellm:SWRankingRouter",
}


def names() -> list[str]:
    """All router names, in a stable order."""
    return list(_ROUTERS)


def is_known(name: str) -> bool:
    """A registered name, or a ``package.module:Class`` path to a Router of the user's own."""
    return name in _ROUTERS or _is_class_path(name)


def _is_class_path(name: str) -> bool:
    module, _, attribute = name.partition(":")
    return bool(module) and bool(attribute) and all(part.isidentifier() for part in module.split(".") + [attribute])


def router_class(name: str) -> type[Router]:
    """Import and return the class registered under ``name`` (or named by ``module:Class``)."""
    if name in _ROUTERS:
        module_name, _, class_name = _ROUTERS[name].partition(":")
        module = importlib.import_module(module_name, __package__)
        return getattr(module, class_name)
    if not _is_class_path(name):
        raise RouterError(f"unknown router {name!r}; choose one of: {', '.join(names())}, or give package.module:RouterClass")
    module_name, _, class_name = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise RouterError(f"cannot import router {name!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Router)):
        raise RouterError(f"{name!r} is not a subclass of dynamo.nemo_switchyard.routers.base.Router")
    return cls


def build(name: str, *, checkpoint_path: str | None = None, options: dict[str, Any] | None = None) -> Router:
    """Build a router by name from its checkpoint and options."""
    return router_class(name).from_config(checkpoint_path=checkpoint_path, options=options)
