"""Sections of the operations-centre server's file (``[site]``, ``[fusion]``, ``[api]``, ``[store]``, ``[coverage]``):
``sed fusion``, ``sed api``, ``sed server``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from sed.config.base import BindEndpoint, ConfigPath, Section, require_dir, require_exists
from sed.config.policy import PolicySection
from sed.errors import ConfigError
from sed.wire import DEFAULT_FUSION_ENDPOINT, MAX_HORIZONTAL_M

#: Default of ``site.radius_m``: a city, m.
DEFAULT_SITE_RADIUS_M = 20_000.0
#: Default of ``fusion.max_streams_per_sensor`` (as many as ``capture.channels`` may list).
DEFAULT_MAX_STREAMS_PER_SENSOR = 64


class SiteSection(Section):
    origin_lat_deg: float | None = Field(None, ge=-90, le=90, description="Latitude of the local origin.")
    origin_lon_deg: float | None = Field(None, ge=-180, le=180, description="Longitude of the local origin.")
    temperature_c: float = Field(15.0, ge=-50, le=60, description="Air temperature for the speed of sound.")
    name: str = Field("sed", max_length=80, description="Site name shown on the dashboard.")
    tile_url: str | None = Field(
        None,
        pattern=r"^https?://.*\{z\}.*\{x\}.*\{y\}.*$",
        description="Slippy-map tile server, e.g. 'https://tiles.city.example/{z}/{x}/{y}.png' (needs the "
        "geodetic origin); None draws local coordinates on a plain background.",
    )
    tile_attribution: str = Field("", max_length=200, description="Attribution text the tile server requires.")
    radius_m: float = Field(
        DEFAULT_SITE_RADIUS_M,
        gt=0,
        le=MAX_HORIZONTAL_M,
        description="Positions (sensors', in detections and heartbeats) farther than this from the site origin, "
        "horizontally, are rejected as misconfigured (e.g. a map northing typed as local metres), m.",
    )


class FusionSection(Section):
    bind_endpoint: BindEndpoint = Field(DEFAULT_FUSION_ENDPOINT, description="ZeroMQ endpoint to bind (ROUTER).")
    secret_key_file: ConfigPath = Field(description="The fusion node's CURVE key pair ('.key_secret').")
    authorized_keys_dir: ConfigPath = Field(description="Directory of sensors' public keys ('*.key').")
    min_sensors: int = Field(3, ge=3, le=64, description="Sensors needed to locate an incident.")
    association_wait_s: float = Field(
        1.5,
        gt=0,
        le=30,
        description="Spread of detection latencies across poles: a detection waits this long, plus the sound's "
        "travel time to the farthest pole that could have heard it too, for its peers, s.",
    )
    association: Literal["neighbourhood", "likelihood"] = Field(
        "neighbourhood",
        description="How a detection whose wait is over is grouped with its neighbours' detections: "
        "'neighbourhood' (consensus of exact three-pole solutions, for city grids where each sound reaches many "
        "poles) or 'likelihood' (scores every combination with each onset's directness and the silent poles; for "
        "sparse arrays where a sound reaches a handful).",
    )
    hearing_range_m: float = Field(
        1000.0,
        gt=0,
        le=10_000,
        description="Farthest distance at which a pole detects a sound of interest, m (the coverage plan's "
        "gunshot range is a good value): association looks only at poles within twice this of each other.",
    )
    min_participation: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Of the poles heard recently that stand nearer to a located sound than its farthest member, "
        "at least this fraction must have detected it (chance alignments of unrelated detections fail it).",
    )
    resume_lookback_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="On start, stored detections and open incidents this recent are taken back into association, s.",
    )
    incident_merge_s: float = Field(
        10.0, ge=0, le=600, description="Shots of one class this close in time and space join one incident, s."
    )
    incident_merge_m: float = Field(50.0, ge=0, le=5000, description="… and this close in space, m.")
    max_timing_error_ms: float = Field(5.0, gt=0, le=100, description="Worst plausible arrival error, ms.")
    max_streams_per_sensor: int = Field(
        DEFAULT_MAX_STREAMS_PER_SENSOR,
        ge=1,
        le=1024,
        description="Distinct stream ids ('<sensor id>.<suffix>') one sensor key may speak for; messages for "
        "more are rejected.",
    )
    position_max_age_s: float = Field(
        600.0,
        gt=0,
        le=86400,
        description="A sensor's position bounds the wait for peers only this long after it was last heard "
        "(detection or heartbeat), s; a pole taken down or once misplaced stops delaying lone alerts.",
    )
    policy: PolicySection = Field(
        PolicySection(), description="Which incidents alert operators, per class ([fusion.policy.<class>])."
    )


#: Secrets that are examples, not secrets: refused at load time.
PLACEHOLDER_SECRETS = frozenset({"changethis", "changeme", "change-me", "secret", "password", "example", "xxx"})


def _refuse_placeholder(value: str | None) -> str | None:
    if value is not None and (value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_CHARS):
        raise ValueError(f"a placeholder or short secret; set a random one of at least {MIN_SECRET_CHARS} characters")
    return value


#: Shortest accepted secret (webhook signing keys), characters.
MIN_SECRET_CHARS = 16
Secret = Annotated[str, AfterValidator(_refuse_placeholder)]


class ApiSection(Section):
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port).")
    sensor_stale_s: float = Field(30.0, gt=0, le=86400, description="No message for this long: sensor stale, s.")
    silent_below_dbfs: float = Field(-90.0, ge=-200, le=0, description="Input RMS below this: microphone silent.")
    clipping_above: float = Field(0.01, ge=0, le=1, description="Clipped-sample fraction above this: clipping.")
    token_ttl_s: float = Field(
        12 * 3600, gt=0, le=365 * 86400, description="Lifetime of a login token (one operator shift), s."
    )
    incident_feed_endpoint: str | None = Field(
        None,
        description="ZeroMQ PUB endpoint the fusion node binds to announce committed incidents; a separate "
        "'sed api' subscribes to it for live push. None: in-process only ('sed server').",
    )
    webhook_secret: Secret | None = Field(
        None, description="Default HMAC-SHA256 key for webhook rules that carry none of their own."
    )
    webhook_timeout_s: float = Field(5.0, gt=0, le=60, description="One webhook POST may take this long, s.")
    webhook_max_attempts: int = Field(5, ge=1, le=20, description="Deliveries tried this often before giving up.")
    webhook_retry_initial_s: float = Field(1.0, gt=0, le=600, description="First retry delay, doubled per try, s.")
    live_keepalive_s: float = Field(15.0, gt=0, le=300, description="Comment line on idle live streams, s.")
    max_body_bytes: int = Field(
        1 << 20, ge=1024, le=1 << 30, description="Largest request body of a signed-in client, bytes (else 413)."
    )
    max_anonymous_body_bytes: int = Field(
        16 << 10,
        ge=256,
        le=1 << 20,
        description="Largest request body without a token (the login), bytes (else 413).",
    )
    login_max_failures: int = Field(
        5, ge=1, le=1000, description="Failed logins per user, and per address, allowed in the window (else 429)."
    )
    login_window_s: float = Field(60.0, gt=0, le=86400, description="Sliding window of the login throttle, s.")


def _refuse_placeholder_password(url: str) -> str:
    """A database URL whose password is a placeholder (``postgresql://sed:changethis@db/sed``) is refused."""
    scheme, _, rest = url.partition("://")
    credentials, at, _ = rest.rpartition("@")
    password = credentials.partition(":")[2] if at else ""
    if password and password.lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"password {password!r} is a placeholder; set a real one (e.g. SED__STORE__URL)")
    if scheme.split("+")[0] not in {"sqlite", "postgresql"}:
        raise ValueError(f"database {scheme!r}; expected sqlite:/// or postgresql+psycopg://")
    return url


