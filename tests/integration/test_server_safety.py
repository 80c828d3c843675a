"""loch serve under attack before login, and its safe defaults: a flood of idle and
slow-byte connections cannot lock the administrator out, leaves no descriptor behind and
does not hurt the catalog (with `loch token create/revoke` writing beside it); a login has
one deadline however slowly its bytes come; slots are reserved for administrators; failed
logins back off per user and per address without holding up anyone else; /metrics wants a
token; non-administrators get a statement time limit by default."""
import os
import re
import socket
import sqlite3
import struct
import threading
import time
import http.client

import psycopg
import pytest

from access_fixtures import ADMIN_PASSWORD, Server, admin_lake, token_for  # noqa: F401
from pgserver import error_fields, read_msg, scram_login, startup_packet

PW = "Mall0ry-pw-for-tests"


def configure(lake, server=None, query=None):
    """Adds keys under server: / query: of the lake's loch.yaml."""
    cfg = lake.config.read_text()
    for section, keys in (("server:\n", server), ("query:\n", query)):
        if keys:
            cfg = cfg.replace(section, section + "".join(f"  {k}: {v}\n" for k, v in keys.items()), 1)
    lake.config.write_text(cfg)


def pg(server, user="admin", password=ADMIN_PASSWORD, **kw):
    return psycopg.connect(host="127.0.0.1", port=server.sql_port, user=user, password=password, dbname="lake",
                           sslmode="disable", autocommit=True, connect_timeout=10, **kw)


