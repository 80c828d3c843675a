"""make demo, part 2: change data capture. Starts a throw-away PostgreSQL with a small bank
(customers, accounts, loans, payments) and, when MariaDB is installed, a throw-away MariaDB
with its card system (cards, card_payments), a workload generator doing transfers, loan
and card payments, and `loch serve` replicating both into a fresh lake; prints queries to
try and, every few seconds, what the lake holds. Ctrl-C stops all of it."""
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("LOCH_BIN", str(ROOT / "build" / "loch"))
from conftest import LOCH, Lake  # noqa: E402
from pgsource import PgServer, Source, free_port  # noqa: E402
from mysource import REPL_PASSWORD, MariaDB, mariadb_available  # noqa: E402

SCHEMA = [
    "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, country char(2), since date)",
    "CREATE TABLE accounts (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, "
    "currency char(3) NOT NULL, balance numeric(14,2) NOT NULL, opened timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE loans (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts, principal numeric(14,2), "
    "rate numeric(6,4), status text NOT NULL DEFAULT 'active')",
    "CREATE TABLE payments (id bigserial PRIMARY KEY, from_account int NOT NULL, to_account int, "
    "amount numeric(14,2) NOT NULL, kind text NOT NULL, at timestamptz NOT NULL DEFAULT now())",
    "INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['CH','DE','FR','IT','AT'])[1 + g % 5], "
    "date '2015-01-01' + g * 7 % 3000 FROM generate_series(1, 200) g",
    "INSERT INTO accounts (id, customer_id, currency, balance) SELECT g, 1 + g % 200, "
    "(ARRAY['EUR','CHF','USD'])[1 + g % 3], 10000 FROM generate_series(1, 500) g",
    "INSERT INTO loans SELECT g, g * 3, 50000 + g * 100, 0.0125 + (g % 7) / 1000.0 FROM generate_series(1, 100) g",
]


def workload(src, stop):
    with src.conn() as c:
        while not stop.is_set():
            a, b = random.sample(range(1, 501), 2)
            amt = round(random.uniform(1, 500), 2)
            with c.transaction():
                if random.random() < 0.7:    # transfer: two accounts, one transaction
                    c.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amt, a))
                    c.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amt, b))
                    c.execute("INSERT INTO payments (from_account, to_account, amount, kind) "
                              "VALUES (%s, %s, %s, 'transfer')", (a, b, amt))
                else:                        # loan repayment
                    c.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amt, a))
                    c.execute("INSERT INTO payments (from_account, amount, kind) VALUES (%s, %s, 'loan')", (a, amt))
            time.sleep(0.02)


CARDS_SCHEMA = """
CREATE DATABASE cards;
USE cards;
CREATE TABLE cards (id INT PRIMARY KEY, account_id INT NOT NULL, network ENUM('visa','mastercard') NOT NULL,
                    monthly_limit DECIMAL(12,2) NOT NULL, blocked BOOL NOT NULL DEFAULT FALSE);
CREATE TABLE card_payments (id BIGINT AUTO_INCREMENT PRIMARY KEY, card_id INT NOT NULL,
                            amount DECIMAL(12,2) NOT NULL, merchant VARCHAR(40) NOT NULL, at DATETIME(6) NOT NULL);
INSERT INTO cards SELECT seq, seq, IF(seq % 3 = 0, 'mastercard', 'visa'), 1000 + (seq % 5) * 500, FALSE
  FROM seq_1_to_500;
"""


def card_workload(mdb, stop):
    conn = mdb.connect("cards")
    with conn.cursor() as cur:
        while not stop.is_set():
            card = random.randint(1, 500)
            if random.random() < 0.95:
                cur.execute("INSERT INTO card_payments (card_id, amount, merchant, at) VALUES (%s, %s, %s, NOW(6))",
                            (card, round(random.uniform(2, 300), 2), random.choice(["grocer", "rail", "cafe", "web"])))
            else:
                cur.execute("UPDATE cards SET blocked = NOT blocked WHERE id = %s", (card,))
            time.sleep(0.03)
    conn.close()


