"""The session review pages (`/sessions/`, `/sessions/<id>/`) rendered by Django, read back as a user reads them."""

import random
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from statistics import fmean
from urllib.parse import urljoin

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from sensors.models import Rig
from sessions.models import Reading, RecordingSession, ValidationResult
from tests.conftest import T0, bench_create, ft6_value, readings

pytestmark = pytest.mark.django_db

LIST = "/sessions/"
DAY0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


# --- reading a page ---------------------------------------------------------------------------


class Node:
    def __init__(self, tag: str, attrs: dict, parent: "Node | None") -> None:
        self.tag, self.attrs, self.parent, self.children, self.parts = tag, attrs, parent, [], []

    @property
    def text(self) -> str:
        return " ".join("".join(self._texts()).split())

    def _texts(self):
        for part in self.parts:
            yield from ([part] if isinstance(part, str) else part._texts())

    def find_all(self, tag: str | None = None, **attrs) -> list["Node"]:
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and all(
                child.attrs.get(k.replace("_", "-")) == v if v is not True else k.replace("_", "-") in child.attrs
                for k, v in attrs.items()
            ):
                found.append(child)
            found.extend(child.find_all(tag, **attrs))
        return found

    def find(self, tag: str | None = None, **attrs) -> "Node | None":
        found = self.find_all(tag, **attrs)
        return found[0] if found else None


class Dom(HTMLParser):
    VOID = {"input", "br", "img", "meta", "link", "hr"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.root = self.node = Node("#root", {}, None)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.node)
        self.node.children.append(node)
        self.node.parts.append(node)
        if tag not in self.VOID:
            self.node = node

    def handle_endtag(self, tag):
        node = self.node
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.node = node.parent

    def handle_data(self, data):
        self.node.parts.append(data)


def page(client: Client, url: str, status: int = 200) -> Node:
    response = client.get(url)
    assert response.status_code == status, response.content[:2000]
    return Dom(response.content.decode()).root


def listed(client: Client, url: str = LIST) -> list[int]:
    """Every session id the list shows from `url` on, following the Older links to the end."""
    ids: list[int] = []
    while url:
        root = page(client, url)
        ids += [int(row.attrs["data-session"]) for row in root.find_all("tr", data_session=True)]
        older = root.find("a", rel="next")
        url = urljoin(LIST, older.attrs["href"]) if older else None
    return ids


# --- fixtures ---------------------------------------------------------------------------------


def user_in(django_user_model, username: str, role: str | None):
    user = django_user_model.objects.create_user(username, password="secret-pass-1")
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def operator(django_user_model):
    return user_in(django_user_model, "olga", "operator")


@pytest.fixture
def client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def viewer_client(django_user_model) -> Client:
    client = Client()
    client.force_login(user_in(django_user_model, "vic", "viewer"))
    return client


@pytest.fixture
def many(db) -> list[RecordingSession]:
    """53 finished sessions on two rigs, with names, statuses, verdicts and start days spread out, and ties."""
    rng = random.Random(7)
    rigs = [bench_create(), bench_create("press", [{"name": "f", "sensor_type": "force", "unit": "N"}])]
    sessions = []
    for i in range(53):
        # Every fifth session shares the previous one's start: the id breaks the tie.
        started = DAY0 + timedelta(hours=7 * (i - i % 5 // 4))
        sessions.append(RecordingSession(
            rig=rigs[i % 2], name=f"{rng.choice(['Cold', 'warm', 'Soak'])} run {i}",
            status=rng.choice(["completed", "completed", "aborted"]), started_at=started,
            stopped_at=started + timedelta(seconds=30 + i), verdict=rng.choice(["pass", "warning", "fail", "error", ""]),
            reading_count=1000 + i, alert_count=i % 4,
        ))
    return RecordingSession.objects.bulk_create(sessions)


def newest_first(sessions) -> list[int]:
    return [s.pk for s in sorted(sessions, key=lambda s: (s.started_at, s.pk), reverse=True)]


# --- the list -----------------------------------------------------------------------------------


def test_the_list_pages_through_every_session_once_newest_first_and_back(client, many):
    ids = listed(client)

    assert ids == newest_first(many)
    # From the last page, the Newer links lead back through the same pages.
    url, back = LIST, []
    while (older := page(client, url).find("a", rel="next")) is not None:
        url = urljoin(LIST, older.attrs["href"])
    while url:
        root = page(client, url)
        back = [int(r.attrs["data-session"]) for r in root.find_all("tr", data_session=True)] + back
        newer = root.find("a", rel="prev")
        url = urljoin(LIST, newer.attrs["href"]) if newer else None
    assert back == ids


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        ("rig=press", lambda s: s.rig.name == "press"),
        ("status=aborted", lambda s: s.status == "aborted"),
        ("verdict=fail", lambda s: s.verdict == "fail"),
        ("verdict=pass&rig=bench", lambda s: s.verdict == "pass" and s.rig.name == "bench"),
        ("q=COLD", lambda s: "cold" in s.name.lower()),
        ("started_from=2026-03-05", lambda s: s.started_at.date() >= datetime(2026, 3, 5).date()),
        ("started_to=2026-03-05", lambda s: s.started_at.date() <= datetime(2026, 3, 5).date()),
        ("started_from=2026-03-04&started_to=2026-03-06&status=completed",
         lambda s: "2026-03-04" <= s.started_at.date().isoformat() <= "2026-03-06" and s.status == "completed"),
    ],
)
def test_each_filter_keeps_exactly_the_sessions_it_names(client, many, query, keep):
    expected = newest_first([s for s in RecordingSession.objects.select_related("rig") if keep(s)])

    assert expected, "the fixture should hold matching sessions"
    assert len(expected) < len(many)
    assert listed(client, f"{LIST}?{query}") == expected


