"""Structured (JSON) logs: one object per line with the resource's namespace and name when known."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_CONTEXT_FIELDS = ("namespace", "object", "kind")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = str(value)
        # kopf attaches the object it is working on as `k8s_ref`.
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            entry.setdefault("namespace", str(ref.get("namespace")))
            entry.setdefault("object", str(ref.get("name")))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # kopf logs every event handler call at INFO; ours only enqueue, so keep kopf's warnings and errors.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
