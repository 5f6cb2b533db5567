// Hospital registration (挂号) for citizens: hospitals → departments → doctors → slots,
// book (hold) → pay before the deadline → verification code; cancel; standby when full;
// my registrations and standby positions.
import { get, newKey, post, session } from "./api.js";
import { countdown, failed, heading, loading, requireSignIn, routes, setFlash, takeFlash } from "./citizen.js";
import { busy, errorBox, fmtDateTime, fmtTime, notice } from "./common.js";
import { extend, t } from "./i18n.js";
import { queueHeaders, spendQueueToken, toWaitingRoom } from "./queuetoken.js";
import { h, mount, navigate } from "./view.js";

extend({
  en: {
    hosp_title: "Hospital appointment",
    hosp_pick: "Choose a hospital",
    hosp_none: "No hospital publishes appointments yet.",
    hosp_departments: "Departments",
    hosp_doctors: "Doctors",
    hosp_slots: "Times",
    hosp_fee: "Fee ¥{f}",
    hosp_free: "{n} free",
    hosp_full: "Full",
    hosp_opens: "Opens {t}",
    hosp_book: "Book {t}",
    hosp_standby: "Join standby for this day",
    hosp_standby_done: "You are on standby, position {n}. You will be notified if a place frees up.",
    hosp_reg: "Your registration",
    hosp_state_held: "Reserved — not paid",
    hosp_state_confirmed: "Paid",
    hosp_state_checked_in: "Checked in",
    hosp_state_no_show: "Missed (no-show)",
    hosp_state_cancelled: "Cancelled",
    hosp_state_expired: "Expired",
    hosp_state_offered: "Offered to you — pay to keep it",
    hosp_pay: "Pay ¥{f}",
    hosp_paid: "Paid. Show this code at the hospital.",
    hosp_cancel: "Cancel registration",
    hosp_cancel_by: "Free cancellation until {t}",
    hosp_mine: "My registrations",
    hosp_mine_none: "No registrations yet.",
    hosp_standby_list: "Standby",
    hosp_position: "position {n}",
    hosp_leave: "Leave standby",
  },
  zh: {
    hosp_title: "医院挂号",
    hosp_pick: "选择医院",
    hosp_none: "暂无医院开放预约。",
    hosp_departments: "科室",
    hosp_doctors: "医生",
    hosp_slots: "时段",
    hosp_fee: "挂号费 ¥{f}",
    hosp_free: "余 {n}",
    hosp_full: "约满",
    hosp_opens: "{t} 放号",
    hosp_book: "预约 {t}",
    hosp_standby: "候补当天号源",
    hosp_standby_done: "已加入候补，排在第 {n} 位。有号时会通知您。",
    hosp_reg: "您的挂号",
    hosp_state_held: "已占号，待支付",
    hosp_state_confirmed: "已支付",
    hosp_state_checked_in: "已签到",
    hosp_state_no_show: "爽约",
    hosp_state_cancelled: "已取消",
    hosp_state_expired: "已超时",
    hosp_state_offered: "候补成功，请支付保留",
    hosp_pay: "支付 ¥{f}",
    hosp_paid: "支付成功。请在医院出示核验码。",
    hosp_cancel: "取消挂号",
    hosp_cancel_by: "{t} 前可免费取消",
    hosp_mine: "我的挂号",
    hosp_mine_none: "暂无挂号。",
    hosp_standby_list: "候补",
    hosp_position: "第 {n} 位",
    hosp_leave: "退出候补",
  },
});

const enc = encodeURIComponent;
const stateText = (s) => t("hosp_state_" + s);

