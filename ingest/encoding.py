"""Decode a text file's bytes and say which encoding was used, never by a silent wrong guess.

The order, most certain first:

1. a byte order mark (UTF-8, UTF-16, UTF-32): checked before anything else, since UTF-16 text
   is full of NUL bytes that would otherwise make it look binary;
2. strict UTF-8: legacy multi-byte text almost never happens to be valid UTF-8;
3. for HTML, the charset the page declares (``<meta charset>``, ``http-equiv`` or an XML
   declaration): decoded strictly with it, and a declaration that does not decode is reported;
4. otherwise GB18030 or Big5, the two legacy encodings Chinese files still arrive in.

GB18030 and Big5 are the classic trap: most byte pairs of either are valid in the other, so both
decode a short text "successfully" into different, equally valid characters. Strict decoding
cannot tell them apart and neither can a general detector on short text (charset-normalizer
names Big5 sentences Shift_JIS). What does tell them apart is whether the characters are ones
people write: text decoded with the wrong table is mostly rare ideographs, kana, Cyrillic or
private-use code points. So each candidate's decoded text is scored by the share of its
non-ASCII characters that are common (the 3,755 characters of GB2312 level 1, the 5,401 of Big5
level 1, punctuation) and not "mess" in charset-normalizer's sense; a candidate is taken only
if it scores at least ``MIN_SHARE`` and beats every other decoding by ``MIN_MARGIN``. Anything
else is reported, with the reason, for the user to save the file as UTF-8.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

from charset_normalizer.md import mess_ratio

from rag_service.errors import DocumentUnreadable

# Measured on 350 sentences of corpus/zh, cut to 4..64 characters and whole, as GBK and Big5:
# correct decodings score 0.9 or more (one in a thousand a little less, then reported), wrong
# ones up to 1.0 on four characters but then so does the right one, within the margin.
MIN_SHARE = 0.9
MIN_MARGIN = 0.3
# charset-normalizer's own threshold for "too messy to be the right decoding".
MAX_MESS = 0.2
_SCORED_CHARS = 20_000  # a long file's encoding shows in its start; scoring all of it is waste

_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Big5 as Windows writes it (cp950) first; Big5-HKSCS adds Hong Kong characters but moves a few
# hundred kana and symbols, so it is the fallback for files cp950 cannot decode.
_BIG5 = ("cp950", "big5hkscs")
_LEGACY = (("gb18030",), _BIG5)  # GB18030 is a superset of GBK and GB2312
# Declared labels that name a subset of what we decode with (as the WHATWG Encoding Standard
# does for web pages: "gb2312" pages are GBK in practice).
_DECLARED = {
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "gb18030": ("gb18030",),
    "big5": _BIG5,
    "cp950": _BIG5,
    "big5hkscs": ("big5hkscs",),
}

_PRESCAN_BYTES = 1024  # where the HTML standard looks for a declared charset
_META_CHARSET = re.compile(rb"<meta\b[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.I)
_XML_ENCODING = re.compile(rb"\A<\?xml\b[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']")


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # the Python codec used: utf-8, utf-8-sig, utf-16, utf-32, gb18030, cp950, ...


def decode(source: str, data: bytes, *, html: bool = False) -> Decoded:
    """The text of ``data``, or ``DocumentUnreadable`` saying why it cannot be told."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _strict(source, data, encoding, f"starts with a {encoding} byte order mark")
    if b"\x00" in data:
        raise DocumentUnreadable(source, "binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        not_utf8 = f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
    else:
        if _odd_two_byte_utf8(text) and _legacy_reading(data) is not None:
            raise DocumentUnreadable(source, _AMBIGUOUS.format("UTF-8, GB18030 or Big5"))
        return Decoded(text, "utf-8")
    if html and (label := declared_charset(data)):
        return _declared(source, data, label)
    return _detected(source, data, not_utf8)


def declared_charset(data: bytes) -> str | None:
    head = data[:_PRESCAN_BYTES]
    found = _XML_ENCODING.match(head) or _META_CHARSET.search(head)
    return found.group(1).decode("ascii").lower() if found else None


def _strict(source: str, data: bytes, encoding: str, why: str) -> Decoded:
    try:
        return Decoded(data.decode(encoding), encoding)
    except UnicodeDecodeError as exc:
        raise DocumentUnreadable(
            source, f"{why} but is not valid {encoding} (byte at offset {exc.start})"
        ) from None


def _declared(source: str, data: bytes, label: str) -> Decoded:
    try:
        name = codecs.lookup(label).name
    except LookupError:
        raise DocumentUnreadable(source, f"declares an unknown charset {label!r}") from None
    family = _DECLARED.get(name.replace("-", "").replace("_", ""), (name,))
    decoded = _first_decoding(data, family)
    if decoded is None:
        raise DocumentUnreadable(
            source, f"declares charset {label!r} but is not valid {family[0]}; fix the declaration"
        )
    # A Chinese declaration can be wrong and still decode (GB bytes are mostly valid Big5), so
    # it is checked like a guess: overruled only when the other encoding is clearly right.
    if family in _LEGACY and (choice := _confident(data)) and choice.encoding not in family:
        raise DocumentUnreadable(
            source,
            f"declares charset {label!r} but reads as {choice.encoding}; fix the declaration",
        )
    return decoded


def _detected(source: str, data: bytes, not_utf8: str) -> Decoded:
    candidates = [d for family in _LEGACY if (d := _first_decoding(data, family))]
    if not candidates:
        raise DocumentUnreadable(source, f"{not_utf8}, nor GB18030 or Big5; save the file as UTF-8")
    if choice := _confident(data):
        return choice
    if _reads_as_korean(data):
        raise DocumentUnreadable(source, _AMBIGUOUS.format("GB18030, Big5 or EUC-KR"))
    if _legacy_reading(data) is not None:
        raise DocumentUnreadable(source, _AMBIGUOUS.format("GB18030 or Big5"))
    raise DocumentUnreadable(
        source, f"{not_utf8}, and does not read as GB18030 or Big5 text; save the file as UTF-8"
    )


_AMBIGUOUS = "cannot tell the encoding with confidence ({}); save the file as UTF-8"


def _legacy_reading(data: bytes) -> Decoded | None:
    """A legacy decoding that reads as Chinese, confident or not."""
    for family in _LEGACY:
        if (decoded := _first_decoding(data, family)) and plausibility(decoded.text) >= MIN_SHARE:
            return decoded
    return None


# Two-byte UTF-8 (U+0080..U+07FF) is what a few GBK or Big5 characters can happen to form
# ("目前" in GBK is valid UTF-8 for "Ŀǰ"). Real text in those blocks is Latin-1, Latin
# Extended-A, Greek, Cyrillic, Hebrew or Arabic letters, each run in one script; phonetic
# letters, modifiers, combining marks and runs that jump between blocks are what misreads give.
_TWO_BYTE_BLOCKS = (
    (0x0080, 0x017F),  # Latin-1 Supplement and Latin Extended-A
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x045F),  # Cyrillic (Russian, Ukrainian, Serbian, ...)
    (0x0490, 0x04FF),  # Cyrillic letters of Kazakh, Tatar, ... (not the historic ones)
    (0x0590, 0x05FF),  # Hebrew
    (0x0600, 0x06FF),  # Arabic
)