def raw(server, src="127.0.0.1", timeout=10):
    """A TCP connection to the pgwire port from a chosen loopback address."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", server.sql_port))
    return s


def closed_by_server(s, within):
    """Whether the server ends s (EOF or reset) within `within` seconds; FATAL messages
    before the end are read and returned as the second value."""
    s.settimeout(0.2)
    deadline, data = time.time() + within, b""
    while time.time() < deadline:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return True, data
        if not chunk:
            return True, data
        data += chunk
    return False, data


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_descriptors(pid, want, within=15):
    deadline = time.time() + within
    while time.time() < deadline:
        n = descriptors(pid)
        if n <= want:
            return n
        time.sleep(0.2)
    return descriptors(pid)


def integrity(lake):
    c = sqlite3.connect(lake.root / "state" / "catalog.db")
    try:
        return c.execute("PRAGMA integrity_check").fetchall()
    finally:
        c.close()


def test_flood_before_login_locks_nobody_out_and_leaves_nothing_behind(admin_lake):
    lake = admin_lake
    configure(lake, server={"max_connections": 20, "reserved_admin_connections": 2,
                            "startup_connections_per_address": 6, "login_timeout_ms": 4000})
    server = Server(lake)
    try:
        pid = server.proc.pid
        with pg(server) as c:  # warm up: the pooled catalog, the engine
            assert c.execute("SELECT 1").fetchone() == (1,)
        base = wait_descriptors(pid, 0, within=1)

        stop, token_errors, rounds = threading.Event(), [], [0]

        def tokens():  # a writer in another process, beside the flood
            while not stop.is_set():
                p = lake.run("token", "create", "--user", "admin", check=False)
                if p.returncode:
                    token_errors.append(p.stderr)
                    continue
                tid = p.stdout.split()[1]  # "token <id> for user ..."
                p = lake.run("token", "revoke", tid, check=False)
                if p.returncode:
                    token_errors.append(p.stderr)
                rounds[0] += 1

        writer = threading.Thread(target=tokens)
        writer.start()
        socks = []
        try:
            # one address cannot hold more than its share of logins in progress
            refused = None
            for _ in range(10):
                s = raw(server, "127.0.0.2")
                socks.append(s)
            for s in socks[6:]:
                ended, data = closed_by_server(s, 2)
                if ended and data[:1] == b"E":
                    refused = error_fields(data[5:])
            assert refused and refused["C"] == "53300" and "not logged in" in refused["M"], refused
            # many addresses: more idle connections than slots, and slow-byte ones
            for i in range(3, 9):
                for _ in range(5):
                    socks.append(raw(server, f"127.0.0.{i}"))
            slow = [raw(server, "127.0.0.9") for _ in range(4)]
            socks += slow
            packet = startup_packet("admin")

            def trickle(s):
                for b in packet[:-1]:
                    try:
                        s.send(bytes([b]))
                    except OSError:
                        return
                    time.sleep(0.3)

            trick = [threading.Thread(target=trickle, args=(s,)) for s in slow]
            for t in trick:
                t.start()
            # connections that go away before logging in, by the hundred
            for i in range(200):
                s = raw(server, "127.0.0.10")
                s.send(packet[: i % len(packet)])
                s.close()
            # the administrator still gets in, and works, during the flood
            t0 = time.time()
            with pg(server) as c:
                assert c.execute("SELECT 40 + 2").fetchone() == (42,)
            assert time.time() - t0 < 5
            for t in trick:
                t.join()
        finally:
            for s in socks:
                s.close()
            stop.set()
            writer.join()
        assert token_errors == [] and rounds[0] >= 1
        # every descriptor of the flood is closed again
        after = wait_descriptors(pid, base)
        assert after == base, (base, after, sorted(os.listdir(f"/proc/{pid}/fd")))
        with pg(server) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
    assert integrity(lake) == [("ok",)]


def test_login_deadline_counts_the_whole_login(admin_lake):
    configure(admin_lake, server={"login_timeout_ms": 1500})
    server = Server(admin_lake)
    try:
        idle, slow = raw(server), raw(server)
        packet, t0 = startup_packet("admin"), time.time()
        ended = threading.Event()

        def trickle():  # one byte every 0.3 s: each receive is quick, the login is not
            for b in packet:
                if ended.is_set():
                    return
                try:
                    slow.send(bytes([b]))
                except OSError:
                    return
                time.sleep(0.3)

        t = threading.Thread(target=trickle)
        t.start()
        assert closed_by_server(idle, 5)[0]
        gone, _ = closed_by_server(slow, 5)
        ended.set()
        t.join()
        assert gone and time.time() - t0 < 4.5
        # a client that logs in in time is not affected, and stays as long as it likes
        with pg(server) as c:
            time.sleep(2)
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        idle.close()
        slow.close()
        server.stop()


def test_slots_reserved_for_administrators(admin_lake):
    admin_lake.run("sql", f"CREATE USER mallory WITH PASSWORD '{PW}'")
    configure(admin_lake, server={"max_connections": 4, "reserved_admin_connections": 2})
    server = Server(admin_lake)
    conns = []
    try:
        conns += [pg(server, "mallory", PW), pg(server, "mallory", PW)]
        with pytest.raises(psycopg.OperationalError) as e:
            pg(server, "mallory", PW)
        assert "reserved for administrators" in str(e.value)
        conns += [pg(server), pg(server)]
        with pytest.raises(psycopg.OperationalError) as e:
            pg(server)
        assert "too many clients" in str(e.value)
        assert all(c.execute("SELECT 1").fetchone() == (1,) for c in conns)
        # with one slot free, it is still one of the reserved ones
        conns.pop(0).close()
        time.sleep(0.5)
        with pytest.raises(psycopg.OperationalError) as e:
            pg(server, "mallory", PW)
        assert "reserved for administrators" in str(e.value)
        conns.pop().close()  # both administrators leave: three free, one for mallory
        conns.pop().close()
        deadline = time.time() + 5
        while True:
            try:
                conns.append(pg(server, "mallory", PW))
                break
            except psycopg.OperationalError:
                assert time.time() < deadline
                time.sleep(0.1)
    finally:
        for c in conns:
            c.close()
        server.stop()


def timed_login(server, src, user, password):
    """(seconds, last message type, fields) of a raw SCRAM login from address src."""
    s = raw(server, src, timeout=30)
    t0 = time.time()
    try:
        got = scram_login(s, user, password)
    finally:
        s.close()
    t, body = got[-1]
    return time.time() - t0, t, error_fields(body) if t == b"E" else {}


def test_failed_logins_back_off_per_user_and_address(admin_lake):
    lake = admin_lake
    lake.run("sql", f"CREATE USER mallory WITH PASSWORD '{PW}'")
    configure(lake, server={"login_backoff_ms": 1000, "login_backoff_max_ms": 4000})
    server = Server(lake)
    try:
        # a typo is free; the second failure makes the next attempt wait 1 s, then 2 s
        for _ in range(2):
            secs, t, f = timed_login(server, "127.0.0.2", "admin", "wrong")
            assert t == b"E" and f["C"] == "28P01" and secs < 0.8
        secs, t, f = timed_login(server, "127.0.0.2", "admin", "wrong")
        assert f.get("C") == "28P01" and secs >= 0.9
        # nobody else waits: another user from another address logs in at once
        secs, t, _ = timed_login(server, "127.0.0.3", "mallory", PW)
        assert t == b"Z" and secs < 0.8
        # the attacked user waits from any address (2 s now), but the right password works
        secs, t, _ = timed_login(server, "127.0.0.4", "admin", ADMIN_PASSWORD)
        assert t == b"Z" and 1.8 <= secs < 5
        # ... and a success forgets the failures
        secs, t, _ = timed_login(server, "127.0.0.4", "admin", ADMIN_PASSWORD)
        assert t == b"Z" and secs < 0.8

        # HTTP: wrong bearer tokens back off per address
        good = token_for(lake, "mallory")

        def get(src, token):
            c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30, source_address=(src, 0))
            t0 = time.time()
            c.request("POST", "/v1/sql", body=b'{"sql": "SELECT 1"}',
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            status = c.getresponse().status
            c.close()
            return status, time.time() - t0

        assert [get("127.0.0.5", "loch_wrong")[0] for _ in range(2)] == [401, 401]
        status, secs = get("127.0.0.5", "loch_wrong")
        assert status == 401 and secs >= 0.9
        status, secs = get("127.0.0.6", good)
        assert status == 200 and secs < 0.8
    finally:
        server.stop()
    log = server.log_text()
    assert "held" in log and "after failed logins" in log


def test_metrics_need_a_token_unless_configured_open(admin_lake):
    lake = admin_lake
    server = Server(lake)
    try:
        r = server.request("GET", "/metrics")
        assert r.status == 401 and r.json()["error"]["sqlstate"] == "28P01"
        assert "loch_queries_total" not in r.text
        r = server.request("GET", "/metrics", token="loch_not_a_token")
        assert r.status == 401
        r = server.request("GET", "/metrics", token=token_for(lake, "admin"))
        assert r.status == 200 and "loch_queries_total" in r.text
    finally:
        server.stop()
    cfg = re.sub(r'sql_listen: "[^"]*"', 'sql_listen: "127.0.0.1:5433"', lake.config.read_text())
    lake.config.write_text(re.sub(r'http_listen: "[^"]*"', 'http_listen: "127.0.0.1:8181"', cfg))
    configure(lake, server={"metrics_open": "true"})
    server = Server(lake)
    try:
        r = server.request("GET", "/metrics")
        assert r.status == 200 and "loch_queries_total" in r.text
    finally:
        server.stop()


NEVER_ENDS = "SELECT count(*) FROM range(1000000000000)"


def test_non_administrators_get_a_time_limit_by_default(admin_lake):
    lake = admin_lake
    lake.run("sql", f"CREATE USER mallory WITH PASSWORD '{PW}'")
    configure(lake, query={"non_admin_timeout_ms": 800})  # the default is 300000: 5 minutes
    server = Server(lake)
    try:
        with pg(server) as admin:
            out = []
            t = threading.Thread(target=lambda: out.append(pytest.raises(psycopg.Error, admin.execute, NEVER_ENDS)))
            t.start()
            with pg(server, "mallory", PW) as m:
                t0 = time.time()
                with pytest.raises(psycopg.errors.QueryCanceled) as e:
                    m.execute(NEVER_ENDS)
                assert time.time() - t0 < 10
                assert e.value.diag.message_detail == "the limit is 800 ms (query.non_admin_timeout_ms)"
                assert m.execute("SELECT 1").fetchone() == (1,)  # the session goes on
            time.sleep(1.0)
            assert t.is_alive()  # the administrator's statement has no such limit
            admin.cancel()
            t.join(30)
            assert out and "canceling statement due to user request" in str(out[0].value)
        tok = token_for(lake, "mallory")
        r = server.sql(NEVER_ENDS, tok)
        assert r.status == 400 and r.json()["error"]["sqlstate"] == "57014"
        assert "query.non_admin_timeout_ms" in r.json()["error"]["detail"]
    finally:
        server.stop()
