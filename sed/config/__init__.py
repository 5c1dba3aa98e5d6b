"""Configuration: TOML files validated by pydantic models, with environment overrides.

Three kinds of file, told apart by their top-level section:

- ``[sensor]`` … a pole sensor (:class:`SensorConfig`), run by ``sed sensor``;
- ``[fusion]`` / ``[api]`` … the operations-centre server (:class:`ServerConfig`);
- ``[scene]`` … a simulated city block (:class:`SceneConfig`), a capture source.

Every model forbids unknown keys, so a typo is an error. Errors name the file, the key
path, the value and what was expected::

    ConfigError: deploy/pole.toml: capture.sample_rate_hz = 44100; expected one of 8000 … 96000

Environment variables ``SED__<SECTION>__<KEY>=value`` override file values (the value is
parsed as a TOML literal when it is one, else taken as a string), e.g.
``SED__API__PORT=8080``. Relative paths are resolved against the file's directory.
"""

from sed.config.base import ConfigPath, PositionConfig, Section
from sed.config.loader import ENV_PREFIX, load_config, parse_config
from sed.config.policy import ClassPolicy, PolicySection
from sed.config.scene import (
    SceneConfig,
    SceneEvent,
    SceneReflector,
    SceneSection,
    SceneSensor,
)
from sed.config.sensor import (
    SUPPORTED_SAMPLE_RATES_HZ,
    CaptureSection,
    ClockSection,
    DetectorSection,
    EvidenceSection,
    SensorConfig,
    SensorSection,
    StreamSection,
    TransportSection,
)
from sed.config.server import (
    MIN_SECRET_CHARS,
    PLACEHOLDER_SECRETS,
    ApiSection,
    FusionSection,
    ServerConfig,
    SiteSection,
    StoreSection,
)

__all__ = [
    "ENV_PREFIX",
    "MIN_SECRET_CHARS",
    "PLACEHOLDER_SECRETS",
    "SUPPORTED_SAMPLE_RATES_HZ",
    "ApiSection",
    "CaptureSection",
    "ClassPolicy",
    "ClockSection",
    "ConfigPath",
    "DetectorSection",
    "EvidenceSection",
    "FusionSection",
    "PolicySection",
    "PositionConfig",
    "SceneConfig",
    "SceneEvent",
    "SceneReflector",
    "SceneSection",
    "SceneSensor",
    "Section",
    "SensorConfig",
    "SensorSection",
    "ServerConfig",
    "SiteSection",
    "StoreSection",
    "StreamSection",
    "TransportSection",
    "load_config",
    "parse_config",
]
