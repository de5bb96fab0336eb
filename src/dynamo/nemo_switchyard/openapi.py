"""The OpenAPI 3.0 description of switchyard's HTTP interface, served at ``GET /openapi.json``.

Hand-written and small: switchyard's own endpoints, and the routed OpenAI endpoints with
the request fields routing reads (everything else in a body is forwarded untouched, so the
schemas allow additional properties). ``tests/test_fuzz.py`` drives schemathesis with it.
"""

from __future__ import annotations

from typing import Any

from . import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON_ERROR = {"application/json": {"schema": _ERROR}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "The body is not a JSON object, or lacks what routing needs (OpenAI error shape).",
        401: "A client API key is required.",
        413: "The body is larger than --max-body-size.",
        415: "An explicit Content-Type that is not JSON.",
        502: "The backend cannot be reached (or its own error, passed through).",
        503: "Not ready (or the backend's own error, passed through).",
        504: "The backend did not answer in time.",
    }
    return {str(status): {"description": text[status], "content": _JSON_ERROR} for status in statuses}


_MODEL = {
    "description": "`auto` (routed), `router-<router>-<threshold>` (routed by that router), anything else passes through.",
    "anyOf": [{"type": "string", "enum": ["auto", "router-random-0.5"]}, {"type": "string"}],
}
_CONTENT = {
    "nullable": True,
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}, "text": {"type": "string"}}}},
    ],
}
_MESSAGES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["role"],
        "properties": {"role": {"type": "string", "enum": ["system", "user", "assistant", "tool", "developer"]}, "content": _CONTENT},
    },
}
_STREAM = {"type": "boolean"}


def _routed(summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {
                "200": {
                    "description": "The backend's answer, byte for byte (JSON, or an SSE stream when `stream` is true).",
                    "content": {"application/json": {"schema": {"type": "object"}}, "text/event-stream": {"schema": {"type": "string"}}},
                },
                **_errors(400, 401, 413, 415, 502, 503, 504),
            },
        }
    }


def _own(summary: str, schema: dict[str, Any], *errors: int, media: str = "application/json") -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": "OK", "content": {media: {"schema": schema}}}, **_errors(*errors)}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Switchyard",
        "version": __version__,
        "description": "OpenAI-compatible routing proxy: requests for model `auto` go to the strong or the weak model. "
        "Any path not listed here is forwarded to the backend as is.",
    },
    "paths": {
        "/v1/chat/completions": _routed(
            "Chat completion, routed",
            {"type": "object", "required": ["model", "messages"], "properties": {"model": _MODEL, "messages": _MESSAGES, "stream": _STREAM}},
        ),
        "/v1/completions": _routed(
            "Text completion, routed",
            {
                "type": "object",
                "required": ["model", "prompt"],
                "properties": {
                    "model": _MODEL,
                    "prompt": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "stream": _STREAM,
                },
            },
        ),
        "/v1/responses": _routed(
            "Responses API, routed",
            {
                "type": "object",
                "required": ["model", "input"],
                "properties": {
                    "model": _MODEL,
                    "input": {"anyOf": [{"type": "string"}, _MESSAGES]},
                    "instructions": {"type": "string"},
                    "stream": _STREAM,
                },
            },
        ),
        "/v1/messages": _routed(
            "Anthropic-style messages, routed",
            {
                "type": "object",
                "required": ["model", "messages", "max_tokens"],
                "properties": {"model": _MODEL, "messages": _MESSAGES, "system": {"type": "string"}, "max_tokens": {"type": "integer"}},
            },
        ),
        "/v1/route": {
            "post": {
                "summary": "The routing decision for a chat or completions body, without calling the backend",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"model": _MODEL, "messages": _MESSAGES, "prompt": {"type": "string"}}}
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The decision",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["model", "decision"],
                                    "properties": {
                                        "model": {"type": "string"},
                                        "decision": {"type": "string", "enum": ["strong", "middle", "weak", "fallback", "passthrough"]},
                                        "score": {"type": "number", "nullable": True},
                                        "router": {"type": "string", "nullable": True},
                                        "threshold": {"type": "number", "nullable": True},
                                        "reason": {
                                            "type": "string",
                                            "enum": ["score", "budget", "load", "affinity", "override", "fallback", "passthrough"],
                                        },
                                        "tier": {"type": "integer", "nullable": True},
                                        "fallback_reason": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    **_errors(400, 401),
                },
            }
        },
        "/v1/models": _own("`auto` plus the backend's models", {"type": "object", "properties": {"data": {"type": "array"}}}, 401),
        "/health": _own("200 while the process serves", {"type": "object", "properties": {"ready": {"type": "boolean"}}}, 401),
        "/ready": _own("200 when the backend answers, 503 when not (or while shutting down)", {"type": "object"}, 401, 503),
        "/metrics": _own("Prometheus metrics", {"type": "string"}, 401, media="text/plain"),
        "/stats": _own("Counters as JSON", {"type": "object"}, 401),
        "/openapi.json": _own("This description", {"type": "object"}),
        "/dashboard": _own("A live dashboard page (HTML)", {"type": "string"}, 401, media="text/html"),
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["message", "type", "code"],
                        "properties": {
                            "message": {"type": "string"},
                            "type": {"type": "string"},
                            "param": {"type": "string", "nullable": True},
                            "code": {"type": "string"},
                        },
                    }
                },
            }
        }
    },
}
