"""Upload throughput and server memory: AstraGo's tus server against its peers and the disk's limit.

    python -m bench.upload --json                      # the issue's sizes (1 GiB; 20 x 256 MiB; 3 runs)
    python -m bench.upload --json --quick              # a small run while developing

Over loopback, in the same run and interleaved: one upload of --size-mib with each of
--chunks-mib, and --concurrent uploads of --concurrent-size-mib at once, against

- astrago: the service's real uploads area (hub/uploads/: UploadsArea and its routes,
  UploadsCollectionHandler, UploadHandler, BodyWriter, UploadStore, placement) in a tornado
  process of its own.
  This is a BENCHMARK HARNESS: a stub stands in for HubOAuth (every request is the user
  "bench" with the uploads scope; no hub round trip, which is cached in the service
  anyway) and for the system-account lookup (files stay owned by the bench process).
  Everything else is the production code path, including fsync per PATCH and the
  atomic placement of the finished file.
- tus_node: @tus/server with @tus/file-store (bench/tus_node_server.mjs).
- tuspyserver: tuspyserver's FastAPI router under uvicorn.
- raw_copy: the same bytes copied file to file (8 MiB reads/writes, fsync at the end):
  what this disk can do.

One client drives every server the same way: http.client on a kept-alive connection,
PATCH bodies sent with sendfile(2), so the client is not what is measured. Throughput is
bytes / wall time (MB = 10^6 bytes); RSS growth is the server process's peak VmRSS during
a scenario minus its VmRSS just before. Each figure is the median of --runs runs.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20
SERVERS = ("astrago", "tus_node", "tuspyserver")


# -- the servers ------------------------------------------------------------------------

def serve_astrago(port: int, root: Path) -> None:
    """The benchmark harness around the real upload handlers (see the module docstring)."""
    import asyncio

    from tornado import httpserver, web

    from traitlets.config import Config

    from astrago.hub.service.base import APIHandler
    from astrago.hub.service.contract import AreaContext
    from astrago.hub.uploads import storage
    from astrago.hub.uploads.area import UploadsArea

    user = {"name": "bench", "kind": "user", "admin": False, "groups": [],
            "scopes": ["access:services!service=astrago", "custom:astrago:uploads!user=bench",
                       "custom:astrago:read!user=bench"]}

    class BenchAuth:  # stands in for HubOAuth: every request is "bench"
        async def get_user(self, handler, sync=True):
            return user

    APIHandler._hub_auth = BenchAuth()

    def bench_account(self, name, *, create):  # stands in for the system account of the user
        home = root / "storage" / name
        home.mkdir(parents=True, exist_ok=True)
        return storage.Account("bench", str(home), None, None)

    storage.UserStorage.account = bench_account

    class BenchService:
        prefix = "/services/astrago/"
        data_dir = str(root / "data")
        mode = "embedded"
        db = None

    async def no_hub(*args, **kwargs):
        raise RuntimeError("the benchmark harness has no hub")

    svc = BenchService()
    area = UploadsArea(config=Config({"UploadsConfig": {
        "data_dir": str(root / "data" / "uploads"), "storage_template": str(root / "storage" / "{username}"),
        "default_storage_quota_gib": 100000, "max_upload_size_gib": 100000}}))
    area.setup(AreaContext(db=None, settings=svc, hub_api=no_hub, hub_user=no_hub))  # no StorageLimits: the default

    async def main():
        handlers = [(r.regex(svc.prefix), r.handler, {"area": area, **r.kwargs}) for r in area.routes()]
        app = web.Application(handlers, astrago=svc)
        server = httpserver.HTTPServer(app)
        server.listen(port, "127.0.0.1")
        print(f"listening {port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_tuspyserver(port: int, root: Path) -> None:
    import uvicorn
    from fastapi import FastAPI
    from tuspyserver import create_tus_router

    app = FastAPI()
    app.include_router(create_tus_router(prefix="files", files_dir=str(root), max_size=1 << 44))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class Server:
    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = root
        self.port = _free_port()
        root.mkdir(parents=True, exist_ok=True)
        if name == "astrago":
            cmd = [sys.executable, "-m", "bench.upload", "--serve-astrago", str(self.port), str(root)]
            self.create_path = "/services/astrago/api/uploads/"
        elif name == "tuspyserver":
            cmd = [sys.executable, "-m", "bench.upload", "--serve-tuspyserver", str(self.port), str(root)]
            self.create_path = "/files/"
        else:
            cmd = ["node", str(REPO / "bench" / "tus_node_server.mjs"), str(self.port), str(root)]
            self.create_path = "/files"
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.proc.stderr.read().decode()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not listen on {self.port}")

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def clean(self) -> None:
        for child in self.root.rglob("*"):
            if child.is_file() and not child.name.endswith(".sqlite"):
                child.unlink(missing_ok=True)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the client ------------------------------------------------------------------------------

def tus_upload(server: Server, src: Path, size: int, chunk: int, name: str) -> None:
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                    {"filename": name, "filetype": "application/octet-stream"}.items())
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    conn.request("POST", server.create_path, headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size),
                                                      "Upload-Metadata": meta, "Content-Length": "0"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 201:
        raise RuntimeError(f"{server.name}: POST {r.status} {body[:300]!r}")
    location = urlparse(r.getheader("Location")).path
    offset = 0
    with open(src, "rb") as fh:
        while offset < size:
            n = min(chunk, size - offset)
            conn.putrequest("PATCH", location, skip_accept_encoding=True)
            for k, v in (("Tus-Resumable", "1.0.0"), ("Content-Type", "application/offset+octet-stream"),
                         ("Upload-Offset", str(offset)), ("Content-Length", str(n))):
                conn.putheader(k, v)
            conn.endheaders()
            sent = 0
            while sent < n:
                sent += conn.sock.sendfile(fh, offset + sent, n - sent)
            r = conn.getresponse()
            body = r.read()
            if r.status != 204:
                raise RuntimeError(f"{server.name}: PATCH {r.status} {body[:300]!r}")
            offset = int(r.getheader("Upload-Offset"))
    conn.close()


def raw_copy(src: Path, dst: Path, size: int) -> None:
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        left = size
        while left:
            block = fin.read(min(8 * MIB, left))
            if not block:
                break
            fout.write(block)
            left -= len(block)
        os.fsync(fout.fileno())


class RSSSampler:
    def __init__(self, server: Server | None):
        self.server = server
        self.base = server.rss() if server else 0
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.server.rss())

    def __enter__(self):
        if self.server:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.server:
            self._thread.join()
            self.peak = max(self.peak, self.server.rss())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / MIB


def run_scenario(target, scenario: dict, sources: dict, workdir: Path, tag: str) -> tuple[float, float]:
    """One scenario against one target (a Server, or "raw_copy"); returns (MB/s, RSS growth MiB)."""
    count, size, chunk = scenario["count"], scenario["size"], scenario["chunk"]
    src = sources[size]
    server = target if isinstance(target, Server) else None
    out_dir = workdir / "raw-copy"
    out_dir.mkdir(exist_ok=True)

    def one(i: int):
        name = f"{tag}-{i}.bin"
        if server is None:
            raw_copy(src, out_dir / name, size)
        else:
            tus_upload(server, src, size, chunk, name)

    with RSSSampler(server) as rss:
        started = time.perf_counter()
        if count == 1:
            one(0)
        else:
            with ThreadPoolExecutor(count) as pool:
                list(pool.map(one, range(count)))
        elapsed = time.perf_counter() - started
    if server is None:
        shutil.rmtree(out_dir, ignore_errors=True)
    else:
        server.clean()
    return count * size / elapsed / 1e6, rss.growth_mb


def make_source(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(8 * MIB, left)
            fh.write(os.urandom(n))
            left -= n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--size-mib", type=int, default=1024, help="single upload size (default %(default)s)")
    p.add_argument("--chunks-mib", default="8,64", help="PATCH sizes of the single upload (default %(default)s)")
    p.add_argument("--concurrent", type=int, default=20, help="uploads at once (default %(default)s)")
    p.add_argument("--concurrent-size-mib", type=int, default=256, help="size of each (default %(default)s)")
    p.add_argument("--concurrent-chunk-mib", type=int, default=8, help="their PATCH size (default %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="runs; medians are reported (default %(default)s)")
    p.add_argument("--servers", default=",".join(SERVERS), help="which servers (default %(default)s)")
    p.add_argument("--workdir", default=None, help="where files go (default: a temp dir, removed after)")
    p.add_argument("--quick", action="store_true", help="128 MiB single, 4 x 32 MiB concurrent, 1 run")
    p.add_argument("--serve-astrago", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    p.add_argument("--serve-tuspyserver", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_astrago:
        serve_astrago(int(args.serve_astrago[0]), Path(args.serve_astrago[1]))
        return 0
    if args.serve_tuspyserver:
        serve_tuspyserver(int(args.serve_tuspyserver[0]), Path(args.serve_tuspyserver[1]))
        return 0
    if args.quick:
        args.size_mib, args.concurrent, args.concurrent_size_mib, args.runs = 128, 4, 32, 1

    chunks = [int(c) for c in args.chunks_mib.split(",") if c]
    scenarios = [{"id": f"single_{args.size_mib}MiB_chunk{c}MiB", "count": 1, "size": args.size_mib * MIB,
                  "chunk": c * MIB} for c in chunks]
    scenarios.append({"id": f"concurrent_{args.concurrent}x{args.concurrent_size_mib}MiB_chunk"
                            f"{args.concurrent_chunk_mib}MiB", "count": args.concurrent,
                      "size": args.concurrent_size_mib * MIB, "chunk": args.concurrent_chunk_mib * MIB})
    names = [s for s in args.servers.split(",") if s]

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="astrago-bench-upload-"))
    workdir.mkdir(parents=True, exist_ok=True)
    servers: dict = {}
    results: dict = {s["id"]: {n: {"mbps": [], "rss_growth_mb": []} for n in [*names, "raw_copy"]} for s in scenarios}
    try:
        sources = {}
        for size in {s["size"] for s in scenarios}:
            sources[size] = workdir / f"source-{size}.bin"
            make_source(sources[size], size)
        warm = workdir / "warmup.bin"
        make_source(warm, MIB)
        for name in names:
            servers[name] = Server(name, workdir / name)
            tus_upload(servers[name], warm, MIB, MIB // 4, "warmup.bin")  # first-request imports, not measured
            servers[name].clean()
        for run in range(args.runs):
            for scenario in scenarios:
                for name in [*names, "raw_copy"]:  # interleaved, so drift hits all alike
                    target = servers.get(name, "raw_copy")
                    mbps, growth = run_scenario(target, scenario, sources, workdir, f"r{run}-{scenario['id']}")
                    results[scenario["id"]][name]["mbps"].append(round(mbps, 1))
                    results[scenario["id"]][name]["rss_growth_mb"].append(round(growth, 1))
                    if not args.json:
                        print(f"run {run + 1} {scenario['id']:<40} {name:<12} {mbps:8.1f} MB/s  "
                              f"rss +{growth:6.1f} MiB", flush=True)
    finally:
        for server in servers.values():
            server.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    summary = {}
    for sid, by in results.items():
        summary[sid] = {n: {"mbps": statistics.median(v["mbps"]), "rss_growth_mb": statistics.median(v["rss_growth_mb"]),
                            "runs_mbps": v["mbps"]} for n, v in by.items()}
    head = summary[scenarios[0]["id"]]

    def med(name):
        return head.get(name, {}).get("mbps")

    doc = {
        "command": "python -m bench.upload " + " ".join(argv if argv is not None else sys.argv[1:]),
        "headline_scenario": scenarios[0]["id"],
        "astrago_mbps": med("astrago"),
        "tus_node_mbps": med("tus_node"),
        "tuspyserver_mbps": med("tuspyserver"),
        "raw_copy_mbps": med("raw_copy"),
        "astrago_rss_growth_mb": max(summary[s["id"]]["astrago"]["rss_growth_mb"] for s in scenarios)
        if "astrago" in names else None,
        "scenarios": summary,
        "runs": args.runs,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    ratios = {}
    for sid, by in summary.items():
        a = by.get("astrago", {}).get("mbps")
        if a:
            ratios[sid] = {
                "vs_tus_node": round(a / by["tus_node"]["mbps"], 2) if "tus_node" in by else None,
                "vs_tuspyserver": round(a / by["tuspyserver"]["mbps"], 2) if "tuspyserver" in by else None,
                "vs_raw_copy": round(a / by["raw_copy"]["mbps"], 2),
            }
    doc["ratios"] = ratios
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(json.dumps({k: doc[k] for k in ("astrago_mbps", "tus_node_mbps", "tuspyserver_mbps", "raw_copy_mbps",
                                              "astrago_rss_growth_mb", "ratios")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
