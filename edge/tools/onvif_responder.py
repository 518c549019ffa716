"""A local ONVIF device for tests and the demo: a SOAP responder on 127.0.0.1 replaying recorded answers.

It answers GetCapabilities, GetDeviceInformation, GetSystemDateAndTime, GetProfiles and GetStreamUri,
checks WS-Security UsernameToken digests when a password is set, and records every operation it was
asked for. It never sends or listens for multicast (no WS-Discovery).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree as ET

from edge.tools import onvif_recorded as rec

LOOPBACK = "127.0.0.1"
_WSSE = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}"
_WSU = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}"
_PUBLIC = {"GetSystemDateAndTime"}  # ONVIF lets clients read the clock without credentials


@dataclass(frozen=True, slots=True)
class FakeProfile:
    """A media profile the responder advertises, and the RTSP URI it hands out for it."""

    token: str
    name: str
    rtsp_uri: str
    width: int = 640
    height: int = 360
    fps: int = 10


class OnvifResponder:
    """Serve recorded ONVIF responses on a loopback port until `stop()`."""

    def __init__(self, profiles: Sequence[FakeProfile], username: str = "", password: str = "", port: int = 0) -> None:
        if not profiles:
            raise ValueError("give at least one profile")
        self.profiles = list(profiles)
        self.username, self.password = username, password
        self.operations: list[str] = []
        self._server = ThreadingHTTPServer((LOOPBACK, port), self._handler_class())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="onvif-responder", daemon=True)

    @property
    def base(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> OnvifResponder:
        """Start answering in a background thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def respond(self, body: bytes) -> tuple[int, str]:
        """(HTTP status, SOAP XML) for one request body."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 400, self._fault("Sender", "InvalidArgVal", "malformed XML")
        soap_body = next((el for el in root if el.tag.endswith("}Body")), None)
        if soap_body is None or len(soap_body) == 0:
            return 400, self._fault("Sender", "InvalidArgVal", "no SOAP body")
        request = soap_body[0]
        operation = request.tag.rsplit("}", 1)[-1]
        self.operations.append(operation)
        if self.password and operation not in _PUBLIC and not self._authorised(root):
            return 400, self._fault("Sender", "NotAuthorized", "Sender not authorized")
        return self._answer(operation, request)

    def _answer(self, operation: str, request: ET.Element) -> tuple[int, str]:
        if operation == "GetCapabilities":
            return 200, rec.GET_CAPABILITIES.format(base=self.base)
        if operation == "GetDeviceInformation":
            return 200, rec.GET_DEVICE_INFORMATION
        if operation == "GetSystemDateAndTime":
            t = time.gmtime()
            return 200, rec.GET_SYSTEM_DATE_AND_TIME.format(
                hour=t.tm_hour, minute=t.tm_min, second=t.tm_sec, year=t.tm_year, month=t.tm_mon, day=t.tm_mday
            )
        if operation == "GetProfiles":
            body = "".join(
                rec.PROFILE.format(token=p.token, name=p.name, width=p.width, height=p.height, fps=p.fps)
                for p in self.profiles
            )
            return 200, rec.GET_PROFILES.format(profiles=body)
        if operation == "GetStreamUri":
            token = next((el.text for el in request.iter() if el.tag.endswith("}ProfileToken")), None)
            profile = next((p for p in self.profiles if p.token == token), None)
            if profile is None:
                return 400, self._fault("Sender", "NoProfile", f"no profile {token}")
            return 200, rec.GET_STREAM_URI.format(rtsp=_xml_escape(profile.rtsp_uri))
        return 400, self._fault("Receiver", "ActionNotSupported", f"{operation} is not supported")

    def _authorised(self, root: ET.Element) -> bool:
        """Check a WS-Security UsernameToken: PasswordDigest = base64(sha1(nonce + created + password))."""
        token = next(root.iter(f"{_WSSE}UsernameToken"), None)
        if token is None:
            return False
        user = token.findtext(f"{_WSSE}Username") or ""
        password = token.find(f"{_WSSE}Password")
        nonce_text = token.findtext(f"{_WSSE}Nonce") or ""
        created = token.findtext(f"{_WSU}Created") or ""
        if user != self.username or password is None or password.text is None:
            return False
        if (password.get("Type") or "").endswith("#PasswordText"):
            return password.text == self.password
        digest = hashlib.sha1(base64.b64decode(nonce_text) + created.encode() + self.password.encode()).digest()
        return base64.b64encode(digest).decode() == password.text

    @staticmethod
    def _fault(code: str, subcode: str, reason: str) -> str:
        return rec.FAULT.format(code=code, subcode=subcode, reason=reason)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            """Answers SOAP POSTs with the responder's recorded replies."""

            def do_POST(self) -> None:
                """One SOAP request -> one SOAP response."""
                length = int(self.headers.get("Content-Length") or 0)
                status, body = responder.respond(self.rfile.read(length))
                payload = rec.ENVELOPE.format(body=body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                """Keep test output quiet."""
                del format, args

        return Handler


def _xml_escape(text: str) -> str:
    return re.sub(r"[&<>]", lambda m: {"&": "&amp;", "<": "&lt;", ">": "&gt;"}[m.group(0)], text)
