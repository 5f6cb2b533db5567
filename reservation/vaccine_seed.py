"""Demo vaccination sites: ~1,800 across Guangdong's 21 cities (real district names), plus
the Beijing demo site, with sessions at one site per city.

Generated, not listed: each district gets its CDC clinic and numbered community health
centres. Sites are bulk-copied into Postgres (a second or so); sessions go through the
same publish workflow as staff use (Postgres first, then the live inventory).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from reservation.domain.clock import CHINA, from_ms
from reservation.services import Services
from reservation.store import vaccine as store
from reservation.workflows.vaccine_publish import SessionDraft, publish_sessions

PROVINCE = "广东省"
# (code, name, English name, sites per district, districts / county-level divisions; for
# Dongguan and Zhongshan, which have none, their larger towns and subdistricts).
CITIES: list[tuple[str, str, str, int, list[str]]] = [
    ("4401", "广州市", "Guangzhou", 20,
     ["越秀区", "海珠区", "荔湾区", "天河区", "白云区", "黄埔区", "番禺区", "花都区", "南沙区",
      "从化区", "增城区"]),
    ("4403", "深圳市", "Shenzhen", 20,
     ["福田区", "罗湖区", "南山区", "盐田区", "宝安区", "龙岗区", "龙华区", "坪山区", "光明区"]),
    ("4404", "珠海市", "Zhuhai", 12, ["香洲区", "斗门区", "金湾区"]),
    ("4405", "汕头市", "Shantou", 11,
     ["金平区", "龙湖区", "濠江区", "潮阳区", "潮南区", "澄海区", "南澳县"]),
    ("4406", "佛山市", "Foshan", 16, ["禅城区", "南海区", "顺德区", "三水区", "高明区"]),
    ("4402", "韶关市", "Shaoguan", 10,
     ["武江区", "浈江区", "曲江区", "乐昌市", "南雄市", "始兴县", "仁化县", "翁源县", "新丰县",
      "乳源瑶族自治县"]),
    ("4416", "河源市", "Heyuan", 10, ["源城区", "东源县", "和平县", "龙川县", "紫金县", "连平县"]),
    ("4414", "梅州市", "Meizhou", 10,
     ["梅江区", "梅县区", "兴宁市", "大埔县", "丰顺县", "五华县", "平远县", "蕉岭县"]),
    ("4413", "惠州市", "Huizhou", 14, ["惠城区", "惠阳区", "博罗县", "惠东县", "龙门县"]),
    ("4415", "汕尾市", "Shanwei", 10, ["城区", "陆丰市", "海丰县", "陆河县"]),
    ("4419", "东莞市", "Dongguan", 14,
     ["莞城街道", "南城街道", "东城街道", "万江街道", "虎门镇", "长安镇", "厚街镇", "常平镇",
      "塘厦镇", "寮步镇", "大朗镇", "凤岗镇"]),
    ("4420", "中山市", "Zhongshan", 10,
     ["石岐街道", "东区街道", "西区街道", "南区街道", "火炬开发区", "小榄镇", "古镇镇", "坦洲镇",
      "三乡镇", "南头镇", "黄圃镇", "东凤镇"]),
    ("4407", "江门市", "Jiangmen", 11,
     ["蓬江区", "江海区", "新会区", "台山市", "开平市", "鹤山市", "恩平市"]),
    ("4417", "阳江市", "Yangjiang", 11, ["江城区", "阳东区", "阳春市", "阳西县"]),
    ("4408", "湛江市", "Zhanjiang", 11,
     ["赤坎区", "霞山区", "坡头区", "麻章区", "廉江市", "雷州市", "吴川市", "遂溪县", "徐闻县"]),
    ("4409", "茂名市", "Maoming", 12, ["茂南区", "电白区", "高州市", "化州市", "信宜市"]),
    ("4412", "肇庆市", "Zhaoqing", 10,
     ["端州区", "鼎湖区", "高要区", "四会市", "广宁县", "怀集县", "封开县", "德庆县"]),
    ("4418", "清远市", "Qingyuan", 10,
     ["清城区", "清新区", "英德市", "连州市", "佛冈县", "阳山县", "连山壮族瑶族自治县",
      "连南瑶族自治县"]),
    ("4451", "潮州市", "Chaozhou", 12, ["湘桥区", "潮安区", "饶平县"]),
    ("4452", "揭阳市", "Jieyang", 11, ["榕城区", "揭东区", "普宁市", "揭西县", "惠来县"]),
    ("4453", "云浮市", "Yunfu", 10, ["云城区", "云安区", "罗定市", "新兴县", "郁南县"]),
]  # fmt: skip

# The Beijing demo site of reservation.seed (its staff key is printed at first start).
BEIJING_SITE = ("bj-dongcheng-cdc", "北京市", "1101", "Beijing", "东城区")

SESSION_HOURS = [(9, 0), (10, 0), (14, 0), (15, 0)]


def site_id(city_code: str, district_no: int, site_no: int) -> str:
    return f"gd-{city_code}-{district_no:02d}-{site_no:02d}"


def generate_sites() -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(provider id, name, vaccine_sites row) of every generated site."""
    for code, city, city_en, per_district, districts in CITIES:
        for d, district in enumerate(districts, 1):
            for n in range(1, per_district + 1):
                if n == 1:
                    name = f"{city}{district}疾病预防控制中心 预防接种门诊"
                else:
                    name = f"{city}{district}第{n - 1}社区卫生服务中心 预防接种门诊"
                address = f"{PROVINCE}{city}{district}健康路{n * 8 + d}号"
                row = (site_id(code, d, n), PROVINCE, code, city, city_en, district, address)
                yield row[0], name, row


