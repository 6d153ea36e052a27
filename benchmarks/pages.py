"""The pages in headless Chromium: the live dashboard at 1 kHz, and a 1M-reading session's review page.

    .venv/bin/python benchmarks/pages.py live [--minutes 5] [--hz 1000] [--repeat 3]
    .venv/bin/python benchmarks/pages.py review [--repeat 5]   # needs benchmarks/read_dataset.py's database

`live`: `manage.py serve` as `make run` starts it (SQLite, in-memory layer, the engine in-process)
with the three simulated sensors at `--hz`. A session records; the dashboard is opened logged in.
Measured: from `goto` to the first readings frame on the page's WebSocket and the animation frame
after it (the first live point drawn); frames per second from requestAnimationFrame counts, per
second, over the whole run; the JS heap (CDP `Performance.getMetrics` after a forced GC) at minute 1
and at the end; the points each chart holds (`window.robotestDashboard.points()`).

`review`: daphne on the read dataset (PostgreSQL, 10M readings); `/sessions/<bench-1m>/` opened
logged in. Measured: from `goto` to every chart drawn (`window.robotestReview.ready`), and a
drag-zoom on the first chart: from the mouse-up to the redraw after the re-query answered, beside
the aggregated request's own time.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PASSWORD = "bench-pages-password"

# Counts animation frames per whole second of the page's clock.
FPS_PROBE = """
window.__fps = [];
(function tick(last, count) {
  requestAnimationFrame((now) => {
    if (Math.floor(now / 1000) !== Math.floor(last / 1000)) { window.__fps.push(count); count = 0; }
    tick(now, count + 1);
  });
})(performance.now(), 0);
"""


def manage(args: list[str], env: dict) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=_bench.ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def make_user(env: dict) -> str:
    """A superuser `bench` with PASSWORD; returns its DRF token."""
    code = (
        "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token; "
        "u, _ = User.objects.get_or_create(username='bench', defaults={'is_staff': True, 'is_superuser': True}); "
        f"u.set_password({PASSWORD!r}); u.is_staff = u.is_superuser = True; u.save(); "
        "print(Token.objects.get_or_create(user=u)[0].key)"
    )
    return manage(["shell", "-c", code], env).strip().splitlines()[-1]


def log_in(page, base: str, next_path: str) -> None:
    page.goto(f"{base}/login/?next={next_path}")
    page.fill("#id_username", "bench")
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}{next_path}")


def open_logged_in(playwright, base: str):
    """Chromium at 1280×800, logged in as `bench`: (browser, context, page, the page's console errors)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    # The page's CSP forbids eval, which Playwright's string predicates (wait_for_function) use.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    log_in(page, base, "/")
    return browser, context, page, errors


def task_seconds(cdp) -> float:
    """The renderer's main thread busy time so far (CDP `TaskDuration`, seconds)."""
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}["TaskDuration"]


def heap_mb(cdp) -> float:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics["JSHeapUsedSize"] / 1e6


