"""A throwaway MariaDB server from Debian's package, on a free port, for tests."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .platform import free_port


class MariaDB:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="astrago-mariadb-"))
        self.port = free_port()
        self.proc = None

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()) and bool(
            shutil.which("mariadb-install-db"))

    def start(self) -> "MariaDB":
        data = self.dir / "data"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.proc = subprocess.Popen(
            [mariadbd, "--no-defaults", f"--datadir={data}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.dir / 'mysqld.sock'}", "--user=root", "--skip-log-bin", "--innodb-buffer-pool-size=64M",
             f"--pid-file={self.dir / 'mysqld.pid'}"],
            stdout=open(self.dir / "server.log", "w"), stderr=subprocess.STDOUT)
        import pymysql

        deadline = time.monotonic() + 60
        while True:
            try:
                conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="")
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("MariaDB did not start:\n" + (self.dir / "server.log").read_text()[-3000:])
                time.sleep(0.3)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS astrago CHARACTER SET utf8mb4")
        conn.close()
        return self

    def url(self, database: str = "astrago") -> str:
        return f"mysql+pymysql://root:@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
