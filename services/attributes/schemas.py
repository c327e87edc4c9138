"""The attribute service's contract: POST /attributes, one image (multipart `file`) and its items' boxes
(form `items`, JSON), per item every attribute its region has, its colour and its search embedding."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from shared.inference import Box, ModelSpec, Region


class ItemBox(BaseModel):
    region: Region
    box: Box = Field(description="x, y, width, height in image pixels")

    @field_validator("box")
    @classmethod
    def _has_area(cls, box: Box) -> Box:
        if box[2] <= 0 or box[3] <= 0:
            raise ValueError("box width and height must be > 0")
        return box


class AttributesRequest(BaseModel):
    items: list[ItemBox] = Field(description='[{"region": "top", "box": [x, y, w, h]}, ...]')
    top_k: int | None = Field(None, ge=1, le=50, description="labels listed per attribute")


class LabelScore(BaseModel):
    value: str
    value_en: str
    score: float


class SingleReading(LabelScore):
    """A single-valued attribute: the best label, and the `top_k` best with their probabilities."""

    top_k: list[LabelScore]


class MultiReading(BaseModel):
    """A multi-valued attribute (print, material, detail): every label over the threshold, and `top_k`."""

    values: list[LabelScore]
    top_k: list[LabelScore]


class ItemColor(BaseModel):
    value: str
    value_en: str
    hex: str = Field(description="the garment's own pixels of that colour, averaged")
    share: float = Field(description="the share of the garment's pixels near that colour")


class ItemAttributes(BaseModel):
    region: Region
    box: list[float]
    attributes: dict[str, SingleReading | MultiReading] = Field(
        description="every attribute of the item's region, by key (category, color, ...)"
    )
    color: ItemColor
    embedding: list[float]


class AttributesResponse(BaseModel):
    items: list[ItemAttributes] = Field(description="in the order of the request's items")


ATTRIBUTES = ModelSpec(
    name="attributes",
    route="/attributes",
    title="K-Fashion attributes",
    summary="attributes of each item of one image",
    description="Per garment: category, colour, length, sleeve, neckline, collar, fit, print, material, "
    "detail.",
    request=AttributesRequest,
    response=AttributesResponse,
    batched=False,
)
