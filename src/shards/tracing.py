"""Spans for work done on behalf of many callers: group-commit batches and saga batches.

Spans come from the process's global OpenTelemetry tracer provider. Without one (the
default: `ledgerflow.tracing` installs one only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set),
`span` and `batch_span` start nothing at all: even OpenTelemetry's no-op span costs about
10 µs of CPU on the 2-core machine of the README's figures (making it current and restoring
the context), and a request's whole path through the API about 1.3 ms, with up to five such
spans on it.

Batching is why this module exists. One posting transaction or one saga serves many
requests, each with its own trace. A span for such work is the child of its caller's span
when it serves one caller (the usual case under light load, so one trace shows a request
from the route down to the SQL), and otherwise a new root linked to every caller's span, so
each request's trace leads to the batch that served it and the batch to all its requests.
"""

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from opentelemetry import context, trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind
from opentelemetry.util.types import Attributes

TRACER = trace.get_tracer("ledgerflow")
"""The tracer of every span Ledgerflow's own code starts (resolved once a provider is set)."""

_UNTRACED: AbstractContextManager[Span] = nullcontext(trace.INVALID_SPAN)


def tracing_installed() -> bool:
    """Whether the process has a tracer provider; without one, no span is started."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL) -> AbstractContextManager[Span]:
    """A current span named `name`, or (without a tracer provider) a non-recording stand-in
    that costs nothing; set attributes only when it `is_recording()`."""
    if not tracing_installed():
        return _UNTRACED
    return TRACER.start_as_current_span(name, kind=kind)


def caller_span() -> SpanContext | None:
    """The current span's context, to link to or continue later; None when not traced."""
    span_context = trace.get_current_span().get_span_context()
    return span_context if span_context.is_valid else None


def batch_span(
    name: str,
    callers: Iterable[SpanContext | None],
    *,
    attributes: Attributes = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> AbstractContextManager[Span]:
    """A current span for one batch: the child of its one traced caller, or a new root
    linked to each of them (OpenTelemetry keeps the first 128 links by default); without a
    tracer provider, a stand-in as for `span`."""
    if not tracing_installed():
        return _UNTRACED
    return _batch_span(name, callers, attributes=attributes, kind=kind)


@contextmanager
def _batch_span(
    name: str, callers: Iterable[SpanContext | None], *, attributes: Attributes, kind: SpanKind
) -> Iterator[Span]:
    # One caller may hand over several items (a retry within one batch): count it once.
    traced = list({(c.trace_id, c.span_id): c for c in callers if c is not None}.values())
    if len(traced) == 1:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(traced[0]))
        links: list[Link] = []
    else:
        # An empty context: the batch does not belong to whichever caller's task ran it.
        parent = context.Context()
        links = [Link(c) for c in traced]
    with TRACER.start_as_current_span(
        name, context=parent, kind=kind, links=links, attributes=attributes
    ) as started:
        yield started
