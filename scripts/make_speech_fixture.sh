#!/usr/bin/env bash
# Builds the VAD test fixture: a ~10 s, 8 kHz, G.711 µ-law telephone track with four synthetic
# English utterances at known offsets over low-level noise and mains hum, plus exact labels.
#
#   engine/tests/fixtures/speech_8k.ulaw    raw µ-law, 8 kHz, mono, no header
#   engine/tests/fixtures/speech_8k.labels  one line per utterance: "start_ms end_ms"
#
# Requires espeak-ng and sox (Debian: apt-get install -y espeak-ng sox); installs nothing itself.
# The labels are computed from sample counts (where each trimmed utterance was placed and how long
# it is), never eyeballed. Different espeak-ng/sox versions may synthesise slightly different
# audio, so always commit the .ulaw and .labels files from the same run.
#
# Usage: scripts/make_speech_fixture.sh [output_dir]   (default: engine/tests/fixtures)
set -euo pipefail

for tool in espeak-ng sox soxi; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool not found (apt-get install -y espeak-ng sox)" >&2
        exit 1
    }
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="${1:-$(dirname "$here")/engine/tests/fixtures}"
mkdir -p "$out_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

rate=8000
# Offsets and gaps are multiples of 8 samples and utterances are cut to a multiple of 8 samples,
# so every label is an exact integer number of milliseconds.
lead_ms=1000  # leading silence (noise + hum only): the VAD must stay quiet here
min_tail_ms=800
total_ms=10000

# voice | words per minute | gap after (ms) | text. The first utterance is > 1 s (barge-in tests).
utterances=(
    "en-us|160|1000|Hello, I need some help with my account."
    "en-gb|175|800|Yes, that's right."
    "en-us+f3|185|1000|Can you transfer me to billing?"
    "en-gb-scotland|150|0|No, thank you."
)

# -R: sox's fixed random seed, so noise and dither are the same on every run.
sox_() { sox -R -V1 "$@"; }

labels=()
mix_inputs=()
pos=$((lead_ms * 8))
i=0
for entry in "${utterances[@]}"; do
    IFS='|' read -r voice wpm gap_ms text <<<"$entry"
    espeak-ng -v "$voice" -s "$wpm" -w "$tmp/raw$i.wav" "$text"
    # 8 kHz mono s16; peak at -6 dBFS (a loud-ish but unclipped phone talker); band-limit to the
    # telephone band like a real line; trim leading and trailing silence (below -40 dBFS, i.e. 1%).
    sox_ "$tmp/raw$i.wav" -r "$rate" -c 1 -b 16 -e signed-integer "$tmp/u$i.wav" \
        sinc 250-3400 gain -n -6 \
        silence 1 0.005 1% reverse silence 1 0.005 1% reverse
    len=$(soxi -s "$tmp/u$i.wav")
    len=$((len / 8 * 8))
    start=$pos
    end=$((start + len))
    # Pad each utterance to its place in the track; padding is digital silence (mixed below).
    sox_ "$tmp/u$i.wav" "$tmp/p$i.wav" trim 0 "${len}s" pad "${start}s"
    labels+=("$((start / 8)) $((end / 8))")
    mix_inputs+=(-v 1 "$tmp/p$i.wav")
    pos=$((end + gap_ms * 8))
    i=$((i + 1))
done

# pos is now the end of the last utterance.
min_total=$((pos + min_tail_ms * 8))
total=$((total_ms * 8))
if ((total < min_total)); then total=$min_total; fi

# Background: pink noise at about -50 dBFS RMS, 60 Hz hum at -40 dBFS with 120/180 Hz harmonics,
# and a small DC offset, so the VAD pre-filter matters.
# (The rate goes before -n: synth lengths in samples count at the input's rate.)
sox_ -r "$rate" -c 1 -n -b 16 -e signed-integer "$tmp/noise.wav" \
    synth "${total}s" pinknoise vol 0.0032
hum_inputs=()
for tone in "60 0.014" "120 0.005" "180 0.003"; do
    read -r hz amp <<<"$tone"
    sox_ -r "$rate" -c 1 -n -b 16 -e signed-integer "$tmp/hum$hz.wav" \
        synth "${total}s" sine "$hz" vol "$amp"
    hum_inputs+=(-v 1 "$tmp/hum$hz.wav")
done
sox_ "$tmp/noise.wav" "$tmp/noise_dc.wav" dcshift 0.004
# -v 1 on every input: sox -m otherwise scales each input by 1/n.
sox_ -m "${mix_inputs[@]}" -v 1 "$tmp/noise_dc.wav" "${hum_inputs[@]}" \
    -r "$rate" -c 1 -b 16 -e signed-integer "$tmp/track.wav" trim 0 "${total}s"

sox_ "$tmp/track.wav" -t raw -r "$rate" -c 1 -e u-law -b 8 "$out_dir/speech_8k.ulaw"
printf '%s\n' "${labels[@]}" >"$out_dir/speech_8k.labels"

echo "wrote $out_dir/speech_8k.ulaw ($(($(wc -c <"$out_dir/speech_8k.ulaw"))) bytes," \
    "$((total / 8)) ms) and $out_dir/speech_8k.labels:"
cat "$out_dir/speech_8k.labels"