const screens = {
  async list() {
    loading("hosp_title");
    let hospitals;
    try {
      hospitals = (await get("/v1/hospital/hospitals")).hospitals.filter((x) => x.departments);
    } catch (err) {
      return failed("hosp_title", err, screens.list);
    }
    mount(
      t("hosp_title"),
      heading("hosp_title"),
      session.token ? h("p", {}, h("a", { class: "button", href: "#/hospital/mine" }, t("hosp_mine"))) : null,
      h("h2", {}, t("hosp_pick")),
      hospitals.length
        ? h("ul", { class: "list" }, hospitals.map((x) => h("li", {}, h("a", { class: "card block", href: `#/hospital/h/${enc(x.id)}` }, x.name))))
        : h("p", {}, t("hosp_none")),
    );
  },

  async departments(id) {
    loading("hosp_departments");
    try {
      const d = await get(`/v1/hospital/hospitals/${enc(id)}/departments`);
      mount(
        t("hosp_departments"),
        h("h1", {}, d.hospital.name),
        h("h2", {}, t("hosp_departments")),
        h("ul", { class: "list" }, d.departments.map((x) => h("li", {}, h("a", { class: "card block", href: `#/hospital/d/${enc(x.id)}` }, x.name)))),
      );
    } catch (err) {
      failed("hosp_departments", err, () => screens.departments(id));
    }
  },

  async doctors(id) {
    loading("hosp_doctors");
    try {
      const d = await get(`/v1/hospital/departments/${enc(id)}/doctors`);
      mount(
        t("hosp_doctors"),
        h("h1", {}, d.department.name),
        h(
          "ul",
          { class: "list" },
          d.doctors.map((x) =>
            h(
              "li",
              {},
              h(
                "a",
                { class: "card block", href: `#/hospital/doc/${enc(x.id)}?dep=${enc(id)}` },
                h("strong", {}, x.name),
                ` · ${x.title} · `,
                t("hosp_fee", { f: x.fee_cny }),
                x.specialty ? h("span", { class: "hint" }, " " + x.specialty) : null,
              ),
            ),
          ),
        ),
      );
    } catch (err) {
      failed("hosp_doctors", err, () => screens.doctors(id));
    }
  },

  async slots(id, q) {
    loading("hosp_slots");
    let d;
    try {
      d = await get(`/v1/hospital/doctors/${enc(id)}/slots`);
    } catch (err) {
      return failed("hosp_slots", err, () => screens.slots(id, q));
    }
    const msg = h("div", { class: "form-msg", tabindex: "-1" });
    // Citizens book the online pool; the counter share is kept for phone and on-site.
    const online = d.slots.filter((s) => s.channel === "online" && s.status !== "cancelled");
    const days = [...new Set(online.map((s) => s.day))];
    const book = async (e, slot) => {
      if (!requireSignIn()) return;
      msg.replaceChildren();
      try {
        const held = await busy(e.currentTarget, () =>
          post("/v1/hospital/registrations", { slot_id: slot.id }, { idem: newKey(), headers: queueHeaders() }),
        );
        spendQueueToken();
        navigate(`#/hospital/reg/${enc(held.id)}`);
      } catch (err) {
        if (toWaitingRoom(err)) return;
        msg.append(errorBox(err));
        msg.focus();
      }
    };
    const standby = async (e, day) => {
      if (!requireSignIn()) return;
      try {
        const out = await busy(e.currentTarget, () => post("/v1/hospital/standby", { department_id: q.dep, day }));
        msg.replaceChildren(notice(t("hosp_standby_done", { n: out.position })));
      } catch (err) {
        msg.replaceChildren(errorBox(err));
      }
      msg.focus();
    };
    const now = Date.now();
    mount(
      t("hosp_slots"),
      h("h1", {}, `${d.doctor.name} · ${d.doctor.title}`),
      msg,
      days.map((day) => {
        const ofDay = online.filter((s) => s.day === day);
        const anyFree = ofDay.some((s) => s.available > 0 && Date.parse(s.release_at) <= now);
        return h(
          "section",
          { "aria-label": day },
          h("h2", {}, day),
          h(
            "ul",
            { class: "list" },
            ofDay.map((s) => {
              const open = Date.parse(s.release_at) <= now;
              const free = open && s.available > 0;
              const label = `${fmtTime(s.starts_at)}–${fmtTime(s.ends_at)}`;
              return h(
                "li",
                { class: "card row", "data-slot": s.id },
                h("span", {}, h("strong", {}, label), " · ", !open ? t("hosp_opens", { t: fmtDateTime(s.release_at) }) : free ? "● " + t("hosp_free", { n: s.available }) : "○ " + t("hosp_full")),
                h("button", { type: "button", class: "small primary", disabled: !free, "aria-label": t("hosp_book", { t: `${day} ${label}` }), onclick: (e) => book(e, s) }, t("book")),
              );
            }),
          ),
          !anyFree && q.dep ? h("button", { type: "button", onclick: (e) => standby(e, day) }, t("hosp_standby")) : null,
        );
      }),
    );
  },

  async registration(id) {
    if (!requireSignIn()) return;
    loading("hosp_reg");
    let reg;
    try {
      reg = (await get("/v1/hospital/registrations")).registrations.find((r) => r.id === id);
    } catch (err) {
      return failed("hosp_reg", err, () => screens.registration(id));
    }
    if (!reg) return failed("hosp_reg", { code: "not_found", message: "" }, () => screens.registration(id));
    const flash = takeFlash();
    const msg = h("div", { class: "form-msg", tabindex: "-1" }, flash ? notice(flash) : null);
    const actions = [];
    if (reg.state === "held" || reg.state === "offered") {
      const pay = h(
        "button",
        {
          type: "button",
          class: "primary",
          id: "pay",
          onclick: async (e) => {
            try {
              await busy(e.currentTarget, () => post(`/v1/hospital/registrations/${enc(id)}/confirm`));
              setFlash(t("hosp_paid"));
              screens.registration(id);
            } catch (err) {
              msg.replaceChildren(errorBox(err));
              msg.focus();
            }
          },
        },
        t("hosp_pay", { f: reg.fee_cny }),
      );
      if (reg.hold_deadline) actions.push(...countdown(reg.hold_deadline, () => (pay.disabled = true)));
      actions.push(pay);
    }
    if (["held", "offered", "confirmed"].includes(reg.state)) {
      actions.push(
        h(
          "button",
          {
            type: "button",
            onclick: async (e) => {
              try {
                await busy(e.currentTarget, () => post(`/v1/hospital/registrations/${enc(id)}/cancel`));
                screens.registration(id);
              } catch (err) {
                msg.replaceChildren(errorBox(err));
                msg.focus();
              }
            },
          },
          t("hosp_cancel"),
        ),
        h("p", { class: "hint" }, t("hosp_cancel_by", { t: fmtDateTime(reg.cancel_deadline) })),
      );
    }
    mount(
      t("hosp_reg"),
      heading("hosp_reg"),
      msg,
      h(
        "div",
        { class: "card eticket" },
        h(
          "dl",
          {},
          h("dt", {}, t("status")),
          h("dd", { id: "reg-state" }, stateText(reg.state)),
          h("dt", {}, t("code")),
          h("dd", { class: "code", id: "reg-code" }, reg.verification_code || "—"),
          h("dt", {}, reg.hospital),
          h("dd", {}, `${reg.department} · ${reg.doctor} (${reg.doctor_title})`),
          h("dt", {}, t("hosp_slots")),
          h("dd", {}, `${reg.day} ${fmtTime(reg.starts_at)}–${fmtTime(reg.ends_at)}`),
          h("dt", {}, "¥"),
          h("dd", {}, reg.fee_cny),
        ),
      ),
      actions,
    );
  },

  async mine() {
    if (!requireSignIn()) return;
    loading("hosp_mine");
    try {
      const [{ registrations }, { standby }] = await Promise.all([get("/v1/hospital/registrations"), get("/v1/hospital/standby")]);
      mount(
        t("hosp_mine"),
        heading("hosp_mine"),
        registrations.length
          ? h(
              "ul",
              { class: "list" },
              registrations.map((r) =>
                h("li", { class: "card" }, h("a", { href: `#/hospital/reg/${enc(r.id)}` }, `${r.day} ${fmtTime(r.starts_at)} · ${r.department} · ${r.doctor}`), " · ", stateText(r.state)),
              ),
            )
          : h("p", {}, t("hosp_mine_none")),
        standby.length
          ? [
              h("h2", {}, t("hosp_standby_list")),
              h(
                "ul",
                { class: "list" },
                standby.map((s) =>
                  h(
                    "li",
                    { class: "card row" },
                    h("span", {}, `${s.day} · ${s.hospital} · ${s.department} · ${s.status}`, s.position ? " · " + t("hosp_position", { n: s.position }) : ""),
                    s.status === "waiting"
                      ? h(
                          "button",
                          {
                            type: "button",
                            class: "small",
                            onclick: async (e) => {
                              await busy(e.currentTarget, () => post(`/v1/hospital/standby/${enc(s.id)}/cancel`)).catch(() => {});
                              screens.mine();
                            },
                          },
                          t("hosp_leave"),
                        )
                      : null,
                  ),
                ),
              ),
            ]
          : null,
      );
    } catch (err) {
      failed("hosp_mine", err, screens.mine);
    }
  },
};

routes.hospital = ([kind, id], q) => {
  if (kind === "h") return screens.departments(id);
  if (kind === "d") return screens.doctors(id);
  if (kind === "doc") return screens.slots(id, q);
  if (kind === "reg") return screens.registration(id);
  if (kind === "mine") return screens.mine();
  return screens.list();
};