class StoreSection(Section):
    url: Annotated[str, AfterValidator(_refuse_placeholder_password)] = Field(
        "sqlite:///sed.sqlite", description="SQLAlchemy database URL (sqlite or postgresql+psycopg)."
    )
    clip_retention_days: float = Field(
        30.0, gt=0, le=3650, description="Evidence clips older than this are deleted by the server, days."
    )
    retention_check_interval_s: float = Field(
        3600.0, gt=0, le=86400, description="How often the server deletes expired clips, s."
    )


#: Default of ``coverage.max_plan_bytes``: a 2 km x 2 km district at 10 m cells, three classes.
DEFAULT_MAX_PLAN_BYTES = 64 << 20


class CoverageSection(Section):
    plan_dir: ConfigPath | None = Field(
        None,
        description="Folder of coverage plans ('sedcity coverage plan ... --out <plan_dir>/<name>'); the dashboard's "
        "coverage layer shows the newest coverage.geojson in it or in a folder one level below. None: no layer.",
    )
    max_plan_bytes: int = Field(
        DEFAULT_MAX_PLAN_BYTES,
        ge=1024,
        le=1 << 30,
        description="Largest coverage.geojson the API serves, bytes (a larger plan is refused: plan with coarser "
        "cells or a smaller area for the dashboard).",
    )


class ServerConfig(Section):
    """The operations-centre server: ``sed fusion``, ``sed api``, ``sed server``."""

    site: SiteSection = SiteSection()
    fusion: FusionSection
    api: ApiSection = ApiSection()
    store: StoreSection = StoreSection()
    coverage: CoverageSection = CoverageSection()

    def check(self, source: str) -> None:
        require_exists(source, "fusion.secret_key_file", self.fusion.secret_key_file)
        require_dir(source, "fusion.authorized_keys_dir", self.fusion.authorized_keys_dir)
        _check_sqlite_folder(source, self.store.url)
        if self.coverage.plan_dir is not None:
            require_dir(source, "coverage.plan_dir", self.coverage.plan_dir)


def _check_sqlite_folder(source: str, url: str) -> None:
    """A SQLite file can be created only in a folder that exists (relative paths: the working folder)."""
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0] != "sqlite":
        return
    # SQLAlchemy's form: sqlite:///relative.db, sqlite:////absolute.db, sqlite:// (in memory), then ?options.
    database = rest.removeprefix("/").partition("?")[0]
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    folder = Path(database).parent
    if not folder.is_dir():
        # The URL holds no password for SQLite, so it may be shown.
        raise ConfigError(f"{source}: store.url = {url!r}; folder '{folder}' does not exist")
