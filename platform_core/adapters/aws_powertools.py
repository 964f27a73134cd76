"""Powertools for AWS Lambda (Python) in one place: structured JSON logs and embedded-format metrics.

Every module logs through the standard ``logging.getLogger(__name__)``. In a Lambda container, ``lambda_entry``
puts Powertools' JSON formatter on the root logger at ``POWERTOOLS_LOG_LEVEL`` (template.yaml's LogLevel,
INFO by default; the Lambda runtime's own root level is WARNING, which dropped every INFO line), and each
invocation's request id, function name and cold-start flag join every line; a log call may add its own keys
(``extra={"job_id": ...}``). Outside Lambda (tests, `mlbot serve`) logging is left as the caller set it up.
Metrics go out as CloudWatch embedded metric format documents on stdout, so no PutMetricData permission.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import sys
from typing import Any, Callable, Mapping

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

Handler = Callable[[Any, Any], Any]
_loggers: dict[str, Logger] = {}


def in_lambda(env: Mapping[str, str] | None = None) -> bool:
    """True inside a Lambda container (the runtime sets AWS_LAMBDA_FUNCTION_NAME)."""
    return bool((os.environ if env is None else env).get("AWS_LAMBDA_FUNCTION_NAME"))


def lambda_logger(service: str) -> Logger:
    """Powertools' Logger for ``service``; in Lambda its JSON formatter also serves the root logger."""
    if service not in _loggers:
        logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or service)
        if in_lambda():
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logger.registered_formatter)
            root = logging.getLogger()
            root.handlers = [handler]  # replaces the runtime's plain-text handler
            root.setLevel(logger.log_level)
        _loggers[service] = logger
    return _loggers[service]


def lambda_entry(service: str) -> Callable[[Handler], Handler]:
    """Decorates a Lambda handler: the invocation's context keys on every log line of the invocation.

    A call without a Lambda context (tests, `mlbot serve`) runs the handler as it is."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def entry(event: Any, context: Any = None) -> Any:
            if not hasattr(context, "aws_request_id"):
                return handler(event, context)
            logger = lambda_logger(service)
            return logger.inject_lambda_context(handler, clear_state=True)(event, context)
        return entry
    return decorate


def log_keys(**keys: Any) -> None:
    """Add keys (a job id) to every later log line of this invocation, for each Lambda logger built."""
    for logger in _loggers.values():
        logger.append_keys(**keys)


def publish_metrics(values: Mapping[str, float], *, namespace: str | None = None) -> str:
    """One embedded-metric-format document for ``values`` (name -> value; names ending in Minutes are
    durations, the rest counts), printed to stdout; returns it.

    The namespace is POWERTOOLS_METRICS_NAMESPACE unless given; the dimension is `service`
    (POWERTOOLS_SERVICE_NAME), as the template's alarms expect."""
    # Outside Lambda (a local run, a test) there may be no namespace: CloudWatch never reads those lines.
    metrics = Metrics(namespace=namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "mlbot/local")
    try:
        for name, value in values.items():
            unit = MetricUnit.NoUnit if name.endswith("Minutes") else MetricUnit.Count  # CloudWatch has no minutes
            metrics.add_metric(name=name, unit=unit, value=float(value))
        document = json.dumps(metrics.serialize_metric_set(), separators=(",", ":"))
    finally:  # the metric set is shared by the process: never leave one half-built for the next call
        metrics.clear_metrics()
    print(document, flush=True)
    return document
