"""The embedded Chinese font: a deterministic, self-contained subset with exactly the page's glyphs."""

from __future__ import annotations

import base64
import io
import re

import pytest
from fontTools.ttLib import TTFont

from crmresearch.viz.fonts import font_face_css

TEXT = "2026年10月 客户流失率：12.5%（较上月下降0.3个百分点）。“高价值”客户留存率 88%"
DATA_URL = re.compile(r"url\(data:font/woff;base64,([A-Za-z0-9+/=]+)\)")


def _font(css: str) -> TTFont:
    """The font embedded in a rule from :func:`font_face_css`."""
    (payload,) = DATA_URL.findall(css)
    return TTFont(io.BytesIO(base64.b64decode(payload, validate=True)))


def test_subset_has_the_glyphs_of_the_text_and_no_others() -> None:
    font = _font(font_face_css(TEXT))
    cmap = font.getBestCmap()
    cjk = {c for c in TEXT if ord(c) > 0x7F}
    missing = sorted(c for c in cjk if ord(c) not in cmap)
    assert not missing, f"no glyph for {missing}"
    assert set(cmap) == {ord(c) for c in cjk}, "only the text's non-ASCII characters"
    assert ord("鑫") not in cmap  # a character the font has, not in the text
    assert ord("A") not in cmap and ord("1") not in cmap  # ASCII is left to the Latin font
    glyphs = font["CFF "].cff.topDictIndex[0].CharStrings
    assert len(font.getGlyphOrder()) == len(cjk) + 1  # and .notdef
    assert all(glyphs[font.getBestCmap()[ord(c)]].bytecode for c in "客户流失率")


def test_no_characters_for_the_font_gives_no_rule() -> None:
    assert font_face_css("") == ""
    assert font_face_css("Churn rate 12.5% (down 0.3 pt), café, Zürich") == ""  # Latin only
    assert font_face_css("ok \U0001f600") == ""  # the font has no emoji
    assert font_face_css("12.5% — down") != ""  # punctuation past the Latin blocks is embedded


def test_deterministic() -> None:
    css = font_face_css(TEXT)
    assert font_face_css(TEXT) == css
    # the same characters in another order and count give the same font
    shuffled = "".join(sorted(TEXT, reverse=True)) * 2
    assert font_face_css(shuffled, family="crmresearch-cjk") == css
    # and not a cached string: a fresh subset gives the same bytes
    from crmresearch.viz import fonts

    fonts._subset_font.cache_clear()
    assert font_face_css(TEXT) == css
    assert font_face_css(TEXT + "鑫") != css


def test_css_is_one_self_contained_rule() -> None:
    css = font_face_css(TEXT, family="report cjk")
    assert css.startswith('@font-face { font-family: "report cjk"; src: url(data:font/woff;base64,')
    assert css.endswith(') format("woff"); }')
    assert len(DATA_URL.findall(css)) == 1 and css.count("url(") == 1
    outside = DATA_URL.sub("url()", css)  # base64 may contain "//"; the rest may not
    assert "http" not in outside.lower() and "//" not in outside
    assert _font(css).flavor == "woff"


@pytest.mark.parametrize("family", ["", 'x"; } body { color: red', "a/b", " lead"])
def test_family_is_checked(family: str) -> None:
    with pytest.raises(ValueError, match="font family"):
        font_face_css(TEXT, family=family)


def test_six_hundred_characters_are_small() -> None:
    chars = []
    for hi in range(0xB0, 0xB8):  # GB 2312 level 1: the most common hanzi
        for lo in range(0xA1, 0xFF):
            try:
                chars.append(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    text = "".join(chars[:600])
    css = font_face_css(text)
    assert len(_font(css).getBestCmap()) == 600
    assert len(css) < 250_000  # about 180 kB
