"""Test helpers: the loopback registry (``msbimage-testkit serve``), a pusher for hand-made
images (the registry API, on loopback only), a throttling proxy that makes a pull last long
enough to interrupt, and the Rust CLI."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[3]


def tool(name: str, env: str) -> Path:
    """A binary of the workspace: ``$env`` or ``target/debug/<name>``."""
    path = Path(os.environ.get(env) or ROOT / "target" / "debug" / name)
    if not path.exists():
        raise RuntimeError(
            f"{path} is missing: build it with "
            "cargo build --workspace --features microsandbox-image/cli"
        )
    return path


@dataclass
class Served:
    """A running ``msbimage-testkit serve`` registry."""

    host: str
    manifests: Dict[str, str]
    process: "subprocess.Popen[bytes]"

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # the testkit exits when its stdin closes
        self.process.wait(timeout=30)


def serve(*args: str) -> Served:
    process = subprocess.Popen(
        [str(tool("msbimage-testkit", "MSB_TESTKIT")), "serve", "--push-fixtures", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=30)
        raise RuntimeError("msbimage-testkit printed nothing")
    info = json.loads(line)
    return Served(info["host"], info["manifests"], process)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files: Dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


class Pusher:
    """Pushes blobs and manifests to a registry through the distribution API."""

    def __init__(self, host: str) -> None:
        self.host = host

    def _request(
        self, method: str, path: str, body: bytes = b"", headers: Optional[Dict[str, str]] = None
    ) -> Tuple[int, Dict[str, str]]:
        conn = http.client.HTTPConnection(self.host, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()

    def blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        status, headers = self._request("POST", f"/v2/{repo}/blobs/uploads/")
        assert status == 202, status
        location = headers["location"]
        if location.startswith("http"):
            location = "/" + location.split("/", 3)[3]
        sep = "&" if "?" in location else "?"
        status, _ = self._request(
            "PUT",
            f"{location}{sep}digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 201, status
        return digest

    def image(
        self,
        repo: str,
        tag: str,
        layers: List[bytes],
        diff_ids: List[str],
        config: Optional[bytes] = None,
        media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip",
    ) -> str:
        """Pushes an image whose layer blobs and config diff_ids are given as is (so they may
        disagree); returns the manifest digest."""
        if config is None:
            config = json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "config": {},
                    "rootfs": {"type": "layers", "diff_ids": diff_ids},
                }
            ).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.blob(repo, config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": media_type, "digest": self.blob(repo, blob), "size": len(blob)}
                for blob in layers
            ],
        }
        body = json.dumps(manifest).encode()
        status, _ = self._request(
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            body,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert status == 201, status
        return sha256(body)


class ThrottlingProxy:
    """An HTTP proxy on loopback in front of ``upstream`` that sends blob bodies slowly
    (``rate`` bytes a second), so a pull is still running when a test interrupts it."""

    def __init__(self, upstream: str, rate: int = 256 * 1024) -> None:
        self.upstream = upstream
        self.rate = rate
        self.stopping = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.forward(body=False)

            def do_GET(self) -> None:
                self.forward(body=True)

            def forward(self, body: bool) -> None:
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("accept", "range", "authorization")
                }
                conn.request(self.command, self.path, headers=headers)
                resp = conn.getresponse()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                        self.send_header(k, v)
                self.send_header("Connection", "close")
                self.end_headers()
                slow = "/blobs/" in self.path
                chunk = 16 * 1024
                try:
                    while body and not proxy.stopping.is_set():
                        data = resp.read(chunk)
                        if not data:
                            break
                        self.wfile.write(data)
                        self.wfile.flush()
                        if slow:
                            time.sleep(chunk / proxy.rate)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    conn.close()
                    self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def rust_cli(*args: str) -> "subprocess.CompletedProcess[str]":
    """Runs the Rust ``msbimage`` CLI."""
    return subprocess.run(
        [str(tool("msbimage", "MSB_CLI")), *args], capture_output=True, text=True, timeout=300
    )


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def tmp_entries(cache: Path) -> List[str]:
    return sorted(p.name for p in (cache / "tmp").iterdir())
