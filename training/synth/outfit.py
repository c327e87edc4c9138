"""What a generated person wears, and the style rules.

An outfit is sampled for a target style from that style's recipe (categories per region, colours,
prints, fits, lengths, materials, details, necklines, collars), within what each category allows.
The style *labels* are then derived from the outfit alone by `derive_styles` (a documented scoring
rule, docs/synth.md), so a style is a function of visible attributes, as an expert labeller's is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.taxonomy import CATEGORY_REGION, STYLE_PAIRS, STYLE_SHARE


@dataclass(frozen=True)
class CategoryRule:
    """What an item of a category may look like.

    Lists hold Korean taxonomy values; None means the attribute is absent."""

    lengths: tuple[str, ...]
    sleeves: tuple[str | None, ...] = (None,)
    necklines: tuple[str | None, ...] = (None,)
    collars: tuple[str | None, ...] = (None,)
    fits: tuple[str | None, ...] = (None,)
    materials: tuple[str, ...] = ("면",)
    details: tuple[str, ...] = ()  # optional details the renderer can draw
    always: tuple[str, ...] = ()  # details every item of the category has
    colors: tuple[str, ...] | None = None  # None: any colour
    prints: tuple[str, ...] | None = None  # None: any print
    open_front: float = 0.0  # outers: probability of being worn open


_TOPLEN = ("노멀", "크롭", "롱")
CATEGORY_RULES: dict[str, CategoryRule] = {
    # tops
    "탑": CategoryRule(
        ("크롭", "노멀"),
        ("민소매", "캡"),
        ("스퀘어넥", "유넥", "오프숄더", "원숄더", "홀터넥", "브이넥"),
        fits=("타이트", "노멀"),
        materials=("저지", "면", "실크", "시퀸/글리터"),
        details=("셔링", "리본"),
    ),
    "블라우스": CategoryRule(
        ("노멀", "크롭"),
        ("긴팔", "반팔", "7부소매", "캡"),
        ("라운드넥", "브이넥", "스퀘어넥", "보트넥"),
        (None, None, "보우칼라", "피터팬칼라"),
        ("노멀", "루즈"),
        ("시폰", "실크", "면", "레이스"),
        ("프릴", "러플", "퍼프", "리본", "셔링"),
    ),
    "티셔츠": CategoryRule(
        _TOPLEN,
        ("반팔", "긴팔", "7부소매"),
        ("라운드넥", "브이넥", "유넥", "보트넥"),
        fits=("노멀", "루즈", "오버사이즈", "타이트"),
        materials=("면", "저지"),
        details=("드롭숄더",),
    ),
    "니트웨어": CategoryRule(
        _TOPLEN,
        ("긴팔", "7부소매", "반팔"),
        ("라운드넥", "브이넥", "터틀넥"),
        fits=("노멀", "루즈", "오버사이즈"),
        materials=("니트", "울/캐시미어", "앙고라"),
        details=("니트꽈배기", "드롭숄더"),
    ),
    "셔츠": CategoryRule(
        ("노멀", "롱"),
        ("긴팔", "반팔", "7부소매"),
        (None,),
        ("셔츠칼라", "밴드칼라", "차이나칼라", "폴로칼라"),
        ("노멀", "루즈", "오버사이즈"),
        ("면", "린넨", "실크"),
        ("포켓", "스티치"),
        always=("단추",),
    ),
    "브라탑": CategoryRule(
        ("크롭",),
        ("민소매",),
        ("스퀘어넥", "라운드넥", "스위트하트", "홀터넥"),
        fits=("타이트",),
        materials=("스판덱스", "저지"),
    ),
    "후드티": CategoryRule(
        _TOPLEN,
        ("긴팔",),
        ("후드",),
        fits=("루즈", "오버사이즈", "노멀"),
        materials=("면", "플리스", "저지"),
        details=("포켓",),
        always=("후드",),
    ),
    # bottoms
    "청바지": CategoryRule(
        ("발목", "미니", "맥시"),
        fits=("스키니", "노멀", "와이드", "루즈"),
        materials=("데님",),
        details=("디스트로이드", "롤업", "스티치", "포켓"),
        colors=("블루", "네이비", "스카이블루", "블랙", "그레이", "화이트"),
        prints=("무지",),
    ),
    "팬츠": CategoryRule(
        ("발목", "맥시", "미니", "미디"),
        fits=("노멀", "와이드", "스키니", "루즈"),
        materials=("면", "울/캐시미어", "린넨", "합성섬유", "가죽", "코듀로이"),
        details=("포켓", "롤업", "띠"),
    ),
    "스커트": CategoryRule(
        ("미니", "니렝스", "미디", "맥시", "발목"),
        materials=("면", "데님", "가죽", "울/캐시미어", "시폰", "레이스"),
        details=("플리츠", "슬릿", "프릴", "단추", "띠", "프린지", "플레어"),
    ),
    "레깅스": CategoryRule(
        ("발목", "미디"),
        fits=("스키니", "타이트"),
        materials=("스판덱스",),
        colors=("블랙", "그레이", "네이비", "브라운", "카키", "퍼플"),
        prints=("무지", "그래픽", "카무플라쥬"),
    ),
    "조거팬츠": CategoryRule(
        ("발목",),
        fits=("루즈", "노멀", "오버사이즈"),
        materials=("면", "저지", "플리스", "합성섬유"),
        details=("포켓", "스티치"),
    ),
    # outers
    "코트": CategoryRule(
        ("니렝스", "미디", "발목", "맥시"),
        ("긴팔",),
        collars=("테일러드칼라", "너치드칼라", "숄칼라"),
        fits=("노멀", "루즈", "오버사이즈"),
        materials=("울/캐시미어", "트위드", "합성섬유"),
        details=("더블브레스티드", "포켓", "띠"),
        always=("단추",),
        open_front=0.75,
    ),
    "재킷": CategoryRule(
        ("미니",),
        ("긴팔", "7부소매"),
        (None, None, "노카라"),
        collars=("너치드칼라", "테일러드칼라", "셔츠칼라", "차이나칼라"),
        fits=("노멀", "오버사이즈", "루즈", "타이트"),
        materials=("가죽", "데님", "울/캐시미어", "트위드", "스웨이드"),
        details=("단추", "포켓", "스티치", "스터드", "프린지"),
        open_front=0.7,
    ),
    "점퍼": CategoryRule(
        ("미니",),
        ("긴팔",),
        collars=("차이나칼라", "밴드칼라"),
        fits=("루즈", "오버사이즈", "노멀"),
        materials=("합성섬유", "가죽", "면"),
        details=("포켓",),
        always=("집업",),
    ),
    "패딩": CategoryRule(
        ("미니", "니렝스", "미디"),
        ("긴팔",),
        (None, "후드"),
        fits=("루즈", "오버사이즈", "노멀"),
        materials=("합성섬유",),
        details=("퍼트리밍",),
        always=("퀼팅", "패딩", "집업"),
        prints=("무지",),
    ),
    "베스트": CategoryRule(
        ("미니",),
        ("민소매",),
        ("브이넥",),
        fits=("노멀", "루즈"),
        materials=("니트", "울/캐시미어", "합성섬유", "데님"),
        details=("포켓", "퀼팅"),
        always=("단추",),
        open_front=0.3,
    ),
    "가디건": CategoryRule(
        ("미니", "니렝스"),
        ("긴팔", "7부소매"),
        ("브이넥", "라운드넥"),
        fits=("노멀", "루즈", "오버사이즈"),
        materials=("니트", "울/캐시미어", "앙고라"),
        details=("니트꽈배기", "포켓"),
        always=("단추",),
        open_front=0.8,
    ),
    "짚업": CategoryRule(
        ("미니",),
        ("긴팔",),
        ("후드", None),
        fits=("노멀", "루즈", "오버사이즈"),
        materials=("면", "플리스", "저지", "합성섬유"),
        details=("포켓", "스티치"),
        always=("집업",),
    ),
    # onepieces
    "드레스": CategoryRule(
        ("미니", "니렝스", "미디", "발목", "맥시"),
        ("민소매", "반팔", "긴팔", "캡", "7부소매"),
        ("라운드넥", "브이넥", "스퀘어넥", "오프숄더", "원숄더", "홀터넥", "스위트하트", "유넥", "보트넥"),
        (None, None, None, "셔츠칼라", "피터팬칼라", "차이나칼라"),
        materials=("면", "시폰", "실크", "린넨", "니트", "레이스", "벨벳", "저지"),
        details=("띠", "프릴", "러플", "플리츠", "슬릿", "리본", "셔링", "퍼프", "단추"),
    ),
    "점프수트": CategoryRule(
        ("발목", "미니"),
        ("민소매", "반팔", "긴팔"),
        ("브이넥", "라운드넥", "홀터넥"),
        (None, "셔츠칼라"),
        materials=("면", "데님", "린넨", "합성섬유"),
        details=("띠", "포켓", "단추"),
    ),
}


@dataclass(frozen=True)
class StyleRecipe:
    top: tuple[str, ...]
    bottom: tuple[str, ...]
    outer: tuple[str, ...] = ()
    onepiece: tuple[str, ...] = ()
    p_outer: float = 0.3
    p_onepiece: float = 0.0
    colors: tuple[str, ...] = ()
    prints: tuple[str, ...] = ()
    fits: tuple[str, ...] = ()
    lengths: tuple[str, ...] = ()
    materials: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    necklines: tuple[str, ...] = ()
    collars: tuple[str, ...] = ()


R = StyleRecipe
STYLE_RECIPES: dict[str, StyleRecipe] = {
    "스트리트": R(
        ("티셔츠", "후드티"),
        ("청바지", "조거팬츠", "팬츠"),
        ("점퍼", "짚업", "재킷", "패딩"),
        p_outer=0.45,
        colors=("블랙", "화이트", "그레이", "네이비"),
        prints=("레터링", "그래픽", "무지"),
        fits=("오버사이즈", "루즈", "와이드"),
        materials=("면", "데님"),
        details=("포켓", "후드", "집업"),
    ),
    "리조트": R(
        ("블라우스", "탑", "셔츠"),
        ("팬츠", "스커트"),
        onepiece=("드레스",),
        p_outer=0.05,
        p_onepiece=0.55,
        colors=("화이트", "스카이블루", "옐로우", "민트"),
        prints=("플로럴", "스트라이프"),
        fits=("루즈", "와이드"),
        lengths=("맥시", "발목"),
        materials=("린넨", "시폰"),
        details=("리본", "띠"),
    ),
    "페미닌": R(
        ("블라우스", "니트웨어"),
        ("스커트",),
        ("가디건", "코트"),
        ("드레스",),
        0.3,
        0.4,
        colors=("베이지", "화이트", "라벤더"),
        prints=("무지",),
        lengths=("미디", "니렝스"),
        materials=("시폰", "실크"),
        details=("리본", "셔링", "퍼프"),
        necklines=("스퀘어넥", "보트넥"),
    ),
    "로맨틱": R(
        ("블라우스",),
        ("스커트",),
        ("가디건",),
        ("드레스",),
        0.2,
        0.5,
        colors=("핑크", "라벤더", "민트"),
        prints=("플로럴", "도트", "하트", "깅엄"),
        lengths=("미니", "니렝스"),
        materials=("시폰", "레이스"),
        details=("프릴", "러플", "퍼프"),
        collars=("피터팬칼라", "보우칼라"),
    ),
    "모던": R(
        ("셔츠", "니트웨어", "티셔츠"),
        ("팬츠", "스커트"),
        ("코트", "재킷", "패딩"),
        ("드레스",),
        0.5,
        0.15,
        colors=("블랙", "화이트", "그레이"),
        prints=("무지",),
        fits=("노멀", "와이드"),
        materials=("울/캐시미어",),
        necklines=("터틀넥", "노카라"),
    ),
    "클래식": R(
        ("셔츠", "블라우스", "니트웨어"),
        ("스커트", "팬츠"),
        ("코트", "재킷"),
        p_outer=0.6,
        colors=("네이비", "베이지", "브라운", "와인"),
        prints=("체크", "하운즈 투스"),
        lengths=("니렝스",),
        materials=("울/캐시미어", "트위드"),
        details=("더블브레스티드",),
        collars=("테일러드칼라",),
    ),
    "소피스트케이티드": R(
        ("블라우스", "셔츠"),
        ("스커트", "팬츠"),
        ("코트", "재킷"),
        ("드레스",),
        0.5,
        0.2,
        colors=("그레이", "스카이블루", "블랙"),
        prints=("무지",),
        fits=("타이트",),
        lengths=("니렝스", "미디"),
        materials=("실크",),
        details=("슬릿", "띠"),
        collars=("너치드칼라", "숄칼라"),
    ),
    "컨트리": R(
        ("셔츠", "니트웨어", "블라우스"),
        ("스커트", "청바지"),
        ("가디건", "베스트"),
        ("드레스",),
        0.5,
        0.25,
        colors=("베이지", "카키", "브라운"),
        prints=("깅엄", "체크", "아가일"),
        fits=("루즈",),
        lengths=("미디", "맥시"),
        materials=("면", "니트"),
        details=("니트꽈배기",),
    ),
    "젠더리스": R(
        ("셔츠", "티셔츠"),
        ("팬츠",),
        ("재킷", "코트"),
        p_outer=0.6,
        colors=("블랙", "그레이", "네이비"),
        prints=("무지",),
        fits=("오버사이즈", "와이드"),
        lengths=("발목",),
        details=("드롭숄더",),
    ),
    "히피": R(
        ("블라우스", "탑"),
        ("스커트", "청바지"),
        ("베스트", "재킷"),
        ("드레스",),
        0.25,
        0.5,
        colors=("오렌지", "브라운", "옐로우"),
        prints=("타이다이", "페이즐리"),
        fits=("루즈", "와이드"),
        lengths=("맥시",),
        materials=("스웨이드", "린넨"),
        details=("프린지",),
    ),
    "스포티": R(
        ("티셔츠", "브라탑", "후드티"),
        ("레깅스", "조거팬츠"),
        ("짚업", "점퍼", "패딩"),
        p_outer=0.4,
        colors=("레드", "블루", "네온"),
        prints=("레터링", "스트라이프", "그라데이션"),
        fits=("타이트",),
        materials=("스판덱스", "저지", "합성섬유"),
        details=("집업", "스티치"),
    ),
    "톰보이": R(
        ("티셔츠", "셔츠"),
        ("청바지", "팬츠"),
        ("재킷", "점퍼"),
        ("점프수트",),
        0.4,
        0.15,
        colors=("브라운", "그린", "네이비"),
        prints=("스트라이프", "체크"),
        fits=("루즈", "오버사이즈"),
        materials=("데님",),
        details=("롤업",),
    ),
    "섹시": R(
        ("브라탑", "탑"),
        ("스커트", "레깅스"),
        ("재킷",),
        ("드레스",),
        0.15,
        0.45,
        colors=("블랙", "레드", "실버", "골드"),
        prints=("호피", "지브라"),
        fits=("타이트", "스키니"),
        lengths=("미니",),
        materials=("가죽", "시퀸/글리터"),
        details=("슬릿",),
        necklines=("오프숄더", "원숄더", "홀터넥", "스위트하트"),
    ),
    "매니시": R(
        ("셔츠", "니트웨어"),
        ("팬츠",),
        ("코트", "재킷", "베스트"),
        p_outer=0.7,
        colors=("그레이", "브라운", "블랙"),
        prints=("무지", "하운즈 투스"),
        fits=("와이드",),
        lengths=("발목",),
        materials=("울/캐시미어", "트위드"),
        details=("더블브레스티드",),
        collars=("너치드칼라",),
    ),
    "레트로": R(
        ("블라우스", "셔츠", "니트웨어"),
        ("청바지", "스커트", "팬츠"),
        ("재킷",),
        ("드레스",),
        0.3,
        0.3,
        colors=("오렌지", "브라운", "와인", "그린"),
        prints=("도트", "지그재그"),
        fits=("와이드",),
        materials=("코듀로이",),
        details=("플레어",),
    ),
    "오리엔탈": R(
        ("블라우스", "셔츠"),
        ("스커트", "팬츠"),
        ("재킷",),
        ("드레스",),
        0.15,
        0.55,
        colors=("레드", "골드", "와인"),
        prints=("페이즐리", "플로럴"),
        lengths=("맥시", "발목"),
        materials=("실크", "벨벳"),
        details=("슬릿",),
        collars=("차이나칼라",),
    ),
    "키치/키덜트": R(
        ("티셔츠", "니트웨어"),
        ("스커트", "팬츠"),
        ("가디건",),
        ("드레스", "점프수트"),
        0.2,
        0.3,
        colors=("옐로우", "퍼플", "오렌지", "네온"),
        prints=("하트", "그래픽", "믹스"),
        lengths=("미니",),
    ),
    "밀리터리": R(
        ("티셔츠", "셔츠"),
        ("팬츠", "조거팬츠"),
        ("점퍼", "재킷", "코트"),
        ("점프수트",),
        0.7,
        0.15,
        colors=("카키", "브라운"),
        prints=("카무플라쥬",),
        details=("포켓", "띠"),
    ),
    "힙합": R(
        ("후드티", "티셔츠"),
        ("청바지", "조거팬츠", "팬츠"),
        ("점퍼",),
        p_outer=0.35,
        colors=("블랙", "레드", "옐로우"),
        prints=("레터링", "그래픽", "해골"),
        fits=("오버사이즈", "와이드"),
        details=("후드",),
    ),
    "아방가르드": R(
        ("탑", "셔츠", "블라우스"),
        ("스커트", "팬츠"),
        ("코트",),
        ("드레스",),
        0.4,
        0.4,
        colors=("블랙", "화이트", "실버"),
        prints=("믹스", "그래픽"),
        fits=("오버사이즈",),
        lengths=("맥시",),
        necklines=("원숄더",),
    ),
    "프레피": R(
        ("셔츠", "니트웨어"),
        ("스커트",),
        ("가디건", "재킷", "베스트"),
        p_outer=0.6,
        colors=("네이비", "와인", "그린"),
        prints=("체크", "아가일"),
        lengths=("미니",),
        materials=("니트",),
        details=("플리츠",),
        collars=("셔츠칼라", "폴로칼라"),
    ),
    "웨스턴": R(
        ("셔츠", "블라우스"),
        ("청바지", "스커트"),
        ("재킷", "베스트"),
        p_outer=0.55,
        colors=("브라운", "베이지"),
        prints=("페이즐리",),
        materials=("스웨이드", "데님"),
        details=("프린지", "스티치"),
    ),
    "펑크": R(
        ("티셔츠", "탑"),
        ("스커트", "팬츠", "레깅스"),
        ("재킷",),
        p_outer=0.7,
        colors=("블랙", "레드", "실버"),
        prints=("해골", "체크", "지브라"),
        fits=("스키니", "타이트"),
        materials=("가죽", "비닐/PVC"),
        details=("스터드",),
    ),
}
STYLE_NAMES = tuple(ko for ko, _ in STYLE_PAIRS)
# Target styles are drawn flatter than the real shares (share ** 0.35) so that every style is learnable
# while the order of frequencies stays that of the guideline.
_TARGET_P = np.array(STYLE_SHARE) ** 0.35
TARGET_STYLE_P = _TARGET_P / _TARGET_P.sum()
ALL_COLORS = (
    "블랙",
    "화이트",
    "그레이",
    "레드",
    "핑크",
    "오렌지",
    "베이지",
    "브라운",
    "옐로우",
    "그린",
    "카키",
    "민트",
    "블루",
    "네이비",
    "스카이블루",
    "퍼플",
    "라벤더",
    "와인",
    "네온",
    "골드",
    "실버",
)
GENERIC_PRINTS = (
    "무지",
    "무지",
    "무지",
    "스트라이프",
    "체크",
    "도트",
)  # outside a recipe most clothes are plain
OCCASIONAL_PRINTS = ("플로럴", "그래픽", "그라데이션")


@dataclass
class Garment:
    region: str
    category: str
    color: str
    accent: str  # second colour of the print; written as 서브색상 when the print shows it
    print: str
    materials: list[str]
    details: list[str]
    length: str | None = None
    sleeve: str | None = None
    neckline: str | None = None
    collar: str | None = None
    fit: str | None = None
    open_front: bool = False
    flare: float = 1.0  # skirt / trouser hem flare, from details (플레어) and fit

    def features(self) -> list[tuple[str, str]]:
        """(kind, value) pairs the style rule reads."""
        pairs = [("category", self.category), ("color", self.color), ("print", self.print)]
        pairs += [("material", m) for m in self.materials] + [("detail", d) for d in self.details]
        pairs += [
            (k, v)
            for k, v in (
                ("fit", self.fit),
                ("length", self.length),
                ("neckline", self.neckline),
                ("collar", self.collar),
            )
            if v
        ]
        return pairs


@dataclass
class Outfit:
    target_style: str
    garments: list[Garment] = field(default_factory=list)


def _pick(rng: np.random.Generator, options: tuple, preferred: tuple = (), p_preferred: float = 0.75):
    """One of `options`, from the ones in `preferred` with probability p_preferred when any overlap."""
    overlap = tuple(o for o in options if o in preferred)
    pool = overlap if overlap and rng.random() < p_preferred else options
    return pool[int(rng.integers(len(pool)))]


def _garment(region: str, category: str, recipe: StyleRecipe, rng: np.random.Generator) -> Garment:
    rule = CATEGORY_RULES[category]
    colors = rule.colors or ALL_COLORS
    color = _pick(rng, colors, recipe.colors, 0.8)
    print_options = rule.prints or tuple(dict.fromkeys((*recipe.prints, *GENERIC_PRINTS, *OCCASIONAL_PRINTS)))
    print_ = _pick(rng, print_options, recipe.prints, 0.7)
    accent_pool = tuple(c for c in ALL_COLORS if c != color)
    accent = accent_pool[int(rng.integers(len(accent_pool)))]
    materials = [_pick(rng, rule.materials, recipe.materials)]
    details = list(rule.always)
    for detail in rule.details:
        chance = 0.55 if detail in recipe.details else 0.12
        if detail not in details and rng.random() < chance:
            details.append(detail)
    garment = Garment(
        region=region,
        category=category,
        color=color,
        accent=accent,
        print=print_,
        materials=materials,
        details=details,
        length=_pick(rng, rule.lengths, recipe.lengths),
        sleeve=_pick(rng, rule.sleeves, ()),
        neckline=_pick(rng, rule.necklines, recipe.necklines),
        collar=_pick(rng, rule.collars, recipe.collars),
        fit=_pick(rng, rule.fits, recipe.fits),
        open_front=bool(rng.random() < rule.open_front),
    )
    if garment.collar and garment.neckline in ("오프숄더", "원숄더", "홀터넥", "후드"):
        garment.collar = None
    if "플레어" in details or garment.fit == "와이드":
        garment.flare = float(rng.uniform(1.5, 1.9))
    elif category == "스커트":
        garment.flare = float(rng.uniform(1.05, 1.45))
    if category == "청바지" and garment.length == "미니" and rng.random() < 0.6:
        garment.details.append("컷오프")
    return garment


def sample_outfit(rng: np.random.Generator, target_style: str | None = None) -> Outfit:
    style = target_style or STYLE_NAMES[int(rng.choice(len(STYLE_NAMES), p=TARGET_STYLE_P))]
    recipe = STYLE_RECIPES[style]
    outfit = Outfit(style)
    if recipe.onepiece and rng.random() < recipe.p_onepiece:
        outfit.garments.append(_garment("onepiece", _pick(rng, recipe.onepiece), recipe, rng))
    else:
        outfit.garments.append(_garment("bottom", _pick(rng, recipe.bottom), recipe, rng))
        outfit.garments.append(_garment("top", _pick(rng, recipe.top), recipe, rng))
    if recipe.outer and rng.random() < recipe.p_outer:
        top_is_bra = any(g.category in ("브라탑",) for g in outfit.garments)
        outer = _garment("outer", _pick(rng, recipe.outer), recipe, rng)
        outer.open_front = outer.open_front or top_is_bra
        outfit.garments.append(outer)
    for garment in outfit.garments:
        assert CATEGORY_REGION[garment.category] == garment.region
    return outfit


# ------------------------------------------------------------------ the style rule

FEATURE_WEIGHTS = {
    "category": 1.0,
    "print": 1.2,
    "color": 0.7,
    "fit": 0.6,
    "length": 0.5,
    "material": 0.6,
    "detail": 0.7,
    "neckline": 0.8,
    "collar": 0.8,
}
SUB_STYLE_RATIO = 0.8  # a second style is labelled when it scores at least this share of the main one


def _recipe_values(recipe: StyleRecipe, kind: str, region: str) -> tuple[str, ...]:
    if kind == "category":
        return getattr(recipe, region)
    return getattr(
        recipe,
        {
            "color": "colors",
            "print": "prints",
            "fit": "fits",
            "length": "lengths",
            "material": "materials",
            "detail": "details",
            "neckline": "necklines",
            "collar": "collars",
        }[kind],
    )


def style_scores(garments: list[Garment]) -> dict[str, float]:
    scores = {}
    for style, recipe in STYLE_RECIPES.items():
        score = 0.0
        for garment in garments:
            for kind, value in garment.features():
                if value in _recipe_values(recipe, kind, garment.region):
                    score += FEATURE_WEIGHTS[kind]
        scores[style] = score
    return scores


def derive_styles(garments: list[Garment]) -> tuple[str, str | None]:
    """(main style, sub-style or None) of an outfit: the two best-scoring recipes.

    Ties go to the commoner style."""
    scores = style_scores(garments)
    ranked = sorted(STYLE_NAMES, key=lambda s: (-scores[s], STYLE_NAMES.index(s)))
    main, second = ranked[0], ranked[1]
    sub = second if scores[second] > 0 and scores[second] >= SUB_STYLE_RATIO * scores[main] else None
    return main, sub


def style_rules_markdown() -> str:
    """The recipe table of docs/synth.md, generated from STYLE_RECIPES so the two cannot drift apart."""
    from shared.drawing import english

    def names(key: str, values: tuple[str, ...]) -> str:
        return ", ".join(english(key, v) for v in values) or "-"

    rows = [
        "| style | tops | bottoms | outers (p) | onepieces (p) | colours | prints | fits | lengths |"
        " materials | details | necklines / collars |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for style, r in STYLE_RECIPES.items():
        cells = [
            f"{style} {english('style', style)}",
            names("category", r.top),
            names("category", r.bottom),
            f"{names('category', r.outer)} ({r.p_outer})",
            f"{names('category', r.onepiece)} ({r.p_onepiece})",
            names("color", r.colors),
            names("print", r.prints),
            names("fit", r.fits),
            names("length", r.lengths),
            names("material", r.materials),
            names("detail", r.details),
            f"{names('neckline', r.necklines)} / {names('collar', r.collars)}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
