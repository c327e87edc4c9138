"""The style service's contract: POST /style, one image (multipart `file`) and its items' boxes (form
`boxes`, JSON; none: the whole image), the 23 styles with probabilities, a main style and a sub-style."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.inference import Box, ModelSpec


class StyleRequest(BaseModel):
    boxes: list[Box] = Field(
        default_factory=list, description="the items' [x, y, w, h]; none: the whole image"
    )


class StyleScore(BaseModel):
    name: str
    name_en: str
    score: float


class StyleResponse(BaseModel):
    style: str | None
    style_en: str | None
    sub_style: str | None
    sub_style_en: str | None
    styles: list[StyleScore] = Field(description="every style, best first")


NO_STYLE = StyleResponse(style=None, style_en=None, sub_style=None, sub_style_en=None, styles=[])

STYLE = ModelSpec(
    name="style",
    route="/style",
    title="K-Fashion style",
    summary="styles of the look in one image",
    description="The look's styles (23, multi-label): main style and sub-style.",
    request=StyleRequest,
    response=StyleResponse,
    batched=False,
)
