"""Which files the chat accepts: a media type from `ATTACHMENT_MEDIA_TYPES` whose bytes really are
of that type. Binary formats are recognised by their magic bytes (the `filetype` library); text
types must be UTF-8 without NUL bytes, since text has no magic bytes to check."""

from __future__ import annotations

import mimetypes

import filetype
from filetype.types.isobmff import IsoBmff

# Names browsers give some types, mapped to the name Gemini documents (and stores, and is sent).
_ALIASES = {
    "image/jpg": "image/jpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-aiff": "audio/aiff",
    "audio/x-flac": "audio/flac",
    "text/x-markdown": "text/markdown",
    # What filetype calls some of them.
    "image/apng": "image/png",
}

# Types that say nothing about the file: what a browser gives for an extension it does not know.
UNSPECIFIED = {"", "application/octet-stream"}

# What `filetype` reports for the bytes of a declared type, where it names them differently.
_SNIFFED_AS = {
    "image/png": {"image/png", "image/apng"},  # an animated PNG is still a PNG
    "image/heic": {"image/heic", "image/heif"},
    "image/heif": {"image/heic", "image/heif"},
    "audio/wav": {"audio/x-wav"},
    "audio/mp3": {"audio/mpeg"},
    "audio/aiff": {"audio/x-aiff"},
    "audio/flac": {"audio/x-flac"},
}

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "text/html": ".html",
    "audio/wav": ".wav",
    "audio/mp3": ".mp3",
    "audio/mpeg": ".mp3",
    "audio/aiff": ".aiff",
    "audio/aac": ".aac",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
}


class _Heif(IsoBmff):
    """HEIF images whose brand is not `heic` (filetype's own matcher knows only that one), such
    as iOS bursts (`msf1`) or HEVC sequences; AVIF shares the container and is left out."""

    MIME = "image/heif"
    EXTENSION = "heif"
    _BRANDS = {"mif1", "msf1", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs"}

    def __init__(self):
        super().__init__(mime=self.MIME, extension=self.EXTENSION)

    def match(self, buf) -> bool:
        if not self._is_isobmff(buf):
            return False
        major_brand, _, compatible_brands = self._get_ftyp(buf)
        return major_brand in self._BRANDS and not {"avif", "avis"} & set(compatible_brands)


# `add_type` puts a matcher before the library's own (filetype's documented extension point).
filetype.add_type(_Heif())


def normalize(media_type: str) -> str:
    """`Image/PNG; charset=x` → `image/png`; browser aliases → Gemini's names."""
    base = media_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def guess(data: bytes, filename: str) -> str:
    """The type of a file whose sender did not say: its magic bytes', else its extension's."""
    return normalize(sniff(data) or mimetypes.guess_type(filename, strict=False)[0] or "")


def checkable(media_type: str) -> bool:
    """Whether uploads of this type can pass `content_matches` at all."""
    if is_text(media_type):
        return True
    known = {matcher.mime for matcher in filetype.types}
    return media_type in known or bool(_SNIFFED_AS.get(media_type, set()) & known)


def is_text(media_type: str) -> bool:
    return media_type.startswith("text/")


def sniff(data: bytes) -> str | None:
    """The media type the bytes' magic numbers show, or None when they show none."""
    return filetype.guess_mime(data)


def content_matches(media_type: str, data: bytes) -> bool:
    """Whether `data` is a file of (normalised) `media_type`."""
    if is_text(media_type):
        if b"\x00" in data:
            return False
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    sniffed = sniff(data)
    return sniffed is not None and sniffed in _SNIFFED_AS.get(media_type, {media_type})


def extension_for(media_type: str) -> str:
    return _EXTENSIONS.get(media_type, "")


def shown_inline(media_type: str) -> bool:
    """Types a browser may show in the page (`<img>`, `<audio>`, its PDF viewer); everything else
    is served as a download."""
    return media_type.startswith(("image/", "audio/")) or media_type == "application/pdf"
