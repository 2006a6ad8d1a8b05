"""Screenshots to text: which messages carry an image, and how reading one turns into text or a polite refusal."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram import Message

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
# Telegram's Bot API serves files up to 20 MB; larger ones can't even be downloaded.
MAX_DOWNLOAD = 20 * 1024 * 1024


@dataclass(frozen=True)
class ImageRef:
    """A downloadable image in a message."""

    file_id: str
    size: int | None


def image_of(message: Message | None) -> ImageRef | None:
    """The message's image: its largest photo size, or a document sent as a PNG, JPEG or WebP file."""
    if message is None:
        return None
    if message.photo:
        best = message.photo[-1]
        return ImageRef(best.file_id, best.file_size)
    doc = message.document
    if doc is not None and (doc.mime_type or "").lower() in IMAGE_TYPES:
        return ImageRef(doc.file_id, doc.file_size)
    return None


@dataclass(frozen=True)
class ImageText:
    """What reading an image gave: the text, or the key of the UI string that says why there is none."""

    text: str = ""
    problem: str | None = None
