#!/usr/bin/env bash
# Makes the demo bot's reply recording: tools/assets/reply_8k.wav (8 kHz s16 mono).
# Needs espeak-ng and sox (apt-get install espeak-ng sox). Deterministic for a given espeak-ng.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tools/assets
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v en-us -s 165 -w "$tmp/raw.wav" \
  "Sure, I can help with your account. Let me pull up your details."
sox "$tmp/raw.wav" -r 8000 -c 1 -b 16 "$out/reply_8k.wav" silence 1 0.02 1% reverse silence 1 0.02 1% reverse \
  sinc 250-3400 norm -3
soxi -D "$out/reply_8k.wav"
