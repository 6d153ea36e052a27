"""Candidate changes to the pipeline, swapped in for one benchmark process only.

They exist to measure what a recommended change would buy before anyone edits the application;
the application itself is never modified. `pipeline_throughput.py --variant NAME` installs one (or several joined by "+").

  as-is                 the application's code
  results-copy          store new validation results with one COPY (PostgreSQL) or one executemany
                        (SQLite) under ids taken beforehand, and grown/closed ones with one
                        executemany UPDATE, instead of bulk_create + bulk_update (model instances,
                        UNNEST arrays quoted client-side, CASE WHEN per field)
  results-binary        storage.results_insert / results_update as they are (INSERT … FROM unnest,
                        UPDATE … FROM unnest), executed on a psycopg server-side-binding cursor
                        with binary parameters instead of Django's client-side-binding cursor,
                        which quotes every array element into a literal (PostgreSQL; SQLite keeps
                        the application's code)
  server-side-binding   the application's code with psycopg's server-side binding (a settings-only
                        change: OPTIONS["server_side_binding"] = True), PostgreSQL only
  no-rollups            the application's code without the per-second rollups (sessions/rollups.py):
                        measures what keeping them costs the pipeline
  no-metrics            the application's code without its Prometheus calls (metrics.flush_done, once
                        per batch): measures what the metrics cost the pipeline (docs/operations.md)
  no-reading-fks        the application's code, with the benchmark database's two foreign keys of
                        the readings table dropped (as `db_constraint=False` would create it):
                        measures what PostgreSQL's deferred FK checks cost at commit. It changes
                        the table, so it applies to the raw insert too.
"""

from django.db import connection, connections
from django.db.models import F

VARIANTS = (
    "as-is", "results-copy", "results-binary", "no-rollups", "no-metrics", "server-side-binding", "no-reading-fks"
)
# The variants that can be switched on and off within one process (`--compare`).
SWITCHABLE = ("as-is", "results-copy", "results-binary", "no-rollups", "no-metrics")
_original: dict = {}


def use_switchable(name: str) -> None:
    """Put the application's functions back, then install `name` (one of SWITCHABLE)."""
    from robotest_site.observability import metrics
    from sessions.recording import pipeline, rollups, storage

    for owner, attr in (
        (pipeline, "results_save"), (storage, "results_insert"), (storage, "results_update"), (rollups, "rollup_columns"),
        (metrics, "flush_done"),
    ):
        _original.setdefault((owner.__name__, attr), getattr(owner, attr))
        setattr(owner, attr, _original[(owner.__name__, attr)])
    if name != "as-is":
        _install(name)


def _no_rollups(sensor_ids, micros, values) -> list:
    return []


def _no_metrics(source: str, readings: int, seconds: float) -> None:
    return None


def install_variant(names: str) -> None:
    """Install one variant, or several joined by "+" (`results-copy+no-reading-fks`)."""
    for name in names.split("+"):
        _install(name)


