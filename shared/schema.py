"""Every table, declared once. Changes to them go with a migration in shared/migrations/versions."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

# Integer ids are 64-bit signed in every database used here: a larger one in a request is a client error,
# refused where it arrives (shared/web.py, RowId), never passed on to the database.
MAX_ROW_ID = 2**63 - 1

metadata = MetaData()

tagging_jobs = Table(
    "tagging_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created", DateTime, nullable=False),
    Column("options", JSON, nullable=False),
    # Where to POST the job when it is done, and how that went: waiting, sending, delivered or failed.
    Column("callback_url", String(2048)),
    Column("callback_status", String(16)),
    Column("callback_detail", JSON),  # attempts, the last HTTP status or error, when delivered
    # The API key that created it (gateway/access.py, key_owner); None when the gateway had no keys.
    Column("owner", String(64), index=True),
)
tagging_job_items = Table(
    "tagging_job_items",
    metadata,
    Column("job_id", String(32), ForeignKey("tagging_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(1024), nullable=False),
    Column("url", String(2048)),
    Column("status", String(16), nullable=False, index=True),  # pending, done, failed
    Column("result", JSON),
    Column("finished", DateTime),
    # The worker tagging it now, until when: a row is claimed before it is tagged, so each waiting image
    # is tagged by one of the gateway processes; a claim of a process that died runs out (CLAIM_LEASE_S).
    Column("claimed_by", String(64)),
    Column("claimed_until", DateTime),
)

# The catalog (issue 5): each image stored once (by content hash), its tagging result, and its items with
# their label-format attributes and search embeddings.
catalog_images = Table(
    "catalog_images",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("file_name", String(1024), nullable=False),
    Column("blob_key", String(256), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("style", String(32)),
    Column("sub_style", String(32)),
    Column("styles", JSON, nullable=False),  # [{"name", "name_en", "score"}] best first
    Column("created", DateTime, nullable=False, index=True),  # upload (UTC)
    Column("versions", JSON, nullable=False),  # taxonomy and model versions that tagged it
    Column("captured", DateTime, index=True),  # the photo's EXIF capture date, when it has one
    # The shop's own product the photo shows (migration 0006): its id, and its fields (name, price, stock...)
    Column("product_id", String(128), index=True),
    Column("product", JSON),
    sqlite_autoincrement=True,  # ids are never reused (migration 0004)
)
catalog_items = Table(
    "catalog_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "image_id", Integer, ForeignKey("catalog_images.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("region", String(16), nullable=False),
    Column("box", JSON, nullable=False),
    Column("score", Float, nullable=False),
    Column("category", String(32), index=True),
    Column("color", String(32), index=True),
    Column("attributes", JSON, nullable=False),  # label-format values (Korean; lists for multi-valued)
    Column("embedding", LargeBinary, nullable=False),  # float32 little-endian
    sqlite_autoincrement=True,
)

# Saved search and recommendation results (issue 5): named lists of catalog images or items (item_id 0:
# the whole image).
collections = Table(
    "collections",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("created", DateTime, nullable=False),
    Column("description", String(1024), nullable=False, server_default=""),
)
collection_entries = Table(
    "collection_entries",
    metadata,
    Column("collection", String(128), ForeignKey("collections.name", ondelete="CASCADE"), primary_key=True),
    Column("image_id", Integer, ForeignKey("catalog_images.id", ondelete="CASCADE"), primary_key=True),
    Column("item_id", Integer, primary_key=True, server_default="0"),
    Column("score", Float),
    Column("note", String(1024), nullable=False, server_default=""),
    Column("added", DateTime, nullable=False),
)

# The text search's TF-IDF postings (issue 37, migration 0009), kept with every catalog change in the same
# transaction, so queries read only their own terms' postings and the candidates' rows, never the catalog.
catalog_terms = Table(  # documents holding each term; the term "" counts every document
    "catalog_terms",
    metadata,
    Column("term", String(255), primary_key=True),
    Column("documents", Integer, nullable=False),
)
catalog_text = Table(  # one row per (item, term): the term's frequency weight in the item's document
    "catalog_text",
    metadata,
    Column("item_id", Integer, ForeignKey("catalog_items.id", ondelete="CASCADE"), primary_key=True),
    Column("term", String(255), primary_key=True, index=True),
    Column("tf", Float, nullable=False),
)

# The recommender's co-occurrence counts (issue 37, migration 0010), kept with every catalog change in the
# same transaction: per (region, key, value), the images whose look carries it; per pair of values of one
# key worn in two regions of one image, how many images. The row ("", "", "") counts the looks.
catalog_look_values = Table(
    "catalog_look_values",
    metadata,
    Column("region", String(16), primary_key=True),
    Column("key", String(32), primary_key=True),
    Column("value", String(64), primary_key=True),
    Column("images", Integer, nullable=False),
)
catalog_look_pairs = Table(
    "catalog_look_pairs",
    metadata,
    Column("region", String(16), primary_key=True),
    Column("key", String(32), primary_key=True),
    Column("value", String(64), primary_key=True),
    Column("other_region", String(16), primary_key=True),
    Column("other_value", String(64), primary_key=True),
    Column("images", Integer, nullable=False),
)
