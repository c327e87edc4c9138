"""The recommender's contracts: what POST /recommend takes and what the gateway sends on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from services.search.schemas import Distinct
from shared.schema import MAX_ROW_ID

MAX_INPUTS = 100


class RecommendInput(BaseModel):
    item_id: int | None = Field(None, ge=0, le=MAX_ROW_ID, description="a catalog item, instead of a photo")
    region: str | None = Field(None, description="which item of the photo (default: the surest read)")
    targets: list[str] = Field(
        default_factory=list, description="regions wanted; default: all that go with it"
    )
    include: dict[str, str | list[str]] = Field(default_factory=dict, description='{"style": ["스트리트"]}')
    exclude: dict[str, str | list[str]] = Field(default_factory=dict, description='{"color": ["레드"]}')
    changes: list[str | dict[str, str]] = Field(
        default_factory=list, description='"length: 미니 -> 롱" or {"attribute", "from", "to"}'
    )
    top_k: int = Field(10, ge=1, le=100)
    distinct: Distinct | None = Field(
        None, description="per region and change, one result per catalog image, or per product"
    )


class RecommendRequest(RecommendInput):
    inputs: list[RecommendInput] = Field(
        default_factory=list, max_length=MAX_INPUTS, description="a batch of catalog-item inputs"
    )


class TaggedRecommend(RecommendRequest):
    """What the gateway sends on: the photos already tagged (with embeddings); a failed one carries its
    error."""

    photos: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_INPUTS)
