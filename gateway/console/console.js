// The K-Fashion Serve web console: plain JavaScript over the public API (docs/api.md), no build step.
"use strict";

const REGIONS = ["outer", "top", "bottom", "onepiece"];
const TABLE_FIELDS = ["category", "print", "detail", "material", "color"];
const SYNC_LIMIT = 8; // more images (or any zip) go to a background job with a progress bar
const CHANGE_ATTRIBUTES = ["length", "category", "color", "sleeve", "fit", "print", "material", "neckline", "collar"];

const TEXT = {
  ko: {
    "tab.tagging": "태깅", "tab.search": "검색", "tab.matching": "코디 추천", "tab.trends": "트렌드",
    "tagging.title": "이미지 태깅", "tagging.drop": "이미지나 zip 파일을 여기에 끌어다 놓거나 선택하세요",
    "tagging.pick": "파일 선택", "tagging.run": "태깅 시작", "tagging.download": "내려받기",
    "tagging.drawn": "표시된 이미지", "tagging.chosen": "개 파일 선택됨", "tagging.file": "파일",
    "tagging.status": "상태", "tagging.style": "스타일", "tagging.items": "아이템을 누르면 속성이 보입니다",
    "tagging.job": "작업", "tagging.folder": "또는 폴더 링크", "search.title": "유사 상품 검색", "search.text": "태그 또는 검색어",
    "search.photo": "사진", "search.topk": "개수", "search.run": "검색", "search.none": "결과 없음",
    "search.found": "건", "jobs.title": "최근 작업", "jobs.none": "작업 없음", "apiKey": "API 키", "search.differs": "다른 점", "product": "상품", "distinct": "보기", "distinct.all": "모든 아이템", "distinct.image": "사진마다 하나", "distinct.product": "상품마다 하나", "filter.region": "부위", "filter.category": "카테고리", "filter.color": "색상",
    "filter.print": "프린트", "filter.style": "스타일", "filter.detail": "디테일", "filter.material": "소재", "collection.name": "컬렉션 이름",
    "collection.save": "결과 저장", "collection.title": "컬렉션", "collection.saved": "저장됨",
    "matching.title": "어울리는 아이템 추천", "matching.photo": "사진", "matching.item": "또는 카탈로그 아이템 번호",
    "matching.targets": "찾을 부위", "matching.styles": "선호 스타일", "matching.colors": "선호 색상",
    "matching.avoid": "제외 색상", "matching.avoidStyles": "제외 스타일", "trends.day": "일", "trends.week": "주",
    "trends.month": "월", "trends.created": "업로드 날짜", "trends.captured": "촬영 날짜 (EXIF)", "matching.change": "속성 하나 바꾸기", "matching.attribute": "속성",
    "matching.to": "바꿀 값", "matching.run": "추천 받기", "matching.none": "(바꾸지 않음)",
    "matching.changed": "바꾼 결과", "matching.query": "기준 아이템",
    "trends.title": "카탈로그 트렌드", "trends.field": "항목", "trends.period": "기간", "trends.by": "기준 날짜",
    "trends.run": "보기", "trends.images": "이미지", "trends.other": "기타", "trends.empty": "데이터 없음",
    "error.input": "사진이나 아이템 번호를 넣어 주세요", "error.files": "파일을 선택하거나 폴더 링크를 넣어 주세요",
    "error.name": "컬렉션 이름을 넣어 주세요", "score": "점수", "status.done": "완료", "status.failed": "실패",
    "status.pending": "대기", "status.queued": "대기 중", "status.running": "진행 중",
  },
  en: {
    "tab.tagging": "Tagging", "tab.search": "Search", "tab.matching": "Matching", "tab.trends": "Trends",
    "tagging.title": "Tag images", "tagging.drop": "Drop images or a zip here, or pick them",
    "tagging.pick": "Choose files", "tagging.run": "Tag", "tagging.download": "Download",
    "tagging.drawn": "Drawn images", "tagging.chosen": "files chosen", "tagging.file": "File",
    "tagging.status": "Status", "tagging.style": "Style", "tagging.items": "Click an item to see its attributes",
    "tagging.job": "Job", "tagging.folder": "or a folder link", "search.title": "Find similar items", "search.text": "Tags or words",
    "search.photo": "Photo", "search.topk": "Results", "search.run": "Search", "search.none": "No results",
    "search.found": "found", "jobs.title": "Recent jobs", "jobs.none": "No jobs", "apiKey": "API key", "search.differs": "Differs in", "product": "Product", "distinct": "Show", "distinct.all": "Every item", "distinct.image": "One per picture", "distinct.product": "One per product", "filter.region": "Region", "filter.category": "Category", "filter.color": "Color",
    "filter.print": "Print", "filter.style": "Style", "filter.detail": "Detail", "filter.material": "Material", "collection.name": "Collection name",
    "collection.save": "Save results", "collection.title": "Collections", "collection.saved": "saved",
    "matching.title": "Items that go with it", "matching.photo": "Photo", "matching.item": "or a catalog item number",
    "matching.targets": "Regions wanted", "matching.styles": "Preferred styles", "matching.colors": "Preferred colors",
    "matching.avoid": "Colors to avoid", "matching.avoidStyles": "Styles to avoid", "trends.day": "day",
    "trends.week": "week", "trends.month": "month", "trends.created": "upload date", "trends.captured": "capture date (EXIF)", "matching.change": "Change one attribute", "matching.attribute": "Attribute",
    "matching.to": "Change to", "matching.run": "Recommend", "matching.none": "(no change)",
    "matching.changed": "With the change", "matching.query": "Query item",
    "trends.title": "Catalog trends", "trends.field": "Field", "trends.period": "Period", "trends.by": "Date",
    "trends.run": "Show", "trends.images": "images", "trends.other": "other", "trends.empty": "No data",
    "error.input": "Add a photo or an item number", "error.files": "Choose files or give a folder link",
    "error.name": "Name the collection", "score": "score", "status.done": "done", "status.failed": "failed",
    "status.pending": "pending", "status.queued": "queued", "status.running": "running",
  },
};

