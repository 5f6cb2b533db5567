"""The demo railway: the Beijing–Shanghai and Beijing–Guangzhou high-speed lines with their
real station names and approximate distances, and 100 trains a day:

- 京沪 Jinghu HSR: 24 G trains each way, 06:00-17:30, five stopping patterns
  (express Beijing South - Jinan West - Nanjing South - Shanghai Hongqiao to all stations);
  2 overnight D sleepers (动卧) each way;
- 京广 Jingguang HSR: 20 G trains each way, to Guangzhou South or turning at Zhengzhou East,
  Wuhan or Changsha South; 2 overnight D sleepers each way;
- 2 overnight Z sleepers each way on the conventional line Beijing West - Wuchang.

Seeding goes through the same import workflow as an operator's file (so the demo exercises
the real path) and creates the runs of the sale horizon in Postgres only: seat maps reach
Redis lazily, when a run is first searched (see workflows/train_inventory.py).

Station codes are three letters in the style of 12306 telegraph codes; not all are the
official ones. Times come from a simple running model (cruising speed, 4 minutes per stop
to slow down and pick up speed, 2 minutes dwell), close to the real timetables.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from reservation.domain.clock import CHINA, from_ms
from reservation.domain.trains import (
    CoachSection,
    Composition,
    ServiceCalendar,
    Station,
    Stop,
    Train,
)
from reservation.services import Services
from reservation.store import catalog
from reservation.store import timetable as store
from reservation.workflows.import_timetable import Timetable, TrainDraft, import_timetable

RAILWAY = ("china-railway", "中国国家铁路集团 China Railway", "railway")

# code, Chinese name, English name, city, km from the line's Beijing terminus
JINGHU: list[tuple[str, str, str, str, int]] = [
    ("VNP", "北京南", "Beijing South", "Beijing", 0),
    ("LJP", "廊坊", "Langfang", "Langfang", 60),
    ("TIP", "天津南", "Tianjin South", "Tianjin", 131),
    ("CBP", "沧州西", "Cangzhou West", "Cangzhou", 219),
    ("DIP", "德州东", "Dezhou East", "Dezhou", 327),
    ("JGK", "济南西", "Jinan West", "Jinan", 406),
    ("TMK", "泰安", "Tai'an", "Tai'an", 465),
    ("QAK", "曲阜东", "Qufu East", "Qufu", 535),
    ("TEK", "滕州东", "Tengzhou East", "Tengzhou", 590),
    ("ZEK", "枣庄", "Zaozhuang", "Zaozhuang", 627),
    ("UUH", "徐州东", "Xuzhou East", "Xuzhou", 692),
    ("OXH", "宿州东", "Suzhou East", "Suzhou (Anhui)", 767),
    ("BMH", "蚌埠南", "Bengbu South", "Bengbu", 844),
    ("DYH", "定远", "Dingyuan", "Chuzhou", 897),
    ("CUH", "滁州", "Chuzhou", "Chuzhou", 962),
    ("NKH", "南京南", "Nanjing South", "Nanjing", 1023),
    ("ZEH", "镇江南", "Zhenjiang South", "Zhenjiang", 1087),
    ("RNH", "丹阳北", "Danyang North", "Danyang", 1112),
    ("ESH", "常州北", "Changzhou North", "Changzhou", 1153),
    ("WGH", "无锡东", "Wuxi East", "Wuxi", 1210),
    ("OHH", "苏州北", "Suzhou North", "Suzhou", 1237),
    ("KNH", "昆山南", "Kunshan South", "Kunshan", 1268),
    ("AOH", "上海虹桥", "Shanghai Hongqiao", "Shanghai", 1318),
]
JINGGUANG: list[tuple[str, str, str, str, int]] = [
    ("BXP", "北京西", "Beijing West", "Beijing", 0),
    ("FZP", "涿州东", "Zhuozhou East", "Zhuozhou", 59),
    ("GBP", "高碑店东", "Gaobeidian East", "Gaobeidian", 83),
    ("BDP", "保定东", "Baoding East", "Baoding", 139),
    ("DOP", "定州东", "Dingzhou East", "Dingzhou", 199),
    ("SJP", "石家庄", "Shijiazhuang", "Shijiazhuang", 281),
    ("GAP", "高邑西", "Gaoyi West", "Gaoyi", 324),
    ("EDP", "邢台东", "Xingtai East", "Xingtai", 391),
    ("HPP", "邯郸东", "Handan East", "Handan", 456),
    ("AYF", "安阳东", "Anyang East", "Anyang", 514),
    ("HFF", "鹤壁东", "Hebi East", "Hebi", 561),
    ("EGF", "新乡东", "Xinxiang East", "Xinxiang", 618),
    ("ZAF", "郑州东", "Zhengzhou East", "Zhengzhou", 693),
    ("XCF", "许昌东", "Xuchang East", "Xuchang", 780),
    ("LBN", "漯河西", "Luohe West", "Luohe", 833),
    ("ZLN", "驻马店西", "Zhumadian West", "Zhumadian", 902),
    ("MDN", "明港东", "Minggang East", "Xinyang", 981),
    ("OYN", "信阳东", "Xinyang East", "Xinyang", 1029),
    ("XGN", "孝感北", "Xiaogan North", "Xiaogan", 1139),
    ("WHN", "武汉", "Wuhan", "Wuhan", 1229),
    ("XKN", "咸宁北", "Xianning North", "Xianning", 1313),
    ("AIQ", "岳阳东", "Yueyang East", "Yueyang", 1444),
    ("MQQ", "汨罗东", "Miluo East", "Miluo", 1517),
    ("CWQ", "长沙南", "Changsha South", "Changsha", 1591),
    ("ZAQ", "株洲西", "Zhuzhou West", "Zhuzhou", 1643),
    ("HEQ", "衡山西", "Hengshan West", "Hengshan", 1723),
    ("HYQ", "衡阳东", "Hengyang East", "Hengyang", 1772),
    ("LYQ", "耒阳西", "Leiyang West", "Leiyang", 1822),
    ("ICQ", "郴州西", "Chenzhou West", "Chenzhou", 1920),
    ("SGQ", "韶关", "Shaoguan", "Shaoguan", 2084),
    ("IIQ", "英德西", "Yingde West", "Yingde", 2159),
    ("QYQ", "清远", "Qingyuan", "Qingyuan", 2207),
    ("GBQ", "广州北", "Guangzhou North", "Guangzhou", 2245),
    ("IZQ", "广州南", "Guangzhou South", "Guangzhou", 2298),
]
# The conventional Beijing–Guangzhou railway, as far as Wuchang (Shijiazhuang is shared).
JINGGUANG_CONVENTIONAL: list[tuple[str, str, str, str, int]] = [
    ("BXP", "北京西", "Beijing West", "Beijing", 0),
    ("SJP", "石家庄", "Shijiazhuang", "Shijiazhuang", 277),
    ("ZZF", "郑州", "Zhengzhou", "Zhengzhou", 689),
    ("WCN", "武昌", "Wuchang", "Wuhan", 1225),
]
LINES = [
    ("jinghu-hsr", "京沪高速铁路 Beijing–Shanghai high-speed railway"),
    ("jingguang-hsr", "京广高速铁路 Beijing–Guangzhou high-speed railway"),
    ("jingguang", "京广铁路 Beijing–Guangzhou railway"),
]

JINGHU_PATTERNS = {
    "express": "VNP JGK NKH AOH",
    "a": "VNP TIP JGK QAK UUH BMH NKH ESH WGH AOH",
    "b": "VNP LJP CBP DIP JGK TMK TEK ZEK UUH OXH BMH DYH CUH NKH AOH",
    "c": "VNP TIP CBP JGK QAK UUH NKH ZEH RNH ESH WGH OHH KNH AOH",
    "all": " ".join(s[0] for s in JINGHU),
}
JINGGUANG_PATTERNS = {
    "express": "BXP SJP ZAF WHN CWQ IZQ",
    "a": "BXP BDP SJP HPP ZAF XCF ZLN WHN AIQ CWQ HYQ ICQ SGQ IZQ",
    "b": "BXP FZP GBP BDP DOP SJP GAP EDP HPP AYF HFF EGF ZAF XCF LBN ZLN MDN OYN XGN WHN",
    "c": "BXP SJP EDP ZAF OYN WHN XKN AIQ MQQ CWQ ZAQ HEQ HYQ LYQ ICQ IIQ QYQ GBQ IZQ",
}

G8 = Composition(
    "CR400AF-8",
    (
        CoachSection("01", "business", "1+2", rows=3),
        CoachSection("01", "first", "2+2", rows=7, first_row=4),
        *(CoachSection(c, "second", "2+3", rows=17) for c in ("02", "03", "04")),
        CoachSection("05", "second", "2+3", rows=10),  # half of it is the buffet
        *(CoachSection(c, "second", "2+3", rows=17) for c in ("06", "07", "08")),
    ),
)
D_SLEEPER = Composition(
    "CRH1E-sleeper-8",
    (
        *(CoachSection(f"{c:02d}", "sleeper", "sleeper4", rows=10) for c in range(1, 8)),
        CoachSection("08", "second", "2+3", rows=17),
    ),
)
Z_SLEEPER = Composition(
    "25T-sleeper-8",
    tuple(CoachSection(f"{c:02d}", "sleeper", "sleeper6", rows=11) for c in range(1, 9)),
)
COMPOSITIONS = [
    (G8, "CR400AF, 8 coaches: business/first + 7 second class (597 seats)"),
    (D_SLEEPER, "CRH1E sleeper (动卧): 7 coaches of 4-berth compartments + 1 second class"),
    (Z_SLEEPER, "25T: 8 coaches of 6-berth compartments (528 berths)"),
]

STOP_PENALTY_MIN = 4  # slowing down for a stop and picking up speed again
DWELL_MIN = 2


def _stops(
    line: Sequence[tuple[str, str, str, str, int]], codes: Sequence[str], speed_km_min: float
) -> tuple[Stop, ...]:
    """Stops at ``codes`` (in travel order) with times from the running model."""
    km_of = {s[0]: s[4] for s in line}
    base = km_of[codes[0]]
    stops: list[Stop] = []
    clock = 0
    for i, code in enumerate(codes):
        km = abs(km_of[code] - base)
        arrive: int | None = None
        if i > 0:
            clock += math.ceil((km - stops[-1].km) / speed_km_min) + STOP_PENALTY_MIN
            arrive = clock
        depart: int | None = None
        if i < len(codes) - 1:
            clock += DWELL_MIN if i > 0 else 0
            depart = clock
        stops.append(Stop(code, arrive, depart, km))
    return tuple(stops)


def _pair(
    number: int,
    kind: str,
    line_code: str,
    line: Sequence[tuple[str, str, str, str, int]],
    codes: Sequence[str],
    departs: tuple[int, int],
    speed: float,
    composition: Composition,
) -> list[Train]:
    """A train (odd number, from Beijing) and its return working (number + 1)."""
    down, up = list(codes), list(reversed(codes))
    return [
        Train(
            f"{kind}{n}",
            kind,
            composition.id,
            departs[0] * 60 + departs[1],
            _stops(line, way, speed),
            line_code,
        )
        for n, way in ((number, down), (number + 1, up))
    ]


def demo_trains() -> list[Train]:
    trains: list[Train] = []
    cycle = ["express", "a", "b", "c", "a", "all"]
    for i in range(24):  # 京沪: every 30 minutes from 06:00
        minutes = 6 * 60 + 30 * i
        # Late departures make fewer stops, so they still arrive before midnight.
        name = cycle[i % len(cycle)] if minutes < 15 * 60 else ("express", "a")[i % 2]
        pattern = JINGHU_PATTERNS[name].split()
        speed = 5.5 if name == "express" else 5.0
        trains += _pair(
            2 * i + 1, "G", "jinghu-hsr", JINGHU, pattern, divmod(minutes, 60), speed, G8
        )
    for n, departs in ((701, (19, 28)), (705, (20, 10))):
        pattern = ["VNP", "TIP", "JGK", "UUH", "NKH", "WGH", "AOH"]
        trains += _pair(n, "D", "jinghu-hsr", JINGHU, pattern, departs, 2.0, D_SLEEPER)
    gg_cycle = ["express", "a", "b", "c", "a"]
    turn = ["IZQ", "IZQ", "WHN", "IZQ", "CWQ"]
    for i in range(20):  # 京广: every 40 minutes from 06:30
        minutes = 6 * 60 + 30 + 40 * i
        pattern = JINGGUANG_PATTERNS[gg_cycle[i % len(gg_cycle)]].split()
        terminus = turn[i % len(turn)] if minutes < 14 * 60 else "ZAF"
        pattern = pattern[: pattern.index(terminus) + 1] if terminus in pattern else pattern
        trains += _pair(
            61 + 2 * i,
            "G",
            "jingguang-hsr",
            JINGGUANG,
            pattern,
            divmod(minutes, 60),
            5.0,
            G8,
        )
    for n, departs in ((901, (19, 50)), (903, (20, 30))):
        pattern = ["BXP", "SJP", "ZAF", "WHN", "CWQ", "IZQ"]
        trains += _pair(n, "D", "jingguang-hsr", JINGGUANG, pattern, departs, 3.3, D_SLEEPER)
    for n, departs in ((11, (21, 0)), (13, (21, 40))):
        pattern = [s[0] for s in JINGGUANG_CONVENTIONAL]
        trains += _pair(
            n, "Z", "jingguang", JINGGUANG_CONVENTIONAL, pattern, departs, 2.0, Z_SLEEPER
        )
    return trains


def demo_timetable(today: dt.date) -> Timetable:
    stations: dict[str, Station] = {}
    for code, zh, en, city, _ in (*JINGHU, *JINGGUANG, *JINGGUANG_CONVENTIONAL):
        stations.setdefault(code, Station(code, zh, en, city))
    calendar = ServiceCalendar(today - dt.timedelta(days=1), today + dt.timedelta(days=365))
    return Timetable(
        stations=list(stations.values()),
        lines=list(LINES),
        compositions=list(COMPOSITIONS),
        trains=[TrainDraft(t, calendar, row=i) for i, t in enumerate(demo_trains())],
    )


async def seed_trains(services: Services) -> int:
    """Seed the demo railway once; returns the runs created (0 if trains already exist)."""
    async with services.pool.acquire() as conn:
        if await store.count_trains(conn):
            return 0
        await catalog.upsert_provider(conn, *RAILWAY)
    today = from_ms(services.clock()).astimezone(CHINA).date()
    result = await import_timetable(services, demo_timetable(today))
    return result.runs_created
