#!/usr/bin/env bash
# Makes the package-validation baselines of the contract packages from a released commit:
#   tools/packaging/make-baselines.sh REV VERSION     e.g. tools/packaging/make-baselines.sh v0.2.0 0.2.0
# Packs NextFlowRL.Abstractions, NextFlowRL.Abstractions.Policies and NextFlowRL.Imaging as they were at REV, with
# version VERSION, into build/baselines/. Then set NextFlowBaselineVersion in sdk/Directory.Build.props to VERSION and
# delete the older baselines. `dotnet pack` compares every contract package with its baseline (docs/packages.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
rev="${1:?usage: make-baselines.sh REV VERSION}"; version="${2:?usage: make-baselines.sh REV VERSION}"
work="$(mktemp -d)"; trap 'git worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/src" "$rev" >/dev/null
mkdir -p build/baselines
for project in Abstractions Abstractions.Policies Imaging; do
  dotnet pack "$work/src/sdk/$project/NextFlowRL.$project.csproj" -c Release -nologo -v:quiet -clp:ErrorsOnly \
    -p:Version="$version" -p:IsPackable=true -p:EnablePackageValidation=false -p:IncludeSymbols=false -o "$work/out"
  cp "$work/out/NextFlowRL.$project.$version.nupkg" build/baselines/
  echo "build/baselines/NextFlowRL.$project.$version.nupkg"
done
