"""Which Telegram messages carry an image, and where to download it from."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram import Message

from bot.conversation import MAX_DOWNLOAD

__all__ = ["MAX_DOWNLOAD", "ImageRef", "image_of"]

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")


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
