"""Prompt extraction: the text a router scores, from each API's request body.

By default the router sees the last user turn, since that is what the next answer
must handle; ``conversation`` scope joins every text turn (system prompt included)
for routers trained on whole dialogues. Non-text parts (images, audio, tool calls)
are ignored. A body without a usable prompt yields ``""`` (the fallback model).
"""

from __future__ import annotations

from typing import Any, Literal

Endpoint = Literal["chat", "completions", "responses", "messages"]
Scope = Literal["last-user", "conversation"]

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


class PromptError(ValueError):
    """The body lacks what routing needs; the message names the field."""


def extract_prompt(endpoint: Endpoint, body: dict[str, Any], scope: Scope = "last-user") -> str:
    """Return the text to score for a request to ``endpoint``."""
    if endpoint == "completions":
        return _completion_prompt(body)
    if endpoint == "chat":
        return _from_turns(_require_list(body, "messages"), scope, system=None)
    if endpoint == "messages":
        return _from_turns(_require_list(body, "messages"), scope, system=body.get("system"))
    if endpoint == "responses":
        return _responses_prompt(body, scope)
    raise ValueError(f"unknown endpoint {endpoint!r}")


def check_types(endpoint: Endpoint, body: dict[str, Any]) -> None:
    """Refuse (PromptError) the wrong JSON types in what routing reads, which ``extract_prompt``
    would otherwise skip: messages that are not objects, content that is not text, parts or null,
    a prompt that is neither a string nor a list."""
    if endpoint in ("chat", "messages"):
        for index, message in enumerate(_require_list(body, "messages")):
            if not isinstance(message, dict):
                raise PromptError(f"'messages[{index}]' must be an object, not {json_type(message)}")
            content = message.get("content")
            if content is not None and not isinstance(content, (str, list)):
                raise PromptError(f"'messages[{index}].content' must be a string or a list of content parts, not {json_type(content)}")
    elif endpoint == "completions":
        prompt = body.get("prompt")
        if prompt is not None and not isinstance(prompt, (str, list)):
            raise PromptError(f"'prompt' must be a string or a list, not {json_type(prompt)}")


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _require_list(body: dict[str, Any], field: str) -> list[Any]:
    value = body.get(field)
    if not isinstance(value, list):
        raise PromptError(f"'{field}' must be a list of messages")
    return value


def _completion_prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        # A list of strings is a batch: score the first. Token-id prompts carry no text to score.
        prompt = prompt[0] if prompt else ""
    if prompt is None:
        raise PromptError("'prompt' is required")
    return prompt if isinstance(prompt, str) else ""


def _responses_prompt(body: dict[str, Any], scope: Scope) -> str:
    items = body.get("input")
    if items is None:
        raise PromptError("'input' is required")
    if isinstance(items, str):
        texts = [items]
        if scope == "conversation" and isinstance(body.get("instructions"), str):
            texts.insert(0, body["instructions"])
        return "\n".join(texts)
    if not isinstance(items, list):
        raise PromptError("'input' must be a string or a list of input items")
    turns = [item for item in items if isinstance(item, dict) and item.get("type", "message") == "message"]
    return _from_turns(turns, scope, system=body.get("instructions"))


def _from_turns(turns: list[Any], scope: Scope, system: Any) -> str:
    if scope == "last-user":
        for turn in turns[::-1]:  # not reversed(): mypyc 2.4 fails to compile it over list[Any]
            if isinstance(turn, dict) and turn.get("role") == "user":
                return content_text(turn.get("content"))
        return ""
    texts = [content_text(system)] if system is not None else []
    texts.extend(content_text(turn.get("content")) for turn in turns if isinstance(turn, dict))
    return "\n".join(text for text in texts if text)


def content_text(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind, text = part.get("type"), part.get("text")
                if isinstance(kind, str) and kind in _TEXT_PART_TYPES and isinstance(text, str):
                    texts.append(text)
        return "\n".join(texts)
    return ""
