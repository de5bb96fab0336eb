"""The HTTP application: route, rewrite ``model``, forward, relay the answer unchanged.

aiohttp serves it (measured fastest here for a proxy: 7,000 requests/s against
FastAPI+httpx's 500). Handlers are cancelled when the client disconnects, which
closes the backend connection so the backend stops generating.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from . import __version__, body as bodies
from .config import Settings
from .decision import FALLBACK, PASSTHROUGH, Decider, Decision, RoutingRequestError
from .errors import ERROR_SOURCE, error_response
from .metrics import CONTENT_TYPE, Metrics
from .prompt import Endpoint, PromptError, extract_prompt
from .routers.base import RouterError
from .upstream import Upstream, UpstreamError, request_headers, response_headers

log = logging.getLogger("switchyard")

ROUTED_ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}
_READY_CACHE_SECONDS = 1.0
_CLIENT_CLOSED = "499"  # nginx's status for a client that left before the answer ended

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
STATE: web.AppKey["State"] = web.AppKey("state", object)  # type: ignore[arg-type]


class State:
    """What the handlers share: settings, the decider, the backend client and metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.decider = Decider(settings)
        self.upstream = Upstream(
            settings.backend_url,
            connect_timeout=settings.connect_timeout,
            first_byte_timeout=settings.first_byte_timeout,
            idle_timeout=settings.idle_timeout,
        )
        self.metrics = Metrics()
        self._ready: tuple[float, bool] = (0.0, False)

    async def ready(self) -> bool:
        """Whether the backend answers /v1/models (cached briefly against probe storms)."""
        checked_at, ready = self._ready
        now = time.monotonic()
        if now - checked_at > _READY_CACHE_SECONDS:
            ready = await self.upstream.models() is not None
            self._ready = (time.monotonic(), ready)
        return ready


def decision_headers(decision: Decision) -> dict[str, str]:
    headers = {"x-routellm-routed-model": decision.model, "x-switchyard-decision": decision.decision}
    if decision.router is not None:
        headers["x-switchyard-router"] = decision.router
    if decision.score is not None:
        headers["x-switchyard-score"] = f"{decision.score:.6f}"
    if decision.threshold is not None:
        headers["x-switchyard-threshold"] = f"{decision.threshold:g}"
    if decision.reason is not None:
        headers["x-switchyard-fallback-reason"] = decision.reason
    return headers


