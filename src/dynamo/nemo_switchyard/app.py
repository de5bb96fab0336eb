"""The application: route, rewrite ``model``, forward, relay the answer unchanged.

``App.handle`` serves one parsed request (see ``protocol.py``): the routed OpenAI
endpoints, switchyard's own endpoints, and everything else forwarded as is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import orjson

from . import __version__
from . import body as bodies
from .affinity import conversation_key
from .auth import Authenticator, unsafe_target
from .config import Settings
from .cost import Price, Pricing
from .decision import FALLBACK, PASSTHROUGH, Context, Decider, Decision, RoutingRequestError
from .errors import ERROR_SOURCE, error_body
from .logs import PROMPT_LOG_LIMIT, REQUEST_ID, REQUEST_ID_HEADER, access_log, new_request_id, valid_request_id
from .metrics import CONTENT_TYPE, Metrics
from .openapi import OPENAPI
from .prompt import Endpoint, PromptError, check_types, extract_prompt, json_type
from .protocol import Responder
from .routers.base import RouterError
from .upstream import Exchange, Upstream, UpstreamError
from .usage import Tap, Usage, read_usage
from .wire import NOT_FORWARDED, NOT_RETURNED, Headers, Request, filtered, with_header

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
# Connection errors before the response head: the backend sent nothing, so a retry is safe to try.
_RETRYABLE = frozenset({"connect", "connect_timeout", "disconnected"})
_BACKOFF_CAP = 5.0  # seconds
# Backend answers that mean "this model cannot serve now" (e.g. Dynamo's 503 for a dead worker): failover candidates.
_UNAVAILABLE = frozenset({502, 503, 504})


def backoff(retry: int, base: float) -> float:
    """Seconds before retry number ``retry`` (1, 2, ...): exponential, capped, with jitter in [50 %, 100 %]."""
    return min(_BACKOFF_CAP, base * 2 ** (retry - 1)) * random.uniform(0.5, 1.0)


def is_json_type(content_type: bytes | None) -> bool:
    """Whether a Content-Type header allows a JSON body: absent, application/json or application/*+json."""
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def header_value(text: str) -> bytes:
    """``text`` as a safe header value: a passthrough model name comes from the client, and a CR/LF or
    other control character in it must not split or corrupt the response head (percent-encoded instead)."""
    if text.isascii() and text.isprintable():
        return text.encode()
    return urllib.parse.quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode()


def decision_headers(decision: Decision) -> Headers:
    headers = [
        (b"x-routellm-routed-model", header_value(decision.model)),
        (b"x-switchyard-decision", decision.decision.encode()),
        (b"x-switchyard-reason", decision.reason.encode()),
    ]
    if decision.tier is not None:
        headers.append((b"x-switchyard-tier", b"%d" % decision.tier))
    if decision.router is not None:
        headers.append((b"x-switchyard-router", decision.router.encode()))
    if decision.score is not None:
        headers.append((b"x-switchyard-score", b"%.6f" % decision.score))
    if decision.threshold is not None:
        headers.append((b"x-switchyard-threshold", b"%g" % decision.threshold))  # not f"{:g}": compiled, str.format
    if decision.fallback_reason is not None:
        headers.append((b"x-switchyard-fallback-reason", decision.fallback_reason.encode()))
    return headers


def send_error(responder: Responder, status: int, message: str, code: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """An OpenAI-shaped error from switchyard itself."""
    responder.send(status, [_JSON, *extra, (ERROR_SOURCE.encode(), b"switchyard")], error_body(status, message, code))


class App:
    """Everything a request needs: settings, the decider, the backend client and metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.decider = Decider(settings)
        self.decider.alone = self._alone
        self.load: Any = None  # the backend's load, with --load-aware (see load.py)
        self._session_header = settings.session_header.lower().encode("latin-1") if settings.session_header else None
        self._contextual = settings.affinity != "off" or settings.allow_threshold_header or settings.allow_model_header
        self._saturated_models: set[str] = set()
        self._affinity_seen: dict[str, int] = {}
        self.upstream = Upstream(
            settings.backend_url,
            connect_timeout=settings.connect_timeout,
            first_byte_timeout=settings.first_byte_timeout,
            idle_timeout=settings.idle_timeout,
        )
        self.metrics = Metrics()
        backend_key = settings.backend_api_key.get_secret_value() if settings.backend_api_key is not None else None
        self.auth = Authenticator(settings.client_api_keys, settings.open_endpoints, backend_key)
        self._model_labels = frozenset(settings.served_models)
        self.pricing = Pricing({model: Price(**price) for model, price in settings.prices.items()}, settings.strong_model)
        self.tracing: Any = None
        if settings.tracing:
            from .tracing import Tracing

            self.tracing = Tracing()
        self._ready: tuple[float, bool] = (0.0, False)
        self._own = {
            ("GET", "/health"): self.health,
            ("GET", "/ready"): self.ready,
            ("GET", "/metrics"): self.metrics_page,
            ("GET", "/stats"): self.stats,
            ("GET", "/v1/models"): self.models,
            ("POST", "/v1/route"): self.route,
            ("GET", "/openapi.json"): self.openapi,
            ("GET", "/dashboard"): self.dashboard,
        }
        self.draining = False  # set on SIGTERM: /ready answers 503 so load balancers stop sending

    async def startup(self, check_backend: bool = True) -> None:
        """Load the router (a broken one stops start-up) and check the backend in the background."""
        await self.decider.start()
        settings = self.settings
        if settings.load_aware:
            from .load import BackendLoad

            self.load = BackendLoad(settings.load_metrics_url or settings.backend_url + "/metrics", settings.load_interval)
            self.load.start()
            self.decider.saturation = self._saturated
        unpriced = [m for m in self.settings.served_models if self.pricing.enabled and m not in self.settings.prices]
        if unpriced:
            log.warning("--prices has no price for %s: their cost and saving are not counted", ", ".join(map(repr, unpriced)))
        if check_backend:
            asyncio.get_running_loop().create_task(self._check_backend())

    async def shutdown(self) -> None:
        if self.load is not None:
            await self.load.aclose()
        await self.decider.aclose()
        await self.upstream.aclose()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)

    def rejected(self, status: int) -> None:
        """A request refused before it could be read (413, 431, malformed)."""
        self.metrics.requests.labels("rejected", str(status)).inc()

    async def handle(self, request: Request, responder: Responder) -> None:
        started = time.perf_counter()
        _identify(request, responder)
        try:
            await self._checked(request, responder)
        finally:
            if access_log.isEnabledFor(logging.INFO):  # the fields are gathered only when the line is written
                self._log_access(request, responder, started)

    async def _checked(self, request: Request, responder: Responder) -> None:
        """Refuse what must not reach the backend (bad targets, missing client key), then dispatch."""
        problem = unsafe_target(request.target)
        if problem is not None:
            return self._reject(responder, 400, problem, "invalid_path")
        guard = self.auth
        if guard.enabled and not guard.is_open(request.method, request.path) and not guard.allowed(request.headers):
            self.metrics.requests.labels("rejected", "401").inc()
            return send_error(
                responder, 401, "invalid or missing API key: send Authorization: Bearer KEY or x-api-key: KEY", "invalid_api_key",
                [(b"WWW-Authenticate", b'Bearer realm="switchyard"')],
            )
        if guard.rewrites:
            request.headers = guard.forwarded(request.headers)
        await self._dispatch(request, responder)

    def _log_access(self, request: Request, responder: Responder, started: float) -> None:
        """One info line per request: method, path, status, decision, routed model, score, duration (and the
        prompt with --log-prompts). The path is the raw one, without the query (which may hold secrets)."""
        if responder.finished:
            status: int | str = responder.status
        else:
            status = _CLIENT_CLOSED if responder.client_gone else (responder.status or 500)
        decision = request.decision
        fields: dict[str, Any] = {
            "method": request.method,
            "path": request.target.split(b"?", 1)[0].decode("latin-1"),
            "status": int(status),
            "decision": decision.decision if decision is not None else None,
            "reason": decision.reason if decision is not None else None,
            "model": decision.model[:256] if decision is not None else None,  # a passthrough name is the client's
            "score": round(decision.score, 6) if decision is not None and decision.score is not None else None,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if self.settings.log_prompts and request.method == "POST" and request.path in ROUTED_ENDPOINTS:
            fields["prompt"] = self._prompt_text(request)
        access_log.info("%s %s %s", fields["method"], fields["path"], status, extra={"fields": fields})

    def _prompt_text(self, request: Request) -> str | None:
        try:
            text = extract_prompt(ROUTED_ENDPOINTS[request.path], bodies.parse(request.body), self.settings.prompt_scope)
        except Exception:  # noqa: BLE001 - a body that could not be routed has no prompt to show; logging must not fail a request
            return None
        return text if len(text) <= PROMPT_LOG_LIMIT else text[:PROMPT_LOG_LIMIT] + "..."

    async def _dispatch(self, request: Request, responder: Responder) -> None:
        routed = request.method == "POST" and request.path in ROUTED_ENDPOINTS
        if not routed:
            own = self._own.get((request.method, request.path))
            if own is not None:
                await own(request, responder)
                return
        if self.tracing is not None:
            return await self._traced(request, responder, routed)
        if routed:
            await self.routed(request, responder)
        else:
            await self.forward(request, responder)

    async def _traced(self, request: Request, responder: Responder, routed: bool) -> None:
        """``routed``/``forward`` inside a server span (--tracing)."""
        path = request.target.split(b"?", 1)[0].decode("latin-1")
        span = self.tracing.server_span(
            f"{request.method} {request.path if routed else 'forward'}", request.headers,
            {"http.request.method": request.method, "url.path": path, "switchyard.request_id": request.request_id},
        )
        request.span = span
        try:
            await (self.routed(request, responder) if routed else self.forward(request, responder))
        finally:
            decision = request.decision
            if decision is not None:
                span.set_attribute("switchyard.decision", decision.decision)
                span.set_attribute("switchyard.model", decision.model[:256])
            status = responder.status if responder.finished else (_CLIENT_CLOSED if responder.client_gone else responder.status)
            if status:
                span.set_attribute("http.response.status_code", int(status))
                if int(status) >= 500:
                    self.tracing.error(span, f"HTTP {status}")
            span.end()

    # -- routed endpoints ---------------------------------------------------

    async def routed(self, request: Request, responder: Responder) -> None:
        metrics = self.metrics
        metrics.in_flight.inc()
        try:
            raw = request.body
            if not is_json_type(request.header(b"content-type")):
                content_type = (request.header(b"content-type") or b"").decode("latin-1")
                message = f"Content-Type {content_type!r} is not supported: send the JSON body with Content-Type: application/json"
                return self._reject(responder, 415, message, "unsupported_media_type")
            try:
                body = bodies.parse(raw)
            except bodies.BodyError as exc:
                return self._reject(responder, 400, str(exc), "invalid_json")
            started = time.perf_counter()
            span = request.span
            if span is not None:
                span = self.tracing.child_span("route", span)
            decision = await self._decide(responder, ROUTED_ENDPOINTS[request.path], body, body.get("model"), count=True, request=request)
            if span is not None:
                if decision is not None:
                    span.set_attributes({"switchyard.decision": decision.decision, "switchyard.model": decision.model[:256]})
                    if decision.score is not None:
                        span.set_attribute("switchyard.score", decision.score)
                    span.set_attribute("switchyard.reason", decision.reason)
                span.end()
            if decision is None:
                return
            request.decision = decision  # for the access log
            routing = time.perf_counter() - started
            if decision.decision != PASSTHROUGH:
                raw = bodies.replace_model(raw, decision.model, body)
            await self._proxy(request, responder, raw, decision, body if decision.decision != PASSTHROUGH else None, routing)
        finally:
            metrics.in_flight.dec()

    async def _decide(
        self, responder: Responder, endpoint: Endpoint, body: dict[str, Any], model: Any, count: bool, request: Request | None = None
    ) -> Decision | None:
        """The decision for a body, or None after answering 400 (counted as rejected if ``count``).
        Without ``request`` (/v1/route) it is a dry run: no per-request controls, nothing remembered."""
        try:
            if model is not None and not isinstance(model, str):
                raise PromptError(f"'model' must be a string, not {json_type(model)}")
            target = self.decider.target(model)
            if target is None:
                return Decision(PASSTHROUGH, str(model))
            check_types(endpoint, body)
            prompt = extract_prompt(endpoint, body, self.settings.prompt_scope)
            if request is None or not self._contextual:
                return await self.decider.decide(target, prompt, None, record=request is not None)
            context = self._context(request, endpoint, body)
            decision = await self.decider.decide(target, prompt, context)
            if context.conversation is not None:
                self.metrics.affinity_lookups.labels("miss" if context.remembered is None else "hit").inc()
            return decision
        except (RoutingRequestError, PromptError) as exc:
            status, message, code = 400, str(exc), "invalid_request"
        except RouterError as exc:
            status, message, code = 400, f"router unavailable: {exc}", "router_unavailable"
        if count:
            self._reject(responder, status, message, code)
        else:
            send_error(responder, status, message, code)
        return None

    def _saturated(self, model: str) -> str | None:
        """--load-aware: why ``model``'s pool is past the limits, or None (logged when it changes)."""
        settings = self.settings
        why = self.load.saturated(model, settings.load_max_queue, settings.load_max_ttft)
        if (why is None) != (model not in self._saturated_models):
            if why is None:
                self._saturated_models.discard(model)
                log.info("backend pool of %s is no longer saturated", model)
            else:
                self._saturated_models.add(model)
                log.warning("backend pool of %s is saturated (%s): borderline prompts move to a neighbouring tier", model, why)
        return why

    def _sync_metrics(self) -> None:
        """Gauges read at scrape time: the live threshold, the conversation memory, the backend's load."""
        metrics, decider = self.metrics, self.decider
        metrics.threshold.set(decider.threshold)
        memory = decider.affinity
        if memory is not None:
            counters = memory.counters()
            for kind, name in (("lru", "evictions"), ("ttl", "expirations")):
                seen = self._affinity_seen.get(kind, 0)
                if counters[name] > seen:
                    metrics.affinity_evictions.labels(kind).inc(counters[name] - seen)
                    self._affinity_seen[kind] = counters[name]
            metrics.affinity_entries.set(len(memory))
        if self.load is not None:
            for model in self.settings.served_models:
                load = self.load.load(model)
                metrics.backend_queue.labels(model).set(load.queued if load is not None and load.queued is not None else float("nan"))
                ttft = load.ttft_p90 if load is not None and load.ttft_p90 is not None else float("nan")
                metrics.backend_ttft.labels(model).set(ttft)
                metrics.backend_saturated.labels(model).set(1 if self._saturated(model) else 0)

    def _context(self, request: Request, endpoint: Endpoint, body: dict[str, Any]) -> Context:
        """The request's conversation and its own controls (x-switchyard-threshold / -model, when allowed)."""
        settings = self.settings
        context = Context()
        if self.decider.affinity is not None:
            found = conversation_key(request.header, self._session_header, body, endpoint)
            if found is not None:
                context.conversation = found[0]
        if settings.allow_threshold_header:
            sent = request.header(b"x-switchyard-threshold")
            if sent is not None:
                try:
                    context.threshold = float(sent)
                except ValueError:
                    context.threshold = float("nan")
                if not 0.0 <= context.threshold <= 1.0:
                    raise RoutingRequestError(f"x-switchyard-threshold must be a number between 0 and 1, got {sent.decode('latin-1')[:64]!r}")
        if settings.allow_model_header:
            sent = request.header(b"x-switchyard-model")
            if sent is not None:
                context.model = self.decider.pinned(sent.decode("latin-1").strip())
                if context.model is None:
                    choices = ", ".join(["strong", "weak", *(tier.model for tier in self.decider.tiers)])
                    raise RoutingRequestError(f"x-switchyard-model must be one of: {choices}; got {sent.decode('latin-1')[:64]!r}")
        return context

    def _alone(self) -> bool:
        """Whether the routed request being decided is this process's only one in flight."""
        return self.metrics.in_flight.value <= 1

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

    async def _proxy(
        self, request: Request, responder: Responder, raw: bytes, decision: Decision | None, parsed: dict[str, Any] | None = None, routing: float = 0.0
    ) -> None:
        """Forward ``raw`` and relay the answer; ``parsed`` (a routed request's body) allows failover;
        ``routing``: the seconds the decision took."""
        metrics = self.metrics
        # Label by configured model only: passthrough names come from clients and are unbounded.
        model = decision.model if decision is not None and decision.model in self._model_labels else "other"
        outcome = _Outcome(metrics, decision, model, time.perf_counter(), routing)
        parent = request.span
        if parent is not None:
            outcome.span = self.tracing.child_span("upstream", parent, client=True, attributes={"server.address": self.settings.backend_url})
        try:
            await self._proxy_to(request, responder, raw, parsed, outcome)
        finally:
            outcome.count()  # when the request never reached the backend
            if outcome.span is not None:
                outcome.span.set_attribute("switchyard.model", outcome.model)
                outcome.span.end()

    async def _proxy_to(self, request: Request, responder: Responder, raw: bytes, parsed: dict[str, Any] | None, outcome: _Outcome) -> None:
        try:
            exchange = await self._connect(request, raw, parsed, outcome)
        except UpstreamError as exc:
            outcome.record(exc.status)
            if outcome.span is not None:
                self.tracing.error(outcome.span, str(exc))
            send_error(responder, exc.status, str(exc), f"backend_{exc.kind}", outcome.headers())
            return
        outcome.ttfb = time.perf_counter() - outcome.started  # observed in record(), after the answer is out
        if outcome.span is not None:
            outcome.span.set_attribute("http.response.status_code", exchange.status)
        extra = outcome.extra if outcome.extra is not None else outcome.headers()
        try:
            headers = filtered(exchange.headers, NOT_RETURNED)
            headers += extra
            if exchange.status >= 400:
                headers.append((ERROR_SOURCE.encode(), b"backend"))
            await self._relay(responder, exchange, headers, extra, outcome)
        finally:
            exchange.close()  # no-op when the body arrived whole (the connection is back in the pool)
            outcome.record(_CLIENT_CLOSED)  # no-op unless the client left first

    async def _connect(self, request: Request, raw: bytes, parsed: dict[str, Any] | None, outcome: _Outcome) -> Exchange:
        """The backend's response head, after retries; with --failover, a routed request whose model
        fails before its first byte (an error, or a 502/503/504 answer) goes to the other model."""
        other = self._failover_model(outcome.decision) if parsed is not None else None
        try:
            exchange = await self._open(request, raw, outcome)
        except UpstreamError as exc:
            if other is None:
                raise
            failure = str(exc)
        else:
            if other is None or exchange.status not in _UNAVAILABLE:
                return exchange
            exchange.close()  # its answer is dropped: nothing of it reached the client
            failure = f"the backend answered {exchange.status}"
        decision = outcome.decision
        assert decision is not None
        log.warning("failing over from %s to %s: %s", decision.model, other, failure)
        self.metrics.failovers.labels(decision.model, other).inc()
        outcome.failover = f"{decision.model}->{other}"
        outcome.decision = request.decision = dataclasses.replace(decision, model=other)  # the access log too
        outcome.model = other
        return await self._open(request, bodies.replace_model(request.body, other, parsed), outcome)

    def _failover_model(self, decision: Decision | None) -> str | None:
        """strong <-> weak (a separate fallback model fails over to strong); None without --failover."""
        settings = self.settings
        if not settings.failover or decision is None or decision.decision == PASSTHROUGH:
            return None
        other = settings.weak_model if decision.model == settings.strong_model else settings.strong_model
        return other if other != decision.model else None

    async def _open(self, request: Request, raw: bytes, outcome: _Outcome) -> Exchange:
        """``upstream.open``, retrying connection errors before the response head (--retries, --retry-backoff).
        Nothing has reached the client at this point, so a retry can never duplicate bytes."""
        headers = filtered(request.headers, NOT_FORWARDED)
        if outcome.span is not None:
            headers = self.tracing.inject(outcome.span, headers)
        while True:
            try:
                return await self.upstream.open(request.method, request.target, headers, raw or None, outcome.sent)
            except UpstreamError as exc:
                self.metrics.upstream_errors.labels(exc.kind).inc()
                if exc.kind not in _RETRYABLE or outcome.retries >= self.settings.retries:
                    raise
                outcome.retries += 1
                self.metrics.retries.labels(exc.kind).inc()
                log.info("retrying the backend request (%d/%d): %s", outcome.retries, self.settings.retries, exc)
            await asyncio.sleep(backoff(outcome.retries, self.settings.retry_backoff))

    async def _relay(self, responder: Responder, exchange: Exchange, headers: Headers, extra: Headers, outcome: _Outcome) -> None:
        """Relay the backend's body. The outcome is recorded right after the last write, before the
        event loop runs anything else: off the answer's path, yet a client that reads /stats once
        it has its answer sees it counted."""
        length = exchange.content_length
        if length is not None and length <= 1 << 20:
            try:
                body = await exchange.read()
            except UpstreamError as exc:  # nothing sent yet: a clean error
                self.metrics.upstream_errors.labels(exc.kind).inc()
                outcome.record(exc.status)
                send_error(responder, exc.status, str(exc), f"backend_{exc.kind}", extra)
                return
            responder.send(exchange.status, headers, body, exchange.reason or None, length)
            outcome.record(exchange.status)
            if outcome.accounted(exchange.status):
                self._account(outcome, read_usage(body, exchange.header(b"content-type"), exchange.header(b"content-encoding")))
            return
        responder.start(exchange.status, headers, length, exchange.reason or None)
        tap = Tap(responder) if outcome.accounted(exchange.status) else None
        try:
            await exchange.relay(tap or responder)
        except UpstreamError as exc:
            # The head is gone: end the client's connection without the final chunk, so it
            # sees a truncated response instead of a complete-looking one.
            self.metrics.upstream_errors.labels(exc.kind).inc()
            log.warning("backend response broke off mid-stream: %s", exc)
            outcome.record(exchange.status)
            responder.abort()
            return
        responder.end()
        outcome.record(exchange.status)
        if tap is not None:
            if tap.first_at is not None:
                self.metrics.upstream_ttft.labels(outcome.model).observe(tap.first_at - outcome.started)
            usage = read_usage(tap.tail(), exchange.header(b"content-type"), exchange.header(b"content-encoding"), tap.complete)
            self._account(outcome, usage)

    def _account(self, outcome: _Outcome, usage: Usage | None) -> None:
        """Tokens, cost and saving of an answered routed request, from its usage (if it reported one)."""
        if usage is None:
            return
        metrics = self.metrics
        metrics.tokens.labels(outcome.model, "input").inc(usage.input)
        metrics.tokens.labels(outcome.model, "output").inc(usage.output)
        pricing = self.pricing
        if not pricing.enabled:
            return
        decision = outcome.decision
        assert decision is not None
        cost = pricing.cost(decision.model, usage)
        if cost is None:
            return
        metrics.cost.labels(outcome.model).inc(cost)
        if decision.decision != PASSTHROUGH:
            strong = pricing.strong_cost(usage)
            if strong is not None:
                metrics.strong_cost.inc(strong)
                metrics.savings.inc(max(0.0, strong - cost))

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
                  "router": decision.router, "threshold": decision.threshold, "reason": decision.reason, "tier": decision.tier}
        if decision.fallback_reason is not None:
            answer["fallback_reason"] = decision.fallback_reason
        self._json(responder, answer)

    async def models(self, request: Request, responder: Responder) -> None:
        settings = self.settings
        virtual = {
            "id": settings.virtual_model_name, "object": "model", "created": 0, "owned_by": "switchyard",
            "tiers": self.decider.tier_table(),
        }
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
        if self.draining:
            return self._json(responder, {"ready": False, "draining": True, "backend": self.settings.backend_url}, 503)
        ready = await self.is_ready()
        self._json(responder, {"ready": ready, "backend": self.settings.backend_url}, 200 if ready else 503)

    async def openapi(self, request: Request, responder: Responder) -> None:
        self._json(responder, OPENAPI)

    async def dashboard(self, request: Request, responder: Responder) -> None:
        from . import dashboard  # the page is read once, on first use

        body, _ = dashboard.page()
        responder.send(200, dashboard.headers(), body)

    async def metrics_page(self, request: Request, responder: Responder) -> None:
        self._sync_metrics()
        responder.send(200, [(b"Content-Type", CONTENT_TYPE.encode())], self.metrics.exposition())

    async def stats(self, request: Request, responder: Responder) -> None:
        self._sync_metrics()
        settings = self.settings
        decider = self.decider
        extra = {
            "router": settings.router_type,
            "threshold": decider.threshold,  # live: it moves with --target-strong-fraction
            "configured_threshold": settings.threshold,
            "target_strong_fraction": settings.target_strong_fraction,
            "models": {"strong": settings.strong_model, "weak": settings.weak_model, "fallback": settings.fallback_model},
            "tiers": decider.tier_table(),
            "affinity_mode": settings.affinity,
            "load": self._load_stats(),
            # this process's own figures, for leak checks (bench/soak.py)
            "tasks": len(asyncio.all_tasks()),
            "backend_connections": self.upstream.open_connections,
            "priced": self.pricing.enabled,
        }
        self._json(responder, self.metrics.stats(extra))

    def _load_stats(self) -> dict[str, Any] | None:
        if self.load is None:
            return None
        models = {}
        for model in self.settings.served_models:
            load = self.load.load(model)
            models[model] = {
                "queued": load.queued if load is not None else None,
                "inflight": load.inflight if load is not None else None,
                "ttft_p90": load.ttft_p90 if load is not None else None,
                "saturated": model in self._saturated_models,
            }
        return {"state": self.load.state, "url": self.load.url, "models": models}

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


def _identify(request: Request, responder: Responder) -> None:
    """The request id: the client's x-request-id if it is sane, else a new one. It is returned on the
    response, forwarded to the backend and set for every log line written while serving the request."""
    sent = request.header(REQUEST_ID_HEADER)
    if sent is None:
        sent = new_request_id().encode()
        request.headers.append((REQUEST_ID_HEADER, sent))
    elif not valid_request_id(sent):
        sent = new_request_id().encode()
        request.headers = with_header(request.headers, REQUEST_ID_HEADER, sent)
    request.request_id = sent.decode("ascii")
    responder.request_id = sent
    REQUEST_ID.set(request.request_id)  # the task serving this request only (each has its own context)


class _Outcome:
    """Counts a proxied request's decision, duration and status once. What the answer does not
    need is done while the backend works (``sent``) or after the answer is out (``record``),
    so it adds nothing to the request's latency."""

    __slots__ = ("chosen", "counted", "decision", "done", "extra", "failover", "metrics", "model", "retries", "routing", "span", "started", "ttfb")

    def __init__(self, metrics: Metrics, decision: Decision | None, model: str, started: float, routing: float = 0.0) -> None:
        self.metrics = metrics
        self.decision = decision
        self.chosen = decision  # the router's decision, even after a failover
        self.model = model
        self.started = started
        self.done = False
        self.retries = 0  # backend connection retries, over both models
        self.failover: str | None = None  # "from->to"
        self.span: Any = None  # the upstream span, with --tracing
        self.routing = routing  # seconds the decision took
        self.counted = False
        self.extra: Headers | None = None  # headers(), as of the last request sent
        self.ttfb: float | None = None  # seconds to the backend's response head

    def sent(self) -> None:
        """The request is on its way to the backend (again, after a retry or failover)."""
        self.count()
        self.extra = self.headers()

    def count(self) -> None:
        """The routing decision's counters, once."""
        if self.counted:
            return
        self.counted = True
        decision = self.chosen
        if decision is None:
            return
        metrics = self.metrics
        if decision.decision != PASSTHROUGH:
            metrics.routing_latency.observe(self.routing)
            if decision.score is not None:
                metrics.scores.labels(decision.router).observe(decision.score)
            if decision.decision == FALLBACK:
                metrics.fallbacks.labels(decision.fallback_reason).inc()
            elif decision.tier is not None:
                metrics.tiers.labels(str(decision.tier), decision.model).inc()
        metrics.reasons.labels(decision.reason).inc()

    def accounted(self, status: int) -> bool:
        """Whether the answer's usage is counted: routed requests' successful answers."""
        return self.decision is not None and 200 <= status < 300

    def headers(self) -> Headers:
        """The headers switchyard adds to this request's answer: decision, retries, failover."""
        headers = decision_headers(self.decision) if self.decision is not None else []
        if self.retries:
            headers.append((b"x-switchyard-retries", b"%d" % self.retries))
        if self.failover is not None:
            headers.append((b"x-switchyard-failover", self.failover.encode()))
        return headers

    def record(self, status: int | str) -> None:
        if self.done:
            return
        self.done = True
        self.metrics.upstream_duration.labels(self.model).observe(time.perf_counter() - self.started)
        if self.ttfb is not None:
            self.metrics.upstream_ttfb.labels(self.model).observe(self.ttfb)
        if self.decision is not None:
            self.metrics.requests.labels(self.decision.decision, status).inc()  # labels() makes it a str once
