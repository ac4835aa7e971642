#!/usr/bin/env bash
# Builds the speech clips of the VAD / barge-in evaluation corpus: clean, trimmed, 8 kHz s16 mono
# clips of caller utterances, short backchannels and agent prompts, with a manifest. The noisy
# telephone tracks themselves (placement, exact labels, pink/white noise at a set SNR, mains hum,
# clicks, telephone band-limiting, G.711 µ-law) are mixed from these clips by seeded Rust code,
# `engine/tests/vad_corpus/mod.rs`, shared by `cargo run --release -p trunkline-tools --bin vadbench` and the
# tests (engine/tests/integration/vad_scores.rs, engine/tests/integration/barge_in.rs), so the corpus is identical on
# every run and nothing large is committed.
#
# Speech sources:
# - espeak-ng (Debian `espeak-ng`): several voices (male, female, accents) and speaking rates;
# - real human recordings shipped by Debian `alsa-utils` (/usr/share/sounds/alsa/*.wav, a voice
#   saying "Front left", "Rear center", ...), when installed.
#
# Output (default: target/vad-corpus):
#   clips/NAME.s16     raw s16le, 8 kHz, mono; trimmed to the speech (below -40 dBFS of the
#                      clip's peak at either end is cut), length a multiple of 8 samples (1 ms)
#   manifest.txt       one line per clip: "KIND NAME SAMPLES"; KIND is utt (caller utterance),
#                      real (caller utterance, human recording), back (backchannel, < 300 ms)
#                      or agent (bot prompt)
#   VERSION            the corpus version this directory was built for (the script is skipped
#                      when it matches)
#
# Requires espeak-ng and sox (apt-get install -y espeak-ng sox; alsa-utils optional).
# Safe to run concurrently: builds in a temporary directory and renames it into place.
#
# Usage: scripts/make_vad_corpus.sh [output_dir]
#        scripts/make_vad_corpus.sh --paused [output_dir]   (paused sentences, see below)
set -euo pipefail

# Bump when the clip list or processing changes.
version=3

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# --paused: build only the paused-sentence clips (see the end of this script) into their own
# directory (default target/vad-corpus-paused), so the clips above stay as they are.
paused=0
if [[ "${1:-}" == "--paused" ]]; then
    paused=1
    version="paused-1"
    shift
    out="${1:-$(dirname "$here")/target/vad-corpus-paused}"
else
    out="${1:-$(dirname "$here")/target/vad-corpus}"
fi

if [[ -f "$out/VERSION" && "$(cat "$out/VERSION")" == "$version" ]]; then
    exit 0
fi

for tool in espeak-ng sox soxi; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool not found (apt-get install -y espeak-ng sox)" >&2
        exit 1
    }
done

mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d "$(dirname "$out")/.vad-corpus.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/clips" "$tmp/work"

rate=8000
# -R: sox's fixed random seed (dither), so every run gives the same samples.
sox_() { sox -R -V1 "$@"; }

manifest=()

# finish KIND NAME INPUT_WAV [MAX_MS]: 8 kHz mono s16, peak at -6 dBFS, trimmed; optionally
# time-compressed (pitch kept) to at most MAX_MS; length cut to a multiple of 8 samples.
finish() {
    local kind=$1 name=$2 in=$3 max_ms=${4:-0}
    local w="$tmp/work/$name"
    sox_ "$in" -r "$rate" -c 1 -b 16 -e signed-integer "$w.a.wav" \
        gain -n -6 silence 1 0.005 1% reverse silence 1 0.005 1% reverse
    local len
    len=$(soxi -s "$w.a.wav")
    if ((max_ms > 0 && len > max_ms * 8)); then
        local factor
        factor=$(awk -v l="$len" -v m="$((max_ms * 8))" 'BEGIN { printf "%.4f", l / m + 0.01 }')
        sox_ "$w.a.wav" "$w.b.wav" tempo -s "$factor"
        sox_ "$w.b.wav" "$w.a.wav" silence 1 0.005 1% reverse silence 1 0.005 1% reverse
        len=$(soxi -s "$w.a.wav")
    fi
    len=$((len / 8 * 8))
    sox_ "$w.a.wav" -t raw -e signed-integer -b 16 -L "$tmp/clips/$name.s16" trim 0 "${len}s"
    manifest+=("$kind $name $len")
}

# say KIND NAME VOICE WPM TEXT [MAX_MS]
say() {
    local kind=$1 name=$2 voice=$3 wpm=$4 text=$5 max_ms=${6:-0}
    espeak-ng -v "$voice" -s "$wpm" -w "$tmp/work/$name.raw.wav" "$text"
    finish "$kind" "$name" "$tmp/work/$name.raw.wav" "$max_ms"
}

# publish: writes the manifest and version, then replaces the output atomically (another run may
# have finished first: then keep it), and exits.
publish() {
    printf '%s\n' "${manifest[@]}" >"$tmp/manifest.txt"
    echo "$version" >"$tmp/VERSION"
    rm -rf "$tmp/work"
    if [[ -f "$out/VERSION" && "$(cat "$out/VERSION")" == "$version" ]]; then
        exit 0
    fi
    rm -rf "$out.old"
    [[ -e "$out" ]] && mv "$out" "$out.old"
    mv "$tmp" "$out"
    rm -rf "$out.old"
    trap - EXIT
    echo "wrote $out: $(wc -l <"$out/manifest.txt") clips"
    exit 0
}

