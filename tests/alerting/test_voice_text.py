"""Spoken-text normalisation for espeak-ng (expected strings written by hand)."""

from __future__ import annotations

import pytest

from alerting.voice.text import integer_in_words, normalise_plate, normalise_text, render_warning


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "零"),
        (7, "七"),
        (10, "十"),
        (15, "十五"),
        (20, "二十"),
        (105, "一百零五"),
        (110, "一百一十"),
        (1005, "一千零五"),
        (1010, "一千零一十"),
        (10000, "一万"),
        (10001, "一万零一"),
        (12345, "一万二千三百四十五"),
        (150000, "十五万"),
        (1000000, "一百万"),
        (100000000, "一亿"),
    ],
)
def test_integers_in_chinese(value: int, words: str) -> None:
    assert integer_in_words(value) == words


@pytest.mark.parametrize(
    ("plate", "spoken"),
    [
        ("浙A·12345", "浙 A 一二三四五"),
        ("浙a12345", "浙 A 一二三四五"),
        ("粤B-D12345", "粤 B D 一二三四五"),  # new-energy plate: letters one by one
        ("京A 0001警", "京 A 零零零一 警"),
        ("沪C1B345", "沪 C 一 B 三四五"),
    ],
)
def test_plates_are_spelt_character_by_character(plate: str, spoken: str) -> None:
    assert normalise_plate(plate) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("水位 3.5 米", "水位 三点五 米"),  # espeak-ng drops the decimal point
        ("气温 -3℃", "气温 负三摄氏度"),  # and the minus sign
        ("PM2.5 超标", "P M 二点五 超标"),
        ("湿度 50%", "湿度 百分之五十"),
        ("编号 0571", "编号 零五七一"),  # a leading zero means a code, read digit by digit
        ("浙A·12345，请驶离", "浙 A 一二三四五，请驶离"),  # a plate inside a rendered text
        ("噪声 72dB", "噪声 七十二分贝"),
    ],
)
def test_free_text_numbers_units_and_letters(text: str, spoken: str) -> None:
    assert normalise_text(text) == spoken


def test_template_placeholders() -> None:
    text = render_warning("{plate}，此处禁止停车，请立即驶离", "浙A·12345", "z1", "cam-1")
    assert text == "浙 A 一二三四五，此处禁止停车，请立即驶离"
    assert render_warning("{zone}：{plate}请驶离{nope}", None, "3号路口", None) == "三号路口：前方车辆 请驶离"


def test_no_ascii_digits_or_signs_survive() -> None:
    text = normalise_text("车牌 浙A·12345 在 -2.75 度、风速 3 m/s、PM2.5=35.2")
    assert not any(ch.isdigit() and ch.isascii() for ch in text)
    assert "-" not in text
    assert "." not in text
