"""Debian's nginx for tests, and a TLS reverse proxy in front of a Prefect server built from the
nginx block of docs/operations.md (so the test proves the configuration the operators copy).

    binary = nginx_binary()                      # once per package version, cached under <test cache>/nginx/
    with NginxProxy.start(tmp_dir, upstream_port=server.port) as proxy:
        proxy.api_url                            # https://127.0.0.1:<port>/api, for PREFECT_API_URL
        proxy.client_env()                       # + SSL_CERT_FILE: the test CA every client trusts

* The binary: `apt-get download nginx=<candidate version>` then `dpkg -x` into
  `<test cache>/nginx/<version>/` (a `.complete` marker is written last; a lock file serialises two
  sessions). No root, nothing installed system-wide. `CHAPCTL_TEST_NGINX=/path/to/nginx` uses
  another binary instead.
* The configuration: the ```nginx block of docs/operations.md with three substitutions only —
  `listen` becomes a free loopback port, the commented `ssl_certificate` line a test certificate
  (a throw-away CA signs a certificate for 127.0.0.1/localhost), `proxy_pass` the server's
  port. Every proxy directive is the doc's, verbatim. `websockets=False` drops the two
  websocket lines (Upgrade, Connection): the misconfiguration the topology test must tell apart.
* The process: `nginx -p <tmp> -c <tmp>/nginx.conf -e <tmp>/error.log` with `daemon off;`, a
  master and one worker process, in its own process group; pid file, error/access logs and the
  temp paths all in the temp dir. Stopped by its PID (SIGQUIT: graceful, then SIGKILL to the
  process group), never by name.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests import processes
from tests.cachedir import CACHE_ROOT

REPO = Path(__file__).resolve().parents[2]
CACHE = CACHE_ROOT / "nginx"
DOC = REPO / "docs" / "operations.md"
PACKAGE = "nginx"
MARKER = ".complete"
OVERRIDE_ENV = "CHAPCTL_TEST_NGINX"

INSTALL_HINT = (
    "The topology test needs Debian's nginx binary. It fetches it without installing anything: "
    "`apt-get download nginx` + `dpkg -x` (needs apt-get, dpkg and a reachable Debian mirror; run "
    "`sudo apt-get update` if apt does not know the package). Alternatively install it — "
    "`sudo apt-get install nginx` (Debian/Ubuntu; nginx >= 1.19.5 with the ssl module) — and run "
    f"the tests with {OVERRIDE_ENV}=/usr/sbin/nginx."
)


class NginxUnavailable(RuntimeError):
    """nginx could not be obtained; the message says what to install."""


# ------------------------------------------------------------------------------ the binary


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "LC_ALL": "C"})


def candidate_version() -> str:
    """The version `apt-get download nginx` would fetch (apt's candidate)."""
    if shutil.which("apt-cache") is None:
        raise NginxUnavailable(f"apt-cache is not on PATH (not a Debian/Ubuntu machine?). {INSTALL_HINT}")
    policy = _run(["apt-cache", "policy", PACKAGE])
    found = re.search(r"^\s*Candidate:\s*(\S+)", policy.stdout, re.M)
    if policy.returncode != 0 or not found or found.group(1) == "(none)":
        raise NginxUnavailable(f"apt knows no candidate version of {PACKAGE!r} (`apt-cache policy {PACKAGE}`: "
                               f"{(policy.stdout + policy.stderr).strip() or 'no output'}). {INSTALL_HINT}")
    return found.group(1)


def _completed_versions() -> list[Path]:
    return sorted(p for p in CACHE.glob("*") if (p / MARKER).is_file())


def _check_runs(binary: Path) -> None:
    probe = _run([str(binary), "-v"], timeout=30)
    if probe.returncode != 0:
        missing = ""
        if shutil.which("ldd"):
            libs = [line.split()[0] for line in _run(["ldd", str(binary)]).stdout.splitlines() if "not found" in line]
            missing = f" Missing libraries: {', '.join(libs)} — install the packages that provide them " \
                      "(Debian: libpcre2-8-0 libssl3 zlib1g libcrypt1)." if libs else ""
        raise NginxUnavailable(f"{binary} -v failed ({probe.returncode}): {probe.stderr.strip()}.{missing} "
                               f"{INSTALL_HINT}")


def nginx_binary() -> Path:
    """Debian's nginx binary, downloaded and unpacked once per package version."""
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        binary = Path(override)
        if not binary.is_file():
            raise NginxUnavailable(f"{OVERRIDE_ENV}={override} is not a file")
        _check_runs(binary)
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        version = candidate_version()
    except NginxUnavailable:
        cached = _completed_versions()
        if cached:  # offline later on: any complete download will do
            return cached[-1] / "usr" / "sbin" / "nginx"
        raise
    root = CACHE / version
    binary = root / "usr" / "sbin" / "nginx"
    if (root / MARKER).is_file():
        return binary
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be downloading the same version
        if (root / MARKER).is_file():
            return binary
        if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
            raise NginxUnavailable(f"apt-get and dpkg are needed to fetch nginx. {INSTALL_HINT}")
        with tempfile.TemporaryDirectory(dir=CACHE, prefix=".download-") as tmp:
            download = _run(["apt-get", "download", f"{PACKAGE}={version}"], cwd=Path(tmp))
            debs = list(Path(tmp).glob(f"{PACKAGE}_*.deb"))
            if download.returncode != 0 or len(debs) != 1:
                raise NginxUnavailable(
                    f"`apt-get download {PACKAGE}={version}` failed (exit {download.returncode}):\n"
                    f"{(download.stdout + download.stderr).strip()}\n{INSTALL_HINT}")
            unpacked = Path(tmp) / "root"
            extract = _run(["dpkg", "-x", str(debs[0]), str(unpacked)])
            if extract.returncode != 0:
                raise NginxUnavailable(f"`dpkg -x {debs[0].name}` failed: {extract.stderr.strip()}\n{INSTALL_HINT}")
            _check_runs(unpacked / "usr" / "sbin" / "nginx")
            shutil.rmtree(root, ignore_errors=True)  # a half-done earlier attempt
            unpacked.rename(root)
        (root / MARKER).write_text(f"{PACKAGE} {version}\n")
    return binary


# ------------------------------------------------------------------------------ TLS material


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate it signs for 127.0.0.1 and localhost.
    Returns (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chapctl topology test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    ca_pem, cert_pem, key_pem = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    key_pem.chmod(0o600)
    return ca_pem, cert_pem, key_pem


# ------------------------------------------------------------------------------ the configuration

WEBSOCKET_LINES = ("proxy_set_header Upgrade", "proxy_set_header Connection")


def documented_server_block(doc: Path = DOC) -> str:
    """The one ```nginx block of docs/operations.md."""
    blocks = re.findall(r"```nginx\n(.*?)```", doc.read_text(), re.S)
    if len(blocks) != 1:
        raise AssertionError(f"{doc} should hold exactly one ```nginx block, found {len(blocks)}")
    return blocks[0]


def _substitute(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.M)
    if count != 1:
        raise AssertionError(f"the nginx block of {DOC.name} no longer matches {pattern!r} exactly once; "
                             f"update tests/topology/nginx.py with it:\n{text}")
    return new


def server_block(*, listen_port: int, upstream_port: int, cert: Path, key: Path, websockets: bool = True) -> str:
    """The documented server block, bound to this test's ports and certificate."""
    text = documented_server_block()
    text = _substitute(text, r"^(\s*)listen 443 ssl;", rf"\g<1>listen 127.0.0.1:{listen_port} ssl;")
    text = _substitute(text, r"^(\s*)# ssl_certificate \.\.\.;",
                       rf"\g<1>ssl_certificate {cert};\n\g<1>ssl_certificate_key {key};")
    text = _substitute(text, r"^(\s*)proxy_pass http://127\.0\.0\.1:4200;",
                       rf"\g<1>proxy_pass http://127.0.0.1:{upstream_port};")
    if not websockets:
        kept = [line for line in text.splitlines() if not line.strip().startswith(WEBSOCKET_LINES)]
        if len(kept) != len(text.splitlines()) - 2:
            raise AssertionError(f"expected the two websocket lines {WEBSOCKET_LINES} in the nginx block:\n{text}")
        text = "\n".join(kept) + "\n"
    return text


def nginx_conf(prefix: Path, server: str) -> str:
    """The process-level frame around the documented server block: everything in `prefix`."""
    user = ""
    if os.geteuid() == 0:  # as root, nginx's workers would switch to `nobody`, who cannot write here
        import pwd

        user = f"user {pwd.getpwuid(0).pw_name};\n"
    temp = "\n".join(f"    {name}_temp_path {prefix / 'tmp' / name};"
                     for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""# written by tests/topology/nginx.py
{user}daemon off;
master_process on;
worker_processes 1;
worker_shutdown_timeout 3s;
pid {prefix / 'nginx.pid'};
error_log {prefix / 'error.log'} info;

events {{
    worker_connections 512;
}}

http {{
    log_format topology '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent '
                        'upgrade="$http_upgrade" rt=$request_time';
    access_log {prefix / 'access.log'} topology;
{temp}

{server}}}
"""


# ------------------------------------------------------------------------------ the process


@dataclass(frozen=True)
class AccessEntry:
    method: str
    path: str
    status: int
    upgrade: str
    line: str


_ENTRY = re.compile(r'^\S+ \[[^]]+\] "(\S+) (\S+) [^"]*" (\d{3}) \d+ upgrade="([^"]*)"')


@dataclass
class NginxProxy:
    prefix: Path
    port: int
    ca_file: Path
    process: processes.Process | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def conf_path(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def client_env(self) -> dict[str, str]:
        """What every client process needs to reach the server through this proxy (plus auth).
        SSL_CERT_FILE is read by httpx (chapctl) and by Prefect (PREFECT_API_SSL_CERT_FILE's
        default) for both its HTTP client and its websockets."""
        return {"PREFECT_API_URL": self.api_url, "SSL_CERT_FILE": str(self.ca_file)}

    def access_entries(self) -> list[AccessEntry]:
        """Parsed access log lines. A websocket is logged when its tunnel closes (status 101)."""
        entries = []
        for line in self.access_log.read_text(errors="replace").splitlines() if self.access_log.exists() else []:
            m = _ENTRY.match(line)
            if m:
                entries.append(AccessEntry(m.group(1), m.group(2), int(m.group(3)), m.group(4), line))
        return entries

    @classmethod
    def start(cls, prefix: Path, upstream_port: int, *, websockets: bool = True, binary: Path | None = None,
              timeout: float = 20.0) -> NginxProxy:
        binary = binary or nginx_binary()
        prefix.mkdir(parents=True, exist_ok=True)
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "tmp" / name).mkdir(parents=True, exist_ok=True)
        ca, cert, key = make_certificates(prefix / "tls")
        port = processes.free_port()
        proxy = cls(prefix=prefix, port=port, ca_file=ca)
        conf = nginx_conf(prefix, server_block(listen_port=port, upstream_port=upstream_port, cert=cert, key=key,
                                               websockets=websockets))
        proxy.conf_path.write_text(conf)
        cmd = [str(binary), "-p", f"{prefix}/", "-c", str(proxy.conf_path), "-e", str(proxy.error_log)]
        check = _run([*cmd, "-t"], timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t rejected the configuration:\n{check.stderr}\n{conf}")
        # SIGQUIT to the master stops it gracefully (workers finish, websocket tunnels are closed and
        # logged; worker_shutdown_timeout bounds them), then SIGKILL to the group if it lingers.
        proxy.process = processes.start("nginx", cmd, ready=processes.port_open(port), timeout=timeout,
                                        log_path=proxy.error_log, stop_signal=signal.SIGQUIT, leader_first=True,
                                        every=0.05)
        return proxy

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no error log)"

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            proc.stop()

    def __enter__(self) -> NginxProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
