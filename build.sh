#!/usr/bin/env bash
# NextFlowRL build entry point. On a fresh Debian/Ubuntu machine with the .NET 10 SDK:
#   ./build.sh test            install missing native packages (+ Chromium, Redis), build Release, run every test, print "N passed, N failed"
#   ./build.sh run ARGS...     build Release and run nextflow-rl ARGS... (e.g. ./build.sh run train)
#   ./build.sh deps            only install the native packages (Tesseract 5 + English data)
#   ./build.sh pack            build Release and pack the sdk/ packages and the templates into artifacts/packages/
#   ./build.sh pack-tool [RID] pack the nextflow-rl .NET tool for one runtime (default: this machine's) into artifacts/packages/
#   ./build.sh mutate          mutation testing (Stryker.NET) of the core math; fails below 80 % (docs/testing.md)
# Environment: CONFIGURATION (default Release); TORCH_BACKEND (cpu, cuda-linux, cuda-windows; default cpu).
# The PowerShell twin for Windows (and anywhere PowerShell 7 runs) is build.ps1; docs/gpu-and-windows.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
CONFIGURATION="${CONFIGURATION:-Release}"
TORCH_BACKEND="${TORCH_BACKEND:-cpu}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

log() { echo "build.sh: $*" >&2; }

deps() {
  # Debian packages the project needs at run time (and, for `test`, Chromium for the HTML report's browser test);
  # installed only when missing.
  local missing=()
  for pkg in tesseract-ocr tesseract-ocr-eng "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
      log "missing packages ${missing[*]} and no apt-get: install Tesseract 5 with English data (and Chromium for the tests) by hand"; return 1
    fi
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    log "installing ${missing[*]}"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  command -v dotnet >/dev/null || { log "the .NET 10 SDK is required (https://dot.net)"; return 1; }
}

build() {
  dotnet build NextFlowRL.sln -c "$CONFIGURATION" -p:TorchBackend="$TORCH_BACKEND" -nologo -clp:ErrorsOnly -v:quiet
}

case "${1:-}" in
  deps) deps ;;
  pack)
    build >&2
    dotnet pack NextFlowRL.sln -c "$CONFIGURATION" --no-build -nologo -v:quiet -clp:ErrorsOnly
    ls artifacts/packages/*.nupkg
    ;;
  mutate)
    # Each build/mutation/*.json names a project, its test project and the files to mutate; reports in artifacts/mutation/.
    dotnet tool restore >/dev/null
    status=0
    for config in build/mutation/*.json; do
      name="$(basename "$config" .json)"
      project="$(sed -n 's/.*"project": *"\([^"]*\)".*/\1/p' "$config")"
      dir="$(dirname "$(find sdk plugins -name "$project" -not -path '*/obj/*' | head -1)")"
      log "mutating $name ($dir)"
      (cd "$dir" && dotnet dotnet-stryker --config-file "$OLDPWD/$config" --output "$OLDPWD/artifacts/mutation/$name") || status=1
    done
    exit "$status"
    ;;
  pack-tool)
    rid="${2:-$(dotnet --info | awk '/^ *RID:/ {print $2; exit}')}"
    log "packing the nextflow-rl tool for $rid (LibTorch included: this takes a few minutes)"
    dotnet pack hosts/NextFlowRL.Cli -c "$CONFIGURATION" -r "$rid" -p:TorchBackend="$TORCH_BACKEND" -p:NextFlowPackTool=true -nologo -v:quiet -clp:ErrorsOnly
    ls -la artifacts/packages/nextflow-rl.*.nupkg
    ;;
  run)
    shift
    deps
    build >&2
    exec dotnet "hosts/NextFlowRL.Cli/bin/$CONFIGURATION/net10.0/nextflow-rl.dll" "$@"
    ;;
  test)
    shift
    deps chromium redis-server
    log "building ($CONFIGURATION)"
    if ! build; then echo "0 passed, 1 failed"; exit 1; fi
    results="$(mktemp -d)"
    log "testing"
    set +e
    dotnet test NextFlowRL.sln -c "$CONFIGURATION" --no-build -nologo "$@" 2>&1 | tee "$results/test.log"
    status=${PIPESTATUS[0]}
    set -e
    passed=$(grep -Eo 'Passed: +[0-9]+' "$results/test.log" | awk '{s+=$2} END {print s+0}')
    failed=$(grep -Eo 'Failed: +[0-9]+' "$results/test.log" | awk '{s+=$2} END {print s+0}')
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    echo "$passed passed, $failed failed"
    exit "$status"
    ;;
  *)
    sed -n '2,10p' "$0"; exit 2 ;;
esac
