"""The detector service's contract: POST /detect, images in (multipart `files`, repeated), per image its
garments (region, box, score)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.inference import ModelSpec, Region


class DetectRequest(BaseModel):
    """Nothing beside the images: thresholds are the service's settings (KFASHION_DETECTOR__*)."""


class DetectedItem(BaseModel):
    region: Region
    box: list[float] = Field(description="x, y, width, height in the image's pixels")
    score: float


class DetectResponse(BaseModel):
    items: list[DetectedItem] = Field(description="best first")


DETECTOR = ModelSpec(
    name="detector",
    route="/detect",
    title="K-Fashion detector",
    summary="items of each image (all images in one model call)",
    description="Finds garments (outer, top, bottom, onepiece) with their boxes.",
    request=DetectRequest,
    response=DetectResponse,
    batched=True,
)
