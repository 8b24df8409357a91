"""Keep secrets out of anything LEAF stores or logs: a server may echo the API key it was sent
(in an error body, a header dump), and error texts end up in the judgment store and on stderr."""

from __future__ import annotations

import os
import re

# Environment variable names that look like credentials; only these may carry a teacher's key.
KEY_NAME = re.compile(r"^[A-Z][A-Z0-9_]*(API_KEY|_KEY|_TOKEN|_SECRET)$")
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"(?i)((?:api[_-]?key|authorization|token|secret)[\"']?\s*[:=]\s*[\"']?)"
               r"[^\s\"',}]{6,}"),
    re.compile(r"\b(sk-)[A-Za-z0-9_-]{8,}"),
)
REDACTED = "[redacted]"


def looks_like_key_name(name: str) -> bool:
    return bool(KEY_NAME.match(name))


def secret_values(extra: tuple[str | None, ...] = ()) -> list[str]:
    """Values of credential-like environment variables (and ``extra``), longest first."""
    values = {value for name, value in os.environ.items()
              if looks_like_key_name(name) and value and len(value) >= 6}
    values |= {value for value in extra if value and len(value) >= 6}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: tuple[str | None, ...] = ()) -> str:
    """``text`` with known secret values and key-shaped strings replaced by ``[redacted]``."""
    for value in secret_values(secrets):
        text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text
