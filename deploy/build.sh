#!/bin/sh
# Builds ferry as a static binary (no cgo, no local paths, version stamped).
# The one build recipe: used by 'make build', 'make image' (the Dockerfile)
# and the tests of the image's contract.
#
# usage: deploy/build.sh OUTPUT [VERSION]    (VERSION default: $VERSION, else dev)
# REVISION (a VCS revision) is stamped too when set: Go records it by itself
# only in a plain git checkout, not in a container build without .git.
set -eu
out=${1:?usage: deploy/build.sh OUTPUT [VERSION]}
version=${2:-${VERSION:-dev}}
cd "$(dirname "$0")/.."
CGO_ENABLED=0 exec "${GO:-go}" build -trimpath \
	-ldflags "-s -w -X main.version=$version -X main.revision=${REVISION:-}" -o "$out" ./cmd/ferry
