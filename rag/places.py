"""Place names: the gazetteer in rag/data/places.tsv (provinces, prefectures, county-level cities).

Used to read a reply's city from its text, to recognise places named in a question, and to normalise
filters (沈阳 -> 沈阳市, 辽宁 -> 辽宁省).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_TSV = Path(__file__).parent / "data" / "places.tsv"
_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "自治州", "地区", "省", "市", "盟")
# short forms that are everyday words in these texts: only their full form (with 市/省) counts
_AMBIGUOUS_SHORT = {"合作", "东方", "安康", "永康", "长治", "和田", "开放", "大同", "高平", "通化", "白山", "临江", "海城", "龙口", "凭祥",
                    "泰和", "福安", "安达", "长春", "吉首", "乐清", "和龙", "宁安", "兴义", "阿里", "丰城", "乐平", "德兴", "长乐", "宁国",
                    "明光", "天长", "广水", "大冶", "当阳", "枝江", "宜都", "武安", "平湖", "海宁", "东阳", "瑞安", "福清", "建阳", "永安",
                    "开远", "安宁", "普洱", "文山", "清镇", "仁怀", "赤水", "都匀", "福泉", "凯里", "兴仁", "华阴", "韩城", "彬州", "敦煌",
                    "玉门", "德令哈", "格尔木", "青铜峡", "灵武", "阜康", "奎屯", "霍尔果斯", "博乐", "阿拉山口", "库尔勒", "阿克苏", "库车",
                    "新乐", "晋州", "辛集", "霸州", "三河", "黄骅", "河间", "任丘", "泊头", "深州", "南宫", "沙河", "定州", "高碑店", "涿州",
                    "安国", "迁安", "滦州", "遵化", "平泉", "公主岭", "梅河口", "集安", "舒兰", "磐石", "蛟河", "桦甸", "洮南", "大安", "扶余",
                    "双辽", "延吉", "图们", "敦化", "珲春", "龙井", "新民", "庄河", "瓦房店", "盖州", "大石桥", "东港", "凤城", "兴城", "北镇",
                    "凌海", "凌源", "北票", "调兵山", "开原", "灯塔", "新华", "中华", "长江", "黄河", "泰山", "黄山", "三亚", "万宁", "文昌",
                    "琼海", "五指山", "儋州", "高州", "化州", "信宜", "廉江", "雷州", "吴川", "四会", "鹤山", "恩平", "台山", "开平", "英德",
                    "连州", "乐昌", "南雄", "兴宁", "普宁", "陆丰", "阳春", "罗定", "北流", "桂平", "岑溪", "东兴", "合山", "靖西", "平果",
                    "荔浦", "宜州", "义乌", "江山", "龙泉", "温岭", "临海", "玉环", "诸暨", "嵊州", "余姚", "慈溪", "桐乡", "海安", "如皋",
                    "启东", "太仓", "昆山", "常熟", "张家港", "江阴", "宜兴", "溧阳", "丹阳", "扬中", "句容", "高邮", "仪征", "兴化", "靖江",
                    "泰兴", "东台", "新沂", "邳州", "石狮", "晋江", "南安", "龙海", "漳平", "邵武", "武夷山", "建瓯", "福鼎", "长沙", "中国"}


@dataclass(frozen=True)
class Place:
    name: str  # full name, e.g. 沈阳市
    kind: str  # province | municipality | prefecture | county_city
    province: str
    english: str = ""  # pinyin / usual English name: Shenyang, Xi'an, Inner Mongolia


def short_name(full: str) -> str:
    for suf in _SUFFIXES:
        if full.endswith(suf) and len(full) - len(suf) >= 2:
            base = full[: -len(suf)]
            # 延边朝鲜族自治州 -> 延边
            m = re.match(r"^(.{2,}?)(?:[\u4e00-\u9fff]{1,6}族)+$", base)
            return m.group(1) if m and suf in ("自治州", "自治区") else base
    return full


@lru_cache(maxsize=1)
def gazetteer() -> dict[str, Place]:
    places: dict[str, Place] = {}
    if _TSV.is_file():
        for i, line in enumerate(_TSV.read_text(encoding="utf-8").splitlines()):
            parts = line.split("\t")
            if i == 0 or len(parts) < 3:
                continue
            name, kind, prov = (p.strip() for p in parts[:3])
            english = parts[3].strip() if len(parts) > 3 else ""
            if name and name not in places:
                places[name] = Place(name, kind, prov, english)
    return places


_RANK = {"municipality": 0, "province": 1, "prefecture": 2, "county_city": 3}


@lru_cache(maxsize=1)
def _aliases() -> dict[str, str]:
    """Every way of writing a place -> its full name (full names, and safe short names)."""
    alias: dict[str, str] = {}
    for p in sorted(gazetteer().values(), key=lambda p: _RANK.get(p.kind, 9)):
        alias.setdefault(p.name, p.name)
        s = short_name(p.name)
        if s != p.name and p.kind != "county_city" and s not in _AMBIGUOUS_SHORT:
            alias.setdefault(s, p.name)  # 吉林 -> 吉林省 (province before prefecture)
    return alias


@lru_cache(maxsize=1)
def _alias_re() -> re.Pattern[str]:
    names = sorted(_aliases(), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, names))) if names else re.compile(r"(?!x)x")


@lru_cache(maxsize=1)
def _english_aliases() -> dict[str, str]:
    """English name -> full name; a name shared by several places (Suzhou) goes to the highest-ranked, first one."""
    alias: dict[str, str] = {}
    for p in sorted(gazetteer().values(), key=lambda p: _RANK.get(p.kind, 9)):
        if p.english:
            alias.setdefault(p.english, p.name)
            alias.setdefault(p.english.replace("'", ""), p.name)  # Xian for Xi'an
    return alias


@lru_cache(maxsize=1)
def _english_re() -> re.Pattern[str]:
    names = sorted(_english_aliases(), key=len, reverse=True)
    # capitalised whole words only: "Dali" the city, not a word inside another
    return re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")(?:'s)?\b") if names else re.compile(r"(?!x)x")


_LEVEL_EN = (("自治县", "Autonomous County"), ("县", "County"), ("区", "District"), ("旗", "Banner"), ("镇", "Town"), ("市", "City"))
_MAX_READINGS = 8


def _bare(name: str) -> str:
    """A place without the note in brackets after it: 秭归县(湖北宜昌) -> 秭归县."""
    return re.split(r"[(（]", name, maxsplit=1)[0].strip()


def own_name(place: str) -> str:
    """A place's own name after the larger place it is in (威海市环翠区 -> 环翠区); the place itself when it starts
    with no larger one or is one name (岳阳县 is not 岳阳 + 县: at least three characters must follow)."""
    for _, a, b in find_places(place):
        if a == 0 and len(place) - b >= 3:
            return place[b:]
    return place


@lru_cache(maxsize=4096)
def english_names(name: str) -> tuple[str, ...]:
    """How English text writes a place (秭归县 -> Zigui; 威海市环翠区 -> Huancui): the gazetteer's name, or for a
    place below its level (a county, a district, or an indexed place the gazetteer lacks) its own name, after the
    larger place it is in, in pinyin (pypinyin), once for every reading of a character with several (莲都 ->
    Liandou, Liandu), at most _MAX_READINGS of them; the usual reading first."""
    name = _bare(name)
    p = gazetteer().get(name)
    if p is not None and p.english:
        return (p.english,)
    own = own_name(name)
    level = next((suf for suf, _ in _LEVEL_EN if own.endswith(suf) and len(own) - len(suf) >= 2), "")
    base = own[: len(own) - len(level)] if level else own
    if not re.fullmatch(r"[\u4e00-\u9fff]{2,6}", base):
        return ()
    from itertools import islice, product

    from pypinyin import Style, lazy_pinyin, pinyin

    learned = _gazetteer_readings()
    plain = lazy_pinyin(base)
    usual = [learned.get(ch, syl) for ch, syl in zip(base, plain)] if len(plain) == len(base) else plain
    readings = [usual] + [list(r) for r in islice(product(*pinyin(base, style=Style.NORMAL, heteronym=True)), _MAX_READINGS)]
    out: list[str] = []
    for syl in readings:
        # Xi'an: an apostrophe before a syllable that starts with a vowel
        word = syl[0] + "".join(("'" + s if s[:1] in "aoe" else s) for s in syl[1:])
        out.append(word[:1].upper() + word[1:])
    return tuple(dict.fromkeys(out))


@lru_cache(maxsize=1)
def _gazetteer_readings() -> dict[str, str]:
    """For a character with several readings, the one the English names of provinces and prefectures give it
    most often (都 is du in Chengdu, 长 chang in Changsha and Changchun): read off the names whose characters'
    readings spell their English name exactly. (County-level names in the table were romanised by machine and are
    not learned from.)"""
    from collections import Counter
    from itertools import islice, product

    from pypinyin import Style, pinyin

    counts: dict[str, Counter] = {}
    for p in gazetteer().values():
        base, target = short_name(p.name), re.sub(r"[^a-z]", "", p.english.lower())
        if p.kind == "county_city" or not target or not re.fullmatch(r"[\u4e00-\u9fff]{2,6}", base):
            continue
        readings = [pinyin(ch, style=Style.NORMAL, heteronym=True)[0] for ch in base]
        if all(len(r) == 1 for r in readings):
            continue
        for syl in islice(product(*readings), 64):
            if "".join(syl) == target:
                for ch, r, options in zip(base, syl, readings):
                    if len(options) > 1:
                        counts.setdefault(ch, Counter())[r] += 1
                break
    return {ch: c.most_common(1)[0][0] for ch, c in counts.items()}


def english_level(name: str) -> str:
    """County, District …: the English word of a place's level, by its last character(s) (秭归县(湖北宜昌) -> County)."""
    name = _bare(name)
    return next((en for suf, en in _LEVEL_EN if name.endswith(suf)), "")