const state = { lang: localStorage.getItem("kfashion.lang") || "ko", taxonomy: null, tagging: null, search: [] };
const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[state.lang][key] || key;

// ------------------------------------------------------------------ API and errors

const BROWSER_CANNOT_SHOW = /\.hei[cf]$/i;  // HEIC: only Safari shows it

function apiKey() { return localStorage.getItem("kfashion.apiKey") || ""; }

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey()) headers.set("X-API-Key", apiKey());
  const response = await fetch(path, { ...options, headers });
  const type = response.headers.get("content-type") || "";
  if (!type.includes("application/json")) {
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response;
  }
  const envelope = await response.json();
  if (!response.ok) throw new Error(envelope.resultMessage || `HTTP ${response.status}`);
  return envelope.body;
}

// An <img> sends no headers: with an API key set, a server image (a job's drawn one) comes through api().
async function showImage(img, source) {
  if (!apiKey() || !source.startsWith("/")) { img.src = source; return; }
  img.src = URL.createObjectURL(await (await api(source)).blob());
  img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });
}

function showError(error) {
  const box = $("error");
  box.textContent = error instanceof Error ? error.message : String(error);
  box.hidden = false;
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

async function guarded(work) {
  clearError();
  try { await work(); } catch (error) { showError(error); }
}

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
}

// ------------------------------------------------------------------ taxonomy names

function attribute(key) { return state.taxonomy.attributes.find((a) => a.key === key); }

function labelName(key, ko) {
  if (key === "region") return state.taxonomy.region_names[ko]?.[state.lang] || ko;
  const label = attribute(key)?.labels.find((l) => l.ko === ko);
  return label ? (state.lang === "ko" ? label.ko : label.en) : ko;
}

function keyName(key) {
  return TEXT[state.lang][`filter.${key}`] || (state.lang === "ko" && attribute(key)?.ko_key) || key;
}

function valueText(key, value) {
  if (value === undefined || value === null || value === "") return "";
  return Array.isArray(value) ? value.map((v) => labelName(key, v)).join(", ") : labelName(key, value);
}

// ------------------------------------------------------------------ language and tabs

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  $("language").textContent = state.lang === "ko" ? "English" : "한국어";
  if (state.taxonomy) { buildChips(); buildChangeControl(); }
  if (state.tagging) renderTable();
}

