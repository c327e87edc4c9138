"""Image decoding with limits. Every image that enters the system comes through `decode_image`.

Arrays are RGB, uint8, shape (height, width, 3), with the EXIF orientation applied.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pi_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.errors import ApiError, ErrorCode
from shared.settings import ImageLimits

# Pillow reads AVIF itself; HEIC/HEIF (what iPhones save) through libheif. The decoder applies the file's
# rotation and mirroring and leaves the EXIF orientation at 1, so exif_transpose below cannot turn it twice.
pi_heif.register_heif_opener()


@dataclass(frozen=True, slots=True)
class DecodedImage:
    pixels: np.ndarray  # RGB uint8 (H, W, 3)
    format: str  # "JPEG", "PNG", ...
    source: str  # the name the client gave, for messages

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def decode_image(data: bytes, limits: ImageLimits, source: str = "image") -> DecodedImage:
    """Decode `data` or raise ApiError with a code saying why not (size, format, pixels, corruption)."""
    if not data:
        raise ApiError(ErrorCode.EMPTY_FILE, f"{source}: the file is empty", {"file": source})
    if len(data) > limits.max_bytes:
        raise ApiError(
            ErrorCode.FILE_TOO_LARGE,
            f"{source}: {len(data)} bytes is over the limit of {limits.max_bytes}",
            {"file": source, "bytes": len(data), "max_bytes": limits.max_bytes},
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(
            ErrorCode.IMAGE_TOO_MANY_PIXELS,
            f"{source}: too many pixels ({exc})",
            {"file": source, "max_pixels": limits.max_pixels},
        ) from exc
    except UnidentifiedImageError as exc:
        raise ApiError(
            ErrorCode.UNSUPPORTED_IMAGE_FORMAT,
            f"{source}: not an image in a supported format ({', '.join(limits.formats)})",
            {"file": source},
        ) from exc
    with image:
        fmt = (image.format or "").upper()
        if fmt not in limits.formats:
            raise ApiError(
                ErrorCode.UNSUPPORTED_IMAGE_FORMAT,
                f"{source}: format {fmt or 'unknown'} is not accepted",
                {"file": source, "format": fmt, "accepted": list(limits.formats)},
            )
        width, height = image.size
        if width * height > limits.max_pixels:
            raise ApiError(
                ErrorCode.IMAGE_TOO_MANY_PIXELS,
                f"{source}: {width}x{height} is over the limit of {limits.max_pixels} pixels",
                {"file": source, "width": width, "height": height, "max_pixels": limits.max_pixels},
            )
        if min(width, height) < limits.min_side:
            raise ApiError(
                ErrorCode.IMAGE_TOO_SMALL,
                f"{source}: {width}x{height} is smaller than {limits.min_side} pixels on a side",
                {"file": source, "width": width, "height": height},
            )
        try:
            image.seek(0)  # animated GIF/WEBP/TIFF: the first frame
            image.load()
            upright = ImageOps.exif_transpose(image)
            rgb = _to_rgb(upright)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ApiError(
                ErrorCode.CORRUPT_IMAGE,
                f"{source}: the image data is damaged ({exc})",
                {"file": source, "format": fmt},
            ) from exc
    return DecodedImage(np.asarray(rgb, dtype=np.uint8).copy(), fmt, source)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparency flattened onto white (a shop photo's cut-out background reads as white)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode == "I;16" or image.mode.startswith("I;16"):
        array = np.asarray(image, dtype=np.uint16) >> 8
        return Image.fromarray(array.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def encode_jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an RGB array."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


EXIF_IFD = 0x8769
EXIF_DATE_ORIGINAL = 36867
EXIF_DATE = 306


def capture_date(data: bytes) -> datetime | None:
    """When the photo was taken, from its EXIF (DateTimeOriginal, else DateTime); None when absent."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            text = exif.get_ifd(EXIF_IFD).get(EXIF_DATE_ORIGINAL) or exif.get(EXIF_DATE)
        return datetime.strptime(str(text).strip("\x00 "), "%Y:%m:%d %H:%M:%S") if text else None
    except (OSError, ValueError, UnidentifiedImageError):
        return None
