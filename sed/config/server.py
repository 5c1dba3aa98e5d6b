"""Sections of the operations-centre server's file (``[site]``, ``[fusion]``, ``[api]``, ``[store]``):
``sed fusion``, ``sed api``, ``sed server``."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from sed.config.base import ConfigPath, Section, require_exists
from sed.wire import DEFAULT_FUSION_ENDPOINT


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


class FusionSection(Section):
    bind_endpoint: str = Field(DEFAULT_FUSION_ENDPOINT, description="ZeroMQ endpoint to bind (ROUTER).")
    secret_key_file: ConfigPath = Field(description="The fusion node's CURVE key pair ('.key_secret').")
    authorized_keys_dir: ConfigPath = Field(description="Directory of sensors' public keys ('*.key').")
    min_sensors: int = Field(3, ge=3, le=64, description="Sensors needed to locate an incident.")
    association_wait_s: float = Field(
        1.5, gt=0, le=30, description="Wait after the first detection of a group for more, s."
    )
    incident_merge_s: float = Field(
        10.0, ge=0, le=600, description="Shots of one class this close in time and space join one incident, s."
    )
    incident_merge_m: float = Field(50.0, ge=0, le=5000, description="… and this close in space, m.")
    max_timing_error_ms: float = Field(5.0, gt=0, le=100, description="Worst plausible arrival error, ms.")


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


class ServerConfig(Section):
    """The operations-centre server: ``sed fusion``, ``sed api``, ``sed server``."""

    site: SiteSection = SiteSection()
    fusion: FusionSection
    api: ApiSection = ApiSection()
    store: StoreSection = StoreSection()

    def check(self, source: str) -> None:
        require_exists(source, "fusion.secret_key_file", self.fusion.secret_key_file)
        require_exists(source, "fusion.authorized_keys_dir", self.fusion.authorized_keys_dir)