function selectTab(tab) {
  document.querySelectorAll('[role="tab"]').forEach((other) => {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  });
  if (tab.id === "tab-search") guarded(loadCollections);
}

function setUpTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = tabs[(index + step + tabs.length) % tabs.length];
      next.focus();
      selectTab(next);
    });
  });
}

// ------------------------------------------------------------------ chips

function chips(container, key, values) {
  const previous = new Set([...container.querySelectorAll('[aria-pressed="true"]')].map((b) => b.dataset.value));
  container.replaceChildren(...values.map((value) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.value = value;
    button.setAttribute("aria-pressed", String(previous.has(value)));
    button.textContent = labelName(key, value);
    button.addEventListener("click", () => {
      button.setAttribute("aria-pressed", String(button.getAttribute("aria-pressed") !== "true"));
    });
    return button;
  }));
}

function pressed(container) {
  return [...container.querySelectorAll('[aria-pressed="true"]')].map((b) => b.dataset.value);
}

function labels(key) { return attribute(key).labels.map((l) => l.ko); }

function buildChips() {
  chips($("chips-region"), "region", REGIONS);
  chips($("chips-category"), "category", labels("category"));
  chips($("chips-color"), "color", labels("color"));
  chips($("chips-print"), "print", labels("print"));
  chips($("chips-style"), "style", labels("style"));
  chips($("chips-targets"), "region", REGIONS);
  chips($("chips-include-style"), "style", labels("style"));
  chips($("chips-include-color"), "color", labels("color"));
  chips($("chips-exclude-color"), "color", labels("color"));
  chips($("chips-exclude-style"), "style", labels("style"));
}

function buildChangeControl() {
  const select = $("change-attribute");
  const chosen = select.value;
  select.replaceChildren(new Option(t("matching.none"), ""),
    ...CHANGE_ATTRIBUTES.map((key) => new Option(state.lang === "ko" ? attribute(key).ko_key : key, key)));
  select.value = chosen;
  fillChangeValues();
}

function fillChangeValues() {
  const key = $("change-attribute").value;
  const to = $("change-to");
  const chosen = to.value;
  to.replaceChildren(...(key ? labels(key).map((ko) => new Option(labelName(key, ko), ko)) : []));
  if (chosen) to.value = chosen;
}

// ------------------------------------------------------------------ tagging

function chosenFiles() { return [...$("tag-files").files]; }

function showChosen() {
  const files = chosenFiles();
  $("tag-chosen").textContent = files.length ? `${files.length} ${t("tagging.chosen")}: ${files.map((f) => f.name).join(", ")}` : "";
}

async function runTagging() {
  const files = chosenFiles();
  const folder = $("tag-folder").value.trim();
  if (!files.length && !folder) throw new Error(t("error.files"));
  const form = new FormData();
  files.forEach((file) => form.append("files", file, file.name));
  if (folder) form.append("folders", folder);
  // Archives, and images this browser cannot show (seen as the job's stored JPEG copies instead).
  const shown = files.filter((file) => !file.name.toLowerCase().endsWith(".zip") && !BROWSER_CANNOT_SHOW.test(file.name));
  const local = new Map(shown.map((file) => [file.name, URL.createObjectURL(file)]));
  $("tag-detail").hidden = true;
  // A folder or an archive holds an unknown number of images: a job, which takes many and shows progress.
  const asJob = Boolean(folder) || files.length > SYNC_LIMIT || shown.length < files.length;
  if (!asJob) {
    const body = await api("/tagging", { method: "POST", body: form });
    state.tagging = { results: body.results, local, form, job: null };
    showProgress(body.counts.done, body.counts.failed, body.counts.total);
  } else {
    const job = await api("/tagging/jobs", { method: "POST", body: form });
    state.tagging = { results: [], local, form: null, job: job.id };
    let status = job;
    showProgress(0, 0, job.counts.total);
    while (status.status !== "done") {
      await new Promise((resolve) => setTimeout(resolve, 400));
      status = await api(`/tagging/jobs/${job.id}`);
      showProgress(status.counts.done, status.counts.failed, status.counts.total);
    }
    state.tagging.results = (await api(`/tagging/jobs/${job.id}/results`)).results;
    if ($("jobs-panel").open) await loadJobs();
  }
  $("tag-downloads").hidden = false;
  renderTable();
}

