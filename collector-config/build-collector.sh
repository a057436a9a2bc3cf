#!/usr/bin/env bash
# Build an OpenTelemetry Collector with exactly the components otel-gemini's configs use
# (builder-config.yaml beside this script), with the OpenTelemetry Collector Builder (ocb),
# from Go modules. Prints the binary's path on stdout; everything else goes to stderr.
#
#   collector-config/build-collector.sh            build if needed, print the path
#   collector-config/build-collector.sh --cached   print the path if already built, else exit 1
#   OTELCOL=$(collector-config/build-collector.sh) && "$OTELCOL" --config collector-config/agent.yaml
#
# Needs: Go (1.24 or newer) and the Go module proxy; nothing else (no Docker).
# Exit status: 0 built (or cached), 1 failed, 2 bad argument, 3 skipped because Go is absent.
# Cache: one binary per (builder config, ocb version, Go version), under
#   ${OTEL_GEMINI_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/otel-gemini}/otelcol-<hash>/otelcol-gemini
# so a second run is instant and an edit of builder-config.yaml builds a new one. Concurrent
# runs (parallel test workers) wait on a lock instead of building twice.
# Cold build on a 2-core machine: a few minutes, most of it compiling (see docs/collector.md).
set -euo pipefail

OCB_VERSION="v0.161.0" # keep in step with the component versions in builder-config.yaml

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
manifest="${OTEL_GEMINI_BUILDER_CONFIG:-$here/builder-config.yaml}"
cache_root="${OTEL_GEMINI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/otel-gemini}"

cached_only=0
case "${1:-}" in
  --cached) cached_only=1 ;;
  "") ;;
  -h | --help)
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "build-collector.sh: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
esac

log() { echo "build-collector.sh: $*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  # Exit status 3, distinct from a failed build (1): callers (make collector, the test
  # harness) report "skipped: no Go" instead of failing.
  log "Go is not installed (needed to build the Collector): skipped"
  exit 3
fi
if [[ ! -f "$manifest" ]]; then
  log "builder config not found: $manifest"
  exit 1
fi

go_version="$(go env GOVERSION)"
key="$({ cat "$manifest"; echo "ocb=$OCB_VERSION go=$go_version"; } | sha256sum | cut -c1-16)"
out_dir="$cache_root/otelcol-$key"
binary="$out_dir/otelcol-gemini"

if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi
if [[ "$cached_only" == 1 ]]; then
  log "no cached Collector for this builder config (expected $binary)"
  exit 1
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/build.lock"
flock 9
# Another run may have finished the build while this one waited for the lock.
if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi

started=$SECONDS
ocb_dir="$cache_root/ocb-$OCB_VERSION"
ocb="$ocb_dir/builder"
if [[ ! -x "$ocb" ]]; then
  log "installing ocb $OCB_VERSION"
  GOBIN="$ocb_dir" GOFLAGS="${GOFLAGS:-} -trimpath" \
    go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION" >&2
fi

work="$(mktemp -d "$cache_root/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# ocb takes the output directory from the manifest only: build from a copy pointing at $work.
sed -E "s|^(  output_path:).*|\1 $work/src|" "$manifest" >"$work/builder-config.yaml"

log "building the Collector (ocb $OCB_VERSION, $go_version) into $out_dir"
# ocb already builds with -trimpath and -ldflags='-s -w' (stripped) and CGO_ENABLED=0.
"$ocb" --config "$work/builder-config.yaml" >&2

mkdir -p "$work/out"
mv "$work/src/otelcol-gemini" "$work/out/otelcol-gemini"
rm -rf "$out_dir"
mv "$work/out" "$out_dir"
log "built in $((SECONDS - started)) s"
echo "$binary"