def _install(name: str) -> None:
    if name == "as-is":
        return
    if name == "server-side-binding":
        if connection.vendor != "postgresql":
            raise SystemExit("--variant server-side-binding is for PostgreSQL")
        # The same dict every thread's connection is built from; close ours so it is rebuilt.
        connections.settings["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
        connection.close()
        return
    if name == "no-reading-fks":
        from sessions.models import Reading

        if connection.vendor != "postgresql":
            raise SystemExit("--variant no-reading-fks is for PostgreSQL")
        table = Reading._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'", [table]
            )
            for (constraint,) in cursor.fetchall():
                cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"')
        return
    if name == "no-rollups":
        from sessions.recording import rollups

        rollups.rollup_columns = _no_rollups
        return
    if name == "no-metrics":
        from robotest_site.observability import metrics

        metrics.flush_done = _no_metrics
        return
    if name == "results-copy":
        from sessions.recording import pipeline

        pipeline.results_save = results_save_copy
        return
    if name == "results-binary":
        from sessions.recording import storage

        if connection.vendor == "postgresql":
            storage.results_insert = results_insert_binary
            storage.results_update = results_update_binary
        return
    raise SystemExit(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")


_UPDATE_FIELDS = ("status", "message", "last_timestamp", "count", "peak", "details", "is_open")


def results_save_copy(*, recorder, episodes) -> list[dict]:
    """`pipeline.results_save` with the same effects and return value, without the ORM's bulk paths."""
    import json

    from sessions.models import RecordingSession, ValidationResult
    from sessions.recording.storage import from_unix

    if not episodes:
        return []
    table = ValidationResult._meta.db_table
    limit = ValidationResult._meta.get_field("message").max_length
    sensors = recorder.sensors
    session_id = recorder.session_id
    new = [e for e in episodes if e.result_id is None]
    old = [e for e in episodes if e.result_id is not None]
    with connection.cursor() as cursor:
        if new:
            columns = (
                "id, session_id, sensor_id, rule, status, message, first_timestamp, last_timestamp, "
                "count, peak, details, is_open, acknowledge_comment"
            )
            if connection.vendor == "postgresql":
                from psycopg.types.json import Jsonb

                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    [table, len(new)],
                )
                ids = [row[0] for row in cursor.fetchall()]
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "int8", "int8", "varchar", "varchar", "varchar", "timestamptz",
                                    "timestamptz", "int4", "float8", "jsonb", "bool", "text"])
                    for pk, e in zip(ids, new):
                        copy.write_row((
                            pk, session_id, sensors[e.sensor][0], e.rule, e.status, e.message[:limit],
                            from_unix(e.first_timestamp), from_unix(e.last_timestamp), e.count, float(e.peak),
                            Jsonb(e.details), e.is_open, "",
                        ))
            else:
                # The writer holds SQLite's write lock (IMMEDIATE), so the next ids are ours;
                # AUTOINCREMENT never reuses an id, so start above the highest ever handed out.
                cursor.execute(
                    f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "
                    f"coalesce((SELECT max(id) FROM {table}), 0))",
                    [table],
                )
                top = cursor.fetchone()[0]
                ids = list(range(top + 1, top + 1 + len(new)))
                cursor.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * 13)})",
                    [
                        (pk, session_id, sensors[e.sensor][0], e.rule, e.status, e.message[:limit],
                         _sqlite_time(e.first_timestamp), _sqlite_time(e.last_timestamp), e.count,
                         float(e.peak), json.dumps(e.details), e.is_open, "")
                        for pk, e in zip(ids, new)
                    ],
                )
            for pk, e in zip(ids, new):
                e.result_id = pk
        if old:
            assignments = ", ".join(f"{field} = %s" for field in _UPDATE_FIELDS)
            stamp = from_unix if connection.vendor == "postgresql" else _sqlite_time
            cursor.executemany(
                f"UPDATE {table} SET {assignments} WHERE id = %s",
                [
                    (e.status, e.message[:limit], stamp(e.last_timestamp), e.count, float(e.peak),
                     _json_param(e.details), e.is_open, e.result_id)
                    for e in old
                ],
            )
    if new:
        RecordingSession.objects.filter(pk=session_id).update(alert_count=F("alert_count") + len(new))
    return [e.as_json(session_id=session_id) for e in episodes]


