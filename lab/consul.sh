#!/usr/bin/env bash
# Print the path of a working consul binary.
# Order: $CONSUL_BIN, then `consul` on PATH (only when no CONSUL_VERSION is asked
# for), then a cached build of the version from the Go module proxy, built on
# first use. The version is $CONSUL_VERSION (one of CONSUL_VERSIONS in
# lab/consul.env, "oldest" or "default"), else the pinned default.
# Progress goes to stderr; only the path goes to stdout.
#   bash lab/consul.sh --list   the buildable versions, one a line (oldest first)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/consul.env
. "$here/consul.env"

if [ "${1:-}" = --list ]; then tr ' ' '\n' <<<"$CONSUL_VERSIONS"; exit 0; fi

asked=${CONSUL_VERSION:-}
case $asked in
  oldest) asked=$CONSUL_VERSION_OLDEST ;;
  default|newest) asked=$CONSUL_VERSION_DEFAULT ;;
esac
version=${asked:-$CONSUL_VERSION_DEFAULT}
if ! consul_recipe "$version"; then
  printf '[consul] ERROR: no build recipe for CONSUL_VERSION=%s; known: %s\n' "$version" "$CONSUL_VERSIONS" >&2
  exit 2
fi
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/seed-consul-peering"
cached="$cache_root/consul-$version/consul"

say() { printf '[consul] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  say "Supply a consul binary yourself instead: CONSUL_BIN=/path/to/consul make ..."
  exit 1
}

works() { "$1" version >/dev/null 2>&1; }

if [ -n "${CONSUL_BIN:-}" ]; then
  works "$CONSUL_BIN" || die "CONSUL_BIN=$CONSUL_BIN does not run ('$CONSUL_BIN version' failed)"
  echo "$CONSUL_BIN"; exit 0
fi
if [ -z "$asked" ] && on_path=$(command -v consul 2>/dev/null) && works "$on_path"; then
  echo "$on_path"; exit 0
fi
if [ -x "$cached" ] && works "$cached"; then
  echo "$cached"; exit 0
fi

command -v go >/dev/null 2>&1 || die "no consul binary and no Go toolchain to build v$version"
mkdir -p "$cache_root"
# One build at a time per cache, even when two make targets race for it.
exec 9>"$cache_root/.build-$version.lock"
flock 9
if [ -x "$cached" ] && works "$cached"; then echo "$cached"; exit 0; fi

start=$(date +%s)
work=$(mktemp -d "$cache_root/build-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "building consul v$version from the Go module proxy (first time only; ~5-10 min on 2 cores)"
say "step 1/3: downloading github.com/hashicorp/consul@v$version"
dir=$(cd "$work" && go mod download -json "github.com/hashicorp/consul@v$version" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || true
if [ -z "$dir" ] || [ ! -d "$dir" ]; then die "go mod download github.com/hashicorp/consul@v$version failed"; fi
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
# The module zip lacks the submodule directories the replace directives point at;
# drop them so the released submodule versions come from the proxy instead.
for sub in api sdk proto-public envoyextensions troubleshoot; do
  go mod edit -dropreplace="github.com/hashicorp/consul/$sub"
done
for req in ${CONSUL_GO_REQUIRE:-}; do
  say "        requiring $req"
  go mod edit -require="$req"
done
say "step 2/3: downloading dependencies"
GOFLAGS=-mod=mod go mod download >&2 || die "downloading consul's dependencies failed"
say "step 3/3: compiling (CGO_ENABLED=0 go build -mod=mod -trimpath)"
CGO_ENABLED=0 go build -mod=mod -trimpath \
  -ldflags "-s -w -X github.com/hashicorp/consul/version.GitCommit=v$version ${CONSUL_LDFLAGS:-}" \
  -o "$work/consul" . >&2 || die "go build of consul v$version failed (see the compiler output above)"
works "$work/consul" || die "the built binary does not run"
mkdir -p "$(dirname "$cached")"
mv "$work/consul" "$cached.tmp" && mv "$cached.tmp" "$cached"
end=$(date +%s)
say "built $("$cached" version | head -1) in $(( (end - start) / 60 ))m$(( (end - start) % 60 ))s, $(du -h "$cached" | cut -f1)"
printf '%s\n' "$(( end - start ))" > "$cache_root/consul-$version/build-seconds"
echo "$cached"
