"""Plate format tables, multi-read voting, the worker, and real reads with agentclpr on rendered plates."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from detectors.plates import (
    BestPlate,
    InlinePlates,
    PlateKind,
    PlateRead,
    PlateWorker,
    best_read,
    find_plates,
    parse_plate,
    plate_kind,
)
from tests.detectors.support import FakeReader

VALID = [
    ("京A12345", PlateKind.ORDINARY),
    ("沪C8F7K2", PlateKind.ORDINARY),
    ("粤BD12345", PlateKind.NEW_ENERGY_SMALL),  # small new-energy: D (pure electric) first
    ("粤BFA1234", PlateKind.NEW_ENERGY_SMALL),  # F (plug-in hybrid), then a letter, then 4 digits
    ("苏AK98765", PlateKind.NEW_ENERGY_SMALL),  # extended family letters A-K
    ("川A12345D", PlateKind.NEW_ENERGY_LARGE),  # large new-energy: letter last
    ("京A1234警", PlateKind.POLICE),
    ("苏E2345学", PlateKind.COACH),
    ("鲁B1234挂", PlateKind.TRAILER),
    ("沪A1234领", PlateKind.CONSULATE),
    ("粤Z1A34港", PlateKind.HK_MACAU),
    ("粤Z1234澳", PlateKind.HK_MACAU),
    ("224001使", PlateKind.EMBASSY),
    ("津B1234试", PlateKind.TEST),
]
INVALID = [
    ("京A1234", "too short"),
    ("京A1234567", "too long"),
    ("XA12345", "not a province"),
    ("京I12345", "I is never an authority letter"),
    ("京O12345", "O is never an authority letter"),
    ("京1A2345", "second character must be a letter"),
    ("粤BD1234A", "small new-energy ends with 4 digits"),
    ("粤BF1A234", "small new-energy: the letter may only come second in the serial"),
    ("粤B12345X", "large new-energy ends with a family letter A-K"),
    ("京A12345警", "police plates have 4 serial characters"),
    ("粤A1234港", "港/澳 only on 粤Z"),
    ("", "empty"),
]


@pytest.mark.parametrize(("text", "kind"), VALID)
def test_valid_mainland_plates(text: str, kind: PlateKind) -> None:
    assert plate_kind(text) is kind
    assert parse_plate(text) == (text, kind)


@pytest.mark.parametrize(("text", "why"), INVALID)
def test_invalid_plates_are_rejected(text: str, why: str) -> None:
    assert plate_kind(text) is None, why


@pytest.mark.parametrize(
    ("raw", "plate"),
    [
        ("京A·12345", "京A12345"),  # the dot after the authority letter
        ("京a 12345", "京A12345"),  # lower case, space
        ("京Ａ１２３４５", "京A12345"),  # full-width characters
        ("沪C8F7K2", "沪C8F7K2"),
        ("沪CO8I23", "沪C08123"),  # O and I are impossible in the serial: OCR meant 0 and 1
    ],
)
def test_normalisation_of_ocr_output(raw: str, plate: str) -> None:
    parsed = parse_plate(raw)
    assert parsed is not None
    assert parsed[0] == plate


def test_plates_read_in_two_pieces_are_joined() -> None:
    assert find_plates(["粤B", "D12345"]) == [("粤BD12345", PlateKind.NEW_ENERGY_SMALL)]
    assert find_plates(["VOLVO", "苏E", "2345学"]) == [("苏E2345学", PlateKind.COACH)]
    assert find_plates(["no plate here"]) == []


def test_best_read_keeps_the_most_confident_valid_plate() -> None:
    reader = FakeReader([("京A12345", 0.6), ("京A12845", 0.9), ("garbage", 0.99)])
    read = best_read(reader, np.zeros((40, 80, 3), np.uint8))
    assert read == PlateRead("京A12845", 0.9, PlateKind.ORDINARY)
    assert best_read(FakeReader([("京A12345", 0.3)]), np.zeros((40, 80, 3), np.uint8), min_confidence=0.5) is None


def test_best_plate_votes_across_reads() -> None:
    best = BestPlate()
    assert best.best() is None
    best.add(PlateRead("京A12345", 0.9, PlateKind.ORDINARY))
    best.add(None)  # illegible frame: counted as a read, changes nothing else
    best.add(PlateRead("京A12845", 0.95, PlateKind.ORDINARY))
    best.add(PlateRead("京A12345", 0.8, PlateKind.ORDINARY))
    winner = best.best()
    assert winner is not None
    assert winner.text == "京A12345"  # two reads outweigh one more confident read
    assert winner.confidence == pytest.approx(0.85 * 2 / 3, abs=1e-4)
    assert best.reads == 4
    assert not best.settled()
    best.add(PlateRead("京A12345", 0.99, PlateKind.ORDINARY))
    best.add(PlateRead("京A12345", 0.99, PlateKind.ORDINARY))
    assert best.best() is not None


def test_worker_reads_in_the_background_and_drops_when_full() -> None:
    class SlowReader(FakeReader):
        def read(self, image: np.ndarray) -> list[tuple[str, float]]:
            time.sleep(0.2)
            return super().read(image)

    worker = PlateWorker(SlowReader([("粤BD12345", 0.95)]), queue_size=1)
    a, b = worker.client(), worker.client()
    crop = np.zeros((20, 40, 3), np.uint8)
    assert a.request("ep-a", crop)
    accepted = [b.request(f"ep-b{i}", crop) for i in range(4)]
    assert not all(accepted)
    assert worker.dropped >= 1
    deadline = time.monotonic() + 5
    got_a: list[tuple[str, PlateRead | None]] = []
    while time.monotonic() < deadline and not got_a:
        got_a += a.results()
        time.sleep(0.05)
    assert got_a == [("ep-a", PlateRead("粤BD12345", 0.95, PlateKind.NEW_ENERGY_SMALL))]
    worker.close()
    assert all(key.startswith("ep-b") for key, _ in b.results())  # each client gets only its own results


def test_inline_plates_returns_on_next_poll() -> None:
    plates = InlinePlates(FakeReader([("京A12345", 0.9)]))
    assert plates.results() == []
    plates.request("k", np.zeros((10, 10, 3), np.uint8))
    assert plates.results() == [("k", PlateRead("京A12345", 0.9, PlateKind.ORDINARY))]
    assert plates.results() == []


# ----- real OCR ------------------------------------------------------------------------------------

FONT_DIRS = ("/usr/share/fonts", "/usr/share/ghostscript")


def _cjk_font() -> Path | None:
    for root in FONT_DIRS:
        for name in ("DroidSansFallbackFull.ttf", "DroidSansFallback.ttf", "NotoSansCJK-Regular.ttc"):
            found = next(Path(root).rglob(name), None) if Path(root).is_dir() else None
            if found is not None:
                return found
    return None


def render_plate(text: str, background: tuple[int, int, int], ink: tuple[int, int, int]) -> np.ndarray:
    """A mainland-style plate image (BGR) drawn with a CJK font for the province and DejaVu for the rest."""
    from PIL import Image, ImageDraw, ImageFont

    font_path = _cjk_font()
    assert font_path is not None
    cjk = ImageFont.truetype(str(font_path), 60)
    latin = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 60)  # fonts-dejavu-core
    width = 440 if len(text) == 7 else 480
    image = Image.new("RGB", (width, 140), background)
    draw = ImageDraw.Draw(image)
    draw.rectangle([4, 4, width - 5, 135], outline=ink, width=3)
    x = 16
    for i, ch in enumerate(text):
        font = cjk if ord(ch) > 127 else latin
        draw.text((x, 30 if font is cjk else 28), ch, font=font, fill=ink)
        x += 57 if i != 1 else 75
    rgb = np.asarray(image)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _car_with(plate: np.ndarray) -> np.ndarray:
    import cv2

    car = np.full((300, 420, 3), 150, np.uint8)
    car[40:120, 60:360] = (80, 80, 90)  # rear window
    small = cv2.resize(plate, (plate.shape[1] // 2, plate.shape[0] // 2), interpolation=cv2.INTER_AREA)
    car[180 : 180 + small.shape[0], 100 : 100 + small.shape[1]] = small
    return car


needs_ocr = pytest.mark.skipif(_cjk_font() is None, reason="no CJK font to render a test plate (fonts-droid-fallback)")


@needs_ocr
@pytest.mark.parametrize(
    ("text", "background", "ink"),
    [("京A12345", (0, 70, 200), (255, 255, 255)), ("沪C8F7K2", (0, 70, 200), (255, 255, 255)),
     ("粤BD12345", (60, 200, 90), (0, 0, 0))],
)  # fmt: skip
def test_agentclpr_reads_a_rendered_plate_on_a_vehicle(text: str, background: tuple[int, int, int],
                                                       ink: tuple[int, int, int]) -> None:  # fmt: skip
    from detectors.plates import AgentClprReader

    read = best_read(AgentClprReader(), _car_with(render_plate(text, background, ink)))
    assert read is not None
    assert read.text == text
    assert read.confidence > 0.8


def test_agentclpr_on_a_real_photo_without_a_mainland_plate_returns_nothing() -> None:
    """opencv-doc's licenseplate_motion.jpg: a real, motion-blurred foreign plate -> no valid read, no crash."""
    import cv2

    from detectors.plates import AgentClprReader

    image = cv2.imread("/usr/share/doc/opencv-doc/examples/data/licenseplate_motion.jpg")
    assert image is not None
    assert best_read(AgentClprReader(), np.asarray(image, np.uint8)) is None
