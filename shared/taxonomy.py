"""The K-Fashion taxonomy: every class list with Korean and English names and stable integer ids.

Ids are positions in the lists below and never change meaning: append new labels at the end.
`TAXONOMY_VERSION` is derived from the content, so models and indexes that record it notice any change.

Policy for a value outside the lists: lookups return None; callers keep the raw value and count it
as unknown (see shared.labels). Nothing here raises on an unknown value.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property

REGIONS: tuple[str, ...] = ("outer", "top", "bottom", "onepiece")
# rect_no of the dataset guideline (seed 004): 1 outer, 2 top, 3 bottom, 4 onepiece.
REGION_NUMBER = {"outer": 1, "top": 2, "bottom": 3, "onepiece": 4}
REGION_KO = {"outer": "아우터", "top": "상의", "bottom": "하의", "onepiece": "원피스"}
REGION_EN_NAME = {"outer": "outer", "top": "top", "bottom": "bottom", "onepiece": "onepiece"}
# Spellings of region keys seen in the seeds' label samples ("아웃터" in seed 000).
REGION_ALIASES_KO = {
    "아웃터": "outer",
    "아우터": "outer",
    "상의": "top",
    "하의": "bottom",
    "원피스": "onepiece",
}

_TOP, _BOTTOM, _OUTER, _ONEPIECE = "top", "bottom", "outer", "onepiece"
_ALL = frozenset(REGIONS)


@dataclass(frozen=True, slots=True)
class Label:
    id: int
    ko: str
    en: str
    # Regions this label belongs to; None means every region the attribute applies to.
    regions: frozenset[str] | None = None


def normalize_key(text: str) -> str:
    """Lookup key: case, whitespace, '-', '_' and '.' do not matter.

    ("원 숄더" == "원숄더", "T-Shirt" == "tshirt")."""
    return re.sub(r"[\s\-_.]+", "", text).casefold()


@dataclass(frozen=True)
class Attribute:
    key: str  # English key used in records, APIs and model heads
    ko_key: str  # key in the label JSON
    multi: bool  # list-valued in the label JSON
    labels: tuple[Label, ...]
    regions: frozenset[str]  # regions whose items carry this attribute
    aliases: dict[str, str] = field(default_factory=dict)  # variant spelling (ko or en) -> canonical ko

    @cached_property
    def _index(self) -> dict[str, Label]:
        index: dict[str, Label] = {}
        by_ko = {label.ko: label for label in self.labels}
        for label in self.labels:
            for name in (label.ko, label.en):
                key = normalize_key(name)
                existing = index.get(key)
                if existing is not None and existing is not label:
                    raise ValueError(f"{self.key}: '{name}' names both {existing.ko} and {label.ko}")
                index[key] = label
        for alias, canonical in self.aliases.items():
            index.setdefault(normalize_key(alias), by_ko[canonical])
        return index

    def lookup(self, value: str) -> Label | None:
        """The label a Korean or English name (or a known variant spelling) stands for, else None."""
        return self._index.get(normalize_key(value))

    def by_id(self, label_id: int) -> Label:
        return self.labels[label_id]

    def labels_for(self, region: str) -> tuple[Label, ...]:
        """The labels valid for an item of `region` (e.g. top lengths are crop/normal/long)."""
        if region not in self.regions:
            return ()
        return tuple(label for label in self.labels if label.regions is None or region in label.regions)

    @property
    def size(self) -> int:
        return len(self.labels)


def _labels(
    pairs: list[tuple[str, str]], regions: dict[str, frozenset[str]] | None = None
) -> tuple[Label, ...]:
    regions = regions or {}
    return tuple(Label(i, ko, en, regions.get(ko)) for i, (ko, en) in enumerate(pairs))


_CATEGORY_PAIRS = [
    # top
    ("탑", "top"),
    ("블라우스", "blouse"),
    ("티셔츠", "t-shirt"),
    ("니트웨어", "knitwear"),
    ("셔츠", "shirt"),
    ("브라탑", "bra top"),
    ("후드티", "hoodie"),
    # bottom
    ("청바지", "jeans"),
    ("팬츠", "pants"),
    ("스커트", "skirt"),
    ("레깅스", "leggings"),
    ("조거팬츠", "joggers"),
    # outer
    ("코트", "coat"),
    ("재킷", "jacket"),
    ("점퍼", "jumper"),
    ("패딩", "padding"),
    ("베스트", "vest"),
    ("가디건", "cardigan"),
    ("짚업", "zip-up"),
    # onepiece
    ("드레스", "dress"),
    ("점프수트", "jumpsuit"),
]
CATEGORY_REGION = {
    ko: region
    for region, names in {
        _TOP: ("탑", "블라우스", "티셔츠", "니트웨어", "셔츠", "브라탑", "후드티"),
        _BOTTOM: ("청바지", "팬츠", "스커트", "레깅스", "조거팬츠"),
        _OUTER: ("코트", "재킷", "점퍼", "패딩", "베스트", "가디건", "짚업"),
        _ONEPIECE: ("드레스", "점프수트"),
    }.items()
    for ko in names
}

_COLOR_PAIRS = [
    ("블랙", "black"),
    ("화이트", "white"),
    ("그레이", "grey"),
    ("레드", "red"),
    ("핑크", "pink"),
    ("오렌지", "orange"),
    ("베이지", "beige"),
    ("브라운", "brown"),
    ("옐로우", "yellow"),
    ("그린", "green"),
    ("카키", "khaki"),
    ("민트", "mint"),
    ("블루", "blue"),
    ("네이비", "navy"),
    ("스카이블루", "skyblue"),
    ("퍼플", "purple"),
    ("라벤더", "lavender"),
    ("와인", "wine"),
    ("네온", "neon"),
    ("골드", "gold"),
    ("실버", "silver"),
]
_PRINT_PAIRS = [
    ("체크", "check"),
    ("스트라이프", "stripe"),
    ("지그재그", "zigzag"),
    ("호피", "leopard"),
    ("지브라", "zebra"),
    ("도트", "dot"),
    ("카무플라쥬", "camouflage"),
    ("페이즐리", "paisley"),
    ("아가일", "argyle"),
    ("플로럴", "floral"),
    ("레터링", "lettering"),
    ("해골", "skull"),
    ("타이다이", "tie-dye"),
    ("그라데이션", "gradation"),
    ("무지", "solid"),
    ("그래픽", "graphic"),
    ("하운즈 투스", "houndstooth"),
    ("깅엄", "gingham"),
    ("하트", "heart"),
    ("믹스", "mix"),
]
_MATERIAL_PAIRS = [
    ("퍼", "fur"),
    ("무스탕", "mouton"),
    ("스웨이드", "suede"),
    ("앙고라", "angora"),
    ("코듀로이", "corduroy"),
    ("시퀸/글리터", "sequin/glitter"),
    ("데님", "denim"),
    ("저지", "jersey"),
    ("트위드", "tweed"),
    ("벨벳", "velvet"),
    ("비닐/PVC", "vinyl/pvc"),
    ("울/캐시미어", "wool/cashmere"),
    ("합성섬유", "synthetic/polyester"),
    ("니트", "knit"),
    ("레이스", "lace"),
    ("린넨", "linen"),
    ("메시", "mesh"),
    ("플리스", "fleece"),
    ("네오프렌", "neoprene"),
    ("실크", "silk"),
    ("스판덱스", "spandex"),
    ("자카드", "jacquard"),
    ("가죽", "leather"),
    ("면", "cotton"),
    ("시폰", "chiffon"),
    ("헤어 니트", "hair-knit"),
]
_DETAIL_PAIRS = [
    ("비즈", "beads"),
    ("단추", "buttoned"),
    ("니트꽈배기", "cable"),
    ("체인", "chain"),
    ("컷오프", "cut-off"),
    ("더블브레스티드", "double-breasted"),
    ("드롭숄더", "drop-shoulder"),
    ("자수", "embroidery"),
    ("프릴", "frill"),
    ("프린지", "fringe"),
    ("플레어", "flare"),
    ("퀼팅", "quilting"),
    ("리본", "ribbon"),
    ("롤업", "roll-up"),
    ("러플", "ruffle"),
    ("셔링", "shirring"),
    ("슬릿", "slit"),
    ("스팽글", "spangle"),
    ("스티치", "stitch"),
    ("스터드", "stud"),
    ("퍼트리밍", "fur-trimmed"),
    ("글리터", "glitter"),
    ("후드", "hood"),
    ("레이스업", "lace-up"),
    ("패딩", "padding"),
    ("패치워크", "patchwork"),
    ("페플럼", "peplum"),
    ("플리츠", "pleats"),
    ("포켓", "pockets"),
    ("폼폼", "pompom"),
    ("퍼프", "puff"),
    ("태슬", "tassel"),
    ("집업", "zip-up"),
    ("띠", "sash"),
    ("디스트로이드", "destroyed"),
    ("드롭웨이스트", "low-waist"),
    ("버클", "buckle"),
    ("컷아웃", "cut-out"),
    ("X스트랩", "x-strap"),
    ("비대칭", "unbalanced"),
]
_LENGTH_PAIRS = [
    ("크롭", "crop"),
    ("노멀", "normal"),
    ("롱", "long"),
    ("미니", "mini"),
    ("니렝스", "knee"),
    ("미디", "midi"),
    ("발목", "ankle"),
    ("맥시", "maxi"),
]
_TOP_LENGTHS = frozenset({_TOP})
_LONG_LENGTHS = frozenset({_BOTTOM, _OUTER, _ONEPIECE})
_SLEEVE_PAIRS = [
    ("민소매", "sleeveless"),
    ("반팔", "short"),
    ("캡", "cap"),
    ("7부소매", "3/4"),
    ("긴팔", "long"),
]
_NECKLINE_PAIRS = [
    ("라운드넥", "round"),
    ("유넥", "u-neck"),
    ("브이넥", "v-neck"),
    ("홀터넥", "halter"),
    ("오프숄더", "off-shoulder"),
    ("원숄더", "one-shoulder"),
    ("스퀘어넥", "square"),
    ("노카라", "collarless"),
    ("후드", "hood"),
    ("터틀넥", "turtleneck"),
    ("보트넥", "boat"),
    ("스위트하트", "sweetheart"),
]
_COLLAR_PAIRS = [
    ("셔츠칼라", "shirt"),
    ("보우칼라", "bow"),
    ("세일러칼라", "sailor"),
    ("숄칼라", "shawl"),
    ("폴로칼라", "polo"),
    ("피터팬칼라", "peter-pan"),
    ("너치드칼라", "notched"),
    ("차이나칼라", "china"),
    ("테일러드칼라", "tailored"),
    ("밴드칼라", "band"),
]
_FIT_PAIRS = [
    ("노멀", "normal"),
    ("루즈", "loose"),
    ("오버사이즈", "oversized"),
    ("스키니", "skinny"),
    ("와이드", "wide"),
    ("타이트", "tight"),
]
STYLE_PAIRS = [
    ("스트리트", "street"),
    ("리조트", "resort"),
    ("페미닌", "feminine"),
    ("로맨틱", "romantic"),
    ("모던", "modern"),
    ("클래식", "classic"),
    ("소피스트케이티드", "sophisticated"),
    ("컨트리", "country"),
    ("젠더리스", "genderless"),
    ("히피", "hippie"),
    ("스포티", "sporty"),
    ("톰보이", "tomboy"),
    ("섹시", "sexy"),
    ("매니시", "mannish"),
    ("레트로", "retro"),
    ("오리엔탈", "oriental"),
    ("키치/키덜트", "kitsch"),
    ("밀리터리", "military"),
    ("힙합", "hiphop"),
    ("아방가르드", "avant-garde"),
    ("프레피", "preppy"),
    ("웨스턴", "western"),
    ("펑크", "punk"),
]
# Share of each style in the guideline's 10% sample (seed 004), in STYLE_PAIRS order.
STYLE_SHARE = (
    0.4807,
    0.1681,
    0.1601,
    0.1491,
    0.1252,
    0.0707,
    0.0672,
    0.0669,
    0.0349,
    0.0276,
    0.0232,
    0.0186,
    0.0160,
    0.0138,
    0.0125,
    0.0109,
    0.0098,
    0.0097,
    0.0051,
    0.0046,
    0.0037,
    0.0027,
    0.0016,
)

_UPPER = frozenset({_TOP, _OUTER, _ONEPIECE})

CATEGORY = Attribute(
    "category",
    "카테고리",
    False,
    _labels(_CATEGORY_PAIRS, {ko: frozenset({region}) for ko, region in CATEGORY_REGION.items()}),
    _ALL,
    {
        "래깅스": "레깅스",
        "자켓": "재킷",
        "쟈켓": "재킷",
        "점프슈트": "점프수트",
        "카디건": "가디건",
        "집업": "짚업",
        "후드": "후드티",
        "후드티셔츠": "후드티",
        "니트": "니트웨어",
        "원피스": "드레스",
        "tee": "티셔츠",
        "tshirts": "티셔츠",
        "trousers": "팬츠",
        "bratop": "브라탑",
        "zipup": "짚업",
        "padded jacket": "패딩",
        "puffer": "패딩",
        "jogger pants": "조거팬츠",
        "jogger": "조거팬츠",
    },
)
COLOR = Attribute(
    "color",
    "색상",
    False,
    _labels(_COLOR_PAIRS),
    _ALL,
    {
        "gray": "그레이",
        "회색": "그레이",
        "검정": "블랙",
        "흰색": "화이트",
        "옐로": "옐로우",
        "sky blue": "스카이블루",
        "violet": "퍼플",
        "burgundy": "와인",
    },
)
# 서브색상 (sub-color) shares the colour list.
SUB_COLOR = Attribute("sub_color", "서브색상", False, COLOR.labels, _ALL, COLOR.aliases)
PRINT = Attribute(
    "print",
    "프린트",
    True,
    _labels(_PRINT_PAIRS),
    _ALL,
    {
        "카무플라주": "카무플라쥬",
        "카모플라쥬": "카무플라쥬",
        "하운드 투스": "하운즈 투스",
        "하운드투스": "하운즈 투스",
        "hound's tooth": "하운즈 투스",
        "hounds tooth": "하운즈 투스",
        "지그제그": "지그재그",
        "제브라": "지브라",
        "레오파드": "호피",
        "도트무늬": "도트",
        "polka dot": "도트",
        "plain": "무지",
        "camo": "카무플라쥬",
        "flower": "플로럴",
        "플라워": "플로럴",
        "tiedye": "타이다이",
        "gradient": "그라데이션",
    },
)
MATERIAL = Attribute(
    "material",
    "소재",
    True,
    _labels(_MATERIAL_PAIRS),
    _ALL,
    {
        "헤어니트": "헤어 니트",
        "시퀸": "시퀸/글리터",
        "sequin": "시퀸/글리터",
        "비닐": "비닐/PVC",
        "pvc": "비닐/PVC",
        "울": "울/캐시미어",
        "캐시미어": "울/캐시미어",
        "wool": "울/캐시미어",
        "cashmere": "울/캐시미어",
        "polyester": "합성섬유",
        "synthetic": "합성섬유",
        "스웨드": "스웨이드",
        "메쉬": "메시",
        "린넨/마": "린넨",
        "leather": "가죽",
        "레더": "가죽",
        "코튼": "면",
        "쉬폰": "시폰",
        "후리스": "플리스",
    },
)
DETAIL = Attribute(
    "detail",
    "디테일",
    True,
    _labels(_DETAIL_PAIRS),
    _ALL,
    {
        "블브레스티드": "더블브레스티드",
        "더블 브레스티드": "더블브레스티드",
        "니트 꽈배기": "니트꽈배기",
        "짚업": "집업",
        "포켓들": "포켓",
        "pocket": "포켓",
        "button": "단추",
        "buttons": "단추",
        "x-스트랩": "X스트랩",
        "asymmetric": "비대칭",
        "belt": "띠",
    },
)
LENGTH = Attribute(
    "length",
    "기장",
    False,
    _labels(
        _LENGTH_PAIRS,
        {
            "크롭": _TOP_LENGTHS,
            "노멀": _TOP_LENGTHS,
            "롱": _TOP_LENGTHS,
            "미니": _LONG_LENGTHS,
            "니렝스": _LONG_LENGTHS,
            "미디": _LONG_LENGTHS,
            "발목": _LONG_LENGTHS,
            "맥시": _LONG_LENGTHS,
        },
    ),
    _ALL,
    {
        "나렝스": "니렝스",
        "니랭스": "니렝스",
        "이니": "미니",
        "노말": "노멀",
        "knee length": "니렝스",
        "cropped": "크롭",
        "ankle length": "발목",
    },
)
SLEEVE = Attribute(
    "sleeve",
    "소매기장",
    False,
    _labels(_SLEEVE_PAIRS),
    _UPPER,
    {
        "캡소매": "캡",
        "7부": "7부소매",
        "칠부소매": "7부소매",
        "반소매": "반팔",
        "긴소매": "긴팔",
        "나시": "민소매",
        "short sleeve": "반팔",
        "long sleeve": "긴팔",
        "cap sleeve": "캡",
        "3/4 sleeve": "7부소매",
        "3/4th sleeve": "7부소매",
    },
)
NECKLINE = Attribute(
    "neckline",
    "넥라인",
    False,
    _labels(_NECKLINE_PAIRS),
    _UPPER,
    {
        "홀토넥": "홀터넥",
        "원 숄더": "원숄더",
        "라운드": "라운드넥",
        "v넥": "브이넥",
        "u넥": "유넥",
        "vneck": "브이넥",
        "uneck": "유넥",
        "roundneck": "라운드넥",
        "halterneck": "홀터넥",
        "squareneck": "스퀘어넥",
        "boatneck": "보트넥",
        "노칼라넥": "노카라",
    },
)
COLLAR = Attribute(
    "collar",
    "옷깃",
    False,
    _labels(_COLLAR_PAIRS),
    _UPPER,
    {
        "테일러칼라": "테일러드칼라",
        "솔칼라": "숄칼라",
        "노치드칼라": "너치드칼라",
        "피터팬 칼라": "피터팬칼라",
        "스탠드칼라": "차이나칼라",
        "standup": "차이나칼라",
        "stand-up": "차이나칼라",
        "mandarin": "차이나칼라",
        "peterpan": "피터팬칼라",
        "shirt collar": "셔츠칼라",
        "shirt-collar": "셔츠칼라",
    },
)
# Fit is labelled on tops and trousers (seed 004 5.2.2.12); outers carry it in the real files too.
FIT = Attribute(
    "fit",
    "핏",
    False,
    _labels(_FIT_PAIRS),
    frozenset({_TOP, _OUTER, _BOTTOM}),
    {
        "노말": "노멀",
        "오버핏": "오버사이즈",
        "오버사이즈드": "오버사이즈",
        "oversize": "오버사이즈",
        "slim": "스키니",
    },
)
STYLE = Attribute(
    "style",
    "스타일",
    False,
    _labels(STYLE_PAIRS),
    _ALL,
    {
        "키치": "키치/키덜트",
        "키덜트": "키치/키덜트",
        "소피스트케이트": "소피스트케이티드",
        "힙합스타일": "힙합",
        "hip-hop": "힙합",
        "avantgarde": "아방가르드",
        "sophisticate": "소피스트케이티드",
    },
)

# Item attributes in the order of the issue's `labels show` output.
ITEM_ATTRIBUTES: tuple[Attribute, ...] = (
    CATEGORY,
    COLOR,
    SUB_COLOR,
    PRINT,
    MATERIAL,
    DETAIL,
    LENGTH,
    SLEEVE,
    NECKLINE,
    COLLAR,
    FIT,
)
ATTRIBUTES: dict[str, Attribute] = {a.key: a for a in ITEM_ATTRIBUTES}
ATTRIBUTES_BY_KO: dict[str, Attribute] = {a.ko_key: a for a in ITEM_ATTRIBUTES}


def region_of_category(category_ko: str) -> str | None:
    label = CATEGORY.lookup(category_ko)
    return next(iter(label.regions)) if label and label.regions else None


def region_from_key(key: str) -> str | None:
    """Region name ("outer", ...) from a label-JSON region key or an English region name."""
    key = key.strip()
    return REGION_ALIASES_KO.get(key) or (key if key in REGIONS else None)


def _content_digest() -> str:
    content = {
        "regions": REGIONS,
        "attributes": {
            a.key: {
                "ko_key": a.ko_key,
                "multi": a.multi,
                "regions": sorted(a.regions),
                "labels": [[lb.ko, lb.en, sorted(lb.regions) if lb.regions else None] for lb in a.labels],
            }
            for a in (*ITEM_ATTRIBUTES, STYLE)
        },
    }
    return hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:10]


TAXONOMY_VERSION = f"kfashion-1+{_content_digest()}"


def taxonomy_json() -> dict:
    """Every class list with ids, Korean and English names and regions (`kfashion taxonomy --json`,
    GET /taxonomy)."""
    return {
        "version": TAXONOMY_VERSION,
        "regions": list(REGIONS),
        "region_names": {r: {"ko": REGION_KO[r], "en": REGION_EN_NAME[r]} for r in REGIONS},
        "attributes": [
            {
                "key": a.key,
                "ko_key": a.ko_key,
                "multi": a.multi,
                "regions": sorted(a.regions),
                "labels": [
                    {
                        "id": lb.id,
                        "ko": lb.ko,
                        "en": lb.en,
                        **({"regions": sorted(lb.regions)} if lb.regions else {}),
                    }
                    for lb in a.labels
                ],
            }
            for a in [*ITEM_ATTRIBUTES, STYLE]
        ],
    }
