"""The application: route, rewrite ``model``, forward, relay the answer unchanged.

``App.handle`` serves one parsed request (see ``protocol.py``): the routed OpenAI
endpoints, switchyard's own endpoints, and everything else forwarded as is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from . import __version__, body as bodies
from .config import Settings
from .decision import FALLBACK, PASSTHROUGH, Decider, Decision, RoutingRequestError
from .errors import ERROR_SOURCE, error_body
from .metrics import CONTENT_TYPE, Metrics
from .prompt import Endpoint, PromptError, extract_prompt
from .protocol import Responder
from .routers.base import RouterError
from .upstream import Upstream, UpstreamError
from .wire import NOT_FORWARDED, NOT_RETURNED, Headers, Request, filtered

log = logging.getLogger("switchyard")

ROUTED_ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}
_READY_CACHE_SECONDS = 1.0
_CLIENT_CLOSED = "499"  # nginx's status for a client that left before the answer ended
_JSON = (b"Content-Type", b"application/json")


def decision_headers(decision: Decision) -> Headers:
    headers = [(b"x-routellm-routed-model", decision.model.encode()), (b"x-switchyard-decision", decision.decision.encode())]
    if decision.router is not None:
        headers.append((b"x-switchyard-router", decision.router.encode()))
    if decision.score is not None:
        headers.append((b"x-switchyard-score", b"%.6f" % decision.score))
    if decision.threshold is not None:
        headers.append((b"x-switchyard-threshold", f"{decision.threshold:g}".encode()))
    if decision.reason is not None:
        headers.append((b"x-switchyard-fallback-reason", decision.reason.encode()))
    return headers


def send_error(responder: Responder, status: int, message: str, code: str, extra: Headers = ()) -> None:  # type: ignore[assignment]
    """An OpenAI-shaped error from switchyard itself."""
    responder.send(status, [_JSON, *extra, (ERROR_SOURCE.encode(), b"switchyard")], error_body(status, message, code))


class App:
    """Everything a request needs: settings, the decider, the backend client and metrics."""

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
        self._model_labels = frozenset(settings.served_models)
        self._ready: tuple[float, bool] = (0.0, False)
        self._own = {
            ("GET", "/health"): self.health,
            ("GET", "/ready"): self.ready,
            ("GET", "/metrics"): self.metrics_page,
            ("GET", "/stats"): self.stats,
            ("GET", "/v1/models"): self.models,
            ("POST", "/v1/route"): self.route,
        }

    async def startup(self, check_backend: bool = True) -> None:
        """Load the router (a broken one stops start-up) and check the backend in the background."""
        await self.decider.start()
        if check_backend:
            asyncio.get_running_loop().create_task(self._check_backend())

    async def shutdown(self) -> None:
        await self.decider.aclose()
        await self.upstream.aclose()

    def rejected(self, status: int) -> None:
        """A request refused before it could be read (413, 431, malformed)."""
        self.metrics.requests.labels("rejected", str(status)).inc()

    async def handle(self, request: Request, responder: Responder) -> None:
        if request.method == "POST" and request.path in ROUTED_ENDPOINTS:
            await self.routed(request, responder)
            return
        own = self._own.get((request.method, request.path))
        if own is not None:
            await own(request, responder)
            return
        await self.forward(request, responder)

    # -- routed endpoints ---------------------------------------------------

    async def routed(self, request: Request, responder: Responder) -> None:
        metrics = self.metrics
        metrics.in_flight.inc()
        try:
            raw = request.body
            try:
                body = bodies.parse(raw)
            except bodies.BodyError as exc:
                return self._reject(responder, 400, str(exc), "invalid_json")
            started = time.perf_counter()
            decision = await self._decide(responder, ROUTED_ENDPOINTS[request.path], body, body.get("model"), count=True)
            if decision is None:
                return
            if decision.decision != PASSTHROUGH:
                raw = bodies.replace_model(raw, decision.model, body)
                metrics.routing_latency.observe(time.perf_counter() - started)
                if decision.score is not None:
                    metrics.scores.labels(decision.router).observe(decision.score)
                if decision.decision == FALLBACK:
                    metrics.fallbacks.labels(decision.reason).inc()
            await self._proxy(request, responder, raw, decision)
        finally:
            metrics.in_flight.dec()

    async def _decide(self, responder: Responder, endpoint: Endpoint, body: dict[str, Any], model: Any, count: bool) -> Decision | None:
        """The decision for a body, or None after answering 400 (counted as rejected if ``count``)."""
        try:
            target = self.decider.target(model)
            if target is None:
                return Decision(PASSTHROUGH, str(model))
            return await self.decider.decide(target, extract_prompt(endpoint, body, self.settings.prompt_scope))
        except (RoutingRequestError, PromptError) as exc:
            status, message, code = 400, str(exc), "invalid_request"
        except RouterError as exc:
            status, message, code = 400, f"router unavailable: {exc}", "router_unavailable"
        if count:
            self._reject(responder, status, message, code)
        else:
            send_error(responder, status, message, code)
        return None

    def _reject(self, responder: Responder, status: int, message: str, code: str) -> None:
        self.metrics.requests.labels("rejected", str(status)).inc()
        send_error(responder, status, message, code)

    # -- forwarding -----------------------------------------------------------

    async def forward(self, request: Request, responder: Responder) -> None:
        """Any other path and method: forwarded as is, to the configured backend only."""
        target = request.target
        if not target.startswith(b"/") or target.startswith(b"//"):
            return send_error(responder, 400, "request target must be a path such as /v1/models", "invalid_path")
        await self._proxy(request, responder, request.body, None)

    async def _proxy(self, request: Request, responder: Responder, raw: bytes, decision: Decision | None) -> None:
        metrics = self.metrics
        extra = decision_headers(decision) if decision is not None else []
        # Label by configured model only: passthrough names come from clients and are unbounded.
        model = decision.model if decision is not None and decision.model in self._model_labels else "other"
        outcome = _Outcome(metrics, decision, model, time.perf_counter())
        try:
            exchange = await self.upstream.open(request.method, request.target, filtered(request.headers, NOT_FORWARDED), raw or None)
        except UpstreamError as exc:
            metrics.upstream_errors.labels(exc.kind).inc()
            outcome.record(exc.status)
            send_error(responder, exc.status, str(exc), f"backend_{exc.kind}", extra)
            return
        metrics.upstream_ttfb.labels(model).observe(time.perf_counter() - outcome.started)
        try:
            headers = filtered(exchange.headers, NOT_RETURNED)
            headers += extra
            if exchange.status >= 400:
                headers.append((ERROR_SOURCE.encode(), b"backend"))
            await self._relay(responder, exchange, headers, extra, outcome)
        finally:
            exchange.close()  # no-op when the body arrived whole (the connection is back in the pool)
            outcome.record(_CLIENT_CLOSED)  # no-op unless the client left first

    async def _relay(self, responder: Responder, exchange: Any, headers: Headers, extra: Headers, outcome: "_Outcome") -> None:
        """Relay the backend's body. The outcome is recorded before the last write, so a client
        that reads /stats right after its answer sees it counted."""
        length = exchange.content_length
        if length is not None and length <= 1 << 20:
            try:
                body = await exchange.read()
            except UpstreamError as exc:  # nothing sent yet: a clean error
                self.metrics.upstream_errors.labels(exc.kind).inc()
                outcome.record(exc.status)
                send_error(responder, exc.status, str(exc), f"backend_{exc.kind}", extra)
                return
            outcome.record(exchange.status)
            responder.send(exchange.status, headers, body, exchange.reason or None, length)
            return
        responder.start(exchange.status, headers, length, exchange.reason or None)
        try:
            await exchange.relay(responder)
        except UpstreamError as exc:
            # The head is gone: end the client's connection without the final chunk, so it
            # sees a truncated response instead of a complete-looking one.
            self.metrics.upstream_errors.labels(exc.kind).inc()
            log.warning("backend response broke off mid-stream: %s", exc)
            outcome.record(exchange.status)
            responder.abort()
            return
        outcome.record(exchange.status)
        responder.end()

    # -- switchyard's own endpoints ---------------------------------------------

    def _json(self, responder: Responder, data: Any, status: int = 200) -> None:
        responder.send(status, [_JSON], orjson.dumps(data))

    async def route(self, request: Request, responder: Responder) -> None:
        """The decision a chat (``messages``) or completions (``prompt``) body would get, without calling
        the backend (shadow testing). Not traffic: not counted in the metrics."""
        try:
            body = bodies.parse(request.body)
        except bodies.BodyError as exc:
            return send_error(responder, 400, str(exc), "invalid_json")
        if "messages" not in body and "prompt" not in body:
            return send_error(responder, 400, "request body needs 'messages' (a chat body) or 'prompt' (a completions body)", "invalid_request")
        model = body.get("model")
        endpoint: Endpoint = "chat" if "messages" in body else "completions"
        decision = await self._decide(responder, endpoint, body, self.settings.virtual_model_name if model is None else model, count=False)
        if decision is None:
            return
        answer = {"model": decision.model, "decision": decision.decision, "score": decision.score,
                  "router": decision.router, "threshold": decision.threshold}
        if decision.reason is not None:
            answer["reason"] = decision.reason
        self._json(responder, answer)

    async def models(self, request: Request, responder: Responder) -> None:
        settings = self.settings
        virtual = {"id": settings.virtual_model_name, "object": "model", "created": 0, "owned_by": "switchyard"}
        backend = await self.upstream.models()
        if backend is None:
            listed = [virtual] + [{"id": m, "object": "model", "created": 0, "owned_by": "backend"} for m in settings.served_models]
        else:
            listed = [virtual] + [m for m in backend if m.get("id") != settings.virtual_model_name]
        self._json(responder, {"object": "list", "data": listed})

    async def is_ready(self) -> bool:
        """Whether the backend answers /v1/models (cached briefly against probe storms)."""
        checked_at, ready = self._ready
        if time.monotonic() - checked_at > _READY_CACHE_SECONDS:
            ready = await self.upstream.models() is not None
            self._ready = (time.monotonic(), ready)
        return ready

    async def health(self, request: Request, responder: Responder) -> None:
        ready = await self.is_ready()
        self._json(responder, {"status": "ok", "ready": ready, "backend": self.settings.backend_url, "version": __version__})

    async def ready(self, request: Request, responder: Responder) -> None:
        ready = await self.is_ready()
        self._json(responder, {"ready": ready, "backend": self.settings.backend_url}, 200 if ready else 503)

    async def metrics_page(self, request: Request, responder: Responder) -> None:
        responder.send(200, [(b"Content-Type", CONTENT_TYPE.encode())], self.metrics.exposition())

    async def stats(self, request: Request, responder: Responder) -> None:
        settings = self.settings
        extra = {
            "router": settings.router_type,
            "threshold": settings.threshold,
            "models": {"strong": settings.strong_model, "weak": settings.weak_model, "fallback": settings.fallback_model},
        }
        self._json(responder, self.metrics.stats(extra))

    async def _check_backend(self) -> None:
        """Warn about the most common setup mistake: model names the backend does not serve."""
        settings = self.settings
        entries = await self.upstream.models(timeout=5.0)
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


class _Outcome:
    """Records a proxied request's duration and status once."""

    __slots__ = ("metrics", "decision", "model", "started", "done")

    def __init__(self, metrics: Metrics, decision: Decision | None, model: str, started: float) -> None:
        self.metrics = metrics
        self.decision = decision
        self.model = model
        self.started = started
        self.done = False

    def record(self, status: int | str) -> None:
        if self.done:
            return
        self.done = True
        self.metrics.upstream_duration.labels(self.model).observe(time.perf_counter() - self.started)
        if self.decision is not None:
            self.metrics.requests.labels(self.decision.decision, str(status)).inc()