// Jobs run on after the page is closed: the panel lists them, and opening one shows its results so far.
async function loadJobs() {
  const body = await api("/tagging/jobs?limit=20");
  const items = body.jobs.map((job) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.jobId = job.id;
    const counts = job.counts;
    button.textContent = `${job.created} · ${t(`status.${job.status}`)} · ${counts.done + counts.failed} / ${counts.total}`;
    button.addEventListener("click", () => guarded(() => openJob(job.id)));
    const item = document.createElement("li");
    item.appendChild(button);
    return item;
  });
  $("jobs-list").replaceChildren(...(items.length ? items : [text("li", t("jobs.none"))]));
}

async function openJob(id) {
  const { job, results } = await api(`/tagging/jobs/${id}/results`);
  state.tagging = { results, local: new Map(), form: null, job: id };
  $("tag-detail").hidden = true;
  showProgress(job.counts.done, job.counts.failed, job.counts.total);
  $("tag-downloads").hidden = false;
  renderTable();
}

function showProgress(done, failed, total) {
  $("tag-progress").hidden = false;
  $("tag-bar").max = Math.max(total, 1);
  $("tag-bar").value = done + failed;
  $("tag-counts").textContent = `${done + failed} / ${total} (${t("status.done")} ${done}, ${t("status.failed")} ${failed})`;
}

function renderTable() {
  const table = $("tag-table");
  const head = [t("tagging.file"), t("tagging.status"), t("tagging.style")];
  REGIONS.forEach((region) => TABLE_FIELDS.forEach((field) => head.push(`${labelName("region", region)} ${t(`filter.${field}`)}`)));
  table.tHead.replaceChildren(row(head, "th"));
  table.tBodies[0].replaceChildren(...state.tagging.results.map((result, index) => {
    const cells = [result.file, t(`status.${result.status}`)];
    if (result.status === "failed") {
      cells.push(result.error.message);
    } else {
      cells.push(valueText("style", result.style));
      REGIONS.forEach((region) => TABLE_FIELDS.forEach((field) => cells.push(valueText(field, (result[region] || {})[field]))));
    }
    const tr = row(cells, "td");
    tr.tabIndex = 0;
    if (result.status === "failed") tr.className = "failed";
    tr.addEventListener("click", () => showDetail(index, tr));
    tr.addEventListener("keydown", (event) => { if (event.key === "Enter") showDetail(index, tr); });
    return tr;
  }));
  table.hidden = false;
}

function row(values, tag) {
  const tr = document.createElement("tr");
  values.forEach((value) => { const cell = document.createElement(tag); cell.textContent = value ?? ""; tr.appendChild(cell); });
  return tr;
}

function showDetail(index, tr) {
  const result = state.tagging.results[index];
  document.querySelectorAll("#tag-table tr.selected").forEach((r) => r.classList.remove("selected"));
  tr.classList.add("selected");
  if (result.status !== "done") return;
  const source = state.tagging.local.get(result.file)
    || (state.tagging.job ? `/tagging/jobs/${state.tagging.job}/images/${result.position}?size=800` : "");
  guarded(() => showImage($("detail-image"), source));
  $("detail-image").alt = result.file;
  // Larger boxes first, so a top inside an open outer stays clickable on top of it.
  const area = (item) => item.box[2] * item.box[3];
  const items = [...result.items].sort((a, b) => area(b) - area(a));
  $("detail-boxes").replaceChildren(...items.map((item) => boxButton(item, result, () => showItem(item))));
  $("detail-item").replaceChildren(text("p", t("tagging.items")));
  $("tag-detail").hidden = false;
  if (result.items.length) showItem(result.items[0]);
}

function boxButton(item, image, onClick) {
  const [x, y, w, h] = item.box;
  const button = document.createElement("button");
  button.type = "button";
  button.className = `box region-${item.region}`;
  Object.assign(button.style, {
    left: `${(100 * x) / image.width}%`, top: `${(100 * y) / image.height}%`,
    width: `${(100 * w) / image.width}%`, height: `${(100 * h) / image.height}%`,
  });
  const tag = document.createElement("span");
  tag.textContent = labelName("region", item.region);
  button.appendChild(tag);
  button.setAttribute("aria-label", labelName("region", item.region));
  if (onClick) button.addEventListener("click", onClick); else button.tabIndex = -1;
  return button;
}

