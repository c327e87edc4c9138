"""All settings in one object, read once from the environment (prefix KFASHION_, nested with "__")
and passed in. Example: KFASHION_IMAGE__MAX_BYTES=10000000.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "KFASHION_"


class ImageLimits(BaseModel):
    max_bytes: int = Field(25 * 1024 * 1024, gt=0, description="largest accepted upload, in bytes")
    max_pixels: int = Field(
        40_000_000, gt=0, description="largest accepted width*height, checked before decoding"
    )
    min_side: int = Field(16, gt=0, description="smallest accepted width or height")
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(Path("data"), description="everything the embedded server stores lives under it")
    models_dir: Path = Field(Path("models"), description="ONNX models and their manifest.json")
    image: ImageLimits = ImageLimits()


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; explicit overrides (from the command line) win."""
    return Settings(**overrides)
