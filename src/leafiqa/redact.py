"""Keep secrets out of anything LEAF stores or logs: a server may echo the API key it was sent
(in an error body, a header dump; plain, URL-encoded or base64), a URL may carry credentials
(``http://user:pw@host``), and error texts end up in the judgment store and on stderr."""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
from urllib.parse import quote, unquote, urlsplit

# Environment variable names that look like credentials; only these may carry a teacher's key.
KEY_NAME = re.compile(r"^[A-Z][A-Z0-9_]*(API_KEY|_KEY|_TOKEN|_SECRET)$")
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{6,}"),
    re.compile(r"(?i)((?:api[_-]?key|admin[_-]?key|authorization|token|secret)[\"']?\s*[:=]"
               r"\s*[\"']?)[^\s\"',}]{6,}"),
    re.compile(r"\b(sk-)[A-Za-z0-9_-]{8,}"),
    # credentials written in a URL: scheme://user:password@host (or scheme://token@host)
    re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@\"'<>]+@"),
)
REDACTED = "[redacted]"
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@\"'<>]+@")

# Secrets met at run time that no environment variable holds (a URL's password): redacted by
# every later call in this process.
_registered: set[str] = set()
_lock = threading.Lock()


def looks_like_key_name(name: str) -> bool:
    return bool(KEY_NAME.match(name))


def register_secret(value: str | None) -> None:
    """Redact ``value`` (and its encodings) from everything this process stores or prints."""
    if value and len(value) >= 6:
        with _lock:
            _registered.add(value)


def register_url_credentials(url: str) -> None:
    """Register the user:password of ``url`` (if any) as secrets."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        register_secret(unquote(parts.password))
    if parts.username and parts.password:
        register_secret(f"{unquote(parts.username)}:{unquote(parts.password)}")


def redact_url(url: str) -> str:
    """``url`` without the credentials it carries (``http://[redacted]@host/…``)."""
    return _URL_USERINFO.sub(lambda match: match.group(1) + REDACTED + "@", url)


def encodings(value: str) -> list[str]:
    """The forms in which a server may echo ``value``: as is, URL-encoded, base64 (standard and
    URL-safe, with and without padding) of the value and of the headers that carry it."""
    forms = {value, quote(value, safe=""), quote(value)}
    basic = base64.b64encode(value.encode()).decode()  # a user:password as Basic auth sends it
    for raw in (value, f"Bearer {value}", f"Bearer: {value}", f"Basic {basic}"):
        data = raw.encode()
        for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
            text = encoded.decode()
            forms |= {text, text.rstrip("=")}
    return [form for form in forms if len(form) >= 6]


def secret_values(extra: tuple[str | None, ...] = ()) -> list[str]:
    """Values of credential-like environment variables, registered secrets and ``extra`` (and
    their encodings), longest first."""
    values = {value for name, value in os.environ.items()
              if looks_like_key_name(name) and value and len(value) >= 6}
    values |= {value for value in extra if value and len(value) >= 6}
    with _lock:
        values |= _registered
    forms = {form for value in values for form in encodings(value)}
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: tuple[str | None, ...] = ()) -> str:
    """``text`` with known secret values (plain or encoded), key-shaped strings and URL
    credentials replaced by ``[redacted]``."""
    for value in secret_values(secrets):
        text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED
                           + ("@" if match.group(0).endswith("@") else ""), text)
    return text


def redact_values(value: object) -> object:
    """``value`` (a config, a report: dicts, lists, strings) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_values(item) for item in value)
    return value


class RedactingFilter(logging.Filter):
    """Redacts the records of a library logger (httpx logs each request's URL, credentials
    included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def redact_library_logs(names: tuple[str, ...] = ("httpx", "httpcore")) -> None:
    """Install ``RedactingFilter`` on the loggers of the HTTP libraries (once)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def one_line(error: BaseException) -> str:
    """An error as one line of at most about 600 characters, secrets redacted: what a command
    prints after ``error:`` and what a listing keeps of an unreadable file."""
    text = " ".join(str(error).split()) or type(error).__name__
    return redact(text if len(text) <= 600 else text[:600] + " …")
