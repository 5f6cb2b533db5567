// The operator dashboard: a live view of one sale (remaining stock, holds and confirms
// per second, persister lag, dead letters, sales open; for a queued sale, the waiting
// room's length and admission rate) polled once a second, and audit-chain verification.
import { get } from "./api.js";
import { chinaDay, errorBox, setupLangToggle } from "./common.js";
import { extend, t } from "./i18n.js";
import { askKey, staffKey, tabs, whoami } from "./staff.js";
import { field, h, mount, onUnmount, router } from "./view.js";

extend({
  en: {
    dash_title: "Operator dashboard",
    api_key: "Operator key",
    api_key_hint: "FAIRSEAT_OPERATOR_KEY (or secrets.json of a development server).",
    sign_in_key: "Open the dashboard",
    tab_live: "Live sale",
    tab_audit: "Audit log",
    sale_kind: "Sale",
    sale_train: "A train run",
    sale_slots: "A provider's day of slots",
    run_id: "Train run",
    run_hint: "Train number and date, e.g. G1-20261124",
    provider: "Provider",
    day: "Day",
    watch: "Watch",
    remaining: "Remaining",
    remaining_hint_train: "seats free over the whole route",
    remaining_hint_slots: "free places that day",
    holds_rate: "Holds / s",
    confirms_rate: "Confirms / s",
    holds_total: "Holds since start",
    confirms_total: "Confirms since start",
    refusals_total: "Refused holds",
    lag: "Persister lag (s)",
    dead: "Dead letters",
    sales: "Sales",
    sales_open: "open",
    sales_closed: "closed",
    queue: "Waiting / joined",
    queue_sale: "Waiting-room sale id (optional)",
    queue_sale_hint: "The sale_id of a queued sale, for queue length and admission rate",
    admission: "Admitted / s",
    not_available: "not available",
    wrong_role: "This is not an operator key.",
    updated: "Updated {t}",
    audit_title: "Audit chain",
    audit_intro: "Checks every entry's hash and its link to the one before.",
    verify: "Verify the chain",
    audit_ok: "Intact: {n} entries checked; head #{seq} {hash}",
    audit_empty: "Intact: the log is empty.",
    audit_broken: "Broken at entry {seq}: {reason} ({n} entries intact before it)",
  },
  zh: {
    dash_title: "运维看板",
    api_key: "运维密钥",
    api_key_hint: "FAIRSEAT_OPERATOR_KEY（开发环境见 secrets.json）。",
    sign_in_key: "打开看板",
    tab_live: "实时售票",
    tab_audit: "审计日志",
    sale_kind: "售卖对象",
    sale_train: "车次",
    sale_slots: "机构某日号源",
    run_id: "车次",
    run_hint: "车次号和日期，例如 G1-20261124",
    provider: "机构",
    day: "日期",
    watch: "开始监看",
    remaining: "余量",
    remaining_hint_train: "全程可售座位",
    remaining_hint_slots: "当日剩余名额",
    holds_rate: "占座 / 秒",
    confirms_rate: "支付 / 秒",
    holds_total: "累计占座",
    confirms_total: "累计支付",
    refusals_total: "被拒占座",
    lag: "持久化延迟（秒）",
    dead: "死信",
    sales: "售票",
    sales_open: "开放",
    sales_closed: "关闭",
    queue: "排队 / 已加入",
    queue_sale: "排队售卖编号（可选）",
    queue_sale_hint: "排队售卖的 sale_id，用于显示排队人数和放行速度",
    admission: "放行 / 秒",
    not_available: "暂无",
    wrong_role: "这不是运维密钥。",
    updated: "更新于 {t}",
    audit_title: "审计链",
    audit_intro: "逐条校验哈希及与前一条的链接。",
    verify: "校验审计链",
    audit_ok: "完好：已校验 {n} 条；最新 #{seq} {hash}",
    audit_empty: "完好：日志为空。",
    audit_broken: "在第 {seq} 条断裂：{reason}（此前 {n} 条完好）",
  },
});

const routes = {};
const key = () => ({ key: staffKey.value });
const items = [
  ["#/", "tab_live"],
  ["#/audit", "tab_audit"],
];

function number(id, labelKey, hint) {
  return h(
    "div",
    { class: "number" },
    h("div", { class: "label", id: id + "-label" }, t(labelKey)),
    h("div", { class: "value", id, "aria-labelledby": id + "-label" }, "—"),
    hint ? h("div", { class: "hint" }, hint) : null,
  );
}

async function remainingOf(q) {
  if (q.run) {
    const r = await get(`/v1/train-runs/${encodeURIComponent(q.run)}/remaining`);
    const [first, last] = [r.stations[0], r.stations[r.stations.length - 1]];
    const whole = r.pairs.find((p) => p.from === first && p.to === last);
    return Object.values(whole ? whole.remaining : {}).reduce((a, b) => a + b, 0);
  }
  const { slots } = await get(`/v1/slots?provider_id=${encodeURIComponent(q.provider)}&day=${q.day}`);
  return slots.reduce((a, s) => a + (s.available || 0), 0);
}

