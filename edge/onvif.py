"""ONVIF adapter (onvif-zeep): device information, media profiles and RTSP stream URIs, over unicast HTTP.

There is no WS-Discovery here: no multicast probe is ever sent. A device is reached at the address
the config gives; `probe_device` is the "discovery" we offer, a unicast call to that one address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from detectors.core import Frame
from edge.capture import CaptureError, OpenCvSource
from edge.config_camera import OnvifConfig

log = logging.getLogger(__name__)


class OnvifError(CaptureError):
    """The ONVIF device could not be reached or did not give a usable stream URI."""


@dataclass(frozen=True, slots=True)
class OnvifProfile:
    """A media profile and its RTSP URI."""

    token: str
    name: str
    uri: str


@dataclass(frozen=True, slots=True)
class OnvifDevice:
    """What a device says about itself."""

    manufacturer: str
    model: str
    firmware: str
    serial: str
    profiles: tuple[OnvifProfile, ...]


def _camera(config: OnvifConfig) -> Any:
    """Connect the onvif-zeep client (GetCapabilities happens here); errors become OnvifError."""
    try:
        from onvif import ONVIFCamera
        from zeep.transports import Transport
    except ImportError as exc:  # onvif-zeep is a core dependency, but keep the message readable
        raise OnvifError(f"onvif-zeep is not installed: {exc}") from None
    transport_cls: Any = Transport  # zeep is untyped
    kwargs: dict[str, Any] = {
        "transport": transport_cls(timeout=config.timeout_s, operation_timeout=config.timeout_s),
        "adjust_time": config.adjust_time,
    }
    if config.wsdl_dir:
        kwargs["wsdl_dir"] = config.wsdl_dir
    try:
        return ONVIFCamera(config.host, config.port, config.username, config.password.get_secret_value(), **kwargs)
    except Exception as exc:  # zeep/requests raise many types; all mean "device unusable now"
        raise OnvifError(f"ONVIF device {config.host}:{config.port} unreachable: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _stream_uri(media: Any, token: str) -> str:
    request = media.create_type("GetStreamUri")
    request.ProfileToken = token
    request.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    return str(media.GetStreamUri(request).Uri)


def _pick(profiles: list[Any], wanted: str | int | None) -> Any:
    if not profiles:
        raise OnvifError("the device has no media profiles")
    if wanted is None:
        return profiles[0]
    if isinstance(wanted, int):
        if not 0 <= wanted < len(profiles):
            raise OnvifError(f"profile index {wanted} out of range (the device has {len(profiles)})")
        return profiles[wanted]
    for profile in profiles:
        if wanted in (str(profile.token), str(getattr(profile, "Name", ""))):
            return profile
    names = ", ".join(f"{p.token} ({getattr(p, 'Name', '')})" for p in profiles)
    raise OnvifError(f"no profile {wanted!r} on the device (it has {names})")


def resolve_stream_uri(config: OnvifConfig) -> str:
    """The RTSP URI of the configured profile, with credentials added when the config says so."""
    camera = _camera(config)
    try:
        media = camera.create_media_service()
        profile = _pick(list(media.GetProfiles()), config.profile)
        uri = _stream_uri(media, str(profile.token))
    except OnvifError:
        raise
    except Exception as exc:
        raise OnvifError(f"ONVIF media service of {config.host}:{config.port} failed: {_short(exc)}") from None
    if config.inject_credentials and config.username:
        uri = with_credentials(uri, config.username, config.password.get_secret_value())
    return uri


def with_credentials(uri: str, username: str, password: str) -> str:
    """`rtsp://host/...` -> `rtsp://user:pass@host/...` (URL-quoted); existing credentials are kept."""
    parts = urlsplit(uri)
    if parts.username or not parts.hostname:
        return uri
    auth = quote(username, safe="") + (f":{quote(password, safe='')}" if password else "")
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


def probe_device(config: OnvifConfig) -> OnvifDevice:
    """Unicast probe of one device: its identity and every profile's stream URI."""
    camera = _camera(config)
    try:
        info = camera.devicemgmt.GetDeviceInformation()
        media = camera.create_media_service()
        profiles = tuple(
            OnvifProfile(str(p.token), str(getattr(p, "Name", "")), _stream_uri(media, str(p.token)))
            for p in media.GetProfiles()
        )
    except Exception as exc:
        raise OnvifError(f"ONVIF probe of {config.host}:{config.port} failed: {_short(exc)}") from None
    return OnvifDevice(
        str(info.Manufacturer), str(info.Model), str(info.FirmwareVersion), str(info.SerialNumber), profiles
    )


class OnvifSource:
    """A FrameSource that asks the ONVIF device for its stream URI at every (re)connect, then reads it."""

    def __init__(self, config: OnvifConfig, open_timeout_s: float, read_timeout_s: float, camera_id: str) -> None:
        self.config = config
        self.description = f"onvif://{config.host}:{config.port} ({camera_id})"
        self._timeouts = (open_timeout_s, read_timeout_s)
        self._inner: OpenCvSource | None = None
        self.resolved_uri: str | None = None
        self.ended = False  # a camera stream never ends for good

    def open(self) -> None:
        """Resolve the URI, then open the RTSP stream."""
        uri = resolve_stream_uri(self.config)
        self.resolved_uri = uri
        inner = OpenCvSource(uri, open_timeout_s=self._timeouts[0], read_timeout_s=self._timeouts[1])
        inner.open()
        self._inner = inner
        log.info("%s resolved to %s", self.description, inner.description)

    def grab(self) -> bool:
        """Next frame of the resolved stream."""
        return self._inner.grab() if self._inner is not None else False

    def retrieve(self) -> Frame | None:
        """The grabbed frame as BGR."""
        return self._inner.retrieve() if self._inner is not None else None

    def close(self) -> None:
        """Release the stream."""
        if self._inner is not None:
            self._inner.close()
            self._inner = None