def run_live(args) -> dict:
    import requests
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench_pages_"))
    env = _bench.bench_env(f"sqlite:///{work / 'db.sqlite3'}")
    env.update(FORCE_SENSOR_HZ=str(args.hz), MOTOR_SENSOR_HZ=str(args.hz), CAMERA_SENSOR_HZ=str(args.hz))
    env.pop("REDIS_URL")
    manage(["migrate", "--noinput", "-v", "0"], env)
    token = make_user(env)
    port = _bench.free_port()
    base = f"http://127.0.0.1:{port}"
    log = (work / "serve.log").open("w")
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=_bench.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _bench.wait_ready(base)
        headers = {"Authorization": f"Token {token}"}
        started = requests.post(f"{base}/api/v1/sessions/start", json={"name": "bench"}, headers=headers, timeout=10)
        started.raise_for_status()
        with sync_playwright() as playwright:
            browser, context, page, errors = open_logged_in(playwright, base)
            page.goto("about:blank")
            first: dict = {}

            def on_socket(ws):
                def frame(payload):
                    if "t" not in first and isinstance(payload, str) and '"sensor_data' in payload[:40]:
                        first["t"] = time.perf_counter()
                ws.on("framereceived", frame)

            page.on("websocket", on_socket)
            t0 = time.perf_counter()
            page.goto(f"{base}/")
            page.evaluate(FPS_PROBE)
            deadline = time.monotonic() + 30
            while "t" not in first and time.monotonic() < deadline:
                page.wait_for_timeout(5)
            if "t" not in first:
                raise SystemExit("no readings frame within 30 s")
            page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            drawn = time.perf_counter()
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable")
            samples = {}
            seconds = args.minutes * 60
            busy_before = task_seconds(cdp)
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                page.wait_for_timeout(1000)
                elapsed = time.monotonic() - start
                if "heap_1min" not in samples and elapsed >= 60:
                    samples["heap_1min"] = heap_mb(cdp)
            samples["busy"] = (task_seconds(cdp) - busy_before) / (time.monotonic() - start)
            samples["heap_end"] = heap_mb(cdp)
            fps = page.evaluate("window.__fps")
            points = page.evaluate("window.robotestDashboard && window.robotestDashboard.points ? "
                                   "window.robotestDashboard.points() : null")
            browser.close()
        requests.post(f"{base}/api/v1/sessions/stop", json={}, headers=headers, timeout=30)
    finally:
        _bench.stop_server(server)
    steady = fps[2:] or fps
    return {
        "first_frame_ms": round((first["t"] - t0) * 1000, 1),
        "first_point_drawn_ms": round((drawn - t0) * 1000, 1),
        "fps_median": statistics.median(steady), "fps_p5": sorted(steady)[max(0, len(steady) // 20 - 1)],
        "fps_min": min(steady), "seconds": len(fps), "main_thread_busy_pct": round(100 * samples["busy"], 1),
        "heap_1min_mb": round(samples.get("heap_1min", float("nan")), 2), "heap_end_mb": round(samples["heap_end"], 2),
        "points_per_chart": points, "console_errors": errors[:5],
    }


def run_review(args) -> dict:
    """The 1M-reading session's page on the read dataset: goto → every chart drawn, and a drag-zoom's redraw."""
    import requests
    from playwright.sync_api import sync_playwright
    from read_dataset import DEFAULT_URL, ensure_dataset

    session_id = ensure_dataset(DEFAULT_URL)["bench-1m"]
    env = _bench.bench_env(DEFAULT_URL)
    make_user(env)
    port = _bench.free_port()
    base = f"http://127.0.0.1:{port}"
    server, _log = _bench.start_daphne(DEFAULT_URL, port)
    runs = []
    try:
        _bench.wait_ready(base)
        requests.get(f"{base}/health", timeout=10)
        with sync_playwright() as playwright:
            browser, _, page, errors = open_logged_in(playwright, base)
            path = f"/sessions/{session_id}/"
            for _ in range(args.repeat):
                page.goto("about:blank")
                t0 = time.perf_counter()
                page.goto(f"{base}{path}")
                page.wait_for_function("window.robotestReview && window.robotestReview.ready === true", timeout=30_000,
                                       polling=5)
                drawn_ms = (time.perf_counter() - t0) * 1000
                # Drag across the middle fifth of the first chart's plot area; the page re-queries that range.
                box = page.locator(".u-over").first.bounding_box()
                y = box["y"] + box["height"] / 2
                page.evaluate("window.__mouseup = null; document.addEventListener('mouseup', "
                              "() => { window.__mouseup = performance.now(); }, {capture: true, once: true})")
                page.mouse.move(box["x"] + box["width"] * 0.4, y)
                page.mouse.down()
                page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
                page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
                page.mouse.up()
                page.wait_for_function("window.__mouseup && window.robotestReview.lastZoom && "
                                       "window.robotestReview.lastZoom.drawn_at > window.__mouseup", timeout=30_000,
                                       polling=5)
                zoom = page.evaluate("({...window.robotestReview.lastZoom, mouseup: window.__mouseup})")
                runs.append({"charts_drawn_ms": round(drawn_ms, 1),
                             "zoom_redraw_ms": round(zoom["drawn_at"] - zoom["mouseup"], 1),
                             "zoom": {k: v for k, v in zoom.items() if k not in ("drawn_at", "mouseup", "requested_at")}})
            browser.close()
    finally:
        _bench.stop_server(server)
    return {"runs": runs, "console_errors": errors[:5]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["live", "review"])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--hz", type=float, default=1000.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    print(json.dumps(_bench.machine()))
    if args.mode == "review":
        result = run_review(args)
        print(json.dumps(result, indent=1))
        for key in ("charts_drawn_ms", "zoom_redraw_ms"):
            values = [r[key] for r in result["runs"]]
            print(f"{key}: median {statistics.median(values)} of {values}")
        _bench.save_json(args.json, _bench.machine(), args, [result])
        return
    results = []
    for i in range(args.repeat):
        result = run_live(args)
        results.append(result)
        print(f"run {i + 1}: {json.dumps(result)}", flush=True)
    for key in ("first_point_drawn_ms", "fps_median", "fps_min", "main_thread_busy_pct", "heap_1min_mb", "heap_end_mb"):
        values = [r[key] for r in results]
        print(f"{key}: median {statistics.median(values)} of {values}")
    _bench.save_json(args.json, _bench.machine(), args, results)


if __name__ == "__main__":
    main()
