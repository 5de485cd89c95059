#!/usr/bin/env bash
# Downloads the upstream third-party CRDs pinned in e2e/third-party-crds.tsv and checks each
# file's sha256; nothing is kept unless it matches.
#
#   e2e/fetch-third-party-crds.sh [DIR]     download into DIR (default e2e/third-party-crds,
#                                           ignored by git), then:
#                                           export KEELSON_THIRD_PARTY_CRDS=DIR
#   e2e/fetch-third-party-crds.sh --verify DIR
#                                           only check that DIR holds exactly the pinned files
#
# Relative DIRs are relative to the repository root, as KEELSON_THIRD_PARTY_CRDS is.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
manifest=$root/e2e/third-party-crds.tsv

verify_only=false
if [ "${1:-}" = "--verify" ]; then
  verify_only=true
  shift
  [ $# -eq 1 ] || { echo "usage: $0 --verify DIR" >&2; exit 2; }
fi
dir=${1:-e2e/third-party-crds}
case $dir in /*) ;; *) dir=$root/$dir ;; esac

sha256() { sha256sum "$1" | cut -d' ' -f1; }
download() { # url, destination
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 -o "$2" "$1"
  else
    wget -q -O "$2" "$1"
  fi
}

failed=0
tmp=
trap 'rm -f "$tmp"' EXIT
if ! $verify_only; then mkdir -p "$dir"; fi
while IFS=$'\t' read -r file project version sha url; do
  case $file in ''|'#'*) continue ;; esac
  if [ -z "$url" ]; then
    echo "malformed line in $manifest: $file" >&2
    failed=1
    continue
  fi
  target=$dir/$file
  if $verify_only; then
    if [ ! -f "$target" ]; then
      echo "missing: $target ($project $version)"
      failed=1
    elif [ "$(sha256 "$target")" != "$sha" ]; then
      echo "differs from the pinned $project $version: $target"
      failed=1
    else
      echo "ok: $file ($project $version)"
    fi
    continue
  fi
  if [ -f "$target" ] && [ "$(sha256 "$target")" = "$sha" ]; then
    echo "present: $file ($project $version)"
    continue
  fi
  tmp=$(mktemp "$dir/.$file.XXXXXX")
  if ! download "$url" "$tmp"; then
    echo "could not download $url" >&2
    failed=1
    continue
  fi
  got=$(sha256 "$tmp")
  if [ "$got" != "$sha" ]; then
    echo "$url: sha256 $got, pinned $sha: not kept" >&2
    failed=1
    continue
  fi
  chmod 644 "$tmp"
  mv "$tmp" "$target"
  tmp=
  echo "fetched: $file ($project $version)"
done < "$manifest"

if [ $failed -ne 0 ]; then exit 1; fi
if ! $verify_only; then
  echo
  echo "export KEELSON_THIRD_PARTY_CRDS=$dir"
fi
