"""Chinese licence plates: mainland format validation, best read across frames, readers, an off-hot-path worker.

Formats (GA 36-2018 and later amendments): province abbreviation + issuing-authority letter + serial.
Serial letters exclude I and O. Ordinary plates have 5 serial characters; new-energy plates 6 (small
vehicles: D/F family letter first, large vehicles: D/F family letter last); special plates end with
警 (police), 学 (driving school), 挂 (trailer), 试/超 (test / oversize), 领 (consulate), or 港/澳
(Guangdong Z cross-border); embassy plates carry 使.
"""

from __future__ import annotations

import itertools
import logging
import queue
import re
import threading
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from detectors.core import Frame

log = logging.getLogger(__name__)

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_LETTER = "A-HJ-NP-Z"  # A-Z without I and O
_ALNUM = f"{_LETTER}0-9"
_NEV = "A-HJK"  # new-energy family letters: A-E pure electric, F-K other (D and F historically)
_P = f"[{PROVINCES}]"


class PlateKind(StrEnum):
    """Which mainland plate format a text matches."""

    ORDINARY = "ordinary"
    NEW_ENERGY_SMALL = "new_energy_small"
    NEW_ENERGY_LARGE = "new_energy_large"
    POLICE = "police"
    COACH = "coach"
    TRAILER = "trailer"
    TEST = "test"
    CONSULATE = "consulate"
    HK_MACAU = "hk_macau"
    EMBASSY = "embassy"


_PATTERNS: tuple[tuple[PlateKind, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        (PlateKind.NEW_ENERGY_SMALL, f"^{_P}[{_LETTER}][{_NEV}][{_ALNUM}][0-9]{{4}}$"),
        (PlateKind.NEW_ENERGY_LARGE, f"^{_P}[{_LETTER}][0-9]{{5}}[{_NEV}]$"),
        (PlateKind.ORDINARY, f"^{_P}[{_LETTER}][{_ALNUM}]{{5}}$"),
        (PlateKind.POLICE, f"^{_P}[{_LETTER}][{_ALNUM}]{{4}}警$"),
        (PlateKind.COACH, f"^{_P}[{_LETTER}][{_ALNUM}]{{4}}学$"),
        (PlateKind.TRAILER, f"^{_P}[{_LETTER}][{_ALNUM}]{{4}}挂$"),
        (PlateKind.TEST, f"^{_P}[{_LETTER}][{_ALNUM}]{{4}}[试超]$"),
        (PlateKind.CONSULATE, f"^{_P}[{_LETTER}][0-9]{{4}}领$"),
        (PlateKind.HK_MACAU, f"^粤Z[{_ALNUM}]{{4}}[港澳]$"),
        (PlateKind.EMBASSY, "^(使[0-9]{6}|[0-9]{6}使)$"),
    )
)
_SEPARATORS = re.compile(r"[\s·•.\-_:|'\"]")


def normalise_plate(text: str) -> str:
    """Upper-case, full-width to ASCII, separators removed (OCR often reads the dot after the letter)."""
    text = unicodedata.normalize("NFKC", text).upper()
    return _SEPARATORS.sub("", text)


def plate_kind(text: str) -> PlateKind | None:
    """The format a normalised plate text matches, or None if it is not a valid mainland plate."""
    for kind, pattern in _PATTERNS:
        if pattern.match(text):
            return kind
    return None


def _fix_confusions(text: str) -> str:
    """Serial characters cannot be I or O: OCR's I/O there are 1/0."""
    if len(text) < 3:
        return text
    return text[:2] + text[2:].replace("O", "0").replace("I", "1")


def parse_plate(raw: str) -> tuple[str, PlateKind] | None:
    """(plate, kind) if `raw` (OCR output) is a valid mainland plate after normalisation, else None."""
    text = normalise_plate(raw)
    for candidate in (text, _fix_confusions(text)):
        kind = plate_kind(candidate)
        if kind is not None:
            return candidate, kind
    return None