# a place name that begins an institution's name (沈阳建筑大学, Shenyang University of Technology) or ends a person's
# (岳朝阳委员) is no place mention
_INSTITUTION_AFTER = re.compile(r"^(?:(?!的|各|等)[\u4e00-\u9fff]){0,4}?(大学|学院|研究所|研究院|科学院|集团|公司|医院|交易所|股权交易中心|日报)|^(委员|代表|同志|先生|女士)(?!团|处)")
_INSTITUTION_AFTER_EN = re.compile(r"^('s)?\s+(University|Institute|Polytechnic|College|Academy|Bank|Group|Company|Corporation|Co\b|Hospital)")
_INSTITUTION_BEFORE_EN = re.compile(r"(University|Institute|College|Academy|Bank) of\s+$")


def find_places(text: str) -> list[tuple[str, int, int]]:
    """(full name, start, end) for each place written in text (Chinese or English name), longest match first."""
    alias = _aliases()
    found = [(alias[m.group(0)], m.start(), m.end()) for m in _alias_re().finditer(text) if not _INSTITUTION_AFTER.match(text[m.end() :])]
    if re.search(r"[A-Z][a-z]", text):
        en = _english_aliases()
        found += [
            (en[m.group(1)], m.start(), m.end())
            for m in _english_re().finditer(text)
            if not _INSTITUTION_AFTER_EN.match(text[m.end() :]) and not _INSTITUTION_BEFORE_EN.search(text[: m.start()])
        ]
        found.sort(key=lambda x: x[1])
    return found