function text(tag, value) { const el = document.createElement(tag); el.textContent = value; return el; }

function showItem(item) {
  const panel = $("detail-item");
  const title = text("h3", `${labelName("region", item.region)} (${t("score")} ${item.score})`);
  const color = document.createElement("p");
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = item.color.hex || "transparent";
  color.append(swatch, `${valueText("color", item.color.value)} ${item.color.hex} (${Math.round(item.color.share * 100)}%)`);
  const table = document.createElement("table");
  table.id = "item-attributes";
  Object.entries(item.attributes).forEach(([key, value]) => {
    const shown = "values" in value
      ? value.values.map((v) => `${labelName(key, v.value)} ${v.score}`).join(", ")
      : `${labelName(key, value.value)} ${value.score}`;
    const others = value.top_k.map((v) => `${labelName(key, v.value)} ${v.score}`).join(" / ");
    table.appendChild(row([state.lang === "ko" ? attribute(key).ko_key : key, shown, others], "td"));
  });
  panel.replaceChildren(title, color, table);
}

async function downloadTagged(format) {
  const names = { csv: "tagging.csv", xlsx: "tagging.xlsx", image: "tagged.zip" };
  if (state.tagging.job) {
    const path = format === "image"
      ? `/tagging/jobs/${state.tagging.job}/images`
      : `/tagging/jobs/${state.tagging.job}/results?format=${format}`;
    const response = await api(path);
    download(await response.blob(), format === "image" ? `${state.tagging.job}-drawn.zip` : names[format]);
    return;
  }
  const response = await api(`/tagging?format=${format}`, { method: "POST", body: state.tagging.form });
  const type = response.headers.get("content-type") || "";
  download(await response.blob(), format === "image" && type.includes("jpeg") ? "tagged.jpg" : names[format]);
}

// ------------------------------------------------------------------ search and collections

function filters() {
  const found = {};
  [["region", "chips-region"], ["category", "chips-category"], ["color", "chips-color"],
    ["print", "chips-print"], ["style", "chips-style"]].forEach(([key, id]) => {
    const values = pressed($(id));
    if (values.length) found[key] = values;
  });
  return found;
}

async function runSearch() {
  const photo = $("search-photo").files[0];
  const query = { text: $("search-text").value, filters: filters(), top_k: Number($("search-topk").value) };
  if ($("search-distinct").value) query.distinct = $("search-distinct").value;
  let body;
  if (photo) {
    const form = new FormData();
    form.append("files", photo, photo.name);
    form.append("text", query.text);
    form.append("filters", JSON.stringify(query.filters));
    form.append("top_k", String(query.top_k));
    if (query.distinct) form.append("distinct", query.distinct);
    body = await api("/search", { method: "POST", body: form });
  } else {
    body = await api("/search", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(query) });
  }
  state.search = body.results;
  $("search-summary").textContent = body.results.length ? `${body.results.length} ${t("search.found")}` : t("search.none");
  $("search-results").replaceChildren(...body.results.map(card));
}

function card(result) {
  const box = document.createElement("div");
  box.className = "card";
  if (result.item_id) box.dataset.itemId = result.item_id;
  box.dataset.imageId = result.image_id;
  const stage = document.createElement("div");
  stage.className = "stage";
  const img = document.createElement("img");
  img.src = BROWSER_CANNOT_SHOW.test(result.file_name) ? `${result.image_url}?format=jpeg` : result.image_url;
  img.alt = result.file_name;
  img.loading = "lazy";
  stage.appendChild(img);
  img.addEventListener("load", () => {
    if (result.box) stage.appendChild(boxButton(result, { width: img.naturalWidth, height: img.naturalHeight }, null));
  });
  const tags = result.tags || {};
  const score = text("div", `${result.rank ? `${result.rank}. ` : ""}${t("score")} ${result.score ?? ""}`);
  score.className = "score";
  const what = [labelName("region", result.region || ""), valueText("category", tags.category), valueText("color", tags.color)];
  box.append(stage, score, text("div", result.file_name), text("div", what.filter(Boolean).join(" · ")));
  if (result.item_id) box.appendChild(text("div", `#${result.item_id}`));
  if (result.product_id) {
    // The shop's own product: its id, and its name when the shop gave one.
    const name = result.product?.name;
    const product = text("div", `${t("product")} ${result.product_id}${name ? ` · ${name}` : ""}`);
    product.className = "product";
    box.appendChild(product);
  }
  if (result.missing_tags?.length) {
    // A text query's partial match: name the asked-for tags this item lacks.
    const differs = text("div", `${t("search.differs")}: ${result.missing_tags.map(keyName).join(", ")}`);
    differs.className = "differs";
    box.appendChild(differs);
  }
  return box;
}

