"""Routers score prompts; ``registry`` maps names to implementations."""

from .base import Router, RouterError

__all__ = ["Router", "RouterError"]