def _odd_two_byte_utf8(text: str) -> bool:
    if any(ord(c) >= 0x800 for c in text):
        return False  # three-byte sequences: legacy pairs almost never line up into them
    previous = None
    for char in text:
        if char.isascii():
            previous = None
            continue
        block = next((b for b in _TWO_BYTE_BLOCKS if b[0] <= ord(char) <= b[1]), None)
        if block is None or previous not in (None, block):
            return True
        previous = block
    return False


def _confident(data: bytes) -> Decoded | None:
    """The one legacy decoding that reads as Chinese by a clear margin, if there is one."""
    scored = sorted(
        ((plausibility(d.text), d) for family in _LEGACY if (d := _first_decoding(data, family))),
        key=lambda pair: pair[0],
        reverse=True,
    )
    if not scored or scored[0][0] < MIN_SHARE or _reads_as_korean(data):
        return None
    if len(scored) > 1 and scored[0][0] - scored[1][0] < MIN_MARGIN:
        return None
    return scored[0][1]


def _reads_as_korean(data: bytes) -> bool:
    """EUC-KR shares GB2312's layout: Korean syllables land on common Chinese characters, so a
    Korean file would read as fluent-looking Chinese. We do not read EUC-KR, but its being
    plausible makes the Chinese reading a guess."""
    try:
        text = data.decode("euc_kr")[:_SCORED_CHARS]
    except UnicodeDecodeError:
        return False
    wide = [c for c in text if not c.isascii()]
    hangul = sum("\uac00" <= c <= "\ud7a3" or _is_punctuation(c) for c in wide)
    return bool(wide) and hangul / len(wide) >= MIN_SHARE


def _first_decoding(data: bytes, family: tuple[str, ...]) -> Decoded | None:
    for encoding in family:
        try:
            return Decoded(data.decode(encoding), encoding)
        except UnicodeDecodeError:
            continue
    return None


def plausibility(text: str) -> float:
    """Share of the non-ASCII characters that are ones Chinese text is made of; 0 if messy."""
    sample = text[:_SCORED_CHARS]
    wide = [c for c in sample if not c.isascii()]
    if not wide:
        return 1.0
    if mess_ratio(sample, MAX_MESS) >= MAX_MESS:
        return 0.0
    common = _common_characters()
    return sum(c in common or _is_punctuation(c) for c in wide) / len(wide)


def _is_punctuation(char: str) -> bool:
    # Full-width letters and digits (U+FF10..U+FF5A) are written in Chinese text as well.
    return unicodedata.category(char)[0] in "PZ" or "\uff10" <= char <= "\uff5a"


@cache
def _common_characters() -> frozenset[str]:
    """GB2312 level 1 (B0A1..D7F9) and Big5 level 1 (A440..C67E): the frequent characters of
    Simplified and of Traditional Chinese, read from the codecs rather than shipped as data."""
    return frozenset(_code_range("gb2312", 0xB0A1, 0xD7F9) + _code_range("cp950", 0xA440, 0xC67E))


def _code_range(encoding: str, first: int, last: int) -> list[str]:
    chars = []
    for code in range(first, last + 1):
        try:
            chars.append(code.to_bytes(2, "big").decode(encoding))
        except UnicodeDecodeError:
            continue  # a gap in the table
    return chars
