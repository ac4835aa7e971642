#!/usr/bin/env python3
"""Writes Twilio request-signature test vectors with Python's own hmac/hashlib, an implementation
independent of the engine's: engine/tests/fixtures/signature_vector_N.txt."""

import base64
import hashlib
import hmac
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

VECTORS = [
    (
        "12345",
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030", "To": "+18005551212"},
    ),
    ("0123456789abcdef0123456789abcdef", "wss://bot.example.com/media?tenant=acme&lang=en", {}),
]

out = Path(__file__).resolve().parent.parent / "engine" / "tests" / "fixtures"
for i, (token, url, params) in enumerate(VECTORS):
    data = url + "".join(k + v for k, v in sorted(params.items()))
    sig = base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()
    (out / f"signature_vector_{i}.txt").write_text(sig + "\n")
    print(i, sig)

# Plivo's V3 WebSocket signature, as its SDK computes it: base64(HMAC-SHA256(auth token,
# "scheme://host/path?query" + "." + nonce)), the query read with urllib's parse_qs as the SDK
# reads it (percent escapes and "+" decoded, blank values kept), then its keys sorted, each key's
# values sorted, as "k=v" joined by "&".
PLIVO = [
    ("MAXXXXXXXXXXXXXXXXXX-token", "https://bot.example.com/stream?b=2&a=1", "12345678901234567890"),
    (
        "MAXXXXXXXXXXXXXXXXXX-token",
        "https://bot.example.com/plivo?caller=%2B14155550100&b=2&b=1&name=J+Doe&flag",
        "98765432109876543210",
    ),
]
for i, (token, url, nonce) in enumerate(PLIVO):
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    pairs = [f"{k}={v}" for k in sorted(query) for v in sorted(query[k])]
    signed = f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?" + "&".join(pairs) if pairs else "")
    sig = base64.b64encode(hmac.new(token.encode(), f"{signed}.{nonce}".encode(), hashlib.sha256).digest()).decode()
    (out / f"plivo_signature_vector_{i}.txt").write_text(sig + "\n")
    print("plivo", i, signed, sig)
