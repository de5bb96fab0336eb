"""Switchyard: an OpenAI-compatible proxy that routes each prompt to a strong or a weak model."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dynamo-nemo-switchyard")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"