def normalise_place(name: str) -> str:
    """'沈阳' -> '沈阳市', '辽宁' -> '辽宁省', '天津' -> '天津市'; unknown names get a best-effort suffix."""
    name = re.sub(r"\s+", "", name or "")
    if not name:
        return ""
    alias = _aliases()
    if name in alias:
        return alias[name]
    if name.endswith(("省", "市", "自治区", "自治州", "县", "区", "盟", "地区", "特别行政区")) or name in _NATIONAL:
        return name
    return name + "市"


_NATIONAL = {"全国", "中央", "国家", "中国"}  # a ministry's reply (财政部) is national, no city


def province_of(full: str) -> str:
    p = gazetteer().get(full)
    return p.province if p else ""


def dominant_place(text: str, min_count: int = 2) -> str:
    """The place a reply is about: the full name (X市/X省) written most often in the text."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for full, start, end in find_places(text):
        written = text[start:end]
        weight = 2 if written == full else 1  # 营口市 counts more than a bare 营口
        counts[full] = counts.get(full, 0) + weight
        first.setdefault(full, start)
    if not counts:
        return ""
    best = max(counts, key=lambda k: (counts[k], -first[k]))
    return best if counts[best] >= min_count else ""


def place_prefix(text: str) -> str:
    """The place an issuing body's name begins with: 郑州市工业和信息化局 -> 郑州市."""
    for full, start, _ in find_places(text[:12]):
        if start == 0:
            return full
    return ""


# whom a reply answers, as its salutation names them (岳朝阳委员, 石宝珍、高庆迁委员, 章文忠委員): the people, not a body
_PEOPLE = re.compile(r"([\u4e00-\u9fff、]{2,20}?)(?:代表|委员|委員)$")


def people_named(addressee: str) -> list[str]:
    """The deputies or members a reply answers (石宝珍、高庆迁委员 -> 石宝珍, 高庆迁); none for a body (市工商联,
    港澳台侨民族和宗教委员会, XXX委员)."""
    m = _PEOPLE.fullmatch(addressee.strip())
    if not m:
        return []
    return [n for n in m.group(1).split("、") if re.fullmatch(r"[\u4e00-\u9fff]{2,3}", n) and not re.search(r"[会部委联盟市省区县]", n)]


def person_english(name: str) -> str:
    """How English text writes a person's name: surname, then the given name in one word (岳朝阳 -> yue zhaoyang),
    lower-cased, the usual reading of each character (pypinyin)."""
    from pypinyin import lazy_pinyin

    syl = lazy_pinyin(name)
    if len(syl) != len(name) or len(syl) < 2:
        return ""
    return f"{syl[0]} {''.join(syl[1:])}".lower()