async function saveCollection() {
  const name = $("collection-name").value.trim();
  if (!name) throw new Error(t("error.name"));
  const entries = state.search.map((r) => ({ image_id: r.image_id, item_id: r.item_id, score: r.score }));
  const json = { "content-type": "application/json" };
  try {
    await api("/collections", { method: "POST", headers: json, body: JSON.stringify({ name, entries }) });
  } catch (error) {
    if (!entries.length) throw error;
    await api(`/collections/${encodeURIComponent(name)}/entries`, { method: "POST", headers: json, body: JSON.stringify({ entries }) });
  }
  await loadCollections();
}

async function loadCollections() {
  if (!state.taxonomy) return;
  const body = await api("/collections");
  $("collections").replaceChildren(...body.collections.map((c) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `${c.name} (${c.entries})`;
    button.addEventListener("click", () => guarded(async () => {
      const collection = await api(`/collections/${encodeURIComponent(c.name)}`);
      $("collection-entries").replaceChildren(...collection.entries.map((e) => card({ ...e, rank: null, tags: {} })));
    }));
    return button;
  }));
}

// ------------------------------------------------------------------ matching

async function runMatching() {
  const photo = $("match-photo").files[0];
  const item = $("match-item").value;
  if (!photo && !item) throw new Error(t("error.input"));
  const spec = { targets: pressed($("chips-targets")), include: {}, exclude: {}, changes: [], top_k: 6 };
  const styles = pressed($("chips-include-style"));
  const colors = pressed($("chips-include-color"));
  const avoid = pressed($("chips-exclude-color"));
  const avoidStyles = pressed($("chips-exclude-style"));
  if (styles.length) spec.include.style = styles;
  if (colors.length) spec.include.color = colors;
  if (avoid.length) spec.exclude.color = avoid;
  if (avoidStyles.length) spec.exclude.style = avoidStyles;
  if ($("match-distinct").value) spec.distinct = $("match-distinct").value;
  if ($("change-attribute").value && $("change-to").value) {
    spec.changes.push({ attribute: $("change-attribute").value, to: $("change-to").value });
  }
  let body;
  if (photo) {
    const form = new FormData();
    form.append("files", photo, photo.name);
    Object.entries(spec).forEach(([key, value]) => form.append(key, typeof value === "object" ? JSON.stringify(value) : String(value)));
    body = await api("/recommend", { method: "POST", body: form });
  } else {
    body = await api("/recommend", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...spec, item_id: Number(item) }) });
  }
  const result = body.results[0];
  if (result.status === "failed") throw new Error(result.error.message);
  const sections = [];
  const query = result.query;
  const described = [labelName("region", query.region), valueText("category", query.attributes.category), valueText("color", query.attributes.color)];
  sections.push(text("p", `${t("matching.query")}: ${described.filter(Boolean).join(" · ")}`));
  Object.entries(result.matches).forEach(([region, found]) => sections.push(group(labelName("region", region), found, `match-${region}`)));
  result.changed.forEach((change) => sections.push(group(`${t("matching.changed")}: ${labelName(change.change.attribute, change.change.to)}`, change.results, "match-changed")));
  $("match-results").replaceChildren(...sections);
}

function group(title, results, id) {
  const section = document.createElement("section");
  section.className = "group";
  section.id = id;
  const grid = document.createElement("div");
  grid.className = "grid";
  grid.replaceChildren(...(results.length ? results.map(card) : [text("p", t("search.none"))]));
  section.append(text("h3", title), grid);
  return section;
}

// ------------------------------------------------------------------ trends