routes[""] = (_p, q) => {
  tabs(items, "#/");
  const kind = q.provider ? "slots" : "train";
  const form = h(
    "form",
    {
      onsubmit: (e) => {
        e.preventDefault();
        const d = new FormData(e.target);
        const params = d.get("sale") === "slots" ? { provider: d.get("provider"), day: d.get("day") } : { run: d.get("run") };
        if (d.get("queue")) params.queue = d.get("queue");
        location.hash = "#/?" + new URLSearchParams(params);
      },
    },
    h(
      "fieldset",
      {},
      h("legend", {}, t("sale_kind")),
      ["train", "slots"].map((k) =>
        h("div", { class: "check" }, h("input", { type: "radio", name: "sale", value: k, id: "sale-" + k, checked: k === kind }), h("label", { for: "sale-" + k }, t("sale_" + k))),
      ),
    ),
    field(t("run_id"), h("input", { name: "run", id: "in-run", value: q.run || `G1-${chinaDay(1).replaceAll("-", "")}` }), t("run_hint")),
    field(t("provider"), h("input", { name: "provider", id: "in-provider", value: q.provider || "pumch" })),
    field(t("day"), h("input", { name: "day", id: "in-day", type: "date", value: q.day || chinaDay(1) })),
    field(t("queue_sale"), h("input", { name: "queue", id: "in-queue", value: q.queue || "" }), t("queue_sale_hint")),
    h("button", { type: "submit", class: "primary" }, t("watch")),
  );
  const watching = q.run || q.provider;
  const board = h(
    "section",
    { "aria-labelledby": "board-h" },
    h("h2", { id: "board-h" }, q.run || `${q.provider} ${q.day}`),
    h(
      "div",
      { class: "numbers" },
      number("remaining", "remaining", t(q.run ? "remaining_hint_train" : "remaining_hint_slots")),
      number("holds-rate", "holds_rate"),
      number("confirms-rate", "confirms_rate"),
      number("holds-total", "holds_total"),
      number("confirms-total", "confirms_total"),
      number("refusals-total", "refusals_total"),
      number("lag", "lag"),
      number("dead", "dead"),
      number("sales", "sales"),
      number("queue", "queue"),
      number("admission", "admission"),
    ),
    h("p", { class: "hint", id: "updated" }),
    h("div", { id: "board-msg" }),
  );
  mount(t("dash_title"), h("h1", {}, t("dash_title")), watching ? board : null, form);
  if (!watching) return;

  let prev = null;
  let stopped = false;
  const set = (id, value) => {
    const el = document.getElementById(id);
    if (el) el.textContent = value;
  };
  const poll = async () => {
    try {
      const [live, remaining, status] = await Promise.all([
        get("/v1/operator/dashboard/live" + (q.queue ? "?sale_id=" + encodeURIComponent(q.queue) : ""), key()),
        remainingOf(q),
        get("/v1/operator/inventory/status", key()),
      ]);
      const queue = live.queue;
      const now = performance.now();
      if (prev) {
        const dt = (now - prev.now) / 1000;
        set("holds-rate", ((live.holds_total - prev.live.holds_total) / dt).toFixed(1));
        set("confirms-rate", ((live.confirms_total - prev.live.confirms_total) / dt).toFixed(1));
        if (queue && prev.live.queue) set("admission", ((queue.admitted_upto - prev.live.queue.admitted_upto) / dt).toFixed(1));
      }
      prev = { now, live };
      set("remaining", remaining);
      set("holds-total", live.holds_total);
      set("confirms-total", live.confirms_total);
      set("refusals-total", live.hold_refusals_total);
      set("lag", live.persister_lag_seconds.toFixed(3));
      set("dead", (live.dead_letters > 0 ? "⚠ " : "") + live.dead_letters);
      set("sales", status.sales_open ? "✓ " + t("sales_open") : "⚠ " + t("sales_closed"));
      set("queue", queue ? `${queue.waiting} / ${queue.joined}` : t("not_available"));
      if (!queue) set("admission", t("not_available"));
      set("updated", t("updated", { t: new Date().toLocaleTimeString() }));
      document.getElementById("board-msg")?.replaceChildren();
    } catch (err) {
      if (err.name === "AbortError") return; // another screen now
      document.getElementById("board-msg")?.replaceChildren(errorBox(err));
    }
  };
  // One poll at a time, once a second: a slow answer delays the next instead of piling up.
  const loop = async () => {
    while (!stopped) {
      const started = performance.now();
      await poll();
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (performance.now() - started))));
    }
  };
  onUnmount(() => {
    stopped = true;
  });
  loop();
};

routes.audit = () => {
  tabs(items, "#/audit");
  const out = h("div", { id: "audit-result", tabindex: "-1" });
  const button = h(
    "button",
    {
      type: "button",
      class: "primary",
      onclick: async () => {
        out.replaceChildren(h("p", { role: "status" }, "…"));
        try {
          const r = await get("/v1/operator/dashboard/audit", key());
          const text = !r.ok
            ? t("audit_broken", { seq: r.first_broken_seq, reason: r.reason, n: r.checked })
            : r.head_seq === null
              ? t("audit_empty")
              : t("audit_ok", { n: r.checked, seq: r.head_seq, hash: (r.head_hash || "").slice(0, 16) + "…" });
          out.replaceChildren(h("div", { class: r.ok ? "msg msg-ok" : "msg msg-error", role: "alert" }, r.ok ? "✓ " : "⚠ ", text));
        } catch (err) {
          out.replaceChildren(errorBox(err));
        }
      },
    },
    t("verify"),
  );
  mount(t("audit_title"), h("h1", {}, t("audit_title")), h("p", {}, t("audit_intro")), button, out);
};

async function start() {
  let rerender = () => {};
  setupLangToggle(() => rerender());
  document.getElementById("brand").textContent = t("dash_title");
  const go = () => {
    rerender = router(routes, routes[""]);
  };
  const who = await whoami();
  if (who && who.role === "operator") go();
  else askKey("dash_title", go, "operator");
}

start();
