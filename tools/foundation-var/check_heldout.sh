#!/usr/bin/env bash
# Held-out parity check of the foundation-var port: makes a fresh random model pair with the upstream code (a seed no
# test uses), runs `nextflow-rl policy encode|decode|logprobs` on it, and compares with check_parity.py.
#   tools/foundation-var/check_heldout.sh PATH/TO/FoundationVision-VAR [SEED]     (default seed 7)
# Needs Debian's python3-torch python3-numpy python3-pil and a Release build (./build.sh run plugins builds one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
upstream="${1:?usage: check_heldout.sh PATH/TO/FoundationVision-VAR [SEED]}"
seed="${2:-7}"
work="$(mktemp -d)"
ref="$work/ref"; ours="$work/ours"
mkdir -p "$ours"
/usr/bin/python3 tools/foundation-var/make_fixtures.py --upstream "$upstream" --out "$ref" --seed "$seed" >/dev/null
cli=(dotnet hosts/NextFlowRL.Cli/bin/Release/net10.0/nextflow-rl.dll)
for v in plain shared; do
  set_args=(--policy foundation-var --set "Policies:foundation-var:Checkpoint=$ref/var_$v.pth" --set "Policies:foundation-var:Vae=$ref/vae.pth")
  if [ "$v" = plain ]; then
    "${cli[@]}" policy encode "${set_args[@]}" --out "$ours/encoded.json" "$ref"/images/*.png
    "${cli[@]}" policy decode "${set_args[@]}" --tokens "$ref/random_tokens.json" --out "$ours/decoded"
    "${cli[@]}" policy decode "${set_args[@]}" --tokens "$ref/reference_vae.json" --out "$ours/decoded_encoded"
  fi
  cfg=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['cfg'])" "$ref/reference_$v.json")
  for set in random encoded; do
    tokens="$ref/random_tokens.json"; [ "$set" = encoded ] && tokens="$ref/reference_vae.json"
    "${cli[@]}" policy logprobs "${set_args[@]}" --tokens "$tokens" --format json > "$ours/logprobs_${v}_${set}_plain.json"
    "${cli[@]}" policy logprobs "${set_args[@]}" --tokens "$tokens" --cfg "$cfg" --format json > "$ours/logprobs_${v}_${set}_guided.json"
  done
done
/usr/bin/python3 tools/foundation-var/check_parity.py --ref "$ref" --ours "$ours"
echo "check_heldout.sh: seed $seed passed (files in $work)"