const PALETTE = ["#4363d8", "#e6194b", "#3cb44b", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#999999"];

async function runTrends() {
  const field = $("trend-field").value;
  const params = new URLSearchParams({ period: $("trend-period").value, by: $("trend-by").value, fields: field });
  const body = await api(`/trends?${params}`);
  const totals = {};
  body.periods.forEach((p) => Object.entries(p.counts[field]).forEach(([v, n]) => { totals[v] = (totals[v] || 0) + n; }));
  const top = Object.entries(totals).sort((a, b) => b[1] - a[1]).slice(0, 8).map(([v]) => v);
  const chart = $("trend-chart");
  if (!body.periods.length) { chart.replaceChildren(text("p", t("trends.empty"))); $("trend-table").replaceChildren(); return; }
  const width = 90 * body.periods.length + 220;
  const height = 260;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${field} ${body.period}`);
  const add = (tag, attributes, content) => {
    const el = document.createElementNS(svgNS, tag);
    Object.entries(attributes).forEach(([k, v]) => el.setAttribute(k, v));
    if (content !== undefined) el.textContent = content;
    svg.appendChild(el);
    return el;
  };
  body.periods.forEach((period, i) => {
    const counts = period.counts[field];
    const total = Object.values(counts).reduce((a, b) => a + b, 0) || 1;
    let y = 220;
    const parts = top.map((v) => [v, counts[v] || 0]);
    parts.push([t("trends.other"), total - parts.reduce((a, [, n]) => a + n, 0)]);
    parts.forEach(([value, n], k) => {
      const h = (200 * n) / total;
      y -= h;
      if (h > 0) add("rect", { x: 20 + i * 90, y, width: 60, height: h, fill: PALETTE[k], class: "bar" }, undefined)
        .appendChild(document.createElementNS(svgNS, "title")).textContent = `${labelName(field, value)}: ${n}`;
    });
    add("text", { x: 20 + i * 90, y: 238 }, period.period);
    add("text", { x: 20 + i * 90, y: 252 }, `${period.images} ${t("trends.images")}`);
  });
  [...top, t("trends.other")].forEach((value, k) => {
    const x = 40 + body.periods.length * 90;
    add("rect", { x, y: 20 + k * 22, width: 14, height: 14, fill: PALETTE[k] });
    add("text", { x: x + 20, y: 32 + k * 22 }, labelName(field, value));
  });
  chart.replaceChildren(svg);
  const table = $("trend-table");
  table.replaceChildren(row(["", ...body.periods.map((p) => p.period)], "th"),
    ...top.map((v) => row([labelName(field, v), ...body.periods.map((p) => p.counts[field][v] || 0)], "td")));
}

// ------------------------------------------------------------------ start

function setUpDrop() {
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    $("tag-files").files = event.dataTransfer.files;
    showChosen();
  });
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") $("tag-files").click(); });
}

async function start() {
  setUpTabs();
  setUpDrop();
  $("language").addEventListener("click", () => {
    state.lang = state.lang === "ko" ? "en" : "ko";
    localStorage.setItem("kfashion.lang", state.lang);
    applyLanguage();
  });
  $("api-key").value = apiKey();
  $("api-key").addEventListener("change", () => localStorage.setItem("kfashion.apiKey", $("api-key").value.trim()));
  $("tag-files").addEventListener("change", showChosen);
  $("jobs-panel").addEventListener("toggle", () => { if ($("jobs-panel").open) guarded(loadJobs); });
  $("tag-run").addEventListener("click", () => guarded(runTagging));
  $("download-csv").addEventListener("click", () => guarded(() => downloadTagged("csv")));
  $("download-xlsx").addEventListener("click", () => guarded(() => downloadTagged("xlsx")));
  $("download-images").addEventListener("click", () => guarded(() => downloadTagged("image")));
  $("search-run").addEventListener("click", () => guarded(runSearch));
  $("search-text").addEventListener("keydown", (event) => { if (event.key === "Enter") guarded(runSearch); });
  $("collection-save").addEventListener("click", () => guarded(saveCollection));
  $("change-attribute").addEventListener("change", fillChangeValues);
  $("match-run").addEventListener("click", () => guarded(runMatching));
  $("trend-run").addEventListener("click", () => guarded(runTrends));
  await guarded(async () => { state.taxonomy = await api("/taxonomy"); });
  applyLanguage();
  document.body.dataset.ready = "true";
}

start();
