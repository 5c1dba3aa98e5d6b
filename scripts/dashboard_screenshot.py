"""Render docs/dashboard.png: the dashboard (1920x1080 by default) with a few live incidents.

    .venv/bin/python scripts/dashboard_screenshot.py [--out docs/dashboard.png] [--size 1600x1000]

Starts a real server (fusion + API, temporary SQLite), six simulated poles over CURVE,
sends a handful of sounds, reviews two of them, opens one with its clip, and screenshots
the page in headless /usr/bin/chromium. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from sed import wire
from sed.api.auth import hash_password
from sed.api.simulate import SimulatedSensors
from sed.config import ServerConfig, parse_config
from sed.keys import NetworkKeys
from sed.server import Server
from sed.store import ReviewAction, Role

POLES = {
    "pole-01": (0.0, 0.0, 6.0),
    "pole-02": (110.0, -8.0, 6.0),
    "pole-03": (220.0, 0.0, 6.0),
    "pole-04": (225.0, 170.0, 6.0),
    "pole-05": (105.0, 178.0, 6.0),
    "pole-06": (-5.0, 165.0, 6.0),
}
SOUNDS = [
    (wire.Label.GLASS_BREAK, (150.0, 120.0, 1.5)),
    (wire.Label.SCREAM, (40.0, 140.0, 1.5)),
    (wire.Label.GUNSHOT, (185.0, 40.0, 1.5)),
    (wire.Label.GUNSHOT, (60.0, 50.0, 1.5)),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    parser.add_argument("--size", default="1920x1080", help="viewport WIDTHxHEIGHT in CSS pixels")
    args = parser.parse_args()
    width, _, height = args.size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        parser.error(f"--size {args.size!r}; expected WIDTHxHEIGHT, e.g. 1600x1000")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        keys = NetworkKeys.create(workdir, list(POLES))
        config = parse_config(
            {
                "site": {
                    "name": "Plzeň · Jižní Předměstí (simulated)",
                    "origin_lat_deg": 49.7384,
                    "origin_lon_deg": 13.3736,
                },
                "fusion": {
                    "bind_endpoint": "tcp://127.0.0.1:0",
                    "secret_key_file": str(keys.fusion_secret_key_file),
                    "authorized_keys_dir": str(keys.authorized_keys_dir),
                    "association_wait_s": 0.5,
                },
                "api": {"host": "127.0.0.1", "port": 0},
                "store": {"url": f"sqlite:///{workdir / 'sed.sqlite'}"},
            },
            ServerConfig,
        )
        server = Server(config)
        server.start()
        store = server.store
        store.accounts.add_user(
            "dispatcher", password_hash=hash_password("screenshot only"), role=Role.OPERATOR, now_ns=0
        )
        sensors = SimulatedSensors(
            server.fusion_endpoint, keys, POLES, workdir, temperature_c=config.site.temperature_c
        )
        time.sleep(1.5)  # first heartbeats: the poles appear on the map
        store.describe_sensor("pole-01", "Klatovská × U Trati, SW corner")
        store.describe_sensor("pole-04", "Park Homolka, lamp 12")
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
                page = browser.new_page(viewport={"width": int(width), "height": int(height)})
                page.goto(server.api_url)
                page.fill("#login-user", "dispatcher")
                page.fill("#login-password", "screenshot only")
                page.click("#login-submit")
                page.wait_for_selector("#live-state.on")
                for n, (label, source) in enumerate(SOUNDS):
                    sensors.emit(
                        label,
                        source,
                        emission_ns=time.time_ns() - 700_000_000,
                        score=0.82 + 0.04 * n,
                        timing_error_ns=3_000_000,
                    )
                    page.wait_for_function(f"() => document.querySelectorAll('#incident-list li').length >= {n + 1}")
                ids = [i.incident_id for i in store.list_incidents()]
                store.review_incident(
                    ids[-1],
                    username="dispatcher",
                    action=ReviewAction.FALSE_ALARM,
                    text="bus door",
                    at_ns=time.time_ns(),
                )
                store.review_incident(
                    ids[-2], username="dispatcher", action=ReviewAction.ACKNOWLEDGE, text=None, at_ns=time.time_ns()
                )
                page.select_option("#filter-status", "all")
                page.reload()
                page.wait_for_selector("#live-state.on")
                page.click(f"#incident-list li[data-id='{ids[0]}']")
                page.click("#detail-detections button.play:not([disabled])")
                page.wait_for_function("() => document.getElementById('clip-spectrogram').naturalWidth > 0")
                page.select_option("#filter-status", "all")
                sensors.emit(
                    wire.Label.GUNSHOT,
                    (190.0, 150.0, 1.5),
                    emission_ns=time.time_ns() - 700_000_000,
                    score=0.95,
                    timing_error_ns=3_000_000,
                )
                page.wait_for_selector("#incident-list li.fresh")
                time.sleep(0.5)  # mid-flash: the new incident is highlighted
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            sensors.close()
            server.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
