// The waitlist (候补) for sold-out trains: file an order (passengers, a deadline), see the
// position in line, stop waiting; a fulfilled order becomes a held order to pay.
import { get, newKey, post } from "./api.js";
import { failed, formAction, formMsg, heading, loading, requireSignIn, routes, submitButton } from "./citizen.js";
import { busy, errorBox, fmtDateTime, notice } from "./common.js";
import { extend, t } from "./i18n.js";
import { field, h, mount, navigate } from "./view.js";

extend({
  en: {
    wl_title: "Waitlist",
    wl_new: "Wait for a seat",
    wl_intro: "When a seat of this class is returned, it goes to the waitlist in order before it goes back on sale. You are notified and have a held order to pay.",
    wl_deadline: "Stop waiting at",
    wl_file: "Join the waitlist",
    wl_mine: "My waitlist",
    wl_none: "You are not waiting for anything.",
    wl_position: "Position {n}",
    wl_stop: "Stop waiting",
    wl_state_waiting: "Waiting",
    wl_state_fulfilled: "Seat found — pay the held order",
    wl_state_cancelled: "Stopped",
    wl_state_expired: "Deadline passed",
    wl_pay: "Go to the held order",
  },
  zh: {
    wl_title: "候补",
    wl_new: "候补购票",
    wl_intro: "有人退票时，座位先按顺序给候补的人，再重新开售。兑现后会通知您，并为您保留一个待支付订单。",
    wl_deadline: "候补截止时间",
    wl_file: "提交候补",
    wl_mine: "我的候补",
    wl_none: "暂无候补订单。",
    wl_position: "排第 {n} 位",
    wl_stop: "取消候补",
    wl_state_waiting: "候补中",
    wl_state_fulfilled: "候补成功，请支付",
    wl_state_cancelled: "已取消",
    wl_state_expired: "已过截止时间",
    wl_pay: "去支付",
  },
});

const enc = encodeURIComponent;
const stateText = (s) => (t("wl_state_" + s) === "wl_state_" + s ? s : t("wl_state_" + s));

// Default deadline: two hours before departure (China time), as datetime-local wants it.
function defaultDeadline(departs) {
  const d = new Date(Date.parse(departs) - 2 * 3600 * 1000);
  return new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" })
    .format(d)
    .replace(" ", "T");
}

const screens = {
  async create(q) {
    if (!requireSignIn()) return;
    loading("wl_new");
    let passengers;
    try {
      passengers = (await get("/v1/passengers")).passengers;
    } catch (err) {
      return failed("wl_new", err, () => screens.create(q));
    }
    const key = newKey();
    const form = formAction(
      h(
        "form",
        { novalidate: true },
        h(
          "fieldset",
          {},
          h("legend", {}, t("choose_passengers")),
          passengers.map((p, i) =>
            h("div", { class: "check" }, h("input", { type: "checkbox", name: "passenger_ids", value: p.id, id: "wp-" + i, checked: p.is_holder }), h("label", { for: "wp-" + i }, `${p.name} ${p.id_masked}`)),
          ),
        ),
        field(t("wl_deadline"), h("input", { type: "datetime-local", name: "deadline", id: "in-deadline", value: q.departs ? defaultDeadline(q.departs) : "", required: true })),
        formMsg(),
        submitButton("wl_file"),
      ),
      async (data) => {
        const order = await post(
          "/v1/waitlist/trains",
          {
            from: q.from,
            to: q.to,
            date: q.date,
            choices: [{ run_id: q.run, seat_class: q.cls }],
            passenger_ids: data.getAll("passenger_ids"),
            deadline: `${data.get("deadline")}:00+08:00`,
          },
          { idem: key },
        );
        navigate(`#/waitlist/${enc(order.id)}`);
      },
    );
    mount(t("wl_new"), heading("wl_new"), h("p", { class: "trip" }, `${q.train} · ${q.from} → ${q.to} · ${q.date} · ${t("class_" + q.cls)}`), h("p", { class: "hint" }, t("wl_intro")), form);
  },

  async one(id, message) {
    if (!requireSignIn()) return;
    loading("wl_title");
    let o;
    try {
      o = await get(`/v1/waitlist/${enc(id)}`);
    } catch (err) {
      return failed("wl_title", err, () => screens.one(id));
    }
    const msg = h("div", { class: "form-msg", tabindex: "-1" }, message ? notice(message) : null);
    mount(
      t("wl_title"),
      heading("wl_title"),
      msg,
      h("p", {}, h("strong", { id: "wl-state" }, stateText(o.state)), ` · ${t("wl_deadline")} ${fmtDateTime(o.deadline)}`),
      h(
        "ul",
        { class: "list" },
        o.choices.map((c) => h("li", { class: "card" }, `${c.run_id || c.resource_id} · ${c.seat_class ? t("class_" + c.seat_class) : c.day}`, c.position ? h("strong", { class: "wl-position" }, " · " + t("wl_position", { n: c.position })) : null)),
      ),
      o.state === "fulfilled" && o.hold_id ? h("a", { class: "button primary", href: `#/order/${enc(o.hold_id)}` }, t("wl_pay")) : null,
      o.state === "waiting"
        ? h(
            "button",
            {
              type: "button",
              onclick: async (e) => {
                try {
                  await busy(e.currentTarget, () => post(`/v1/waitlist/${enc(id)}/cancel`));
                  screens.one(id);
                } catch (err) {
                  msg.replaceChildren(errorBox(err));
                }
              },
            },
            t("wl_stop"),
          )
        : null,
      h("p", {}, h("a", { href: "#/waitlist" }, t("wl_mine"))),
    );
  },

  async mine() {
    if (!requireSignIn()) return;
    loading("wl_mine");
    try {
      const { orders } = await get("/v1/waitlist");
      mount(
        t("wl_mine"),
        heading("wl_mine"),
        orders.length
          ? h(
              "ul",
              { class: "list" },
              orders.map((o) => h("li", { class: "card" }, h("a", { href: `#/waitlist/${enc(o.id)}` }, `${o.request?.date || ""} ${o.choices.map((c) => c.run_id || c.resource_id).join(", ")}`), " · ", stateText(o.state))),
            )
          : h("p", {}, t("wl_none")),
      );
    } catch (err) {
      failed("wl_mine", err, screens.mine);
    }
  },
};

routes.waitlist = ([id], q) => {
  if (id === "new") return screens.create(q);
  if (id) return screens.one(id);
  return screens.mine();
};
