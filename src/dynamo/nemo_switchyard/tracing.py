"""Optional OpenTelemetry tracing (``--tracing``, the ``tracing`` extra).

One server span per routed or forwarded request (its parent taken from the client's
``traceparent``), a ``route`` span around the decision and an ``upstream`` client
span around the backend call, whose context goes to the backend in ``traceparent``,
so a Dynamo frontend that traces joins the same trace. The exporter comes from the
standard ``OTEL_*`` environment variables. Off by default: then this module is not
even imported and requests pay nothing.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from .wire import Headers

INSTALL_HINT = "needs OpenTelemetry: pip install 'dynamo-nemo-switchyard[tracing]'"
EXPORTERS = ("otlp", "console", "none")
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})


class TracingError(ValueError):
    """Tracing was asked for but cannot be set up; the message says what to install or set
    (a ValueError, so the --tracing setting's validation reports it as a configuration error)."""


def check() -> str:
    """The exporter OTEL_TRACES_EXPORTER names, once OpenTelemetry and that exporter are known to be
    installed; else TracingError. Run by the settings' validation, in the parent process, and at set-up."""
    if importlib.util.find_spec("opentelemetry") is None or importlib.util.find_spec("opentelemetry.sdk") is None:
        raise TracingError(INSTALL_HINT)
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")[0].strip().lower()
    if name not in EXPORTERS:
        raise TracingError(f"OTEL_TRACES_EXPORTER={name!r} is not supported: use {', '.join(EXPORTERS[:-1])} or {EXPORTERS[-1]}")
    if name == "otlp" and importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is None:
        raise TracingError(INSTALL_HINT + " (the OTLP exporter is missing)")
    return name


class Tracing:
    """Spans for one process: built once at start-up (after worker processes fork)."""

    def __init__(self, service_name: str = "switchyard") -> None:
        exporter = _exporter(check())
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
        self.provider = TracerProvider(resource=resource)
        if exporter is not None:
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("dynamo.nemo_switchyard")
        self._propagator = TraceContextTextMapPropagator()
        self._kinds = trace.SpanKind

    def server_span(self, name: str, headers: Headers, attributes: dict[str, Any]) -> Any:
        """The request's span, child of the client's trace context when it sent one."""
        carrier = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers if k.lower() in _TRACE_HEADERS}
        parent = self._propagator.extract(carrier) if carrier else None
        return self.tracer.start_span(name, context=parent, kind=self._kinds.SERVER, attributes=attributes)

    def child_span(self, name: str, parent: Any, client: bool = False, attributes: dict[str, Any] | None = None) -> Any:
        context = self._trace.set_span_in_context(parent)
        kind = self._kinds.CLIENT if client else self._kinds.INTERNAL
        return self.tracer.start_span(name, context=context, kind=kind, attributes=attributes)

    def inject(self, span: Any, headers: Headers) -> Headers:
        """``headers`` with the client's trace headers replaced by ``span``'s context."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._trace.set_span_in_context(span))
        kept = [(k, v) for k, v in headers if k.lower() not in _TRACE_HEADERS]
        return kept + [(k.encode("latin-1"), v.encode("latin-1")) for k, v in carrier.items()]

    def error(self, span: Any, description: str) -> None:
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, description))

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes what is still queued


def _exporter(name: str) -> Any:
    """The span exporter ``name`` (see ``check``); None for "none"."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint and headers from OTEL_EXPORTER_OTLP_* variables
    return None