def test_the_filter_form_keeps_its_values_and_paging_keeps_the_filter(client, many):
    root = page(client, f"{LIST}?status=completed&q=run")
    assert root.find("select", name="status").find("option", selected=True).attrs["value"] == "completed"
    assert root.find("input", name="q").attrs["value"] == "run"
    # 53 sessions match `run`: a second page, reached with the filter still applied.
    older = page(client, f"{LIST}?q=run&verdict=").find("a", rel="next")
    assert "q=run" in older.attrs["href"] and "verdict=" in older.attrs["href"]


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ("started_from=yesterday", "started_from", "valid date"),
        ("started_to=2026-02-30", "started_to", "valid date"),
        ("verdict=great", "verdict", "valid choice"),
        ("status=%00", "status", "valid choice"),
        ("rig=no-such-rig", "rig", "valid choice"),
        ("started_from=2026-03-05&started_to=2026-03-01", "started_to", "on or after"),
        ("before=abc", "before", "position"),
        ("before=99999999999999999999999.1", "before", "position"),
    ],
)
def test_a_bad_filter_value_is_a_form_error_on_the_page_not_a_500(client, many, query, field, says):
    root = page(client, f"{LIST}?{query}")

    errors = " ".join(e.text for e in root.find_all("ul", **{"class": "errorlist"}))
    assert says in errors
    assert root.find("tr", data_session=True) is None
    if field not in ("before",):
        assert root.find(None, name=field).attrs.get("aria-invalid") == "true"


def test_the_list_shows_the_verdict_in_words_the_duration_and_the_stored_counters(client, bench):
    started = DAY0
    session = RecordingSession.objects.create(
        rig=bench, name="soak", status="completed", started_at=started, stopped_at=started + timedelta(seconds=125),
        verdict="pass", reading_count=123456, alert_count=7,  # the counters, not a COUNT over readings (none stored)
    )
    row = page(client, LIST).find("tr", data_session=str(session.pk))
    cells = [td.text for td in row.find_all("td")]

    assert cells[1:5] == ["soak", "bench", "completed", "pass"]
    assert row.find("span", **{"class": "badge ok"}).text == "pass"
    assert cells[6:] == ["2 min 05 s", "123,456", "7"]


def test_verdict_badges_carry_their_class(client, bench):
    for i, verdict in enumerate(["warning", "fail", "error"]):
        RecordingSession.objects.create(rig=bench, status="completed", started_at=DAY0 + timedelta(minutes=i),
                                        stopped_at=DAY0 + timedelta(minutes=i, seconds=5), verdict=verdict)
    spans = page(client, LIST).find_all("span", **{"class": True})
    badges = {b.text: b.attrs["class"] for b in spans if "badge" in b.attrs["class"]}

    assert badges == {"warning": "badge warning", "fail": "badge fail", "error": "badge error"}


def test_an_anonymous_visitor_is_sent_to_log_in(many):
    response = Client().get(LIST)

    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/sessions/")


# --- one session ------------------------------------------------------------------------------


@pytest.fixture
def recorded(bench, start, ingest, staff_client) -> RecordingSession:
    """A finished bench session: fz crosses the force warning (64) and error (80) bands; ft6 holds objects."""
    session_id = start("bench", name="bench run")["session_id"]
    fz = [10.0, 20.5, 70.0, 71.0, 30.0, 95.5, 12.0] * 4
    batch = readings("fz", fz) + readings("temp", [21.0, 21.5, 22.25], t0=T0 + 0.05) + readings(
        "ft6", [ft6_value(i) for i in range(5)], t0=T0 + 0.02, step=0.3
    )
    assert ingest(session_id, batch).status_code in (200, 201)
    stopped = staff_client.post("/api/v1/sessions/stop", {"session_id": session_id}, format="json")
    assert stopped.status_code == 200
    return RecordingSession.objects.select_related("rig").get(pk=session_id)