def results_insert_binary(session_id: int, rows) -> list[int]:
    """`storage.results_insert`'s statement and parameters, bound server-side in binary."""
    import psycopg

    from sessions.models import ValidationResult
    from sessions.recording import storage

    if not rows:
        return []
    c = list(zip(*rows))
    params = [
        session_id, list(c[0]), list(c[1]), list(c[2]), list(c[3]),
        [storage.from_unix(t) for t in c[4]], [storage.from_unix(t) for t in c[5]],
        list(c[6]), [float(p) for p in c[7]], [storage._dumps(d) for d in c[8]], list(c[9]),
    ]
    sql = storage._PG_RESULTS_INSERT.format(table=ValidationResult._meta.db_table).replace("%s", "%b")
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def results_update_binary(rows) -> None:
    """`storage.results_update`'s statement and parameters, bound server-side in binary."""
    import psycopg

    from sessions.models import ValidationResult
    from sessions.recording import storage

    if not rows:
        return
    c = list(zip(*rows))
    params = [
        list(c[0]), list(c[1]), list(c[2]), [storage.from_unix(t) for t in c[3]], list(c[4]),
        [float(p) for p in c[5]], [storage._dumps(d) for d in c[6]], list(c[7]),
    ]
    sql = storage._PG_RESULTS_UPDATE.format(table=ValidationResult._meta.db_table).replace("%s", "%b")
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)


def _json_param(details: dict):
    import json

    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        return Jsonb(details)
    return json.dumps(details)


def _sqlite_time(ts: float) -> str:
    from datetime import datetime, timedelta

    return str(datetime(1970, 1, 1) + timedelta(microseconds=round(ts * 1_000_000)))


def check_equivalent(variant: str, *, batches: int = 12, batch: int = 5000, sensors: int = 20) -> bool:
    """Feed the same readings through the application's results_save and `variant`'s; compare what each stores."""
    import random
    import time

    from sensors.services import rig_create
    from sensors.simulators import ForceSimulator
    from sessions.models import RecordingSession, ValidationResult
    from sessions.recording import pipeline
    from sessions.services import session_start

    names = [f"f{i:03d}" for i in range(sensors)]
    t0 = time.time()
    sims = {n: ForceSimulator(rate_hz=1000.0, t0=t0, rng=random.Random(f"check:{n}")) for n in names}
    per = batch / (sensors * 1000.0)
    plan = []
    for k in range(batches):
        items = [(n, ts, v) for n, sim in sims.items() for ts, v in sim.due(t0 + (k + 1) * per - 0.0005)]
        plan.append(items)
    outputs = {}
    for label in ("as-is", variant):
        use_switchable(label)
        rig = rig_create(name=f"check-{label}-{int(t0)}", sensors=[{"name": n, "sensor_type": "force"} for n in names])
        session = session_start(rig=rig)
        recorder = pipeline.SessionRecorder(session.pk)
        events = []
        for items in plan:
            result = pipeline.readings_record(recorder=recorder, items=items)
            events.append([{k: v for k, v in e.items() if k not in ("id", "session_id")} for e in result.validation])
        rows = list(
            ValidationResult.objects.filter(session=session)
            .order_by("first_timestamp", "sensor__name", "rule")
            .values_list("sensor__name", "rule", "status", "message", "first_timestamp", "last_timestamp",
                         "count", "peak", "details", "is_open", "acknowledge_comment")
        )
        alerts = RecordingSession.objects.values_list("alert_count", flat=True).get(pk=session.pk)
        outputs[label] = (rows, events, alerts)
        RecordingSession.objects.filter(pk=session.pk).update(status=RecordingSession.Status.COMPLETED)
    use_switchable("as-is")
    same = outputs["as-is"] == outputs[variant]
    rows, events, alerts = outputs["as-is"]
    print(f"{variant}: {len(rows)} results, {sum(map(len, events))} events, alert_count {alerts}; "
          f"identical to as-is: {same}")
    return same


if __name__ == "__main__":
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _bench

    parser = argparse.ArgumentParser(description="Check that a variant stores exactly what the application does.")
    parser.add_argument("variant", choices=SWITCHABLE[1:])
    parser.add_argument("--db", choices=("pg", "sqlite"), default="pg")
    args = parser.parse_args()
    _bench.configure(_bench.PG_URL if args.db == "pg" else "sqlite:////tmp/robotest_bench_check.sqlite3", fresh=True)
    raise SystemExit(0 if check_equivalent(args.variant) else 1)
