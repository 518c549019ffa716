"""Spoken-text normalisation: plates, letters, numbers, decimals and minus signs as words espeak-ng can say.

espeak-ng's `cmn-latn-pinyin` voice reads `12345` as a quantity, drops decimal points and minus
signs, and switches to English for runs of Latin letters. So plates are spelt character by
character (浙A·12345 -> 浙 A 一二三四五), numbers become Chinese numerals (-3.5 -> 负三点五),
letters are spaced out one by one and common units are written in words.
"""

from __future__ import annotations

import re
import string

DIGITS = "零一二三四五六七八九"
_SMALL_UNITS = ("", "十", "百", "千")
_BIG_UNITS = ("", "万", "亿", "万亿")
PLATE_SEPARATORS = "·•.-_ \u3000\u00b7\u2022"

_UNITS = (  # longest first; (written, spoken)
    ("μg/m³", "微克每立方米"),
    ("ug/m3", "微克每立方米"),
    ("km/h", "公里每小时"),
    ("m/s", "米每秒"),
    ("°C", "摄氏度"),
    ("℃", "摄氏度"),
    ("dB", "分贝"),
    ("mm", "毫米"),
    ("cm", "厘米"),
    ("km", "公里"),
)
_NUMBER = re.compile(r"(?<![0-9.])(?:(?<![A-Za-z])([-−]))?(\d+)(?:\.(\d+))?(%?)")
_LATIN_RUN = re.compile(r"[A-Za-z]+")
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领"
PLATE = re.compile(rf"[{_PROVINCES}][A-Za-z][·•.\- ]?[A-Za-z0-9]{{4,6}}[挂学警港澳领试超]?")
"""A Chinese plate inside free text (province, letter, optional separator, 4-6 letters/digits, suffix)."""
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
NO_PLATE = "前方车辆"
"""Spoken in place of {plate} when no plate was read ("the vehicle ahead")."""


def digits_in_words(digits: str) -> str:
    """Digit by digit: `0571` -> 零五七一 (plates, ids, phone numbers)."""
    return "".join(DIGITS[int(d)] for d in digits if d.isdigit())


def integer_in_words(value: int) -> str:
    """A non-negative integer as a Chinese numeral: 12345 -> 一万二千三百四十五, 10 -> 十, 1005 -> 一千零五."""
    if value < 0:
        raise ValueError("integer_in_words takes a non-negative integer; the caller adds 负")
    if value == 0:
        return DIGITS[0]
    groups: list[int] = []
    while value:
        groups.append(value % 10_000)
        value //= 10_000
    if len(groups) > len(_BIG_UNITS):
        return digits_in_words(str(sum(g * 10_000**i for i, g in enumerate(groups))))
    words = ""
    need_zero = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            need_zero = bool(words)
            continue
        if words and (need_zero or group < 1000):
            words += DIGITS[0]
        words += _group_in_words(group) + _BIG_UNITS[index]
        need_zero = False
    return "十" + words[2:] if words.startswith("一十") else words  # 10 -> 十, 150000 -> 十五万


def _group_in_words(group: int) -> str:
    """0 < group < 10000 without leading 零."""
    out = ""
    zero = False
    for power in range(3, -1, -1):
        digit = group // 10**power % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += DIGITS[0]
            zero = False
        out += DIGITS[digit] + _SMALL_UNITS[power]
    return out


def number_in_words(sign: str, integer: str, fraction: str = "", percent: bool = False) -> str:
    """A number with optional minus, decimals and percent sign: (-, 3, 5) -> 负三点五; 50% -> 百分之五十."""
    if (len(integer) > 1 and integer.startswith("0")) or len(integer) > 12:
        words = digits_in_words(integer)  # an id or code, not a quantity
    else:
        words = integer_in_words(int(integer))
    if fraction:
        words += "点" + digits_in_words(fraction)
    if percent:
        words = "百分之" + words
    return ("负" if sign else "") + words


def spell_latin(text: str) -> str:
    """Latin letters spaced out one by one, upper case (espeak-ng says single letters in Mandarin)."""
    return _LATIN_RUN.sub(lambda m: " " + " ".join(m.group(0).upper()) + " ", text)


def normalise_plate(plate: str) -> str:
    """A Chinese plate for speech: 浙A·12345 -> 浙 A 一二三四五 (letters alone, digits one by one)."""
    tokens: list[str] = []
    kind = ""
    for ch in plate.strip():
        if ch in PLATE_SEPARATORS:
            kind = ""
            continue
        if ch.isdigit() and ch in string.digits:
            ch_kind, word = "digit", DIGITS[int(ch)]
        elif ch in string.ascii_letters:
            ch_kind, word = "letter", ch.upper()
        else:
            ch_kind, word = "other", ch
        if tokens and ch_kind == kind and ch_kind != "letter":
            tokens[-1] += word
        else:
            tokens.append(word)
        kind = ch_kind
    return " ".join(tokens)


def normalise_text(text: str) -> str:
    """Free text for speech: plates spelt out, units in words, numbers as numerals (负, 点, 百分之), letters spaced."""
    text = PLATE.sub(lambda m: f" {normalise_plate(m.group(0))} ", text)
    for written, spoken in _UNITS:
        text = re.sub(rf"(?<=\d){re.escape(written)}|(?<=\d )\b{re.escape(written)}\b", spoken, text)
    text = _NUMBER.sub(
        lambda m: number_in_words(m.group(1) or "", m.group(2), m.group(3) or "", bool(m.group(4))), text
    )
    return tidy(spell_latin(text))


def tidy(text: str) -> str:
    """Collapse spaces, and drop them around Chinese punctuation."""
    text = re.sub(r" {2,}", " ", text)
    return re.sub(r" *([，。！？、；：]) *", r"\1", text).strip()


def render_warning(template: str, plate: str | None, zone: str, camera_id: str | None) -> str:
    """Fill `{plate}`, `{zone}`, `{camera_id}` and normalise the result for speech; unknown placeholders vanish."""
    values = {
        "plate": normalise_plate(plate) if plate else NO_PLATE,
        "zone": normalise_text(zone),
        "camera_id": normalise_text(camera_id or ""),
    }
    parts: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(normalise_text(template[last : match.start()]))
        parts.append(values.get(match.group(1), ""))
        last = match.end()
    parts.append(normalise_text(template[last:]))
    return tidy(" ".join(parts))
