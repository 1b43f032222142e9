"""OpenTelemetry tracing: off by default; when on, API requests and Celery tasks arrive as
spans at an OTLP/HTTP collector (a real HTTP receiver on loopback, decoding the protobuf)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from mailhost.tracing import tracing_setup, tracing_teardown
from reports.tasks import prune
from tests.stack import wait_for


class Collector(ThreadingHTTPServer):
    def __init__(self):
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), CollectorHandler)

    def spans(self) -> list[tuple[str, str]]:
        """(service.name, span name) of every span received."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                service = next(a.value.string_value for a in resource_spans.resource.attributes
                               if a.key == "service.name")
                for scope in resource_spans.scope_spans:
                    found += [(service, span.name) for span in scope.spans]
        return found


class CollectorHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.paths.append(self.path)
        self.server.requests.append(request)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_tracing_is_off_by_default():
    assert settings.OTEL_ENABLED is False
    assert "opentelemetry" not in " ".join(settings.MIDDLEWARE)


@pytest.mark.django_db
def test_requests_and_tasks_reach_the_collector_as_spans(collector, settings):
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = f"http://127.0.0.1:{collector.server_port}"
    settings.OTEL_SERVICE_NAME = "mailhost-test"
    settings.OTEL_SAMPLE_RATIO = 1.0
    provider = tracing_setup()
    try:
        assert Client().get("/api/v1/organisations").status_code == 401
        assert Client().get("/api/v1/health").status_code in (200, 503)  # excluded: no span
        prune.apply()
        provider.force_flush()
        wait_for(lambda: len(collector.spans()) >= 2)
    finally:
        tracing_teardown()
        provider.shutdown()
    spans = collector.spans()
    assert collector.paths[0] == "/v1/traces"
    assert {service for service, _ in spans} == {"mailhost-test"}
    names = [name for _, name in spans]
    assert any(name.startswith("GET") for name in names), names
    assert "run/reports.prune" in names, names
    assert not any("health" in name for name in names), names
    assert "opentelemetry" not in " ".join(settings.MIDDLEWARE)  # undone
