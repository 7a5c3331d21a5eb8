#!/usr/bin/env python3
"""MariaDB commit floor: N single-row INSERTs with autocommit over ONE connection (the
`mysql` client reading a script), i.e. one durable commit per row. Prints commits/s."""
import subprocess, sys, time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
db = ["mysql", "-uroot", "-h127.0.0.1"]
subprocess.run(db + ["-e", "CREATE DATABASE IF NOT EXISTS chat_host_bench; "
               "DROP TABLE IF EXISTS chat_host_bench.bench_commit; "
               "CREATE TABLE chat_host_bench.bench_commit (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
               "body VARCHAR(200) NOT NULL) ENGINE=InnoDB"], check=True)
script = "SET autocommit=1;\n" + "".join(
    f"INSERT INTO bench_commit (body) VALUES ('message {i} {'x' * 64}');\n" for i in range(n))
t = time.monotonic()
subprocess.run(db + ["chat_host_bench"], input=script.encode(), check=True)
dt = time.monotonic() - t
flush = subprocess.run(db + ["-N", "-e", "SELECT @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@log_bin"],
                       capture_output=True, text=True).stdout.split()
print(f"mariadb single-connection autocommit INSERT: {n} commits in {dt:.2f} s = {n / dt:.0f} commits/s "
      f"(innodb_flush_log_at_trx_commit={flush[0]}, sync_binlog={flush[1]}, log_bin={flush[2]})")
