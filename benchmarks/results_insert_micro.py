"""How fast can one batch's validation results be inserted on PostgreSQL? Four ways, same rows.

A batch of 10,000 simulated force readings opens ~1,340 results (the seed's 5 % spikes trip both
force rules). This times, per batch of such rows (statement only; each try is rolled back, so the
commit's deferred foreign-key checks, equal for all, are left out):

  orm-bulk_create      ValidationResult.objects.bulk_create (the pipeline before 04827c6)
  unnest-client        storage.results_insert: INSERT … SELECT FROM unnest(%s::text[], …) through
                       Django's cursor, whose client-side binding quotes each array to a literal
  unnest-server-binary the same statement on a psycopg server-side-binding cursor with binary
                       parameters (arrays sent as binary, no quoting)
  copy-prefetched-ids  ids from nextval() over generate_series, then one binary COPY

    .venv/bin/python benchmarks/results_insert_micro.py [--rows 1340] [--tries 15]
"""

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1340)
    parser.add_argument("--tries", type=int, default=15)
    args = parser.parse_args()
    _bench.configure(_bench.PG_URL, fresh=True)
    print("machine:", _bench.machine())

    from django.db import connection, transaction

    from sensors.services import rig_create
    from sessions.models import ValidationResult
    from sessions.recording import storage
    from sessions.services import session_start

    rig = rig_create(name="micro", sensors=[{"name": f"f{i:03d}", "sensor_type": "force"} for i in range(50)])
    session = session_start(rig=rig)
    sensor_ids = list(rig.sensors.values_list("id", flat=True))
    rng = random.Random(1)
    t0 = time.time()
    rows = []
    for i in range(args.rows):
        ts = t0 + i / 1000
        peak = round(rng.uniform(80, 200), 2)
        rows.append((
            rng.choice(sensor_ids), rng.choice(["force_threshold", "force_spike"]), rng.choice(["warning", "error"]),
            f"f{i % 50:03d} {peak:.2f} N above error limit 80.0", ts, ts, 1, peak,
            {"kind": "range", "field": "", "warning_low": None, "warning_high": 64.0, "error_low": None,
             "error_high": 80.0}, False,
        ))
    table = ValidationResult._meta.db_table

    def orm():
        ValidationResult.objects.bulk_create([
            ValidationResult(session_id=session.pk, sensor_id=s, rule=r, status=st, message=m,
                             first_timestamp=storage.from_unix(f), last_timestamp=storage.from_unix(la), count=c,
                             peak=p, details=d, is_open=o)
            for s, r, st, m, f, la, c, p, d, o in rows
        ])

    def unnest_client():
        storage.results_insert(session.pk, rows)

    def unnest_server_binary():
        import psycopg

        cols = list(zip(*rows))
        sql = storage._PG_RESULTS_INSERT.format(table=table).replace("%s", "%b")
        params = [
            session.pk, list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]),
            [storage.from_unix(t) for t in cols[4]], [storage.from_unix(t) for t in cols[5]],
            list(cols[6]), list(cols[7]), [storage._dumps(d) for d in cols[8]], list(cols[9]),
        ]
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params)
            cursor.fetchall()

    def copy_ids():
        from psycopg.types.json import Jsonb

        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                           [table, len(rows)])
            ids = [r[0] for r in cursor.fetchall()]
            columns = ("id, session_id, sensor_id, rule, status, message, first_timestamp, last_timestamp, "
                       "count, peak, details, is_open, acknowledge_comment")
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int8", "int8", "varchar", "varchar", "varchar", "timestamptz",
                                "timestamptz", "int4", "float8", "jsonb", "bool", "text"])
                for pk, (s, r, st, m, f, la, c, p, d, o) in zip(ids, rows):
                    copy.write_row((pk, session.pk, s, r, st, m, storage.from_unix(f), storage.from_unix(la),
                                    c, p, Jsonb(d), o, ""))

    methods = {"orm-bulk_create": orm, "unnest-client": unnest_client,
               "unnest-server-binary": unnest_server_binary, "copy-prefetched-ids": copy_ids}
    times = {name: [] for name in methods}
    for _ in range(args.tries):
        for name, fn in methods.items():
            with transaction.atomic():
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
                transaction.set_rollback(True)
    base = statistics.median(times["unnest-client"])
    print(f"{args.rows} result rows per call, median of {args.tries}:")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:<22} {med * 1000:7.1f} ms  {med / args.rows * 1e6:6.1f} µs/row  "
              f"{med / base:5.2f}x unnest-client")


if __name__ == "__main__":
    main()