def find_plates(raw_texts: Sequence[str]) -> list[tuple[str, PlateKind]]:
    """Valid plates among OCR text pieces: each piece, and neighbours joined (plates read in two parts)."""
    texts = [normalise_plate(t) for t in raw_texts if t]
    candidates = [*list(texts), "".join(texts)]
    candidates += [a + b for a, b in itertools.pairwise(texts)]
    found: list[tuple[str, PlateKind]] = []
    for candidate in candidates:
        for start in range(len(candidate)):
            if candidate[start] not in PROVINCES and candidate[start] not in "使0123456789":
                continue
            for length in (8, 7):  # the longest plate starting here wins (粤BD12345 contains 粤BD1234)
                parsed = parse_plate(candidate[start : start + length])
                if parsed is not None:
                    if parsed not in found:
                        found.append(parsed)
                    break
    return found


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One validated read of a plate."""

    text: str
    confidence: float
    kind: PlateKind


@dataclass(slots=True)
class BestPlate:
    """The best plate across several reads: the text with most summed confidence; never blocks anything."""

    reads: int = 0
    _votes: dict[str, list[float]] = field(default_factory=dict)
    _kinds: dict[str, PlateKind] = field(default_factory=dict)

    def add(self, read: PlateRead | None) -> None:
        """Count one attempt (None: nothing legible)."""
        self.reads += 1
        if read is not None:
            self._votes.setdefault(read.text, []).append(read.confidence)
            self._kinds[read.text] = read.kind

    def best(self) -> PlateRead | None:
        """The winning text; confidence = its mean confidence x its share of the legible reads."""
        if not self._votes:
            return None
        text = max(self._votes, key=lambda t: (sum(self._votes[t]), len(self._votes[t])))
        legible = sum(len(v) for v in self._votes.values())
        scores = self._votes[text]
        confidence = (sum(scores) / len(scores)) * (len(scores) / legible)
        return PlateRead(text, round(confidence, 4), self._kinds[text])

    def settled(self, confidence: float = 0.9, agreeing: int = 2) -> bool:
        """True once enough reads agree with high confidence: no more reads are needed."""
        best = self.best()
        return best is not None and best.confidence >= confidence and len(self._votes[best.text]) >= agreeing


class PlateReader(Protocol):
    """An OCR engine: raw text pieces with confidences from a vehicle crop (BGR)."""

    def read(self, image: Frame) -> list[tuple[str, float]]:
        """Text pieces found in the image, unvalidated."""
        ...


def best_read(reader: PlateReader, crop: Frame, min_confidence: float = 0.5) -> PlateRead | None:
    """Run the reader on a crop and keep the most confident valid plate (None if none is legible)."""
    pieces = [(t, c) for t, c in reader.read(crop) if c >= min_confidence]
    best: PlateRead | None = None
    for text, kind in find_plates([t for t, _ in pieces]):
        conf = min((c for t, c in pieces if normalise_plate(t) in text or text in normalise_plate(t)), default=0.0)
        if best is None or conf > best.confidence:
            best = PlateRead(text, round(float(conf), 4), kind)
    return best


class AgentClprReader:
    """agentclpr (Apache-2.0, ONNX inside the wheel): plate detection + recognition; OCR fallback on the crop."""

    def __init__(self) -> None:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # its server dependencies import imghdr; its warm-up averages nothing
            from agentclpr import CLPSystem

            self._system: Any = CLPSystem()
        for name in ("root", "ppocr"):  # agentocr attaches a DEBUG stdout handler to a logger named "root"
            logging.getLogger(name).setLevel(logging.WARNING)

    def read(self, image: Frame) -> list[tuple[str, float]]:
        """Plates found by the detector, else text read directly from the crop."""
        # agentclpr slices 10 px around each plate and breaks at the image border: pad first.
        padded = np.pad(image, ((24, 24), (24, 24), (0, 0)), mode="edge")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            found = [(str(text), float(score)) for _points, (text, score) in self._system(padded)]
            if found:
                return found
            return [(str(r[1][0]), float(r[1][1])) for r in self._system.ocr(padded)]


class RapidOcrReader:
    """rapidocr-onnxruntime (PP-OCR ONNX, Apache-2.0) over the whole crop."""

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self._engine: Any = RapidOCR()

    def read(self, image: Frame) -> list[tuple[str, float]]:
        """Every text line with its score."""
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result, _ = self._engine(image)
        return [(str(text), float(score)) for _box, text, score in (result or [])]


def make_plate_reader(backend: str) -> PlateReader | None:
    """The configured reader; `auto` tries agentclpr then rapidocr; None when none is installed or `none`."""
    order = {"auto": ("agentclpr", "rapidocr"), "agentclpr": ("agentclpr",), "rapidocr": ("rapidocr",)}.get(backend, ())
    for name in order:
        try:
            return AgentClprReader() if name == "agentclpr" else RapidOcrReader()
        except ImportError:
            log.info("plate reader %s is not installed", name)
    if backend not in ("none", "auto"):
        log.warning("plate reader %s is not available: plates will not be read", backend)
    return None


class PlateQueue(Protocol):
    """Where an analytic sends crops to read and collects results, without waiting for OCR."""

    def request(self, key: str, crop: Frame) -> bool:
        """Queue a read; False if it was dropped (queue full)."""
        ...

    def results(self) -> list[tuple[str, PlateRead | None]]:
        """Reads finished since the last call, as (key, read or None)."""
        ...


class InlinePlates:
    """Reads at request time (tests, offline evaluation): results come back on the next `results()`."""

    def __init__(self, reader: PlateReader, min_confidence: float = 0.5) -> None:
        self._reader = reader
        self._min_confidence = min_confidence
        self._done: list[tuple[str, PlateRead | None]] = []

    def request(self, key: str, crop: Frame) -> bool:
        """Read now."""
        self._done.append((key, best_read(self._reader, crop, self._min_confidence)))
        return True

    def results(self) -> list[tuple[str, PlateRead | None]]:
        """Finished reads."""
        done, self._done = self._done, []
        return done


class PlateClient:
    """One analytic's view of a shared PlateWorker: its own requests and its own results."""

    def __init__(self, worker: PlateWorker) -> None:
        self._worker = worker
        self._done: queue.Queue[tuple[str, PlateRead | None]] = queue.Queue()

    def request(self, key: str, crop: Frame) -> bool:
        """Queue a read of `crop` under `key`; False if the worker's queue is full (dropped, counted)."""
        return self._worker.submit(self, key, crop)

    def results(self) -> list[tuple[str, PlateRead | None]]:
        """Reads of this client finished since the last call."""
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def deliver(self, key: str, read: PlateRead | None) -> None:
        """Called by the worker thread."""
        self._done.put((key, read))


