"""Catalog, /search, /collections, /trends and /recommend end to end: real `kfashion serve` processes on
loopback with the committed models, a catalog of 200 generated images, and the same suite on two storage
stacks: SQLite + the local disk, and the real PostgreSQL + an S3-protocol server (moto's, on loopback).
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx2
import pytest
from PIL import Image

from shared.blobs import S3BlobStore
from shared.labels import Item
from shared.settings import StorageSettings
from shared.taxonomy import ATTRIBUTES, STYLE
from tests.conftest import SYNTH_SEED, UNSEEN_SEED
from tests.databases import database_url
from tests.servers import ROOT, Server, gateway_env
from training.data import Sample, load_samples
from training.synth.dataset import generate_dataset

# Top-5 share of unseen photos whose 5 most similar catalog items include one of the same category and
# colour (by the generated labels). Issue 5 asks 0.9; see the shop-sized catalog below. In the 200-image
# catalog of the two stacks only 0.83 of these 40 photos have such an item at all (0.63 measured with the
# earlier models, 2026-11-23). This floor catches a regression of the search path on both stacks.
TOP5_SAME_CATEGORY_COLOUR_MIN = 0.5
# Share of the catalog's pictures that, re-encoded and asked as a photo, find their own garment first (issue 5
# asks for it). Until 2026-12-01 199 of the 200 did: the miss, kf_synth_11_0000147, is a dress the detector
# reads as a top in the catalog and as a dress in the re-encoded query, and the search was held to the query's
# region. Searching every region with a penalty for another one (services/search/rerank.py) finds it first
# by 0.056; the narrowest of the 200 margins over another picture's item is 0.025 (the detector before the
# mirrored-image one; with that one all 200 come first too, margins not measured). Every picture is required.
SAME_GARMENT_FIRST_MIN = 1.0
CATALOG_BATCH = 32
# Issue 5's criterion on a shop-sized catalog: 1,000 generated images (about 2,200 items) queried with 300
# unseen photos, counting the photos whose query item is a labelled garment with an item of its category
# and colour in the catalog. Measured 2026-11-30 with the committed models on the generator's `synth-3`
# pictures (docs/experiments/benchmarks-log.md, "Search quality"): 0.940 (265/282) here, 0.915 on 1,000
# images of seed 31
# (the models before them: 0.947 and 0.918; on `synth-1` pictures, whose five prints gave the accent as much
# area as the labelled colour, 0.901 and 0.885). With the detector trained on mirrored images too
# (2026-12-01): 0.950 (268/282) and 0.929; with item crops that keep a quarter of the box's aspect (the
# committed attribute model, 2026-12-01): 0.965 (272/282) and 0.935. 100 queries were too few: that figure
# moved by 5 points with which garment of a photo was queried. The misses left are query items read wrong by
# the models (category or colour, mostly tops under an outer). Since 2026-12-07 the default models are
# fine-tuned on real photos too (docs/models.md): they read generated garments less surely, 0.910 (253/278)
# here and 0.899 on seed 31, and re-ordering weights do not recover it (0.895-0.910 for colour 0.05-0.3 and
# category 0.1-0.3 on seed 31, `python -m bench.search_quality --catalog-seed 31 --weights ...`). The floor
# is issue 5's 0.9 (it was 0.93, above it, for the generated-only models); the re-ordering has its own test
# (tests/unit/test_search_query.py).
SHOP_CATALOG_IMAGES = 1000
SHOP_QUERIES = 300
TOP5_SAME_CATEGORY_COLOUR_SHOP_MIN = 0.9


@dataclass
class Deployment:
    name: str
    server: Server
    folder: Path
    env: dict[str, str]
    samples: list[Sample]
    items: dict[int, dict] = field(default_factory=dict)  # item id -> item with its image's fields

    @property
    def url(self) -> str:
        return self.server.url

    def restart(self) -> None:
        self.server.kill(signal.SIGTERM)
        self.server = Server([], self.env, log=self.folder / "server.log").start()


def _storage_env(kind: str, folder: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    if kind == "local":
        return {}
    if kind == "milvus":  # files on the local disk, the indexes in Milvus (milvus-lite under the data dir)
        return {"KFASHION_SEARCH__BACKEND": "milvus"}
    return {
        "KFASHION_STORAGE__BACKEND": "s3",
        "KFASHION_STORAGE__ENDPOINT": request.getfixturevalue("s3_endpoint"),
        "KFASHION_STORAGE__BUCKET": "kfashion-search",
        "KFASHION_STORAGE__PREFIX": folder.name,
        "KFASHION_STORAGE__ACCESS_KEY": "test",
        "KFASHION_STORAGE__SECRET_KEY": "test",
        "KFASHION_STORAGE__SECURE": "false",
        "KFASHION_STORAGE__REGION": "us-east-1",
    }


def _files(pairs: list[tuple[str, bytes]]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "image/jpeg")) for name, data in pairs]


def _ok(response: httpx2.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()["body"]


def snapshot(url: str) -> dict[int, dict]:
    """Every catalog item with its image's name and styles, read back through the API."""
    listing = _ok(httpx2.get(f"{url}/catalog/images", params={"limit": 500}))
    items = {}
    for image in listing["images"]:
        full = _ok(httpx2.get(f"{url}/catalog/images/{image['id']}"))
        for item in full["items"]:
            items[item["id"]] = {**item, "file_name": full["file_name"], "style": full["style"]}
            items[item["id"]]["sub_style"] = full["sub_style"]
    return items