def stat_cells(root: Node, sensor: str, field: str = "") -> dict[str, str]:
    row = root.find("tr", data_sensor=sensor, data_field=field)
    return {td.attrs["data-stat"]: td.text for td in row.find_all("td", data_stat=True)}


def test_the_session_page_shows_its_facts_and_statistics_that_match_the_stored_readings(client, recorded):
    root = page(client, f"/sessions/{recorded.pk}/")
    facts = dict(zip([dt.text for dt in root.find_all("dt")], [dd.text for dd in root.find_all("dd")], strict=True))

    assert facts["Rig"] == "bench" and facts["Status"] == "completed"
    assert facts["Verdict"] == "fail"  # fz reached the error band
    assert facts["Readings"] == str(Reading.objects.filter(session=recorded).count()) == "36"
    assert facts["Started"].startswith(recorded.started_at.strftime("%Y-%m-%d %H:%M:%S"))
    assert facts["Stopped"].startswith(recorded.stopped_at.strftime("%Y-%m-%d %H:%M:%S"))
    assert facts["Operator"] == "operator"  # the staff user who started it
    for sensor in ("fz", "temp"):
        values = [r.value for r in Reading.objects.filter(session=recorded, sensor__name=sensor)]
        times = sorted(r.timestamp for r in Reading.objects.filter(session=recorded, sensor__name=sensor))
        cells = stat_cells(root, sensor)
        assert int(cells["count"]) == len(values)
        assert float(cells["min"]) == pytest.approx(min(values))
        assert float(cells["max"]) == pytest.approx(max(values))
        assert float(cells["mean"]) == pytest.approx(fmean(values), abs=1e-4)
        assert cells["first"] == times[0].strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
        assert cells["last"] == times[-1].strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    # An object sensor: a row per numeric field, from the same readings.
    ft6 = [r.value for r in Reading.objects.filter(session=recorded, sensor__name="ft6")]
    for field in ("fx", "ty"):
        cells = stat_cells(root, "ft6", field)
        column = [v[field] for v in ft6]
        assert (int(cells["count"]), float(cells["min"]), float(cells["max"])) == (len(column), min(column), max(column))
        assert float(cells["mean"]) == pytest.approx(fmean(column), abs=1e-4)


def test_the_session_page_draws_a_chart_per_sensor_and_numeric_field_and_offers_the_downloads(client, recorded):
    root = page(client, f"/sessions/{recorded.pk}/")

    charts = {(f.attrs["data-sensor"], f.attrs["data-field"]) for f in root.find_all("figure")}
    assert charts == {("fz", ""), ("temp", ""), *(("ft6", f) for f in ("fx", "fy", "fz", "tx", "ty", "tz"))}
    links = {a.attrs["data-format"]: a.attrs["href"] for a in root.find_all("a", data_format=True)}
    assert links == {
        "csv": f"/api/v1/sessions/{recorded.pk}/export/csv",
        "csv-wide": f"/api/v1/sessions/{recorded.pk}/export/csv?layout=wide",
        "json": f"/api/v1/sessions/{recorded.pk}/export/json",
        "mcap": f"/api/v1/sessions/{recorded.pk}/export/mcap",
    }
    rules = [row.find("code").text for row in root.find("table", **{"class": "data review-rules"}).find_all("tr")[1:]]
    assert rules == [rule["code"] for rule in recorded.rules]


