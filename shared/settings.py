"""All settings in one object, read once from the environment (prefix KFASHION_, nested with "__")
and passed in. Example: KFASHION_IMAGE__MAX_BYTES=10000000.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "KFASHION_"


class ImageLimits(BaseModel):
    max_bytes: int = Field(25 * 1024 * 1024, gt=0, description="largest accepted upload, in bytes")
    max_pixels: int = Field(
        40_000_000, gt=0, description="largest accepted width*height, checked before decoding"
    )
    min_side: int = Field(16, gt=0, description="smallest accepted width or height")
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF", "BMP", "TIFF", "GIF", "MPO")


class RuntimeSettings(BaseModel):
    backend: Literal["onnxruntime", "triton"] = "onnxruntime"
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available")
    threads: int = Field(0, ge=0, description="ONNX Runtime threads per model; 0: one per core")
    max_batch: int = Field(32, gt=0, description="largest batch sent in one model call")
    workers: int = Field(2, gt=0, description="model calls run at the same time (threads of their own)")
    queue: int = Field(128, ge=0, description="model calls that may wait; past that: 503 SERVICE_BUSY")
    nice: int = Field(
        10,
        ge=0,
        le=19,
        description="how much lower the model threads' CPU priority is (cheap requests first)",
    )
    triton_url: str = "127.0.0.1:8000"
    triton_protocol: Literal["http", "grpc"] = "http"
    triton_timeout_s: float = Field(30.0, gt=0)


class DetectorSettings(BaseModel):
    """None: the value the model was exported with (its manifest)."""

    score_threshold: float | None = Field(None, gt=0, lt=1)
    nms_iou: float | None = Field(None, gt=0, le=1)
    max_items: int | None = Field(None, gt=0)


class ServiceUrls(BaseModel):
    """Where the gateway finds the services. Unset: embedded (that service runs in the gateway's process)."""

    detector: str | None = None
    attributes: str | None = None
    style: str | None = None
    search: str | None = Field(None, description="the search service (catalog, search, recommend)")
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(2, ge=0, description="extra tries on connection errors")

    @property
    def remote(self) -> bool:
        """The model services run elsewhere."""
        return any((self.detector, self.attributes, self.style))


MIN_API_KEY_LENGTH = 16  # a key is a secret: long enough that guessing it is out of reach


class RateLimits(BaseModel):
    """Requests per minute, counted per gateway process (token buckets that refill evenly, each holding
    one minute's worth); 0: no limit. Routes that need no key (probes, metrics, the API's description,
    the console's files) are not counted."""

    per_address: int = Field(1200, ge=0, description="requests per client address")
    per_key: int = Field(600, ge=0, description="requests per API key")
    failed_keys: int = Field(20, ge=0, description="requests with a wrong API key per client address")


class GatewaySettings(BaseModel):
    url_hosts: list[str] = Field(
        default_factory=list,
        description="hosts /tagging may fetch image URLs and folder listings from; empty: none",
    )
    url_timeout_s: float = Field(10.0, gt=0)
    callback_hosts: list[str] = Field(
        default_factory=list, description="hosts a job's callback_url may name (your backend); empty: none"
    )
    sync_max_images: int = Field(32, gt=0, description="more images than this must go to /tagging/jobs")
    job_max_images: int = Field(20_000, gt=0)
    archive_max_entries: int = Field(5_000, gt=0)
    archive_max_bytes: int = Field(
        1024**3, gt=0, description="an archive's entries unpacked, in all (read from its directory first)"
    )
    concurrency: int = Field(2, gt=0, description="images tagged at the same time")
    top_k: int = Field(3, gt=0, le=50, description="labels listed per attribute")
    draw_size: int = Field(800, ge=64, le=4096, description="default longest side of drawn images")
    cors_origins: list[str] = Field(
        default_factory=list,
        description='web origins whose pages may call the API from the browser: ["https://shop.example"]',
    )
    api_keys: dict[str, Literal["read", "write", "admin"]] = Field(
        default_factory=dict,
        description='API key -> scope: {"<app key>": "read", "<backend key>": "write"}; admin: also every '
        f"key's jobs; each key at least {MIN_API_KEY_LENGTH} characters; empty: no key needed",
    )
    rate_limits: RateLimits = RateLimits()

    @field_validator("api_keys")
    @classmethod
    def _long_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        short = [str(len(key)) for key in keys if len(key) < MIN_API_KEY_LENGTH]
        if short:
            raise ValueError(
                f"API keys need at least {MIN_API_KEY_LENGTH} characters (given: keys of "
                f"{', '.join(short)} characters); "
                "make one with `python -c 'import secrets; print(secrets.token_urlsafe(24))'`"
            )
        return keys


class SearchSettings(BaseModel):
    """Where the search service keeps the catalog's vector indexes."""

    backend: Literal["faiss", "milvus"] = Field(
        "faiss", description="faiss: in the search service's memory, saved to storage; milvus: a Milvus"
    )
    milvus_uri: str = Field(
        "", description="a file path (milvus-lite, embedded) or http://host:19530; empty: DATA_DIR/milvus.db"
    )
    milvus_token: str | None = Field(None, description="user:password or an API key, for a server")
    milvus_database: str = Field("", description="the server's database; empty: its default")
    milvus_prefix: str = Field("kfashion", pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="collection names")
    milvus_index_type: str = Field("FLAT", description="FLAT (exact), IVF_PQ, HNSW, GPU_CAGRA (a server's)")
    milvus_index_params: dict[str, Any] = Field(default_factory=dict, description='e.g. {"M": 16}')
    milvus_search_params: dict[str, Any] = Field(default_factory=dict, description='e.g. {"ef": 256}')


class StorageSettings(BaseModel):
    """Stored files: a folder under data_dir (local) or an S3-compatible bucket (MinIO, S3)."""

    backend: Literal["local", "s3"] = "local"
    endpoint: str = Field("127.0.0.1:9000", description="host:port of the S3 endpoint")
    bucket: str = "kfashion"
    prefix: str = Field("", description="object name prefix, to share a bucket")
    access_key: str | None = None
    secret_key: str | None = None
    secure: bool = Field(True, description="HTTPS")
    region: str | None = None


class Settings(BaseSettings):
    # Errors never echo what was given: keys and passwords travel in these settings.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Field(Path("data"), description="everything the embedded server stores lives under it")
    models_dir: Path = Field(Path("models"), description="ONNX models and their manifest.json")
    image: ImageLimits = ImageLimits()
    runtime: RuntimeSettings = RuntimeSettings()
    detector: DetectorSettings = DetectorSettings()
    services: ServiceUrls = ServiceUrls()
    gateway: GatewaySettings = GatewaySettings()
    storage: StorageSettings = StorageSettings()
    search: SearchSettings = SearchSettings()
    database: str | None = Field(None, description="SQLAlchemy URL; default SQLite under data_dir")
    head_timeout_s: float = Field(
        10.0, gt=0, description="a request's line and headers must arrive within this, or it is cut off"
    )

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{(self.data_dir / 'kfashion.db').resolve()}"


def settings_from_env_file(path: Path) -> Settings:
    """Settings read from an env file (KEY=VALUE lines, KFASHION_*) alone, not from the environment: another
    deployment's, such as the target of `kfashion catalog copy`."""

    class FileOnly(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        ):  # type: ignore[no-untyped-def]
            return (init_settings, dotenv_settings)

    return FileOnly(_env_file=path)  # type: ignore[call-arg]


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; explicit overrides (from the command line) win."""
    return Settings(**overrides)