# Paused sentences (--paused): a caller sentence with a pause inside, where the phrase is plainly
# unfinished (mid-phrase, or after a hesitation "and, um,"), as SSML with a 450 ms break. The
# Rust side finds the break (the longest stretch under 1 % of the clip's peak) and stretches it
# to a seeded 300-800 ms, so the pause's length is measured, not assumed. KIND is mid. Every
# sentence in three voices/rates.
if ((paused)); then
    pvoices=(en-us en-gb en-us+f3 en-gb-scotland en-us+m3 en+f4 en-gb-x-rp en+f2)
    prates=(150 170 185 160 140 175)
    psentences=(
        "I'd like to change <break time='450ms'/> my delivery address, please."
        "Can you transfer me <break time='450ms'/> to the billing department?"
        "My order number is <break time='450ms'/> four seven two nine one."
        "I already tried restarting it and, um, <break time='450ms'/> it still doesn't work."
        "The card ends in <break time='450ms'/> eight eight three zero."
        "Could you send me <break time='450ms'/> the confirmation by email?"
        "What I really need is <break time='450ms'/> a new appointment next week."
        "So the problem is that, uh, <break time='450ms'/> the app keeps crashing."
        "I paid the bill on <break time='450ms'/> Monday morning I think."
        "We moved last month and, um, <break time='450ms'/> the letters still go to the old house."
        "Is it possible to <break time='450ms'/> get a refund for that?"
        "I was calling because <break time='450ms'/> my internet is down again."
    )
    i=0
    for text in "${psentences[@]}"; do
        for k in 0 1 2; do
            v=$(((i * 3 + k * 5) % ${#pvoices[@]}))
            r=$(((i + k * 2) % ${#prates[@]}))
            name="mid$(printf %02d "$i")_$k"
            espeak-ng -m -v "${pvoices[$v]}" -s "${prates[$r]}" -w "$tmp/work/$name.raw.wav" "<speak>$text</speak>"
            finish mid "$name" "$tmp/work/$name.raw.wav"
        done
        i=$((i + 1))
    done
    publish
fi

voices=(en-us en-gb en-us+f3 en-gb-scotland en-us+m3 en+f4 en-029 en-gb-x-rp en+f2 en-us+m7)
rates=(150 175 190 140 165 200 160 180 170 155)
sentences=(
    "Hello, I need some help with my account."
    "Yes, that's right."
    "Can you transfer me to billing?"
    "No, thank you."
    "I'd like to change my delivery address, please."
    "What time do you close on Saturdays?"
    "My order number is four seven two nine one."
    "Sorry, could you repeat that?"
    "I already tried restarting it twice and it still doesn't work."
    "Wait, wait, that's not what I said."
    "Actually, I want to speak to a real person."
    "Okay, go ahead."
    "The card ends in eight eight three zero."
    "Is there any fee for that?"
    "Hold on, let me check."
    "Stop. I meant next Tuesday, not this one."
    "Fine."
    "Could you send me the confirmation by email?"
    "Six fifteen in the evening works for me."
    "Hmm, I'm not sure about that."
)
i=0
for text in "${sentences[@]}"; do
    # Every sentence in two voices/rates, so the corpus holds 40 synthetic utterances.
    for k in 0 1; do
        v=$(((i * 3 + k * 5) % ${#voices[@]}))
        r=$(((i + k * 4) % ${#rates[@]}))
        say utt "utt$(printf %02d "$i")_$k" "${voices[$v]}" "${rates[$r]}" "$text"
    done
    i=$((i + 1))
done

# Real recordings (human voice), when alsa-utils is installed.
if [[ -d /usr/share/sounds/alsa ]]; then
    for f in /usr/share/sounds/alsa/{Front,Rear,Side}_*.wav; do
        [[ -f "$f" ]] || continue
        base=$(basename "$f" .wav)
        finish real "real_${base,,}" "$f"
    done
fi

# Backchannels: short acknowledgements, all under 300 ms (time-compressed to <= 280 ms).
backchannels=("mm-hm" "uh-huh" "yeah" "okay" "right" "mm" "yes" "sure" "hmm" "ah")
i=0
for text in "${backchannels[@]}"; do
    for k in 0 1; do
        v=$(((i * 7 + k * 3) % ${#voices[@]}))
        say back "back$(printf %02d "$i")_$k" "${voices[$v]}" $((220 + 40 * k)) "$text" 280
    done
    i=$((i + 1))
done

# Agent prompts (the bot's voice).
prompts=(
    "Thanks for calling. I can help you with orders, billing and deliveries. What can I do for you today?"
    "Your next delivery is scheduled for Thursday between nine and eleven in the morning. Would you like to change it?"
    "I found three open invoices on your account. The oldest one is from March and the total is forty two dollars."
    "Let me read the terms back to you. The plan renews every month, and you can cancel at any time from the app."
)
i=0
for text in "${prompts[@]}"; do
    say agent "agent$i" en-us+f5 175 "$text"
    i=$((i + 1))
done

publish
