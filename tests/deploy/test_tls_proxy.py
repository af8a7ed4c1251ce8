"""The documented nginx in front of the sender (deploy/nginx/cartero.conf, included in
docs/deployment.md): served for real with a throwaway self-signed certificate, in front of a real
`python -m sender`, one HTTPS request through it, and whose address the sender then believes."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, free_port, isolated_vhost, python_env, stop_process, unavailable, wait_http, wait_until
from tests.token_validator.support import ADMIN_KEY, SERVICE_KEY, RunningValidator, serve_validator

CONF = ROOT / "deploy" / "nginx" / "cartero.conf"
# The client's own address: another loopback address than the one nginx connects to the sender
# from (127.0.0.1), so the two cannot be mistaken for each other.
CLIENT = "127.0.0.5"
SPOOFED = "203.0.113.7"


@dataclass(frozen=True)
class Proxied:
    https: str  # nginx
    direct: str  # the sender itself
    ca: Path
    validator: RunningValidator


def _nginx() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found is None:
        unavailable("nginx (Debian package nginx-light)")
    assert found
    return found


def _replace(text: str, old: str, new: str) -> str:
    """One edit of the documented file; fails if the documented text is no longer there."""
    assert old in text, f"deploy/nginx/cartero.conf no longer has {old!r}"
    return text.replace(old, new)


def _site(tmp: Path, *, https_port: int, http_port: int, sender_port: int) -> str:
    """The documented site as it would be deployed, on this test's ports and certificate."""
    site = CONF.read_text()
    site = _replace(site, "server 127.0.0.1:8000;", f"server 127.0.0.1:{sender_port};")
    site = _replace(site, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    site = _replace(site, "listen 80;", f"listen 127.0.0.1:{http_port};")
    site = re.sub(r"\n\s*listen \[::\]:\d+( ssl)?;", "", site)  # the test machine may have no IPv6
    site = _replace(site, "/etc/ssl/cartero/fullchain.pem", str(tmp / "cert.pem"))
    return _replace(site, "/etc/ssl/cartero/privkey.pem", str(tmp / "key.pem"))


def _nginx_conf(tmp: Path, site: Path) -> str:
    """The main file around the site: this test's own pid, logs and temporary paths."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # its workers read this test's files
    temp = "\n".join(
        f"    {kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{\n    access_log {tmp}/access.log;\n{temp}\n    include {site};\n}}\n"
    )


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    nginx = _nginx()
    tmp = tmp_path_factory.mktemp("nginx")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem")],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    https_port, http_port, sender_port = free_port(), free_port(), free_port()
    site = tmp / "cartero.conf"
    site.write_text(_site(tmp, https_port=https_port, http_port=http_port, sender_port=sender_port))
    (tmp / "nginx.conf").write_text(_nginx_conf(tmp, site))
    checked = subprocess.run([nginx, "-t", "-c", str(tmp / "nginx.conf")], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    with isolated_vhost("cartero-tls") as amqp_url, serve_validator(f"sqlite:///{tmp}/token_validator.db") as validator:
        env = python_env(
            AMQP_URL=amqp_url,
            SENDER_PORT=str(sender_port),
            VALIDATOR_URL=validator.url,
            VALIDATOR_SERVICE_KEY=SERVICE_KEY,
            TRUSTED_PROXIES="127.0.0.1",
        )
        with (tmp / "sender.log").open("wb") as log:
            sender = subprocess.Popen([sys.executable, "-m", "sender"], cwd=ROOT, env=env, stdout=log, stderr=log)
            proxy = subprocess.Popen([nginx, "-c", str(tmp / "nginx.conf")], stdout=log, stderr=log)
        try:
            wait_http(f"http://127.0.0.1:{sender_port}/healthz", timeout=30)
            ca = tmp / "cert.pem"
            wait_until(
                lambda: (
                    httpx.get(f"https://127.0.0.1:{https_port}/healthz", verify=_trusting(ca), timeout=2).status_code
                    == 200
                ),
                timeout=15,
                what="nginx answering over https",
            )
            yield Proxied(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{sender_port}", ca, validator)
        finally:
            stop_process(proxy)
            stop_process(sender)


def _trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _from_client(**kwargs: object) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT, **kwargs), timeout=10)  # type: ignore[arg-type]


def _refused_from(proxied: Proxied, base: str, client: httpx.Client) -> str | None:
    """Present an unknown token with a spoofed X-Forwarded-For; the client address the validator
    stored with the refusal, as the sender reported it."""
    token = f"app_{secrets.token_urlsafe(32)}"
    response = client.post(
        f"{base}/v1/sms",
        json={"mensaje": "hola", "telefono": "+34600111222"},
        headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": SPOOFED},
    )
    assert response.status_code == 401, response.text
    found = httpx.get(
        f"{proxied.validator.url}/v1/admin/refusals",
        params={"prefix": token[:8]},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=5,
    ).json()["items"]
    assert len(found) == 1, found
    address: str | None = found[0]["client_ip"]
    return address


def test_a_message_goes_through_https(proxied: Proxied) -> None:
    token, _ = proxied.validator.tokens.make("application", "tls-proxy")
    with _from_client(verify=_trusting(proxied.ca)) as client:
        sent = client.post(
            f"{proxied.https}/v1/sms",
            json={"mensaje": "hola por https", "telefono": "+34600111222"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert sent.status_code == 202, sent.text
        assert sent.headers["strict-transport-security"].startswith("max-age=")
        assert client.get(f"{proxied.https}/metrics").status_code == 404, "metrics are not served through the proxy"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{proxied.https}/healthz", timeout=5)  # a certificate nobody vouched for


def test_the_sender_believes_the_proxy_and_not_the_clients_header(proxied: Proxied) -> None:
    with _from_client(verify=_trusting(proxied.ca)) as client:
        # Through nginx: the address that connected to nginx, not the one the client claimed.
        assert _refused_from(proxied, proxied.https, client) == CLIENT
    with _from_client() as client:
        # Straight to the sender: this client is no trusted proxy, so its header is ignored.
        assert _refused_from(proxied, proxied.direct, client) == CLIENT


def test_the_documentation_shows_the_file_itself() -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text()
    blocks = re.findall(r"```nginx\n(.*?)```", doc, flags=re.S)
    assert CONF.read_text() in blocks, "docs/deployment.md must show deploy/nginx/cartero.conf as it is"
