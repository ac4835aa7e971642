#!/usr/bin/env python3
"""Writes Twilio request-signature test vectors with Python's own hmac/hashlib, an implementation
independent of the engine's: engine/tests/fixtures/signature_vector_N.txt."""

import base64
import hashlib
import hmac
from pathlib import Path

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