class Handlers:
    def __init__(self, state: State) -> None:
        self.state = state
        self.settings = state.settings
        self.metrics = state.metrics
        self._model_labels = frozenset(state.settings.served_models)

    # -- routed endpoints -------------------------------------------------

    async def routed(self, request: web.Request) -> web.StreamResponse:
        endpoint = ROUTED_ENDPOINTS[request.path]
        metrics = self.metrics
        metrics.in_flight.inc()
        try:
            raw = await self._read_body(request)
            if isinstance(raw, web.Response):
                return self._rejected(raw)
            try:
                body = bodies.parse(raw)
            except bodies.BodyError as exc:
                return self._rejected(error_response(400, str(exc), "invalid_json"))
            started = time.perf_counter()
            try:
                target = self.state.decider.target(body.get("model"))
                if target is None:
                    decision = Decision(PASSTHROUGH, str(body.get("model")))
                else:
                    prompt = extract_prompt(endpoint, body, self.settings.prompt_scope)
                    decision = await self.state.decider.decide(target, prompt)
                    raw = bodies.replace_model(raw, decision.model, body)
            except (RoutingRequestError, PromptError) as exc:
                return self._rejected(error_response(400, str(exc), "invalid_request"))
            except RouterError as exc:
                return self._rejected(error_response(400, f"router unavailable: {exc}", "router_unavailable"))
            if decision.decision != PASSTHROUGH:
                metrics.routing_latency.observe(time.perf_counter() - started)
                if decision.score is not None:
                    metrics.scores.labels(decision.router).observe(decision.score)
                if decision.decision == FALLBACK:
                    metrics.fallbacks.labels(decision.reason).inc()
            return await self._proxy(request, raw, decision)
        finally:
            metrics.in_flight.dec()

    async def _read_body(self, request: web.Request) -> bytes | web.Response:
        limit = self.settings.max_body_size
        if request.content_length is not None and request.content_length > limit:
            return error_response(413, f"request body is larger than {limit} bytes (raise --max-body-size)", "body_too_large")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, f"request body is larger than {limit} bytes (raise --max-body-size)", "body_too_large")

    def _rejected(self, response: web.Response, decision: str = "rejected") -> web.Response:
        self.metrics.requests.labels(decision, str(response.status)).inc()
        return response

    # -- forwarding -------------------------------------------------------

    async def forward(self, request: web.Request) -> web.StreamResponse:
        """Any other path and method: forwarded as is."""
        raw_path = request.raw_path
        if not raw_path.startswith("/") or raw_path.startswith("//"):
            return error_response(400, "request target must be a path such as /v1/models", "invalid_path")
        raw = await self._read_body(request)
        if isinstance(raw, web.Response):
            return raw
        return await self._proxy(request, raw or None, None)

    async def _proxy(self, request: web.Request, raw: bytes | None, decision: Decision | None) -> web.StreamResponse:
        metrics = self.metrics
        extra = decision_headers(decision) if decision is not None else {}
        # Label by configured model only: passthrough names come from clients and are unbounded.
        model = decision.model if decision is not None and decision.model in self._model_labels else "other"
        started = time.perf_counter()
        try:
            upstream = await self.state.upstream.send(request.method, request.raw_path, request_headers(request.headers), raw)
        except UpstreamError as exc:
            metrics.upstream_errors.labels(exc.kind).inc()
            return self._counted(decision, error_response(exc.status, str(exc), f"backend_{exc.kind}", extra))
        metrics.upstream_ttfb.labels(model).observe(time.perf_counter() - started)
        status = _CLIENT_CLOSED
        complete = False
        try:
            headers = response_headers(upstream.headers)
            headers.update(extra)
            if upstream.status >= 400:
                headers[ERROR_SOURCE] = "backend"
            response, complete = await self._relay(request, upstream, headers, extra)
            status = str(response.status)
            return response
        finally:
            if complete:
                upstream.release()
            else:
                upstream.close()  # never pool a half-read connection; closing it stops the backend's generation
            metrics.upstream_duration.labels(model).observe(time.perf_counter() - started)
            if decision is not None:
                metrics.requests.labels(decision.decision, status).inc()

    def _counted(self, decision: Decision | None, response: web.Response) -> web.Response:
        if decision is not None:
            self.metrics.requests.labels(decision.decision, str(response.status)).inc()
        return response

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, headers: Any, extra: dict[str, str]
    ) -> tuple[web.StreamResponse, bool]:
        """Relay the backend's body; return the response and whether the body arrived whole."""
        idle = self.state.upstream.idle_timeout
        if upstream.content_length is not None and upstream.content_length <= 1 << 20:
            try:
                body = await _read_chunk(upstream.content.read(), idle)
            except UpstreamError as exc:  # nothing sent yet: a clean error
                self.metrics.upstream_errors.labels(exc.kind).inc()
                return error_response(exc.status, str(exc), f"backend_{exc.kind}", extra), False
            return web.Response(status=upstream.status, reason=upstream.reason, body=body, headers=headers), True
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        content = upstream.content
        try:
            while True:
                chunk = await _read_chunk(content.readany(), idle)
                if not chunk:
                    break
                await response.write(chunk)
        except UpstreamError as exc:
            # Headers are gone: end the client's connection without the final chunk, so it
            # sees a truncated response instead of a complete-looking one.
            self.metrics.upstream_errors.labels(exc.kind).inc()
            log.warning("backend response broke off mid-stream: %s", exc)
            if request.transport is not None:
                request.transport.abort()
            return response, False
        await response.write_eof()
        return response, True

    # -- switchyard's own endpoints ----------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        settings = self.settings
        virtual = {"id": settings.virtual_model_name, "object": "model", "created": 0, "owned_by": "switchyard"}
        backend = await self.state.upstream.models()
        if backend is None:
            listed = [virtual] + [{"id": m, "object": "model", "created": 0, "owned_by": "backend"} for m in settings.served_models]
        else:
            listed = [virtual] + [m for m in backend if m.get("id") != settings.virtual_model_name]
        return web.Response(body=orjson.dumps({"object": "list", "data": listed}), content_type="application/json")

    async def health(self, request: web.Request) -> web.Response:
        ready = await self.state.ready()
        body = {"status": "ok", "ready": ready, "backend": self.settings.backend_url, "version": __version__}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def ready(self, request: web.Request) -> web.Response:
        ready = await self.state.ready()
        body = {"ready": ready, "backend": self.settings.backend_url}
        return web.Response(status=200 if ready else 503, body=orjson.dumps(body), content_type="application/json")

    async def metrics_page(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def stats(self, request: web.Request) -> web.Response:
        settings = self.settings
        extra = {
            "router": settings.router_type,
            "threshold": settings.threshold,
            "models": {"strong": settings.strong_model, "weak": settings.weak_model, "fallback": settings.fallback_model},
        }
        return web.Response(body=orjson.dumps(self.metrics.stats(extra)), content_type="application/json")


async def _read_chunk(read: Any, idle: float) -> bytes:
    """Await a body read, turning aiohttp's failures into UpstreamError (idle timeout: sock_read)."""
    try:
        return await read
    except aiohttp.SocketTimeoutError:
        raise UpstreamError("idle_timeout", 504, f"the backend sent nothing for {idle:g}s") from None
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamError("reset_mid_body", 502, f"the backend's response broke off: {exc}") from None
    except (aiohttp.ClientConnectionError, ConnectionResetError) as exc:
        raise UpstreamError("reset_mid_body", 502, f"the backend's connection broke: {exc!r}") from None


def create_app(settings: Settings, *, check_backend: bool = True) -> web.Application:
    """Build the application; routers load and the backend is checked on start-up."""
    state = State(settings)
    handlers = Handlers(state)
    app = web.Application(client_max_size=settings.max_body_size, handler_args={"max_field_size": 16384})
    app[SETTINGS] = settings
    app[STATE] = state
    for path in ROUTED_ENDPOINTS:
        app.router.add_post(path, handlers.routed)
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/ready", handlers.ready)
    app.router.add_get("/metrics", handlers.metrics_page)
    app.router.add_get("/stats", handlers.stats)
    app.router.add_route("*", "/{tail:.*}", handlers.forward)

    async def startup(app: web.Application) -> None:
        await state.decider.start()
        if check_backend:
            asyncio.get_running_loop().create_task(_check_backend(state))

    async def cleanup(app: web.Application) -> None:
        await state.decider.aclose()
        await state.upstream.aclose()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app


async def _check_backend(state: State) -> None:
    """Warn about the most common setup mistake: model names the backend does not serve."""
    settings = state.settings
    entries = await state.upstream.models(timeout=5.0)
    if entries is None:
        log.warning(
            "backend %s does not answer /v1/models yet; starting anyway (requests get 502 until it is up)", settings.backend_url
        )
        return
    served = [str(entry["id"]) for entry in entries]
    missing = [m for m in settings.served_models if m not in served]
    if missing:
        log.warning(
            "backend %s does not serve %s (it serves: %s); fix --strong-model/--weak-model/--fallback-model",
            settings.backend_url,
            ", ".join(repr(m) for m in missing),
            ", ".join(served) or "nothing",
        )
    else:
        log.info("backend %s serves %s", settings.backend_url, ", ".join(settings.served_models))
