"""Structured logging: JSON lines in production, readable lines in development."""

import logging
import sys

import structlog


def configure_logging(*, level: str = "info", json_lines: bool = False) -> None:
    """Route structlog and the standard library through one renderer on stderr."""
    numeric = logging.getLevelName(level.upper())
    assert isinstance(numeric, int), f"unknown log level {level!r}"
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
