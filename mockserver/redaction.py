"""Secrets out of what is kept or shown: API keys, admin tokens, their cookie.

One rule for the request journal, the request log and the validation proxy: a secret keeps
at most the vendor's ``sk-quota-`` prefix and its last four characters, enough to tell two
keys apart and never enough to use one.
"""

from __future__ import annotations

import re

KEY_PREFIX = "sk-quota-"
ELLIPSIS = "…"
# The last four characters are shown only where the secret is long enough to keep most of it hidden.
_MIN_LENGTH_FOR_TAIL = 16
# Header names whose whole value is a credential, lower-case.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-mock-admin-token", "x-api-key", "api-key"})
_COOKIE_PAIR = re.compile(r"([^=;,\s]+)=([^;,]*)")


def redact_secret(secret: str | None) -> str:
    """``sk-quota-…1234``, ``…wxyz`` or ``…``: never more than the prefix and the last four."""
    if not secret:
        return "-"
    prefix = KEY_PREFIX if secret.startswith(KEY_PREFIX) else ""
    hidden = secret[len(prefix) :]
    tail = hidden[-4:] if len(secret) >= _MIN_LENGTH_FOR_TAIL and len(hidden) > 8 else ""
    return f"{prefix}{ELLIPSIS}{tail}"


def redact_header(name: str, value: str, secret_cookies: frozenset[str] = frozenset()) -> str:
    """A header's value as it may be kept: credentials redacted, everything else unchanged.

    ``Authorization: Bearer <key>`` keeps its scheme; a ``Cookie`` keeps every cookie but
    those named in ``secret_cookies``, whose values are redacted.
    """
    lowered = name.lower()
    if lowered in SECRET_HEADERS:
        scheme, _, credential = value.strip().partition(" ")
        if credential and scheme.isalpha():
            return f"{scheme} {redact_secret(credential.strip())}"
        return redact_secret(value.strip())
    if lowered == "cookie" and secret_cookies:
        return _COOKIE_PAIR.sub(
            lambda m: f"{m.group(1)}={redact_secret(m.group(2))}" if m.group(1) in secret_cookies else m.group(0),
            value,
        )
    return value


def redact_text(text: str, *secrets: str | None) -> str:
    """``text`` with every occurrence of each secret replaced by its redacted form."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, redact_secret(secret))
    return text
