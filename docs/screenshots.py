"""Refresh the README's screenshots (docs/img/) from a real server and Debian's Chromium.

    .venv/bin/python docs/screenshots.py [--out docs/img]

Starts `manage.py serve` as `make run` does (SQLite in a temporary folder, the engine in-process),
records a session on the simulated rig long enough for the seed's force spikes to raise alerts,
and photographs, at 1280×800: the live dashboard with an alert, the sessions list, and the
session's review page; plus the dashboard in dark mode and at phone size (390×844).
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import _bench  # noqa: E402 (the benchmarks' server helpers)
from pages import ARGS, CHROMIUM, log_in, make_user, manage  # noqa: E402


# The top of a long page (the alerts lists run on): the header, the controls, the charts, the first alerts.
TOP = {"x": 0, "y": 0, "width": 1280, "height": 1700}


def wait_for(page, expression: str, timeout_ms: int = 20_000) -> None:
    page.wait_for_function(expression, timeout=timeout_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import requests
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="screenshots_"))
    env = _bench.bench_env(f"sqlite:///{work / 'db.sqlite3'}")
    env.pop("REDIS_URL")
    env.update(FORCE_SENSOR_HZ="100", MOTOR_SENSOR_HZ="50", CAMERA_SENSOR_HZ="10")
    manage(["migrate", "--noinput", "-v", "0"], env)
    token = make_user(env)
    port = _bench.free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=(work / "serve.log").open("w"), stderr=subprocess.STDOUT)
    headers = {"Authorization": f"Token {token}"}
    try:
        _bench.wait_ready(base)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)  # Playwright's string predicates eval
            log_in(page, base, "/")
            started = requests.post(f"{base}/api/v1/sessions/start", json={"name": "Gripper endurance #12",
                                    "description": "500 grip cycles at nominal load"}, headers=headers, timeout=10)
            started.raise_for_status()
            session_id = started.json()["session_id"]
            page.reload()
            wait_for(page, "document.querySelectorAll('#alerts tr').length > 0", 60_000)
            time.sleep(8)  # a window's worth of points
            page.screenshot(path=str(out / "dashboard.png"), full_page=True, clip=TOP)

            dark = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark", bypass_csp=True)
            dark_page = dark.new_page()
            log_in(dark_page, base, "/")
            time.sleep(6)
            dark_page.screenshot(path=str(out / "dashboard-dark.png"))
            phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                        bypass_csp=True)
            phone_page = phone.new_page()
            log_in(phone_page, base, "/")
            time.sleep(6)
            phone_page.screenshot(path=str(out / "dashboard-phone.png"))

            requests.post(f"{base}/api/v1/sessions/stop", json={}, headers=headers, timeout=30).raise_for_status()
            page.goto(f"{base}/sessions/")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "sessions.png"))
            page.goto(f"{base}/sessions/{session_id}/")
            wait_for(page, "window.robotestReview && window.robotestReview.ready === true")
            page.screenshot(path=str(out / "session.png"), full_page=True, clip=TOP)
            browser.close()
    finally:
        _bench.stop_server(server)
    for name in ("dashboard", "dashboard-dark", "dashboard-phone", "sessions", "session"):
        print(out / f"{name}.png")


if __name__ == "__main__":
    main()
