"""OpenTelemetry tracing of HTTP requests (pages and API) and Celery tasks; off by default.

With OTEL_ENABLED, `MailhostConfig.ready()` calls `tracing_setup()` once per process, before
Django builds its middleware: requests become server spans (route, method, status; never the
query string's values or bodies), tasks become spans linked to the request that queued them
(the trace context travels in the task's headers), and spans go in batches to the OTLP/HTTP
endpoint. OTEL_SAMPLE_RATIO samples new traces; a child follows its parent's decision. The
batch processor re-creates its thread in forked Celery workers (the SDK registers at-fork).
"""

from __future__ import annotations

import logging

from django.conf import settings
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

logger = logging.getLogger(__name__)

# Health probes and scrapes every few seconds would drown the traces that matter.
EXCLUDED_URLS = "api/v1/health,metrics,static/"


def tracing_setup(*, exporter: SpanExporter | None = None) -> TracerProvider:
    """Instrument Django and Celery, exporting to `exporter` (default: OTLP/HTTP at
    OTEL_EXPORTER_OTLP_ENDPOINT). Returns the provider (tests flush and shut it down)."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME}),
        sampler=ParentBased(TraceIdRatioBased(settings.OTEL_SAMPLE_RATIO)),
    )
    if exporter is None:
        endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
        exporter = OTLPSpanExporter(endpoint=endpoint, timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument(tracer_provider=provider, excluded_urls=EXCLUDED_URLS)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    logger.info("tracing on: %s, sampling %s", settings.OTEL_SERVICE_NAME,
                settings.OTEL_SAMPLE_RATIO)
    return provider


def tracing_teardown() -> None:
    """Undo the instrumentation (tests)."""
    DjangoInstrumentor().uninstrument()
    CeleryInstrumentor().uninstrument()