def session_drafts(today: dt.date, row0: int = 0) -> list[SessionDraft]:
    """A week of flu and COVID-19 sessions from tomorrow, and COVID-19 sessions 21 to 42
    days out (where dose 2 of a series booked this week falls)."""
    drafts: list[SessionDraft] = []
    days = [(p, o) for o in range(1, 8) for p in ("covid-inact", "flu")]
    days += [("covid-inact", o) for o in range(22, 50)]
    for product, offset in days:
        day = today + dt.timedelta(days=offset)
        for hour, minute in SESSION_HOURS:
            start = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=CHINA)
            drafts.append(
                SessionDraft(
                    row=row0 + len(drafts),
                    product=product,
                    starts_at=start,
                    ends_at=start + dt.timedelta(hours=1),
                    capacity=30 if product == "covid-inact" else 20,
                    release_at=None,
                )
            )
    return drafts


async def seed_vaccine(services: Services) -> int:
    """Seed the sites (once) and their demo sessions; returns how many sites exist."""
    sites = list(generate_sites())
    async with services.pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT count(*) FROM vaccine_sites") > 0:
            return int(await conn.fetchval("SELECT count(*) FROM vaccine_sites"))
        await conn.copy_records_to_table(
            "providers",
            records=[(pid, name, "vaccination") for pid, name, _ in sites],
            columns=["id", "name", "kind"],
        )
        await conn.copy_records_to_table(
            "vaccine_sites",
            records=[row for _, _, row in sites],
            columns=["provider_id", "province", "city_code", "city", "city_en", "district",
                     "address"],
        )  # fmt: skip
        # Sessions at the first site of each city's first district, and at the Beijing
        # demo site when reservation.seed made it.
        with_sessions = [site_id(code, 1, 1) for code, *_ in CITIES]
        pid, city, code, city_en, district = BEIJING_SITE
        if await conn.fetchval("SELECT 1 FROM providers WHERE id = $1", pid):
            await store.insert_sites(
                conn, [(pid, "北京市", code, city, city_en, district, "北京市东城区")]
            )
            with_sessions.append(pid)
        total = int(await conn.fetchval("SELECT count(*) FROM vaccine_sites"))
    today = from_ms(services.clock()).astimezone(CHINA).date()
    for pid in with_sessions:
        await publish_sessions(services, pid, session_drafts(today), actor="system:seed")
    return total
