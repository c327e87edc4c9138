"""The search service's contracts: what its routes take and what the gateway sends on. Route-free, so the
gateway and the recommender import these and nothing else of the search service's API."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator

from shared.schema import MAX_ROW_ID

MAX_OFFSET = 1000  # deeper pages are not served
MAX_TEXT = 500  # characters of a text query (a query costs time in proportion to its length)
TREND_FIELDS = ("style", "category", "color", "print", "region", "material", "detail", "length", "fit")
MAX_PRODUCT_FIELDS = 50
MAX_PRODUCT_BYTES = 8192  # the fields as JSON: they ride along in every result

ProductValue = str | int | float | bool | None
Distinct = Literal["image", "product"]  # what a `distinct` request keeps one result of


def _not_a_dot_segment(name: str) -> str:
    if name in (".", ".."):
        raise ValueError("a collection cannot be named . or .. (URLs drop such path segments)")
    return name


# A name that is one path segment of /collections/{name}: no slash or control character, not "." or "..".
CollectionName = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[^/\x00-\x1f\x7f]+$"),
    AfterValidator(_not_a_dot_segment),
]


class ProductFields(BaseModel):
    """What a request says of the product its images show. A field left out is left as it is; `null` clears
    it; `product` replaces the whole set of fields."""

    product_id: str | None = Field(
        None, min_length=1, max_length=128, description="the shop's own id of the product the images show"
    )
    product: dict[str, ProductValue] | None = Field(
        None,
        description='the shop\'s fields of the product, returned with results and filterable: {"name": '
        '"Linen shirt", "price": 39000, "in_stock": true}',
    )

    @field_validator("product")
    @classmethod
    def _bounded(cls, fields: dict[str, ProductValue] | None) -> dict[str, ProductValue] | None:
        if fields is None:
            return None
        if len(fields) > MAX_PRODUCT_FIELDS:
            raise ValueError(f"at most {MAX_PRODUCT_FIELDS} product fields")
        for name in fields:
            if not 1 <= len(name) <= 64 or name != name.strip():
                raise ValueError(f"product field names are 1 to 64 characters without outer spaces: {name!r}")
        if len(json.dumps(fields, ensure_ascii=False).encode()) > MAX_PRODUCT_BYTES:
            raise ValueError(f"product fields take at most {MAX_PRODUCT_BYTES} bytes as JSON")
        return fields

    def changes(self) -> dict[str, Any]:
        """Only the fields the request gave (a `null` given is a change: it clears)."""
        given = self.model_fields_set
        return {name: getattr(self, name) for name in ("product_id", "product") if name in given}


class SearchRequest(BaseModel):
    text: str | None = Field(
        None,
        max_length=MAX_TEXT,
        description='tags or words, Korean or English: "블랙 미니 스커트", "#street"',
    )
    filters: dict[str, str | list[str]] = Field(
        default_factory=dict, description='{"color": ["블랙"], "region": "bottom", "style": "스트리트"}'
    )
    top_k: int = Field(10, ge=1, le=200)
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="results to skip; the next page: next_offset")
    scope: Literal["item", "look"] = Field("item", description="a photo's item, or its whole look")
    distinct: Distinct | None = Field(
        None, description="one result per catalog image, or per product (the best-ranked one)"
    )
    region: str | None = Field(None, description="which item of the photo (default: the surest read)")
    save_to: CollectionName | None = Field(
        None, description="also save the results to this collection (created if new)"
    )


class TaggedSearch(SearchRequest):
    """What the gateway sends on: the query with its photo already tagged (with embeddings)."""

    photo: dict[str, Any] | None = None


class CatalogUpdate(ProductFields):
    file_name: str | None = Field(None, min_length=1, max_length=1024)
    items: dict[Annotated[int, Field(ge=0, le=MAX_ROW_ID)], dict[str, str | list[str]]] = Field(
        default_factory=dict, description='corrections per item id: {"12": {"color": "화이트"}}'
    )


class CollectionEntry(BaseModel):
    image_id: int = Field(ge=0, le=MAX_ROW_ID)
    item_id: int | None = Field(None, ge=0, le=MAX_ROW_ID, description="none: the whole image")
    score: float | None = None
    note: str = Field("", max_length=1024)


class CollectionCreate(BaseModel):
    name: CollectionName
    description: str = Field("", max_length=1024)
    entries: list[CollectionEntry] = Field(default_factory=list)


class CollectionEntries(BaseModel):
    entries: list[CollectionEntry] = Field(min_length=1)
