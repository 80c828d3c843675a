"""A throw-away MariaDB server for CDC tests: mariadb-install-db into a tmp dir, mariadbd on
a free loopback port with ROW binlogs (FULL image, FULL metadata), and a replication user
`repl` with REPLICATION SLAVE, REPLICATION CLIENT and SELECT. Used by test_cdc_mysql.py
and bench/cdc_mysql_bench.py; not a pytest plugin of its own (import it)."""
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

REPL_PASSWORD = "repl-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MariaDB:
    def __init__(self, root: Path, extra_args=()):
        self.root = Path(root)
        self.datadir = self.root / "data"
        self.socket = str(self.root / "mysqld.sock")
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.proc = None

    def install(self):
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
                        "--user=root", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True)

    def start(self, *extra):
        args = ["mariadbd", "--no-defaults", f"--datadir={self.datadir}",
                f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
                "--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL", "--server-id=1", "--user=root",
                "--skip-name-resolve", "--innodb-buffer-pool-size=128M",
                "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
                f"--log-error={self.root / 'error.log'}", f"--pid-file={self.root / 'mysqld.pid'}",
                *self.extra_args, *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited:\n" + self.error_log())
            if os.path.exists(self.socket):
                try:
                    self.root_sql("SELECT 1")
                    return
                except subprocess.CalledProcessError:
                    pass
            time.sleep(0.2)
        raise RuntimeError("mariadbd did not start:\n" + self.error_log())

    def error_log(self):
        p = self.root / "error.log"
        return p.read_text(errors="replace")[-4000:] if p.exists() else ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, *extra):
        self.stop()
        self.start(*extra)

    def root_sql(self, sql, db=None):
        """Runs SQL as root through the mariadb client; returns stdout (tab-separated)."""
        args = ["mariadb", "--no-defaults", "-uroot", f"--socket={self.socket}", "--default-character-set=utf8mb4", "-N", "-B", "-e", sql]
        if db:
            args.insert(-2, f"--database={db}")
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout

    def connect(self, db=None, user="root", password=""):
        import pymysql
        return pymysql.connect(unix_socket=self.socket, user=user, password=password,
                               database=db, autocommit=True, charset="utf8mb4")

    def create_repl_user(self, user="repl", password=REPL_PASSWORD,
                         grants="REPLICATION SLAVE, REPLICATION CLIENT, SELECT"):
        self.root_sql(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}';"
                      f"GRANT {grants} ON *.* TO '{user}'@'%'")

    @property
    def url(self):
        return f"mysql://repl@127.0.0.1:{self.port}"


def mariadb_available():
    return shutil.which("mariadbd") is not None and shutil.which("mariadb-install-db") is not None
