from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.errors import ApiError, ErrorCode
from shared.imaging import decode_image, encode_jpeg
from shared.settings import ImageLimits, load_settings

LIMITS = ImageLimits()


def encoded(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def solid(color: tuple[int, int, int], size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color if mode == "RGB" else (*color, 255))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF", "BMP", "TIFF", "GIF"])
def test_decodes_supported_formats(fmt: str) -> None:
    image = decode_image(encoded(solid((200, 30, 40)), fmt), LIMITS, f"x.{fmt.lower()}")
    assert image.format == fmt
    assert image.pixels.shape == (30, 40, 3) and image.pixels.dtype == np.uint8
    assert np.abs(image.pixels.reshape(-1, 3).mean(0) - (200, 30, 40)).max() < 12


def test_heic_photos_are_read() -> None:
    # Written once by pillow-heif's encoder (the project installs only pi-heif's decoder).
    data = (Path(__file__).parents[1] / "data" / "person.heic").read_bytes()
    image = decode_image(data, LIMITS, "IMG_0001.HEIC")
    assert image.format == "HEIF" and image.pixels.shape == (360, 360, 3)
    assert 20 < image.pixels.mean() < 235 and image.pixels.std() > 20  # a picture, not a blank
    exif = Image.Exif()
    exif[0x0112] = 6  # the orientation in an AVIF's EXIF is applied as in a JPEG's
    avif = decode_image(
        encoded(solid((10, 200, 10), (60, 20)), "AVIF", exif=exif.tobytes()), LIMITS, "a.avif"
    )
    assert avif.pixels.shape == (60, 20, 3)


def test_gif_takes_the_first_frame() -> None:
    frames = [solid((255, 0, 0)), solid((0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    pixels = decode_image(buffer.getvalue(), LIMITS, "a.gif").pixels
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 50


def test_exif_orientation_is_applied() -> None:
    image = solid((10, 200, 10), (60, 20))
    image.paste((250, 250, 250), (0, 0, 10, 20))  # white band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    decoded = decode_image(encoded(image, "JPEG", exif=exif.tobytes(), quality=95), LIMITS, "a.jpg")
    assert decoded.pixels.shape == (60, 20, 3)  # upright: taller than wide
    assert decoded.pixels[:10].mean() > 200  # the left band is now at the top


def test_transparency_is_flattened_on_white() -> None:
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    pixels = decode_image(encoded(image, "PNG"), LIMITS, "a.png").pixels
    assert pixels.min() == 255


@pytest.mark.parametrize(
    ("data", "limits", "code"),
    [
        (b"", LIMITS, ErrorCode.EMPTY_FILE),
        (b"hello, not an image", LIMITS, ErrorCode.UNSUPPORTED_IMAGE_FORMAT),
        (encoded(solid((1, 2, 3)), "PNG"), ImageLimits(max_bytes=50), ErrorCode.FILE_TOO_LARGE),
        (
            encoded(solid((1, 2, 3), (400, 300)), "PNG"),
            ImageLimits(max_pixels=100_000),
            ErrorCode.IMAGE_TOO_MANY_PIXELS,
        ),
        (encoded(solid((1, 2, 3), (8, 300)), "PNG"), LIMITS, ErrorCode.IMAGE_TOO_SMALL),
        (encoded(solid((1, 2, 3)), "PPM"), LIMITS, ErrorCode.UNSUPPORTED_IMAGE_FORMAT),
    ],
)
def test_bad_input_raises_the_error_model(data: bytes, limits: ImageLimits, code: ErrorCode) -> None:
    with pytest.raises(ApiError) as caught:
        decode_image(data, limits, "upload.bin")
    assert caught.value.code == code
    assert caught.value.status in (400, 413, 415, 422)
    assert "upload.bin" in caught.value.message


def test_truncated_jpeg_is_corrupt() -> None:
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    data = encoded(noise, "JPEG")
    with pytest.raises(ApiError) as caught:
        decode_image(data[: len(data) // 2], LIMITS, "half.jpg")
    assert caught.value.code == ErrorCode.CORRUPT_IMAGE


def test_pixel_limit_is_checked_before_decoding() -> None:
    # 20000 x 20000 of one colour compresses to a small PNG but would need 1.2 GB decoded.
    huge = encoded(Image.new("L", (20000, 20000)), "PNG")
    assert len(huge) < 2_000_000
    with pytest.raises(ApiError) as caught:
        decode_image(huge, LIMITS, "bomb.png")
    assert caught.value.code == ErrorCode.IMAGE_TOO_MANY_PIXELS


def test_encode_jpeg_round_trip() -> None:
    pixels = np.full((32, 48, 3), (20, 120, 220), np.uint8)
    decoded = decode_image(encode_jpeg(pixels), LIMITS, "a.jpg")
    assert decoded.pixels.shape == pixels.shape
    assert np.abs(decoded.pixels.astype(int) - pixels).max() < 6


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFASHION_IMAGE__MAX_BYTES", "1234")
    monkeypatch.setenv("KFASHION_DATA_DIR", "/srv/kfashion")
    settings = load_settings()
    assert settings.image.max_bytes == 1234
    assert str(settings.data_dir) == "/srv/kfashion"
    assert load_settings(data_dir="/elsewhere").data_dir.as_posix() == "/elsewhere"
