// Notifications: the inbox (newest first, unread count, mark read) and live events while
// the app is open. EventSource cannot send the Authorization header, so the stream is
// read with fetch and parsed here (the format is a few lines: "id:", "data:", blank line);
// after a drop it resumes from the last id (?after=), so nothing is missed.
import { get, post, session } from "./api.js";
import { failed, heading, loading, requireSignIn, routes } from "./citizen.js";
import { busy, fmtDateTime } from "./common.js";
import { extend, t } from "./i18n.js";
import { h, mount } from "./view.js";

extend({
  en: {
    inbox_empty: "No notifications yet.",
    inbox_unread: "{n} unread",
    inbox_mark: "Mark all as read",
    inbox_new: "New",
    live_label: "Live notifications",
    note_held: "Reserved — please pay before the deadline",
    note_confirmed: "Confirmed",
    note_cancelled: "Cancelled",
    note_expired: "Expired: the payment time is over",
    note_changed: "Changed to another train",
    note_refunded: "Refunded",
    note_waitlist_fulfilled: "Waitlist: a seat was found for you — pay to keep it",
    note_waitlist_ended: "Waitlist ended",
    note_standby_fulfilled: "Standby: a place was found for you — pay to keep it",
    note_session_cancelled: "The session was cancelled by the hospital",
    note_sold_out: "Sold out",
    note_reminder: "Reminder: your appointment or trip is tomorrow",
  },
  zh: {
    inbox_empty: "暂无消息。",
    inbox_unread: "{n} 条未读",
    inbox_mark: "全部标为已读",
    inbox_new: "新",
    live_label: "实时消息",
    note_held: "已占座/占号，请在截止前支付",
    note_confirmed: "已确认",
    note_cancelled: "已取消",
    note_expired: "已超时：支付时间已过",
    note_changed: "已改签",
    note_refunded: "已退款",
    note_waitlist_fulfilled: "候补成功，请支付保留",
    note_waitlist_ended: "候补已结束",
    note_standby_fulfilled: "候补挂号成功，请支付保留",
    note_session_cancelled: "医院已停诊",
    note_sold_out: "已售完",
    note_reminder: "提醒：明天有您的行程或预约",
  },
});

const text = (n) => {
  const key = "note_" + n.kind;
  const s = t(key);
  return s === key ? n.kind : s;
};

// The subject names what changed ("order:<id>", "booking:<id>", …); link where we can.
function link(n) {
  const [kind, id] = String(n.subject || "").split(":");
  const enc = encodeURIComponent;
  if (kind === "order") return `#/order/${enc(id)}`;
  if (kind === "registration") return `#/hospital/reg/${enc(id)}`;
  if (kind === "vaccine" || kind === "series") return `#/vaccine/series/${enc(id)}`;
  if (kind === "waitlist") return `#/waitlist/${enc(id)}`;
  return null;
}

function item(n) {
  const where = link(n);
  return h(
    "li",
    { class: "card", "data-note": n.id },
    n.read_at ? null : h("strong", { class: "badge" }, t("inbox_new") + " · "),
    where ? h("a", { href: where }, text(n)) : text(n),
    h("br"),
    h("span", { class: "hint" }, `${fmtDateTime(n.created_at)} · ${n.subject}`),
  );
}

routes.inbox = async () => {
  if (!requireSignIn()) return;
  loading("inbox_title");
  let page;
  try {
    page = await get("/v1/me/notifications?limit=50");
  } catch (err) {
    return failed("inbox_title", err, routes.inbox);
  }
  const mark = h(
    "button",
    {
      type: "button",
      disabled: page.unread === 0,
      onclick: async (e) => {
        await busy(e.currentTarget, () => post("/v1/me/notifications/read", { up_to: page.notifications[0].id }));
        setUnread(0);
        routes.inbox();
      },
    },
    t("inbox_mark"),
  );
  setUnread(page.unread);
  mount(
    t("inbox_title"),
    heading("inbox_title"),
    h("p", { id: "unread" }, t("inbox_unread", { n: page.unread })),
    page.unread ? mark : null,
    page.notifications.length ? h("ul", { class: "list", id: "inbox-list" }, page.notifications.map(item)) : h("p", {}, t("inbox_empty")),
  );
};

function setUnread(n) {
  const tab = document.querySelector('#tabs a[href="#/inbox"] span:last-child');
  if (tab) tab.textContent = n ? `${t("nav_inbox")} (${n})` : t("nav_inbox");
}

// ---- live events --------------------------------------------------------------------

let running = null;

function toast(n) {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite", "aria-label": t("live_label") });
    document.body.append(box);
  }
  const where = link(n);
  const note = h("div", { class: "msg msg-ok toast", "data-live-note": n.id }, "🔔 ", where ? h("a", { href: where }, text(n)) : text(n));
  box.append(note);
  setTimeout(() => note.remove(), 8000);
  if (location.hash.startsWith("#/inbox")) routes.inbox();
}

async function stream(token, signal, state) {
  const after = state.last !== null ? `?after=${state.last}` : "";
  const resp = await fetch("/v1/me/events" + after, { headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" }, signal });
  if (resp.status === 401 || resp.status === 403) return false;
  if (!resp.ok || !resp.body) throw new Error("stream " + resp.status);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return true;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id = null;
      let data = "";
      for (const line of frame.split("\n")) {
        if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (id !== null) state.last = Number(id);
      if (data) {
        const n = JSON.parse(data);
        state.unread += 1;
        setUnread(state.unread);
        toast(n);
      }
    }
  }
}

// Started when signed in; one stream per page; reconnects after drops (3 s, then longer).
export async function ensureLive() {
  const token = session.token;
  if (!token || (running && running.token === token)) return;
  if (running) running.controller.abort();
  const controller = new AbortController();
  const state = { last: null, unread: 0 };
  running = { token, controller };
  try {
    state.unread = (await get("/v1/me/notifications?limit=1", { signal: controller.signal })).unread;
    setUnread(state.unread);
  } catch {
    /* the inbox count is a convenience */
  }
  let wait = 3000;
  while (!controller.signal.aborted && session.token === token) {
    try {
      const again = await stream(token, controller.signal, state);
      if (!again) break;
      wait = 3000;
    } catch (err) {
      if (controller.signal.aborted) break;
      wait = Math.min(wait * 2, 60000);
    }
    await new Promise((r) => setTimeout(r, wait));
  }
  if (running && running.controller === controller) running = null;
}

window.addEventListener("hashchange", () => ensureLive());
ensureLive();
