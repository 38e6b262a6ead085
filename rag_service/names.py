"""Names people choose, in any script: collection names and the paths of documents.

A name is kept in its NFC form: ``café`` typed on one system arrives composed, on another (a
macOS file name) decomposed, and the two must be one name. It holds no character that hides or
reorders text (controls, format characters such as the right-to-left override U+202E, line and
paragraph separators): with one, two different names look the same, or ``evil‮dm.exe`` reads
as ``evilexe.md``. Every folder or file name it becomes fits the 255 bytes filesystems allow.

Two names that differ only in case (``Normal.md``, ``normal.md``) are one name where one of
them is in use: a case-insensitive filesystem (macOS, Windows, a folder copied there) holds
them as one file, and people read them as one. ``folded`` is the form they are compared in.
"""

from __future__ import annotations

import unicodedata

# Unicode categories that are never shown as themselves: controls (Cc), format characters (Cf:
# bidirectional overrides, zero-width joiners...), lone surrogates (Cs), line and paragraph
# separators (Zl, Zp).
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

MAX_FILE_NAME_BYTES = 255


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def folded(name: str) -> str:
    """The form in which two names are the same name: NFC, case folded (``ß`` as ``ss``)."""
    return nfc(nfc(name).casefold())


def hidden_character(text: str) -> str | None:
    """The first character of ``text`` that is not shown as itself, as ``U+XXXX``; None."""
    for char in text:
        if unicodedata.category(char) in _HIDDEN:
            return f"U+{ord(char):04X}"
    return None


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