class PlateWorker:
    """One background thread reading plates from a bounded queue for many clients; nobody waits for OCR."""

    def __init__(self, reader: PlateReader, queue_size: int = 8, min_confidence: float = 0.5) -> None:
        self._reader = reader
        self._min_confidence = min_confidence
        self._jobs: queue.Queue[tuple[PlateClient, str, Frame] | None] = queue.Queue(maxsize=queue_size)
        self.dropped = 0
        self.failed = 0
        self.done = 0
        self._thread = threading.Thread(target=self._run, name="plate-reader", daemon=True)
        self._thread.start()

    def client(self) -> PlateClient:
        """A new client (one per analytic)."""
        return PlateClient(self)

    def submit(self, client: PlateClient, key: str, crop: Frame) -> bool:
        """Queue a crop (copied); drop and count it when the queue is full."""
        try:
            self._jobs.put_nowait((client, key, np.ascontiguousarray(crop).copy()))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            client, key, crop = job
            try:
                read = best_read(self._reader, crop, self._min_confidence)
            except Exception:  # an OCR failure must never stop the worker; logged with context
                self.failed += 1
                log.exception("plate read failed for %s", key)
                read = None
            self.done += 1
            client.deliver(key, read)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread after the queued reads."""
        try:
            self._jobs.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("plate worker still busy after %.1f s; leaving it (daemon thread)", timeout_s)
            return
        self._thread.join(timeout_s)


_SHARED: dict[str, PlateWorker] = {}
_SHARED_LOCK = threading.Lock()


def shared_plate_worker(backend: str, queue_size: int = 8, min_confidence: float = 0.5) -> PlateWorker | None:
    """The process-wide worker for a backend (one OCR model in memory for all cameras), or None."""
    with _SHARED_LOCK:
        if backend not in _SHARED:
            reader = make_plate_reader(backend)
            if reader is None:
                return None
            _SHARED[backend] = PlateWorker(reader, queue_size, min_confidence)
        return _SHARED[backend]
