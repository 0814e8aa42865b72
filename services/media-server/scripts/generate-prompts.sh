#!/bin/sh
# Generates the media server's prompts from text with espeak-ng and sox
# (Debian packages espeak-ng, sox): 8 kHz mono 16-bit WAV, reproducible.
#   scripts/generate-prompts.sh OUT_DIR [NAME ...]    (no names: all of them)
#   scripts/generate-prompts.sh --list                 (the names it makes, one a line)
# Operators may replace any file with a recording of their own (same format).
# The media server runs this at start for prompts missing from its prompts directory.
set -eu
out=${1:?usage: generate-prompts.sh OUT_DIR [NAME ...] | --list}
shift
say() { # name text
  espeak-ng -v en-us -s 150 -w "$out/$1.tmp.wav" "$2"
  sox -q "$out/$1.tmp.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/$1.wav"
  rm -f "$out/$1.tmp.wav"
}
prompts='insufficient-credit|You do not have enough credit for this call.
not-in-service|The number you have dialed is not in service.
forwarding-enabled|Call forwarding is now enabled.
forwarding-disabled|Call forwarding is now disabled.
not-allowed|You are not allowed to make this call.
try-later|Please try again later.
vm-greeting|The person you are calling is not available. Please leave a message after the tone.
vm-menu|Press 1 to hear the next message, 7 to delete it, 9 to save it, pound to quit.
vm-deleted|Message deleted.
vm-saved|Message saved.
vm-no-more|There are no more messages.'
wanted() { # name: true when no names were given or it is one of them
  [ -z "$names" ] && return 0
  for w in $names; do
    if [ "$w" = "$1" ]; then return 0; fi
  done
  return 1
}
names="$*"
if [ "$out" = "--list" ]; then
  echo "$prompts" | cut -d'|' -f1
  for d in 0 1 2 3 4 5 6 7 8 9; do echo "digit-$d"; done
  exit 0
fi
mkdir -p "$out"
echo "$prompts" | while IFS='|' read -r name text; do
  if wanted "$name"; then say "$name" "$text"; fi
done
for d in 0 1 2 3 4 5 6 7 8 9; do
  if wanted "digit-$d"; then say "digit-$d" "$d"; fi
done