def main():
    d = Path(os.environ.get("LOCH_DEMO_CDC_DIR") or tempfile.mkdtemp(prefix="loch-demo-cdc-"))
    subprocess.run([LOCH, "init", str(d / "lake")], check=True, capture_output=True)
    lake = Lake(d / "lake")
    print(f"\n== change data capture: a throw-away PostgreSQL 15, lake in {d / 'lake'}")
    srv = PgServer()
    mdb = None
    rep = None
    stop = threading.Event()
    try:
        src = Source(srv, lake, name="core")
        src.execute(*SCHEMA)
        import re
        sql_port = free_port()
        cfg = lake.config.read_text()
        cfg = re.sub(r'sql_listen: "[^"]*"', f'sql_listen: "127.0.0.1:{sql_port}"', cfg)
        cfg = re.sub(r'http_listen: "[^"]*"', f'http_listen: "127.0.0.1:{free_port()}"', cfg)
        if mariadb_available():
            print("== and a throw-away MariaDB with the card system")
            mdb = MariaDB(d / "mariadb")
            mdb.install()
            mdb.start()
            mdb.create_repl_user()
            mdb.root_sql(CARDS_SCHEMA)
            # a second source in the same list, right after core's entry
            entry = (f"  - name: cards\n    type: mysql\n    url: {mdb.url}\n"
                     f"    password_env: LOCH_DEMO_MYSQL_PW\n    tables: [\"cards.*\"]\n")
            cfg = re.sub(r"(\n    publication: loch_core_\d+\n)", lambda m: m.group(1) + entry, cfg, count=1)
            os.environ["LOCH_DEMO_MYSQL_PW"] = REPL_PASSWORD
        lake.config.write_text(cfg)
        # loch serve: SQL over the PostgreSQL wire protocol, HTTP, and replication in the background
        rep = subprocess.Popen([LOCH, "-c", str(lake.config), "serve"], stderr=subprocess.DEVNULL)
        w = threading.Thread(target=workload, args=(src, stop), daemon=True)
        w.start()
        if mdb:
            threading.Thread(target=card_workload, args=(mdb, stop), daemon=True).start()
        cfg = f"LOCH_CONFIG={lake.config}"
        print(f"PostgreSQL: psql {srv.url(src.db)}")
        if mdb:
            print(f"MariaDB: mariadb -uroot --socket={mdb.socket} cards")
        pw = (lake.root / "state" / "admin.password")
        print(f"loch serve is running (SQL on 127.0.0.1:{sql_port}, user admin, password in {pw}) and replicating;")
        print("a workload does transfers, loan and card payments. Try, in another shell:")
        queries = ["SELECT currency, sum(balance) AS total FROM core.public.accounts GROUP BY 1   -- balances by currency",
                   "SELECT kind, count(*), sum(amount) FROM core.public.payments GROUP BY kind",
                   "SELECT _op, count(*) FROM core.public.accounts_changes GROUP BY _op"]
        if mdb:  # one query across both sources
            queries.append("SELECT a.currency, c.network, count(*) AS payments, sum(p.amount) AS spent "
                           "FROM cards.cards.card_payments p JOIN cards.cards.cards c ON c.id = p.card_id "
                           "JOIN core.public.accounts a ON a.id = c.account_id GROUP BY ALL ORDER BY 1, 2")
        for q in queries:
            print(f"  {cfg} {LOCH} sql \"{q.split('   --')[0]}\"")
        print(f"  {cfg} {LOCH} status      {cfg} {LOCH} validate --source core"
              + (f"      {cfg} {LOCH} validate --source cards" if mdb else ""))
        print("Ctrl-C stops all of it.\n")
        while True:
            time.sleep(5)
            try:
                r = lake.sql("SELECT (SELECT sum(balance) FROM core.public.accounts) AS lake_total, "
                             "(SELECT count(*) FROM core.public.payments) AS payments")[0]
                s = src.rows("SELECT (SELECT sum(balance) FROM accounts), (SELECT count(*) FROM payments)")[0]
                line = (f"lake: total {r['lake_total']}, {r['payments']} payments | source: total {s[0]}, "
                        f"{s[1]} payments")
                if mdb:
                    n = lake.sql("SELECT count(*) AS n FROM cards.cards.card_payments")[0]["n"]
                    m = mdb.root_sql("SELECT count(*) FROM card_payments", db="cards").strip()
                    line += f" | card payments: lake {n}, MariaDB {m}"
                print(line)
            except AssertionError:
                print("lake: full load in progress")
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not skip the clean-up
        stop.set()
        if rep and rep.poll() is None:
            rep.send_signal(signal.SIGTERM)
            rep.wait(timeout=60)
        srv.close()
        if mdb:
            mdb.stop()


if __name__ == "__main__":
    main()
