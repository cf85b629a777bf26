"""The old name of :mod:`pyninep_browser.fs.image` (image files), kept for existing imports."""

from .fs.image import FORMAT, HEADER_SIZE, MAGIC, ImageError, dump_image, image_payload, load_image

__all__ = ["FORMAT", "HEADER_SIZE", "MAGIC", "ImageError", "dump_image", "image_payload", "load_image"]
