#!/bin/sh
# Regenerate tests/golden/seed.json from the seed's Go model.
#   tools/seed_golden/generate.sh          write the golden file
#   tools/seed_golden/generate.sh --check  fail if the committed file differs
# The seed's package is assembled in a temporary module; nothing is copied
# into the repository. Needs Go 1.19 or newer and no network.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
seed=${SEED:-$here/../../../shared/seed/isolation.go}
golden=$repo/tests/golden/seed.json
[ -f "$seed" ] || { echo "seed not found: $seed (set SEED=...)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/hybrid"
cp "$here/go.mod" "$here/main.go" "$tmp/"
cp "$seed" "$tmp/hybrid/isolation.go"
sum=$(sha256sum "$seed" | cut -d' ' -f1)
(cd "$tmp" && GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod go run . "$sum") >"$tmp/seed.json"

if [ "${1:-}" = "--check" ]; then
	diff -u "$golden" "$tmp/seed.json"
else
	cp "$tmp/seed.json" "$golden"
	echo "wrote $golden"
fi