def test_the_alerts_list_every_result_and_an_operator_acknowledges_one(client, operator, recorded):
    results = ValidationResult.objects.filter(session=recorded)
    root = page(client, f"/sessions/{recorded.pk}/")
    rows = root.find_all("tr", data_result=True)
    assert {int(r.attrs["data-result"]) for r in rows} == set(results.values_list("pk", flat=True))
    assert len(rows) == recorded.alert_count > 0
    assert len(root.find_all("form", **{"class": "review-ack-form"})) == len(rows)

    target = results.first()
    response = client.post(f"/sessions/{recorded.pk}/alerts/{target.pk}/acknowledge/", {"comment": "known fixture"})

    assert response.status_code == 302 and response["Location"] == f"/sessions/{recorded.pk}/#alert-{target.pk}"
    target.refresh_from_db()
    assert target.acknowledged_by == operator and target.acknowledge_comment == "known fixture"
    row = page(client, f"/sessions/{recorded.pk}/").find("tr", id=f"alert-{target.pk}")
    assert row.find("strong", **{"class": "ack-who"}).text == "olga"
    assert row.find("q", **{"class": "ack-comment"}).text == "known fixture"
    when = row.find("time", **{"class": "ack-when"}).attrs["datetime"]
    assert when.startswith(target.acknowledged_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert row.find("form") is None


def test_a_second_acknowledgement_keeps_the_first(client, django_user_model, recorded):
    target = ValidationResult.objects.filter(session=recorded).first()
    client.post(f"/sessions/{recorded.pk}/alerts/{target.pk}/acknowledge/", {"comment": "first"})
    other = Client()
    other.force_login(user_in(django_user_model, "ann", "admin"))

    response = other.post(f"/sessions/{recorded.pk}/alerts/{target.pk}/acknowledge/", {"comment": "second"})

    assert response.status_code == 302
    target.refresh_from_db()
    assert (target.acknowledged_by.username, target.acknowledge_comment) == ("olga", "first")


def test_a_viewer_sees_no_acknowledge_controls_and_cannot_post_one(viewer_client, recorded):
    root = page(viewer_client, f"/sessions/{recorded.pk}/")
    target = ValidationResult.objects.filter(session=recorded).first()

    assert root.find_all("tr", data_result=True)
    assert root.find("form", **{"class": "review-ack-form"}) is None
    assert {b.text for b in root.find("main").find_all("button")} == {"Reset zoom", "Show on chart"}
    acks = {r.find("td", **{"class": "review-ack"}).text for r in root.find_all("tr", data_result=True)}
    assert acks == {"not acknowledged"}
    response = viewer_client.post(f"/sessions/{recorded.pk}/alerts/{target.pk}/acknowledge/", {"comment": "x"})
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.acknowledged_at is None


def test_acknowledging_a_result_of_another_session_is_a_404(client, recorded, bench):
    other = RecordingSession.objects.create(rig=Rig.objects.get(name="sim"), status="completed", started_at=DAY0)
    target = ValidationResult.objects.filter(session=recorded).first()

    assert client.post(f"/sessions/{other.pk}/alerts/{target.pk}/acknowledge/").status_code == 404
    target.refresh_from_db()
    assert target.acknowledged_at is None


def test_a_missing_session_is_a_404_page(client, recorded):
    response = client.get(f"/sessions/{recorded.pk + 1000}/")

    assert response.status_code == 404
    assert "text/html" in response["Content-Type"]
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page and 'href="/sessions/"' in page  # the site's page, with its navigation


def test_a_finished_session_without_frozen_statistics_gets_the_same_ones_from_its_rollups(recorded):
    from sessions.reads.pages import session_review
    from sessions.reads.stats import sensor_stats

    RecordingSession.objects.filter(pk=recorded.pk).update(summary_stats={})
    recorded.refresh_from_db()

    shown = {row["sensor"].name: row["stats"] for row in session_review(recorded)["stats"]}
    computed = sensor_stats(session_id=recorded.pk)
    assert shown.keys() == computed.keys() == {"fz", "temp", "ft6"}
    for name, stats in computed.items():
        assert shown[name] == pytest.approx(stats), name


def test_past_the_listed_alerts_the_page_says_where_the_rest_are_and_the_charts_mark_them_all(
    client, recorded, monkeypatch
):
    monkeypatch.setattr("sessions.reads.pages.ALERTS_SHOWN", 1)
    response = client.get(f"/sessions/{recorded.pk}/")
    root = Dom(response.content.decode()).root

    assert len(root.find_all("tr", data_result=True)) == 1
    assert root.find("h2", id="alerts-title").text == f"Alerts ({recorded.alert_count})"
    assert f"/api/v1/results/?session={recorded.pk}" in {a.attrs.get("href") for a in root.find_all("a")}
    assert len(response.context["review_config"]["episodes"]) == recorded.alert_count > 1


def test_identifiers_get_no_chart_unless_they_are_all_an_object_sensor_sends(client, start, ingest):
    bench_create("frames", [{"name": "cam", "sensor_type": "camera", "unit": ""},
                            {"name": "tick", "sensor_type": "counter", "unit": ""}])
    session_id = start("frames")["session_id"]
    batch = readings("cam", [{"image_id": i, "brightness": 100 + i} for i in range(3)]) + readings(
        "tick", [{"frame_id": i} for i in range(3)], t0=T0 + 0.05)
    assert ingest(session_id, batch).status_code in (200, 201)

    root = page(client, f"/sessions/{session_id}/")

    charts = [(f.attrs["data-sensor"], f.attrs["data-field"]) for f in root.find_all("figure")]
    assert charts == [("cam", "brightness"), ("tick", "frame_id")]
