// The waiting room of a queued sale: join, then see one's position, how many are ahead,
// the estimated wait and the honest chance of getting something; once admitted, go back
// to the booking screen, which sends the admission with the hold.
import { get, post } from "./api.js";
import { failed, heading, loading, requireSignIn, routes } from "./citizen.js";
import { errorBox } from "./common.js";
import { extend, t } from "./i18n.js";
import { keepQueueToken } from "./queuetoken.js";
import { h, mount, navigate, onUnmount } from "./view.js";

extend({
  en: {
    queue_title: "Waiting room",
    queue_intro: "Everyone who arrives when the sale opens is put in a random order, then served in turn. Keep this page open.",
    queue_state_waiting: "Waiting",
    queue_state_draw_pending: "Waiting for the draw",
    queue_state_admitted: "It is your turn",
    queue_state_sold_out: "Sold out",
    queue_state_lapsed: "Your turn passed",
    queue_state_over: "The sale is over",
    queue_state_done: "You have booked in this sale",
    queue_position: "Position",
    queue_ahead: "People ahead",
    queue_wait: "Estimated wait",
    queue_chance: "Chance of a ticket",
    queue_remaining: "Left",
    queue_draw_at: "Draw at {t}",
    queue_continue: "Continue booking",
    queue_waitlist: "Join the waitlist",
    seconds: "{n} s",
    minutes: "{n} min",
  },
  zh: {
    queue_title: "排队等候",
    queue_intro: "开售时到达的所有人将随机排序，然后依次办理。请保持此页面打开。",
    queue_state_waiting: "排队中",
    queue_state_draw_pending: "等待抽签",
    queue_state_admitted: "轮到您了",
    queue_state_sold_out: "已售完",
    queue_state_lapsed: "已过号",
    queue_state_over: "本次开售已结束",
    queue_state_done: "您已在本次开售中预订",
    queue_position: "位置",
    queue_ahead: "前方人数",
    queue_wait: "预计等待",
    queue_chance: "购票机会",
    queue_remaining: "剩余",
    queue_draw_at: "{t} 抽签",
    queue_continue: "继续购票",
    queue_waitlist: "加入候补",
    seconds: "{n} 秒",
    minutes: "{n} 分钟",
  },
});

const wait = (s) => (s === null || s === undefined ? "—" : s < 90 ? t("seconds", { n: Math.round(s) }) : t("minutes", { n: Math.round(s / 60) }));

routes.queue = async ([saleId], q) => {
  if (!requireSignIn()) return;
  loading("queue_title");
  try {
    await post(`/v1/sales/${encodeURIComponent(saleId)}/queue`);
  } catch (err) {
    return failed("queue_title", err, () => routes.queue([saleId], q));
  }
  const value = (id) => h("dd", { id, class: "value" }, "—");
  const stateEl = h("p", { class: "countdown", id: "queue-state", role: "status" });
  const after = h("div", {});
  const msg = h("div", {});
  mount(
    t("queue_title"),
    heading("queue_title"),
    h("p", {}, t("queue_intro")),
    stateEl,
    h(
      "dl",
      { class: "numbers" },
      [
        ["queue_position", "q-position"],
        ["queue_ahead", "q-ahead"],
        ["queue_wait", "q-wait"],
        ["queue_chance", "q-chance"],
        ["queue_remaining", "q-remaining"],
      ].map(([label, id]) => h("div", { class: "number" }, h("dt", { class: "label" }, t(label)), value(id))),
    ),
    msg,
    after,
  );
  let stopped = false;
  onUnmount(() => (stopped = true));
  const set = (id, v) => {
    const el = document.getElementById(id);
    if (el) el.textContent = v ?? "—";
  };
  while (!stopped) {
    let st;
    try {
      st = await get(`/v1/sales/${encodeURIComponent(saleId)}/queue`);
      msg.replaceChildren();
    } catch (err) {
      msg.replaceChildren(errorBox(err));
      await new Promise((r) => setTimeout(r, 3000));
      continue;
    }
    if (stopped) return;
    stateEl.textContent = t("queue_state_" + st.state) + (st.draw_at ? " · " + t("queue_draw_at", { t: new Date(st.draw_at).toLocaleTimeString() }) : "");
    set("q-position", st.position);
    set("q-ahead", st.ahead);
    set("q-wait", wait(st.estimated_wait_s));
    set("q-chance", st.chance === null || st.chance === undefined ? "—" : Math.round(st.chance * 100) + " %");
    set("q-remaining", st.remaining);
    if (st.state === "admitted") {
      keepQueueToken(st.queue_token);
      const back = q.back || "#/";
      after.replaceChildren(h("button", { type: "button", class: "primary", id: "queue-continue", onclick: () => navigate(back) }, t("queue_continue")));
      after.querySelector("button").focus();
      return;
    }
    if (!st.poll_after_ms) {
      if (st.waitlist) after.replaceChildren(h("a", { class: "button", href: "#/trains" }, t("queue_waitlist")));
      return;
    }
    await new Promise((r) => setTimeout(r, st.poll_after_ms));
  }
};