@pytest.fixture(scope="module", params=["sqlite-local", "postgresql-s3", "postgresql-milvus"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, synth_dataset: Path
) -> Iterator[Deployment]:
    database, storage = request.param.split("-")
    folder = tmp_path_factory.mktemp(request.param)
    env = gateway_env(folder / "data") | {"KFASHION_GATEWAY__SYNC_MAX_IMAGES": str(CATALOG_BATCH)}
    if database == "postgresql":
        env["KFASHION_DATABASE"] = database_url("postgresql", folder, request)
    env |= _storage_env(storage, folder, request)
    server = Server([], env, log=folder / "server.log").start()
    found = Deployment(request.param, server, folder, env, load_samples(synth_dataset)[0])
    try:
        _add_to_catalog(server.url, found.samples)
        found.items = snapshot(server.url)
        yield found
    finally:
        found.server.kill()


def _add_to_catalog(url: str, samples: list[Sample]) -> None:
    for start in range(0, len(samples), CATALOG_BATCH):
        chunk = samples[start : start + CATALOG_BATCH]
        body = _ok(
            httpx2.post(
                f"{url}/catalog/images",
                files=_files([(s.image_path.name, s.image_path.read_bytes()) for s in chunk]),
                timeout=300,
            )
        )
        assert body["counts"]["added"] == len(chunk), body["counts"]


def _reencoded(data: bytes, exif_date: datetime | None = None) -> bytes:
    """The same picture as another file: scaled to 90 % and saved again at JPEG quality 70."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.resize((int(image.width * 0.9), int(image.height * 0.9)))
    out = io.BytesIO()
    exif = Image.Exif()
    if exif_date:
        exif.get_ifd(0x8769)[36867] = exif_date.strftime("%Y:%m:%d %H:%M:%S")
    image.save(out, "JPEG", quality=70, exif=exif.tobytes())
    return out.getvalue()


def _photo_search(url: str, name: str, data: bytes, **fields: object) -> httpx2.Response:
    form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    return httpx2.post(f"{url}/search", files=_files([(name, data)]), data=form, timeout=60)


def _matches(item: dict, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "region":
            present = {item["region"]}
        elif key == "style":
            present = {item["style"], item["sub_style"]}
        else:
            value = item["attributes"].get(key)
            present = set(value) if isinstance(value, list) else {value}
        if not present & set(values):
            return False
    return True


# ---------------------------------------------------------------------------------------------- catalog


def test_each_image_is_stored_once_and_a_bad_file_fails_alone(deployment: Deployment) -> None:
    again = [(s.image_path.name, s.image_path.read_bytes()) for s in deployment.samples[:2]]
    body = _ok(
        httpx2.post(
            f"{deployment.url}/catalog/images",
            files=_files([*again, ("broken.jpg", b"\xff\xd8 not really a jpeg")]),
            timeout=120,
        )
    )
    assert [r["status"] for r in body["results"]] == ["exists", "exists", "failed"]
    assert body["results"][2]["error"]["code"] in ("CORRUPT_IMAGE", "UNSUPPORTED_IMAGE_FORMAT")
    assert body["counts"] == {"added": 0, "exists": 2, "failed": 1, "total": 3}
    total = _ok(httpx2.get(f"{deployment.url}/catalog/images", params={"limit": 1}))["total"]
    assert total == len(deployment.samples)
    image_id = body["results"][0]["image_id"]
    stored = httpx2.get(f"{deployment.url}/catalog/images/{image_id}/file")
    assert stored.status_code == 200 and stored.headers["content-type"] == "image/jpeg"
    assert stored.content == again[0][1]


def test_a_photo_finds_the_same_garment_first(deployment: Deployment) -> None:
    elsewhere = []  # pictures whose first result is another picture's garment
    for sample in deployment.samples:
        body = _ok(_photo_search(deployment.url, "query.jpg", _reencoded(sample.image_path.read_bytes())))
        best = body["results"][0]
        if best["file_name"] != sample.image_path.name:
            elsewhere.append((sample.image_path.name, body["query"]["item"]["region"], best["file_name"]))
        assert [r["rank"] for r in body["results"]] == list(range(1, len(body["results"]) + 1))
        assert all(
            a["score"] >= b["score"] for a, b in zip(body["results"], body["results"][1:], strict=False)
        )
    assert len(elsewhere) <= (1 - SAME_GARMENT_FIRST_MIN) * len(deployment.samples), elsewhere


def _label_pair(item: Item) -> tuple[str | None, str | None]:
    """What a hit must share with a labelled item: its (category, colour)."""
    return item.attributes.get("category"), item.attributes.get("color")


def _label_pairs(samples: list[Sample]) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """(file name, region) -> (category, colour) of the labelled item."""
    return {(s.image_path.name, item.region): _label_pair(item) for s in samples for item in s.record.items}


def _judging(
    catalog: list[Sample], queries: list[Sample]
) -> tuple[dict[tuple[str, str], tuple[str | None, str | None]], Counter]:
    """The labelled pair of every catalog and query item, and how many catalog items hold each pair (a
    query whose pair has none cannot be answered right)."""
    catalog_pairs = _label_pairs(catalog)
    return {**catalog_pairs, **_label_pairs(queries)}, Counter(catalog_pairs.values())


@dataclass
class Top5:
    asked: int = 0  # photos with a garment found
    hits: int = 0  # ... whose top 5 hold an item of the query item's labelled category and colour
    judged: int = 0  # photos whose query item is labelled and has such an item in the catalog
    judged_hits: int = 0


def _top5_same_category_colour(url: str, catalog: list[Sample], queries: list[Sample]) -> Top5:
    truth, in_catalog = _judging(catalog, queries)
    score = Top5()
    for sample in queries:
        response = _photo_search(url, sample.image_path.name, sample.image_path.read_bytes(), top_k="5")
        if response.status_code == 422:  # no garment found in the photo
            continue
        body = _ok(response)
        wanted = truth.get((sample.image_path.name, body["query"]["item"]["region"]))
        found = [truth.get((r["file_name"], r["region"])) for r in body["results"]]
        assert len(found) == 5
        hit = wanted is not None and wanted in found
        score.asked += 1
        score.hits += hit
        if wanted is not None and in_catalog[wanted]:
            score.judged += 1
            score.judged_hits += hit
    return score


def test_similar_items_share_category_and_colour(deployment: Deployment, unseen: list[Sample]) -> None:
    score = _top5_same_category_colour(deployment.url, deployment.samples, unseen)
    assert score.asked >= 35
    assert score.hits / score.asked >= TOP5_SAME_CATEGORY_COLOUR_MIN, score


@pytest.fixture(scope="module")
def shop_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Sample]]]:
    """The embedded server with a catalog of SHOP_CATALOG_IMAGES generated images."""
    folder = tmp_path_factory.mktemp("shop")
    generate_dataset(folder / "images", SHOP_CATALOG_IMAGES, SYNTH_SEED, workers=2)
    samples = load_samples(folder / "images")[0]
    env = gateway_env(folder / "data") | {"KFASHION_GATEWAY__SYNC_MAX_IMAGES": str(CATALOG_BATCH)}
    server = Server([], env, log=folder / "server.log").start()
    try:
        _add_to_catalog(server.url, samples)
        yield server.url, samples
    finally:
        server.kill()


def test_similar_items_share_category_and_colour_in_a_shop_sized_catalog(
    shop_catalog: tuple[str, list[Sample]], tmp_path: Path
) -> None:
    """Issue 5's criterion (see SHOP_CATALOG_IMAGES). A query counts where the photo's
    query item is a labelled garment and the catalog holds an item of its category and colour (else no
    answer can be right); the share over all photos is printed too."""
    url, catalog = shop_catalog
    generate_dataset(tmp_path, SHOP_QUERIES, UNSEEN_SEED, workers=2)
    score = _top5_same_category_colour(url, catalog, load_samples(tmp_path)[0])
    print(f"top-5 same category and colour: {score}")
    assert score.judged >= 0.85 * SHOP_QUERIES, score
    assert score.judged_hits / score.judged >= TOP5_SAME_CATEGORY_COLOUR_SHOP_MIN, score


def _filter_cases(items: dict[int, dict]) -> list[dict[str, list[str]]]:
    colours = Counter(i["attributes"].get("color") for i in items.values())
    prints = Counter(p for i in items.values() for p in i["attributes"].get("print", []))
    styles = Counter(i["style"] for i in items.values())
    bottoms = Counter(i["attributes"].get("category") for i in items.values() if i["region"] == "bottom")
    return [
        {"color": [colours.most_common(1)[0][0]]},
        {"print": [prints.most_common(2)[1][0]]},
        {"style": [styles.most_common(3)[2][0]], "region": ["top"]},
        {"region": ["bottom"], "category": [bottoms.most_common(1)[0][0]]},
        {"color": [colours.most_common(3)[2][0], colours.most_common(4)[3][0]], "region": ["outer"]},
    ]


def test_filters_hold_inside_the_search_and_k_come_back(deployment: Deployment, unseen: list[Sample]) -> None:
    for filters in _filter_cases(deployment.items):
        allowed = {i for i, item in deployment.items.items() if _matches(item, filters)}
        assert allowed, filters
        for k in (3, len(allowed) + 5):
            body = _ok(httpx2.post(f"{deployment.url}/search", json={"filters": filters, "top_k": k}))
            found = [r["item_id"] for r in body["results"]]
            assert len(found) == min(k, len(allowed)) and set(found) <= allowed, filters
        # The same filters on a photo query (which searches every region unless a filter names some).
        photo = unseen[0].image_path
        body = _ok(_photo_search(deployment.url, photo.name, photo.read_bytes(), filters=filters, top_k="50"))
        found = [r["item_id"] for r in body["results"]]
        assert len(found) == min(50, len(allowed)) and set(found) <= allowed, filters


def test_pages_follow_one_another(deployment: Deployment, unseen: list[Sample]) -> None:
    photo = unseen[1].image_path

    def pages(size: int, **query: object) -> list[dict]:
        """The pages of a query, following next_offset from the first, until 60 results or the last."""
        results, offset = [], 0
        while offset is not None and len(results) < 60:
            if "text" in query:
                body = _ok(
                    httpx2.post(f"{deployment.url}/search", json={**query, "top_k": size, "offset": offset})
                )
            else:
                fields = {**query, "top_k": str(size), "offset": str(offset)}
                body = _ok(_photo_search(deployment.url, photo.name, photo.read_bytes(), **fields))
            assert body["offset"] == offset and len(body["results"]) <= size
            results += body["results"]
            offset = body["next_offset"]
        return results

    for query in (
        {"text": "black skirt"},
        {"filters": {"region": "bottom", "color": "black"}},
        {"scope": "look"},
    ):
        if "filters" in query:
            query = {**query, "filters": json.dumps(query["filters"])}
        whole = _ok(
            httpx2.post(f"{deployment.url}/search", json={**query, "top_k": 200})
            if "text" in query
            else _photo_search(deployment.url, photo.name, photo.read_bytes(), **query, top_k="200")
        )["results"][:60]
        paged = pages(13, **query)[:60]
        key = "item_id" if query.get("scope") != "look" else "image_id"
        assert [(r[key], r["rank"]) for r in paged] == [(r[key], r["rank"]) for r in whole], query
    # The last page says so: the catalog's 'black skirt' answers end, and so does the paging.
    first = _ok(httpx2.post(f"{deployment.url}/search", json={"text": "black skirt", "top_k": 200}))
    assert len(first["results"]) < 200 and first["next_offset"] is None
    beyond = httpx2.post(f"{deployment.url}/search", json={"text": "black", "offset": 1001})
    assert beyond.status_code == 422


def test_korean_and_english_queries_agree(deployment: Deployment) -> None:
    pairs = Counter(
        (i["attributes"].get("color"), i["attributes"].get("category")) for i in deployment.items.values()
    )
    (colour, category), count = pairs.most_common(1)[0]
    colour_label, category_label = ATTRIBUTES["color"].lookup(colour), ATTRIBUTES["category"].lookup(category)
    texts = [
        f"{colour_label.ko} {category_label.ko}",
        f"{colour_label.en} {category_label.en}",
        f"{colour_label.en.upper()}, {category_label.en}",
        f"{colour_label.ko}{category_label.ko}",
    ]
    answers = [_ok(httpx2.post(f"{deployment.url}/search", json={"text": t, "top_k": 100})) for t in texts]
    ids = [[r["item_id"] for r in a["results"]] for a in answers]
    either = sum(
        i["attributes"].get("color") == colour or i["attributes"].get("category") == category
        for i in deployment.items.values()
    )
    assert len(ids[0]) == min(100, either) > count and all(other == ids[0] for other in ids[1:]), texts
    # Items carrying both tags first, then those carrying one (each naming the tag it lacks).
    exact = [r for r in answers[0]["results"] if r["missing_tags"] == []]
    assert answers[0]["results"][: len(exact)] == exact and len(exact) == count
    assert all(
        (r["tags"]["color"] == colour) == ("color" not in r["missing_tags"])
        and (r["tags"]["category"] == category) == ("category" not in r["missing_tags"])
        and len(r["missing_tags"]) == 1
        for r in answers[0]["results"][count:]
    )
    assert answers[0]["query"]["words"] == [] and answers[0]["query"]["filters"] == {}
    style = Counter(i["style"] for i in deployment.items.values()).most_common(1)[0][0]
    label = STYLE.lookup(style)
    by_tag = [
        _ok(httpx2.post(f"{deployment.url}/search", json={"text": f"#{name}", "top_k": 30}))
        for name in (label.ko, label.en)
    ]
    assert by_tag[0]["results"] and by_tag[0]["results"] == by_tag[1]["results"]
    assert all(style in (r["style"], r["sub_style"]) for r in by_tag[0]["results"])


def test_free_words_match_by_tf_idf(deployment: Deployment) -> None:
    image_id = next(iter(deployment.items.values()))["image_id"]
    original = _ok(httpx2.get(f"{deployment.url}/catalog/images/{image_id}"))["file_name"]
    renamed = _ok(
        httpx2.patch(f"{deployment.url}/catalog/images/{image_id}", json={"file_name": "jeju vacation.jpg"})
    )
    assert renamed["file_name"] == "jeju vacation.jpg"
    try:
        body = _ok(httpx2.post(f"{deployment.url}/search", json={"text": "vacation"}))
        assert body["query"]["words"] == ["vacation"] and body["results"]
        # Every item of the renamed image first (an exact word); partial matches (shared bigrams) after.
        own = sum(i["image_id"] == image_id for i in deployment.items.values())
        assert {r["image_id"] for r in body["results"][:own]} == {image_id}
        assert image_id not in {r["image_id"] for r in body["results"][own:]}
        nothing = _ok(httpx2.post(f"{deployment.url}/search", json={"text": "qqxqq vacation"}))
        assert nothing["query"]["unknown_words"] == ["qqxqq"] and nothing["results"] == body["results"]
        assert _ok(httpx2.post(f"{deployment.url}/search", json={"text": "xyzzy"}))["results"] == []
    finally:
        httpx2.patch(f"{deployment.url}/catalog/images/{image_id}", json={"file_name": original})


def test_item_tags_can_be_corrected(deployment: Deployment) -> None:
    item = next(i for i in deployment.items.values() if i["attributes"].get("color") != "네온")
    url = f"{deployment.url}/catalog/images/{item['image_id']}"
    body = _ok(httpx2.patch(url, json={"items": {str(item["id"]): {"color": "neon"}}}))
    corrected = next(i for i in body["items"] if i["id"] == item["id"])
    assert corrected["attributes"]["color"] == "네온" and corrected["color"] == "네온"
    found = _ok(httpx2.post(f"{deployment.url}/search", json={"filters": {"color": "네온"}, "top_k": 200}))
    assert item["id"] in {r["item_id"] for r in found["results"]}
    _ok(httpx2.patch(url, json={"items": {str(item["id"]): {"color": item["attributes"]["color"]}}}))
    bad = httpx2.patch(url, json={"items": {str(item["id"]): {"color": "plaid"}}})
    assert bad.status_code == 422 and bad.json()["body"]["error"]["code"] == "VALIDATION_FAILED"


def test_products_ride_with_results_and_filter_them(deployment: Deployment, unseen: list[Sample]) -> None:
    url = deployment.url
    photos = _files([(s.image_path.name, s.image_path.read_bytes()) for s in unseen[:2]])
    bad = httpx2.post(f"{url}/catalog/images", files=photos, data={"product": "{'price': 1}"}, timeout=60)
    assert bad.status_code == 422 and bad.json()["body"]["error"]["code"] == "VALIDATION_FAILED"
    too_long = httpx2.post(f"{url}/catalog/images", files=photos, data={"product_id": "x" * 129}, timeout=60)
    assert too_long.status_code == 422
    assert _ok(httpx2.get(f"{url}/catalog/images", params={"limit": 1}))["total"] == len(deployment.samples)

    product = {"name": "린넨 셔츠", "price": 39000, "in_stock": True}
    form = {"product_id": "SKU-T1", "product": json.dumps(product)}
    added = _ok(httpx2.post(f"{url}/catalog/images", files=photos, data=form, timeout=120))
    assert added["counts"]["added"] == 2
    first, second = (r["image_id"] for r in added["results"])
    listed = _ok(httpx2.get(f"{url}/catalog/images", params={"product_id": "SKU-T1"}))
    assert listed["total"] == 2 and {i["product"]["price"] for i in listed["images"]} == {39000}

    query = _reencoded(unseen[0].image_path.read_bytes())
    body = _ok(_photo_search(url, "q.jpg", query, filters={"product_id": "SKU-T1"}, top_k=10))
    assert {r["image_id"] for r in body["results"]} <= {first, second} and body["results"]
    assert body["results"][0]["product"] == product and body["results"][0]["product_id"] == "SKU-T1"
    one_each = _ok(_photo_search(url, "q.jpg", query, filters={"product_id": "SKU-T1"}, distinct="product"))
    assert [r["image_id"] for r in one_each["results"]] == [body["results"][0]["image_id"]]
    by_image = _ok(httpx2.post(f"{url}/search", json={"text": "black", "top_k": 30, "distinct": "image"}))
    assert len({r["image_id"] for r in by_image["results"]}) == len(by_image["results"]) == 30
    in_stock = {"filters": {"product.in_stock": "true"}, "top_k": 50}
    assert {r["image_id"] for r in _ok(httpx2.post(f"{url}/search", json=in_stock))["results"]} == {
        first,
        second,
    }

    patched = _ok(
        httpx2.patch(f"{url}/catalog/images/{first}", json={"product": {**product, "in_stock": False}})
    )
    assert patched["product"]["in_stock"] is False and patched["product_id"] == "SKU-T1"
    assert {r["image_id"] for r in _ok(httpx2.post(f"{url}/search", json=in_stock))["results"]} == {second}
    _ok(httpx2.post(f"{url}/search", json={**in_stock, "save_to": "in-stock"}))
    saved = _ok(httpx2.get(f"{url}/collections/in-stock"))["entries"]
    garments = len(_ok(httpx2.get(f"{url}/catalog/images/{second}"))["items"])  # one entry per item result
    assert garments and [(e["image_id"], e["product_id"]) for e in saved] == [(second, "SKU-T1")] * garments
    _ok(httpx2.delete(f"{url}/collections/in-stock"))

    gone = _ok(httpx2.delete(f"{url}/catalog/images", params={"product_id": "SKU-T1"}))
    assert gone["deleted"] == [first, second] and gone["items"]
    assert _ok(httpx2.post(f"{url}/search", json=in_stock))["results"] == []
    again = httpx2.delete(f"{url}/catalog/images", params={"product_id": "SKU-T1"})
    assert again.status_code == 404 and again.json()["body"]["error"]["code"] == "NOT_FOUND"
    assert _ok(httpx2.get(f"{url}/catalog/images", params={"limit": 1}))["total"] == len(deployment.samples)


# ---------------------------------------------------------------------------------------------- looks


def test_a_whole_look_finds_itself(deployment: Deployment) -> None:
    sample = deployment.samples[5]
    body = _ok(
        _photo_search(deployment.url, "look.jpg", _reencoded(sample.image_path.read_bytes()), scope="look")
    )
    assert body["results"][0]["file_name"] == sample.image_path.name
    assert body["results"][0]["items"] and "item_id" in body["results"][0]["items"][0]


# ---------------------------------------------------------------------------------------------- collections


def test_results_are_saved_to_collections(deployment: Deployment) -> None:
    colour = next(iter(deployment.items.values()))["attributes"]["color"]
    body = _ok(
        httpx2.post(
            f"{deployment.url}/search", json={"filters": {"color": colour}, "top_k": 4, "save_to": "picks"}
        )
    )
    saved = body["collection"]
    assert saved["name"] == "picks"
    assert {(e["image_id"], e["item_id"]) for e in saved["entries"]} == {
        (r["image_id"], r["item_id"]) for r in body["results"]
    }
    duplicate = httpx2.post(f"{deployment.url}/collections", json={"name": "picks"})
    assert duplicate.status_code == 409 and duplicate.json()["body"]["error"]["code"] == "ALREADY_EXISTS"
    created = httpx2.post(
        f"{deployment.url}/collections",
        json={
            "name": "summer",
            "description": "for the banner",
            "entries": [{"image_id": saved["entries"][0]["image_id"]}],
        },
    )
    assert created.status_code == 201 and len(created.json()["body"]["entries"]) == 1
    listed = {
        c["name"]: c["entries"] for c in _ok(httpx2.get(f"{deployment.url}/collections"))["collections"]
    }
    assert listed == {"picks": len(saved["entries"]), "summer": 1}
    first = saved["entries"][0]
    after = _ok(
        httpx2.delete(
            f"{deployment.url}/collections/picks/entries/{first['image_id']}",
            params={"item_id": first["item_id"]},
        )
    )
    assert len(after["entries"]) == len(saved["entries"]) - 1
    missing = httpx2.post(
        f"{deployment.url}/collections/picks/entries", json={"entries": [{"image_id": 10**8}]}
    )
    assert missing.status_code == 404
    for name in ("picks", "summer"):
        _ok(httpx2.delete(f"{deployment.url}/collections/{name}"))
    assert httpx2.get(f"{deployment.url}/collections/picks").status_code == 404


# ---------------------------------------------------------------------------------------------- trends


def test_trends_count_the_catalog(deployment: Deployment) -> None:
    body = _ok(
        httpx2.get(f"{deployment.url}/trends", params={"period": "day", "fields": "style,color,region"})
    )
    assert sum(p["images"] for p in body["periods"]) == len(deployment.samples)
    colours = Counter()
    for period in body["periods"]:
        colours.update(period["counts"]["color"])
        assert sum(period["counts"]["region"].values()) == period["items"]
    expected = Counter(
        i["attributes"]["color"] for i in deployment.items.values() if "color" in i["attributes"]
    )
    assert colours == expected
    bad = httpx2.get(f"{deployment.url}/trends", params={"fields": "mood"})
    assert bad.status_code == 422 and bad.json()["body"]["error"]["code"] == "VALIDATION_FAILED"


# ---------------------------------------------------------------------------------------------- recommend


def test_recommendations_for_a_catalog_item(deployment: Deployment) -> None:
    top = next(i for i in deployment.items.values() if i["region"] == "top")
    body = _ok(httpx2.post(f"{deployment.url}/recommend", json={"item_id": top["id"], "top_k": 5}))
    result = body["results"][0]
    assert result["status"] == "done" and set(result["matches"]) == {"outer", "bottom"}
    for region, found in result["matches"].items():
        assert len(found) == 5
        assert all(r["region"] == region and r["image_id"] != top["image_id"] for r in found)
        assert all(-1 <= r["compatibility"] <= 1 and 0 <= r["support"] <= 1 for r in found)
        assert [r["score"] for r in found] == sorted((r["score"] for r in found), reverse=True)
    colours = Counter(
        i["attributes"].get("color") for i in deployment.items.values() if i["region"] == "bottom"
    )
    colour = colours.most_common(1)[0][0]
    preferred = _ok(
        httpx2.post(
            f"{deployment.url}/recommend",
            json={"item_id": top["id"], "targets": ["bottom"], "include": {"color": colour}, "top_k": 50},
        )
    )["results"][0]["matches"]
    assert set(preferred) == {"bottom"}
    assert len(preferred["bottom"]) == colours[colour] - (
        top["image_id"]
        in {
            i["image_id"]
            for i in deployment.items.values()
            if i["region"] == "bottom" and i["attributes"].get("color") == colour
        }
    )
    assert all(r["tags"]["color"] == colour for r in preferred["bottom"])
    avoided = _ok(
        httpx2.post(
            f"{deployment.url}/recommend",
            json={"item_id": top["id"], "targets": ["bottom"], "exclude": {"color": [colour]}, "top_k": 50},
        )
    )["results"][0]["matches"]["bottom"]
    assert avoided and all(r["tags"]["color"] != colour for r in avoided)


def test_the_same_with_one_attribute_changed(deployment: Deployment) -> None:
    top = next(
        i
        for i in deployment.items.values()
        if i["region"] == "top" and i["attributes"].get("color") != "화이트"
    )
    body = _ok(
        httpx2.post(
            f"{deployment.url}/recommend",
            json={
                "item_id": top["id"],
                "changes": [f"color: {top['attributes']['color']} -> white"],
                "top_k": 5,
            },
        )
    )
    changed = body["results"][0]["changed"][0]
    assert changed["change"]["to"] == "화이트"
    whites = [
        i
        for i in deployment.items.values()
        if i["region"] == "top" and i["attributes"].get("color") == "화이트"
    ]
    assert len(changed["results"]) == min(5, len(whites))
    assert all(r["tags"]["color"] == "화이트" and r["region"] == "top" for r in changed["results"])


def test_recommend_batches_and_photos(deployment: Deployment, unseen: list[Sample]) -> None:
    item_ids = list(deployment.items)[:3]
    body = _ok(
        httpx2.post(
            f"{deployment.url}/recommend",
            json={"inputs": [{"item_id": i, "top_k": 2} for i in item_ids] + [{"item_id": 10**8}]},
            timeout=60,
        )
    )
    assert body["counts"] == {"total": 4, "done": 3, "failed": 1}
    assert body["results"][3]["error"]["code"] == "NOT_FOUND"
    assert [r["input"]["item_id"] for r in body["results"][:3]] == item_ids
    photos = [(s.image_path.name, s.image_path.read_bytes()) for s in unseen[:2]] + [("bad.jpg", b"nope")]
    body = _ok(
        httpx2.post(f"{deployment.url}/recommend", files=_files(photos), data={"top_k": "3"}, timeout=120)
    )
    assert [r["status"] for r in body["results"]] == ["done", "done", "failed"]
    assert all(len(found) == 3 for r in body["results"][:2] for found in r["matches"].values())


def test_recommend_keeps_one_result_per_product_when_asked(deployment: Deployment) -> None:
    """Two catalog pictures of one product (same colour of bottom): `distinct: product` shows it once, both
    among the matches of a top and among the changes of another bottom."""
    url = deployment.url
    bottoms: dict[str, list[dict]] = {}
    for item in deployment.items.values():
        if item["region"] == "bottom":
            bottoms.setdefault(item["attributes"]["color"], []).append(item)
    colour, pair = next((c, found[:2]) for c, found in bottoms.items() if len(found) >= 3)
    images = {i["image_id"] for i in pair}
    assert len(images) == 2, "two pictures, so the product has two results to keep one of"
    other_bottom = next(i for i in bottoms[colour] if i["image_id"] not in images)
    top = next(i for i in deployment.items.values() if i["region"] == "top" and i["image_id"] not in images)
    for image in images:
        _ok(httpx2.patch(f"{url}/catalog/images/{image}", json={"product_id": "SKU-BOTTOM"}))
    try:
        only_product = {"product_id": "SKU-BOTTOM"}
        matching = {"item_id": top["id"], "targets": ["bottom"], "include": only_product, "top_k": 10}
        changing = {
            "item_id": other_bottom["id"],
            "changes": [f"color: -> {colour}"],
            "include": only_product,
        }
        for spec in matching, changing:
            every = _ok(httpx2.post(f"{url}/recommend", json=spec))["results"][0]
            once = _ok(httpx2.post(f"{url}/recommend", json={**spec, "distinct": "product"}))["results"][0]
            if spec is matching:
                every, once = every["matches"]["bottom"], once["matches"]["bottom"]
            else:
                every, once = every["changed"][0]["results"], once["changed"][0]["results"]
            assert {r["image_id"] for r in every} == images
            assert [(r["item_id"], r["rank"]) for r in once] == [(every[0]["item_id"], 1)]
            assert once[0]["product_id"] == "SKU-BOTTOM"
        bad = httpx2.post(f"{url}/recommend", json={**matching, "distinct": "brand"})
        assert bad.status_code == 422 and bad.json()["body"]["error"]["code"] == "VALIDATION_FAILED"
    finally:
        for image in images:
            _ok(httpx2.patch(f"{url}/catalog/images/{image}", json={"product_id": None}))


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("request_json", "status", "code"),
    [
        ({"filters": {"mood": "happy"}}, 422, "VALIDATION_FAILED"),
        ({"filters": {"color": "plaid"}}, 422, "VALIDATION_FAILED"),
        ({}, 400, "EMPTY_REQUEST"),
        ({"text": "black", "scope": "look"}, 422, "VALIDATION_FAILED"),
        ({"text": "black", "top_k": 0}, 422, "VALIDATION_FAILED"),
        ({"text": "black", "region": "hat"}, 422, "VALIDATION_FAILED"),
    ],
)
def test_bad_search_requests_answer_the_envelope(
    deployment: Deployment, request_json: dict, status: int, code: str
) -> None:
    response = httpx2.post(f"{deployment.url}/search", json=request_json)
    assert response.status_code == status, response.text
    envelope = response.json()
    assert envelope["resultCode"] == status and envelope["body"]["error"]["code"] == code


def test_bad_photo_requests(deployment: Deployment, unseen: list[Sample]) -> None:
    data = unseen[0].image_path.read_bytes()
    two = httpx2.post(f"{deployment.url}/search", files=_files([("a.jpg", data), ("b.jpg", data)]))
    assert two.status_code == 413 and two.json()["body"]["error"]["code"] == "TOO_MANY_FILES"
    text = httpx2.post(f"{deployment.url}/search", files=_files([("a.jpg", b"plain text, no image")]))
    assert text.status_code == 415
    not_json = httpx2.post(
        f"{deployment.url}/search", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["body"]["error"]["details"] == {"line": 1, "column": 2}
    assert "not valid JSON" in not_json.json()["resultMessage"]
    undeclared = httpx2.post(
        f"{deployment.url}/search", content=b"{oops", headers={"content-type": "text/plain"}
    )
    assert undeclared.status_code == 400
    assert undeclared.json()["resultMessage"] == "the body is neither multipart form data nor JSON"
    missing = httpx2.get(f"{deployment.url}/catalog/images/{10**8}")
    assert missing.status_code == 404 and missing.json()["body"]["error"]["code"] == "NOT_FOUND"


# ---------------------------------------------------------------------------------------------- lifecycle
# Last in the module: it deletes from the catalog and restarts the server.


def _delete_index(deployment: Deployment) -> None:
    if deployment.env.get("KFASHION_SEARCH__BACKEND") == "milvus":  # its collections dropped
        from services.search.milvus_index import MilvusIndexes

        milvus = MilvusIndexes(str(Path(deployment.env["KFASHION_DATA_DIR"]) / "milvus.db"))
        assert milvus.client.has_collection("kfashion_items_state") or milvus.read_state("items")
        milvus.drop_all()
        milvus.close()
    elif deployment.env.get("KFASHION_STORAGE__BACKEND") == "s3":
        store = S3BlobStore(
            StorageSettings(
                backend="s3",
                endpoint=deployment.env["KFASHION_STORAGE__ENDPOINT"],
                bucket=deployment.env["KFASHION_STORAGE__BUCKET"],
                prefix=deployment.env["KFASHION_STORAGE__PREFIX"],
                access_key="test",
                secret_key="test",
                secure=False,
                region="us-east-1",
            )
        )
        for key in ("indexes/items.npz", "indexes/looks.npz"):
            assert store.exists(key)
            store.delete(key)
    else:
        for name in ("items.npz", "looks.npz"):
            path = Path(deployment.env["KFASHION_DATA_DIR"]) / "blobs" / "indexes" / name
            assert path.is_file()
            path.unlink()


def test_deleted_items_are_gone_and_the_index_survives_restarts(
    deployment: Deployment, unseen: list[Sample]
) -> None:
    url = deployment.url
    victim = deployment.samples[7]
    first = _ok(_photo_search(url, "q.jpg", _reencoded(victim.image_path.read_bytes())))["results"][0]
    assert first["file_name"] == victim.image_path.name
    removed = _ok(httpx2.delete(f"{url}/catalog/images/{first['image_id']}"))
    assert first["item_id"] in removed["items"]
    gone = set(removed["items"])
    after = _ok(_photo_search(url, "q.jpg", _reencoded(victim.image_path.read_bytes()), top_k="50"))
    assert not gone & {r["item_id"] for r in after["results"]}
    colour = deployment.items[first["item_id"]]["attributes"]["color"]
    by_text = _ok(httpx2.post(f"{url}/search", json={"filters": {"color": colour}, "top_k": 200}))
    assert not gone & {r["item_id"] for r in by_text["results"]}
    assert httpx2.get(f"{url}/catalog/images/{first['image_id']}").status_code == 404
    assert httpx2.get(f"{url}/catalog/images/{first['image_id']}/file").status_code == 404
    # A photo with a capture date, for /trends by capture date.
    dated = _reencoded(unseen[3].image_path.read_bytes(), exif_date=datetime(2024, 5, 3, 14, 0))
    added = _ok(httpx2.post(f"{url}/catalog/images", files=_files([("dated.jpg", dated)]), timeout=60))
    assert added["counts"]["added"] == 1
    captured = _ok(httpx2.get(f"{url}/trends", params={"by": "captured", "period": "day"}))
    assert [(p["period"], p["images"]) for p in captured["periods"]] == [("2024-05-03", 1)]

    query = [(s.image_path.name, s.image_path.read_bytes()) for s in unseen[:3]]

    def answers() -> list[list[int]]:
        return [[r["item_id"] for r in _ok(_photo_search(deployment.url, n, d))["results"]] for n, d in query]

    before = answers()
    deployment.restart()  # SIGTERM: the indexes are saved at shutdown
    ready = _ok(httpx2.get(f"{deployment.url}/readyz"))
    assert ready["search"]["rebuilt_at_start"] == {}
    assert answers() == before
    deployment.server.kill(signal.SIGTERM)
    _delete_index(deployment)
    deployment.restart()
    ready = _ok(httpx2.get(f"{deployment.url}/readyz"))
    assert ready["search"]["rebuilt_at_start"] == {"items": "missing", "looks": "missing"}
    assert answers() == before
    assert not gone & {i for a in answers() for i in a}


def test_search_runs_as_its_own_service(tmp_path: Path, unseen: list[Sample]) -> None:
    """Scale-out: the search service in its own process, a gateway (models in-process) calling it by URL."""
    search = Server(["--service", "search"], gateway_env(tmp_path / "data"), log=tmp_path / "search.log")
    search.start()
    gateway = Server(
        ["--service", "gateway", "--search-url", search.url],
        gateway_env(tmp_path / "gateway"),
        log=tmp_path / "gateway.log",
    )
    try:
        gateway.start()
        empty = _ok(httpx2.post(f"{gateway.url}/search", json={"text": "black vacation"}, timeout=60))
        assert empty["query"]["unknown_words"] == ["vacation"] and empty["results"] == []  # an empty catalog
        photos = [(s.image_path.name, s.image_path.read_bytes()) for s in unseen[:6]]
        added = _ok(httpx2.post(f"{gateway.url}/catalog/images", files=_files(photos), timeout=120))
        assert added["counts"]["added"] == 6
        body = _ok(_photo_search(gateway.url, "q.jpg", _reencoded(photos[2][1])))
        assert body["results"][0]["file_name"] == photos[2][0]
        listing = _ok(httpx2.get(f"{search.url}/catalog/images"))  # the search service holds the catalog
        assert listing["total"] == 6
        assert not (tmp_path / "gateway" / "blobs" / "catalog").exists()
        search.kill()
        down = httpx2.post(f"{gateway.url}/search", json={"text": "black"}, timeout=60)
        assert down.status_code == 503
        assert down.json()["body"]["error"]["details"]["service"] == "search"
    finally:
        gateway.kill()
        search.kill()


def test_catalog_add_command_fills_the_catalog_a_server_then_serves(
    tmp_path: Path, unseen: list[Sample]
) -> None:
    folder = tmp_path / "shop" / "spring"
    folder.mkdir(parents=True)
    for sample in unseen[:4]:
        (folder / sample.image_path.name).write_bytes(sample.image_path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not a picture, skipped")
    products = tmp_path / "products.csv"  # as Excel saves it: a BOM, one row by path, one by bare name
    products.write_text(
        "\ufefffile,product_id,price,in_stock\n"
        f"spring/{unseen[0].image_path.name},P-1,12000,true\n"
        f"{unseen[1].image_path.name},P-2,,false\n",
        encoding="utf-8",
    )
    data = tmp_path / "data"
    command = [
        sys.executable,
        "-m",
        "kfashion",
        "catalog",
        "add",
        str(tmp_path / "shop"),
        "--data-dir",
        str(data),
        "--products",
        str(products),
    ]
    broken_csv = tmp_path / "broken.csv"
    broken_csv.write_text("file,product_id\nspring/a.jpg," + "x" * 200 + "\n")
    refused = subprocess.run([*command[:-1], str(broken_csv)], capture_output=True, text=True, timeout=300)
    said = " ".join(refused.stderr.split())  # the terminal's width folds the message
    assert refused.returncode == 2 and "line 2: String should have at most 128 characters" in said, said
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 1, first.stderr  # one file failed; the others are stored
    assert json.loads(first.stdout) == {"images": 5, "added": 4, "exists": 0, "failed": 1}
    assert "broken.jpg" in first.stderr
    (folder / "broken.jpg").unlink()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout) == {
        "images": 4,
        "added": 0,
        "exists": 4,
        "failed": 0,
    }
    server = Server([], gateway_env(data), log=tmp_path / "server.log").start()
    try:
        ready = _ok(httpx2.get(f"{server.url}/readyz"))
        assert ready["search"]["rebuilt_at_start"] == {}  # the command saved the indexes it built
        assert _ok(httpx2.get(f"{server.url}/catalog/images"))["total"] == 4
        listed = _ok(httpx2.get(f"{server.url}/catalog/images", params={"product_id": "P-1"}))["images"]
        assert [(i["file_name"], i["product"]) for i in listed] == [
            (f"spring/{unseen[0].image_path.name}", {"price": "12000", "in_stock": "true"})
        ]
        second = _ok(httpx2.get(f"{server.url}/catalog/images", params={"product_id": "P-2"}))["images"]
        assert [i["product"] for i in second] == [{"in_stock": "false"}]  # the empty price left out
        body = _ok(_photo_search(server.url, "q.jpg", _reencoded(unseen[1].image_path.read_bytes())))
        assert body["results"][0]["file_name"] == f"spring/{unseen[1].image_path.name}"
    finally:
        server.kill()


def test_a_model_upgrade_retags_the_catalog(tmp_path: Path, unseen: list[Sample]) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    for sample in unseen[5:8]:
        (folder / sample.image_path.name).write_bytes(sample.image_path.read_bytes())
    data = tmp_path / "data"
    add = [sys.executable, "-m", "kfashion", "catalog", "add", str(folder), "--data-dir", str(data)]
    assert subprocess.run(add, capture_output=True, timeout=300).returncode == 0
    # "New" models: the same files under another attribute-model version (what a retrained model changes).
    upgraded = tmp_path / "models"
    shutil.copytree(ROOT / "models", upgraded)
    manifest = json.loads((upgraded / "manifest.json").read_text())
    manifest["models"]["attributes"]["version"] = "2"
    (upgraded / "manifest.json").write_text(json.dumps(manifest))
    retag = [
        sys.executable,
        "-m",
        "kfashion",
        "catalog",
        "retag",
        "--data-dir",
        str(data),
        "--models",
        str(upgraded),
    ]
    done = subprocess.run(retag, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"images": 3, "retagged": 3, "failed": 0}
    again = subprocess.run(retag, capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout) == {"images": 0, "retagged": 0, "failed": 0}  # nothing stale now
    server = Server(
        [], gateway_env(data) | {"KFASHION_MODELS_DIR": str(upgraded)}, log=tmp_path / "server.log"
    )
    server.start()
    try:
        assert _ok(httpx2.get(f"{server.url}/readyz"))["search"]["rebuilt_at_start"] == {}
        assert _ok(httpx2.get(f"{server.url}/catalog/stale"))["image_ids"] == []
        image = _ok(httpx2.get(f"{server.url}/catalog/images", params={"limit": 1}))["images"][0]
        assert image["versions"]["embedding"].startswith("2+")
        before = {i["id"] for i in _ok(httpx2.get(f"{server.url}/catalog/images/{image['id']}"))["items"]}
        retagged = _ok(httpx2.post(f"{server.url}/catalog/images/{image['id']}/retag", timeout=60))
        assert retagged["items"] and not before & {i["id"] for i in retagged["items"]}  # items replaced
        photo = unseen[6].image_path
        best = _ok(_photo_search(server.url, "q.jpg", _reencoded(photo.read_bytes())))["results"][0]
        assert best["file_name"] == photo.name
    finally:
        server.kill()
