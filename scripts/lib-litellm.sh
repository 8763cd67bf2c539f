# LiteLLM, a peer gateway for scripts/bench (--peers): installed from PyPI into its own
# venv, .venv-bench, so its many Python dependencies never touch the .venv that holds
# Envoy. Sourced after lib.sh (uses ROOT, say, die); not run.

LITELLM="$ROOT/.venv-bench/bin/litellm"

# Idempotent: creates .venv-bench and installs 'litellm[proxy]' once (skipped while
# .venv-bench/bin/litellm and bin/prisma exist), then prints the installed LiteLLM
# version and exports its path as CHOKEPOINT_LITELLM.
# Also prisma, as LiteLLM's own image has it: the proxy's handler of unexpected errors
# imports it even without a database, and answers 500 instead of the error (a missing
# key's 401, say) when it is missing. Nothing runs `prisma generate`: no DB is used.
ensure_litellm() {
  if [ ! -x "$LITELLM" ] || [ ! -x "$ROOT/.venv-bench/bin/prisma" ]; then
    say "installing LiteLLM (PyPI litellm[proxy], prisma) into .venv-bench"
    command -v python3 >/dev/null || die "python3 not found"
    [ -x "$ROOT/.venv-bench/bin/pip" ] || python3 -m venv "$ROOT/.venv-bench" \
      || die "cannot create .venv-bench (apt-get install python3-venv?)"
    "$ROOT/.venv-bench/bin/pip" install -q --disable-pip-version-check 'litellm[proxy]' prisma >&2 \
      || die "pip install 'litellm[proxy]' prisma failed"
    [ -x "$LITELLM" ] || die "litellm[proxy] installed no $LITELLM"
  fi
  local version
  version="$("$ROOT/.venv-bench/bin/python" -c \
    'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null)" \
    || die "no litellm package in .venv-bench (rm -rf .venv-bench and re-run)"
  say "LiteLLM $version ($LITELLM)"
  export CHOKEPOINT_LITELLM="$LITELLM"
}
