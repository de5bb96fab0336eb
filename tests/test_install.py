"""The base install stays small: no torch, transformers or RouteLLM, and none imported."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution

FORBIDDEN = {"torch", "transformers", "routellm", "aiohttp", "fastapi", "httpx"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(root: str) -> set[str]:
    """Distributions the base install of ``root`` pulls in (requirements without an extra marker)."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue  # a platform-conditional requirement that is not installed here
        for requirement in requires:
            if "extra ==" in requirement.replace("extra==", "extra =="):
                continue
            todo.append(_name(requirement))
    return seen


def test_base_dependency_tree_has_no_heavy_packages():
    tree = _closure("dynamo-nemo-switchyard")
    assert {"httptools", "orjson", "pydantic-settings", "prometheus-client"} <= tree
    assert not tree & FORBIDDEN, sorted(tree & FORBIDDEN)


def test_serving_imports_no_heavy_modules():
    code = (
        "import sys; from dynamo.nemo_switchyard import app, cli, server; from dynamo.nemo_switchyard.routers import registry;"
        "registry.router_class('lexical'); registry.router_class('random');"
        f"print(sorted(m for m in {sorted(FORBIDDEN)!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_dynamo_stays_a_namespace_package():
    import dynamo

    assert getattr(dynamo, "__file__", None) is None, "dynamo/__init__.py must not exist (ai-dynamo shares the namespace)"
