"""The web console in a real browser: headless Chromium (Debian's, driven by Playwright; no browser is
downloaded) against a real server. Screenshots of each page go to artifacts/screenshots/ (README)."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from shared.taxonomy import COLOR, Label
from tests.conftest import serve_folder
from tests.servers import ROOT, Server, gateway_env
from training.data import Sample

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CATALOG = 16
# The console's server wants keys, as a deployment would; the page is given the write key (`page`).
API_KEY = "console-test-key"
KEYED = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, unseen: list[Sample]) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("console")
    env = gateway_env(folder / "data") | {"KFASHION_GATEWAY__API_KEYS": f'{{"{API_KEY}": "write"}}'}
    server = Server([], env, log=folder / "server.log").start()
    files = [("files", (s.image_path.name, s.image_path.read_bytes())) for s in unseen[:CATALOG]]
    added = httpx2.post(f"{server.url}/catalog/images", files=files, headers=KEYED, timeout=300).json()[
        "body"
    ]
    assert added["counts"]["added"] == CATALOG
    for result in added["results"]:  # the shop's products, which the result cards name
        product = {"product_id": f"SKU-{result['image_id']}", "product": {"name": "Linen shirt"}}
        url = f"{server.url}/catalog/images/{result['image_id']}"
        assert httpx2.patch(url, json=product, headers=KEYED).status_code == 200
    yield server
    server.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        reason = "no chromium: install Debian's chromium (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run the browser tests)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, server: Server) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#api-key", API_KEY)
    page.dispatch_event("#api-key", "change")
    yield page
    context.close()
    assert errors == [], errors  # no script error on any page


def _shot(page: object, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_tagging_fills_the_table_and_the_csv_holds_the_images(page: object, unseen: list[Sample]) -> None:
    chosen = unseen[20:23]
    page.set_input_files("#tag-files", [str(s.image_path) for s in chosen])
    page.click("#tag-run")
    page.wait_for_selector("#tag-table tbody tr")
    rows = page.locator("#tag-table tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(3)] == [
        s.image_path.name for s in chosen
    ]
    rows.first.click()
    page.wait_for_selector("#detail-boxes .box")
    page.locator("#detail-boxes .box").last.click()  # the smallest: on top of the others
    assert page.locator("#item-attributes tr").count() >= 5  # every attribute with its confidences
    assert page.locator("#detail-item .swatch").count() == 1
    _shot(page, "tagging")
    with page.expect_download() as download:
        page.click("#download-csv")
    csv = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert all(s.image_path.name in csv for s in chosen)
    with page.expect_download() as download:
        page.click("#download-xlsx")
    assert zipfile.is_zipfile(download.value.path())  # an xlsx is a zip


def test_a_large_upload_runs_as_a_job_with_progress(page: object, unseen: list[Sample]) -> None:
    chosen = unseen[:10]
    page.set_input_files("#tag-files", [str(s.image_path) for s in chosen])
    page.click("#tag-run")
    page.wait_for_selector("#tag-table tbody tr", timeout=120_000)
    assert page.locator("#tag-table tbody tr").count() == 10
    assert page.eval_on_selector("#tag-bar", "bar => [bar.value, bar.max]") == [10, 10]
    assert "10 / 10" in page.inner_text("#tag-counts")
    with page.expect_download() as download:
        page.click("#download-images")
    with zipfile.ZipFile(download.value.path()) as drawn:
        assert len(drawn.namelist()) == 10
    _shot(page, "tagging-job")


def test_a_folder_link_is_tagged_as_a_job(page: object, unseen: list[Sample], tmp_path: Path) -> None:
    chosen = unseen[30:33]
    for sample in chosen:
        (tmp_path / sample.image_path.name).write_bytes(sample.image_path.read_bytes())
    with contextmanager(serve_folder)(tmp_path) as (host, _):
        page.fill("#tag-folder", f"{host}/")
        page.click("#tag-run")
        page.wait_for_selector("#tag-table tbody tr", timeout=120_000)
    names = page.eval_on_selector_all("#tag-table tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert sorted(names) == sorted(s.image_path.name for s in chosen)
    assert "3 / 3" in page.inner_text("#tag-counts")
    page.locator("#tag-table tbody tr").first.click()  # its drawn image comes from the job, not the browser
    page.wait_for_selector("#detail-boxes .box")
    page.wait_for_function("document.getElementById('detail-image').naturalWidth > 0")
    _shot(page, "tagging-folder")
    # Back later (a new page): the jobs panel lists the job, and opening it shows its results again.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.click("#jobs-panel summary")
    page.wait_for_selector("#jobs-list button")
    newest = page.locator("#jobs-list button").first
    assert newest.inner_text().endswith("완료 · 3 / 3")  # done, in the Korean console
    newest.click()
    page.wait_for_selector("#tag-table tbody tr")
    again = page.eval_on_selector_all("#tag-table tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert sorted(again) == sorted(names) and not page.is_hidden("#tag-downloads")
    _shot(page, "tagging-jobs")


def test_a_heic_photo_is_shown_from_the_server(page: object) -> None:
    # Chromium cannot show HEIC: the console tags it as a job and shows the job's stored JPEG.
    page.set_input_files("#tag-files", [str(Path(__file__).parents[1] / "data" / "person.heic")])
    page.click("#tag-run")
    page.wait_for_selector("#tag-table tbody tr", timeout=120_000)
    page.locator("#tag-table tbody tr").first.click()
    page.wait_for_selector("#detail-boxes .box")
    page.wait_for_function("document.getElementById('detail-image').naturalWidth > 0")


def test_a_non_image_shows_the_error_message(page: object, tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a picture")
    page.set_input_files("#tag-files", [str(bad)])
    page.click("#tag-run")
    page.wait_for_selector("#error:not([hidden])")
    message = page.inner_text("#error")
    assert "notes.jpg" in message and "image" in message
    _shot(page, "tagging-error")


def _grid(page: object) -> list[str]:
    page.wait_for_selector("#search-summary:not(:empty)")
    return page.eval_on_selector_all("#search-results .card", "cards => cards.map(c => c.dataset.itemId)")


def _grid_pictures(page: object) -> list[str]:
    page.wait_for_selector("#search-summary:not(:empty)")
    return page.eval_on_selector_all("#search-results .card", "cards => cards.map(c => c.dataset.imageId)")


def test_the_api_key_is_kept_and_sent(page: object) -> None:
    page.click("#tab-search")
    page.fill("#search-text", "black")
    page.click("#search-run")
    assert _grid(page)
    page.reload()  # kept across visits
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#api-key") == API_KEY
    page.fill("#api-key", "not-the-key")
    page.dispatch_event("#api-key", "change")
    page.click("#tab-search")
    page.fill("#search-text", "black")
    page.click("#search-run")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "send a valid API key in the X-API-Key header"


def _catalog_items(server: Server) -> list[dict]:
    """Every catalog item, with its image id (what the models read on the catalog's pictures)."""
    images = httpx2.get(f"{server.url}/catalog/images", headers=KEYED).json()["body"]["images"]
    return [
        item | {"image_id": image["id"]}
        for image in images
        for item in httpx2.get(f"{server.url}/catalog/images/{image['id']}", headers=KEYED).json()["body"][
            "items"
        ]
    ]


def _colour_of_a_top_and_another_garment(items: list[dict]) -> Label:
    """A colour that one picture holds on two garments, a top and one of another region: the grid of that
    colour then has a picture with a later card to leave out, and holds items that a top chip leaves out.
    Chosen from the catalog, not fixed, since the colours are what the models read."""
    regions_by_colour: dict[tuple[int, str], set[str]] = {}
    for item in items:
        regions_by_colour.setdefault((item["image_id"], item["color"]), set()).add(item["region"])
    colours = sorted(
        c for (_, c), regions in regions_by_colour.items() if "top" in regions and len(regions) > 1
    )
    assert colours, "a picture with a top and another garment of one colour"
    return next(label for label in COLOR.labels if label.ko == colours[0])


def test_korean_and_english_text_searches_give_the_same_grid(page: object, server: Server) -> None:
    colour = _colour_of_a_top_and_another_garment(_catalog_items(server))
    page.click("#tab-search")
    page.fill("#search-text", colour.ko)
    page.click("#search-run")
    korean = _grid(page)
    assert korean
    _shot(page, "search")
    # One card per picture: the same ranking with each picture's later cards left out.
    pictures = _grid_pictures(page)
    assert len(set(pictures)) < len(pictures)
    page.select_option("#search-distinct", "image")
    page.evaluate("document.getElementById('search-summary').textContent = ''")
    page.click("#search-run")
    one_each = _grid_pictures(page)
    assert len(set(one_each)) == len(one_each)
    assert one_each[: len(set(pictures))] == list(dict.fromkeys(pictures))
    page.select_option("#search-distinct", "")
    page.click("#language")  # the English console
    assert page.inner_text("#tab-search") == "Search"
    page.fill("#search-text", colour.en)
    page.evaluate("document.getElementById('search-summary').textContent = ''")
    page.click("#search-run")
    assert _grid(page) == korean
    # A filter chip narrows the grid; saving the results makes a collection.
    page.locator("#chips-region button[data-value=top]").click()
    page.evaluate("document.getElementById('search-summary').textContent = ''")
    page.click("#search-run")
    tops = _grid(page)
    assert set(tops) <= set(korean) and len(tops) < len(korean)
    page.fill("#collection-name", "console picks")
    page.click("#collection-save")
    page.wait_for_selector("#collections button")
    assert page.inner_text("#collections") == f"console picks ({len(tops)})"
    # No top is a skirt: "<colour> skirt" among tops answers the tops of that colour, each card saying
    # what differs.
    page.fill("#search-text", f"{colour.en} skirt")
    page.evaluate("document.getElementById('search-summary').textContent = ''")
    page.click("#search-run")
    assert _grid(page) == tops
    differs = page.eval_on_selector_all("#search-results .card", "cards => cards.map(c => c.innerText)")
    assert all(card.endswith("Differs in: Category") for card in differs), differs
    products = page.eval_on_selector_all(
        "#search-results .card",
        "cards => cards.map(c => [c.dataset.imageId, c.querySelector('.product').innerText])",
    )
    assert all(line == f"Product SKU-{image_id} · Linen shirt" for image_id, line in products), products
    _shot(page, "search-en")


def test_matching_and_an_attribute_change(page: object, server: Server) -> None:
    items = _catalog_items(server)
    top = next(item for item in items if item["region"] == "top")
    # "The same top in another colour": a colour a top of another picture has, so there is one to show.
    other_colour = next(
        item["color"] for item in items if item["region"] == "top" and item["image_id"] != top["image_id"]
    )
    page.click("#tab-matching")
    page.fill("#match-item", str(top["id"]))
    page.locator("#chips-targets button[data-value=bottom]").click()
    page.select_option("#change-attribute", "color")
    page.select_option("#change-to", other_colour)
    page.select_option("#match-distinct", "product")
    with page.expect_request("**/recommend") as sent:
        page.click("#match-run")
    assert json.loads(sent.value.post_data)["distinct"] == "product"
    page.wait_for_selector("#match-results .group")
    assert page.locator("#match-bottom .card").count() > 0
    assert page.locator("#match-outer").count() == 0  # only the region asked for
    changed = page.locator("#match-changed .card")
    assert changed.count() > 0
    assert all(other_colour in changed.nth(i).inner_text() for i in range(changed.count()))
    _shot(page, "matching")


def test_trends_chart(page: object) -> None:
    page.click("#tab-trends")
    page.select_option("#trend-field", "color")
    page.click("#trend-run")
    page.wait_for_selector("#trend-chart svg rect.bar")
    assert page.locator("#trend-chart svg rect.bar").count() >= 2
    assert page.locator("#trend-table tr").count() >= 2
    _shot(page, "trends")


def test_the_tabs_work_from_the_keyboard(page: object) -> None:
    page.focus("#tab-tagging")
    page.keyboard.press("ArrowRight")
    assert page.eval_on_selector("#tab-search", "tab => tab.getAttribute('aria-selected')") == "true"
    assert page.is_visible("#page-search") and not page.is_visible("#page-tagging")
