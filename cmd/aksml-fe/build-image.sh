#!/bin/sh
# build-image.sh builds the aksml-fe image FROM scratch (see Dockerfile):
# a static aksml-fe binary, then `docker build` of a context holding only the
# Dockerfile and that binary.
#
#   cmd/aksml-fe/build-image.sh [TAG]           build and tag (default aksml/aksml-fe:latest)
#   cmd/aksml-fe/build-image.sh --context DIR   only write the build context to DIR
#
# GO names the go command (default: go on PATH); GOARCH the target
# architecture (default: this machine's).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

stage() {
	mkdir -p "$1"
	(cd "$root" && CGO_ENABLED=0 GOOS=linux "${GO:-go}" build -trimpath -ldflags='-s -w' -o "$1/aksml-fe" ./cmd/aksml-fe)
	cp "$here/Dockerfile" "$1/Dockerfile"
}

if [ "${1:-}" = "--context" ]; then
	if [ -z "${2:-}" ]; then
		echo "usage: $0 --context DIR" >&2
		exit 2
	fi
	stage "$2"
	exit 0
fi

tag=${1:-aksml/aksml-fe:latest}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
stage "$dir"
docker build -t "$tag" "$dir"
