#!/bin/sh
# Builds ferry as a static binary (no cgo, no local paths, version stamped).
# The one build recipe: used by 'make build', 'make image' (the Dockerfile)
# and the tests of the image's contract.
#
# usage: deploy/build.sh OUTPUT [VERSION]    (VERSION default: $VERSION, else dev)
set -eu
out=${1:?usage: deploy/build.sh OUTPUT [VERSION]}
version=${2:-${VERSION:-dev}}
cd "$(dirname "$0")/.."
CGO_ENABLED=0 exec "${GO:-go}" build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out" ./cmd/ferry
