// Screens of the provider console that build on the hospital and vaccine staff APIs: a
// hospital's day (sessions and registrations), check-in by verification code, marking
// no-shows, cancelling a session; a vaccination site's day with check-in. Installed by
// provider.js.
import { get, post } from "./api.js";
import { busy, chinaDay, errorBox, fmtTime, notice } from "./common.js";
import { extend, t } from "./i18n.js";
import { field, h, mount } from "./view.js";

extend({
  en: {
    tab_schedule: "Doctor schedule",
    tab_sessions: "Vaccination sessions",
    schedule_title: "Publish a doctor's session",
    sessions_title: "Publish a vaccination session",
    f_department_code: "Department code",
    f_department_name: "Department name",
    f_doctor_code: "Doctor code (yours, e.g. dr-sun)",
    f_doctor_name: "Doctor's name",
    f_title: "Title",
    f_fee: "Fee (¥)",
    f_session: "Session",
    f_slot_minutes: "Minutes per time slot",
    f_product: "Vaccine",
    tab_hospital: "Hospital day",
    tab_vaccine: "Vaccination day",
    hday_title: "Hospital day",
    vday_title: "Vaccination day",
    check_in: "Check in",
    check_in_code: "Verification code",
    check_in_hint: "The 8-character code the patient shows",
    checked_in: "Checked in: {who}",
    sessions: "Sessions",
    registrations: "Registrations",
    appointments: "Appointments",
    no_show: "No-show",
    no_show_done: "Marked as no-show.",
    cancel_session: "Cancel session",
    cancel_reason: "Reason (sent to patients)",
    cancel_done: "Session cancelled; {n} patient(s) notified.",
    dose_given: "Dose given",
    given_done: "Recorded as given.",
  },
  zh: {
    tab_schedule: "出诊排班",
    tab_sessions: "接种场次",
    schedule_title: "发布医生出诊",
    sessions_title: "发布接种场次",
    f_department_code: "科室代码",
    f_department_name: "科室名称",
    f_doctor_code: "医生代码（例如 dr-sun）",
    f_doctor_name: "医生姓名",
    f_title: "职称",
    f_fee: "挂号费（元）",
    f_session: "时段",
    f_slot_minutes: "每个号段分钟数",
    f_product: "疫苗",
    tab_hospital: "医院当日",
    tab_vaccine: "接种当日",
    hday_title: "医院当日",
    vday_title: "接种当日",
    check_in: "签到",
    check_in_code: "核验码",
    check_in_hint: "患者出示的8位核验码",
    checked_in: "已签到：{who}",
    sessions: "出诊",
    registrations: "挂号",
    appointments: "预约",
    no_show: "爽约",
    no_show_done: "已标记爽约。",
    cancel_session: "停诊",
    cancel_reason: "原因（将通知患者）",
    cancel_done: "已停诊，已通知 {n} 位患者。",
    dose_given: "已接种",
    given_done: "已记录接种。",
  },
});

const enc = encodeURIComponent;

function table(headers, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h("table", {}, h("thead", {}, h("tr", {}, headers.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)),
  );
}

export function install({ routes, tabItems, header, providerId, keyOpt }) {
  tabItems.push(
    ["#/schedule", "tab_schedule", "hospital"],
    ["#/hospital", "tab_hospital", "hospital"],
    ["#/sessions", "tab_sessions", "vaccination"],
    ["#/vaccine", "tab_vaccine", "vaccination"],
  );

  // One form, one row of the domain's bulk route (all or nothing, every bad field listed).
  function rowForm(titleKey, hash, fields, post_, toRow) {
    const msg = h("div", { class: "form-msg", tabindex: "-1", id: "staff-msg" });
    const form = h(
      "form",
      {
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          msg.replaceChildren();
          try {
            const out = await busy(form.querySelector("button[type=submit]"), () =>
              post(post_(), { rows: [toRow(Object.fromEntries(new FormData(form)))] }, keyOpt()),
            );
            const items = out.sessions || out.slots || [];
            msg.append(notice(t("published", { n: items.length, c: items.filter((x) => x.created).length })));
          } catch (err) {
            const rows = (err.fields && err.fields.errors) || [];
            msg.append(errorBox(err), ...rows.map((r) => h("p", { class: "field-error" }, `${r.field}: ${r.message}`)));
          }
          msg.focus();
        },
      },
      fields.map(([name, label, { tag, options, ...attrs }]) => field(t(label), h(tag || "input", { name, id: "in-" + name, ...attrs }, options || null))),
      msg,
      h("button", { type: "submit", class: "primary" }, t("publish")),
    );
    mount(t(titleKey), header(titleKey, hash), form);
  }

  const opts = (values) => values.map((v) => h("option", { value: v }, v));
  routes.schedule = () =>
    rowForm(
      "schedule_title",
      "#/schedule",
      [
        ["department_code", "f_department_code", { required: true, value: "cardio" }],
        ["department_name", "f_department_name", { required: true, value: "Cardiology 心内科" }],
        ["doctor_code", "f_doctor_code", { required: true }],
        ["doctor_name", "f_doctor_name", { required: true }],
        ["title", "f_title", { value: "Attending physician" }],
        ["fee_cny", "f_fee", { type: "number", min: 0, value: 50 }],
        ["day", "day", { type: "date", value: chinaDay(6), required: true }],
        ["session", "f_session", { tag: "select", options: opts(["morning", "afternoon"]) }],
        ["start", "start", { type: "time", value: "08:00" }],
        ["end", "end", { type: "time", value: "11:00" }],
        ["slot_minutes", "f_slot_minutes", { type: "number", min: 5, value: 30 }],
        ["capacity", "capacity", { type: "number", min: 1, value: 5 }],
      ],
      () => `/v1/hospital/providers/${enc(providerId())}/schedules`,
      (d) => ({ ...d, fee_cny: String(d.fee_cny), slot_minutes: Number(d.slot_minutes), capacity: Number(d.capacity) }),
    );
  routes.sessions = () =>
    rowForm(
      "sessions_title",
      "#/sessions",
      [
        ["product", "f_product", { tag: "select", options: opts(["flu", "covid-inact", "hepb"]) }],
        ["day", "day", { type: "date", value: chinaDay(6), required: true }],
        ["start", "start", { type: "time", value: "09:00" }],
        ["end", "end", { type: "time", value: "10:00" }],
        ["capacity", "capacity", { type: "number", min: 1, value: 30 }],
      ],
      () => `/v1/providers/${enc(providerId())}/vaccine/sessions`,
      (d) => ({ ...d, capacity: Number(d.capacity) }),
    );

  function checkInForm(path, msg, after) {
    const code = h("input", { name: "code", id: "in-code", autocomplete: "off", required: true, autocapitalize: "characters" });
    return h(
      "form",
      {
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            const out = await busy(e.target.querySelector("button"), () => post(path, { code: code.value.trim().toUpperCase() }, keyOpt()));
            msg.replaceChildren(notice(t("checked_in", { who: out.patient || out.name || out.id || code.value })));
            code.value = "";
            after();
          } catch (err) {
            msg.replaceChildren(errorBox(err));
          }
          msg.focus();
        },
      },
      field(t("check_in_code"), code, t("check_in_hint")),
      h("button", { type: "submit", class: "primary" }, t("check_in")),
    );
  }

  routes.hospital = async (_p, q) => {
    const day = q.day || chinaDay(0);
    const base = `/v1/hospital/providers/${enc(providerId())}`;
    const msg = h("div", { class: "form-msg", tabindex: "-1", id: "staff-msg" });
    const lists = h("section", { "aria-live": "polite" });
    const dayForm = h(
      "form",
      { onsubmit: (e) => (e.preventDefault(), (location.hash = "#/hospital?day=" + new FormData(e.target).get("day"))) },
      field(t("day"), h("input", { type: "date", name: "day", id: "in-day", value: day })),
      h("button", { type: "submit" }, t("show")),
    );
    const refresh = async () => {
      try {
        const [{ sessions }, { registrations }] = await Promise.all([
          get(`${base}/sessions?day=${day}`, keyOpt()),
          get(`${base}/registrations?day=${day}`, keyOpt()),
        ]);
        lists.replaceChildren(
          h("h2", {}, t("registrations")),
          table(
            [t("time"), t("resource"), t("person"), t("state"), ""],
            registrations.map((r) =>
              h(
                "tr",
                { "data-registration": r.id },
                h("td", {}, `${fmtTime(r.starts_at)}`),
                h("td", {}, `${r.department} · ${r.doctor}`),
                h("td", {}, `${r.patient} ${r.id_masked}`),
                h("td", { class: "reg-state" }, r.state),
                h(
                  "td",
                  {},
                  r.state === "confirmed"
                    ? h(
                        "button",
                        {
                          type: "button",
                          class: "small",
                          "aria-label": `${t("no_show")}: ${r.patient} ${fmtTime(r.starts_at)}`,
                          onclick: async (e) => {
                            try {
                              await busy(e.currentTarget, () => post(`${base}/registrations/${enc(r.id)}/no-show`, undefined, keyOpt()));
                              msg.replaceChildren(notice(t("no_show_done")));
                              refresh();
                            } catch (err) {
                              msg.replaceChildren(errorBox(err));
                            }
                          },
                        },
                        t("no_show"),
                      )
                    : null,
                ),
              ),
            ),
          ),
          h("h2", {}, t("sessions")),
          table(
            [t("time"), t("resource"), t("capacity"), t("state"), ""],
            sessions.map((s) =>
              h(
                "tr",
                { "data-session": s.id },
                h("td", {}, `${fmtTime(s.starts_at)}–${fmtTime(s.ends_at)}`),
                h("td", {}, `${s.department_code} · ${s.doctor}`),
                h("td", {}, s.capacity),
                h("td", {}, s.status),
                h(
                  "td",
                  {},
                  s.status !== "cancelled"
                    ? h(
                        "form",
                        {
                          class: "inline",
                          onsubmit: async (e) => {
                            e.preventDefault();
                            const reason = new FormData(e.target).get("reason") || "doctor unavailable";
                            try {
                              const out = await busy(e.target.querySelector("button"), () => post(`${base}/sessions/${enc(s.id)}/cancel`, { reason }, keyOpt()));
                              msg.replaceChildren(notice(t("cancel_done", { n: (out.affected || []).length })));
                              refresh();
                            } catch (err) {
                              msg.replaceChildren(errorBox(err));
                            }
                            msg.focus();
                          },
                        },
                        field(t("cancel_reason"), h("input", { name: "reason", id: "reason-" + s.id })),
                        h("button", { type: "submit", class: "small" }, t("cancel_session")),
                      )
                    : null,
                ),
              ),
            ),
          ),
        );
      } catch (err) {
        lists.replaceChildren(errorBox(err));
      }
    };
    mount(t("hday_title"), header("hday_title", "#/hospital"), msg, checkInForm(`${base}/check-ins`, msg, refresh), dayForm, lists);
    refresh();
  };

  routes.vaccine = async (_p, q) => {
    const day = q.day || chinaDay(0);
    const base = `/v1/providers/${enc(providerId())}/vaccine`;
    const msg = h("div", { class: "form-msg", tabindex: "-1", id: "staff-msg" });
    const lists = h("section", { "aria-live": "polite" });
    const dayForm = h(
      "form",
      { onsubmit: (e) => (e.preventDefault(), (location.hash = "#/vaccine?day=" + new FormData(e.target).get("day"))) },
      field(t("day"), h("input", { type: "date", name: "day", id: "in-day", value: day })),
      h("button", { type: "submit" }, t("show")),
    );
    const refresh = async () => {
      try {
        const { appointments } = await get(`${base}/appointments?day=${day}`, keyOpt());
        lists.replaceChildren(
          h("h2", {}, t("appointments")),
          table(
            [t("time"), t("resource"), t("person"), t("state"), ""],
            appointments.map((a) =>
              h(
                "tr",
                { "data-appointment": a.id },
                h("td", {}, fmtTime(a.starts_at)),
                h("td", {}, `${a.product || ""} ${a.dose ? "#" + a.dose : ""}`),
                h("td", {}, `${a.person?.name || ""} ${a.person?.id_masked || ""}`),
                h("td", {}, a.state),
                h(
                  "td",
                  {},
                  a.state === "checked_in" || a.state === "confirmed"
                    ? h(
                        "button",
                        {
                          type: "button",
                          class: "small",
                          onclick: async (e) => {
                            try {
                              await busy(e.currentTarget, () => post(`${base}/appointments/${enc(a.id)}/given`, {}, keyOpt()));
                              msg.replaceChildren(notice(t("given_done")));
                              refresh();
                            } catch (err) {
                              msg.replaceChildren(errorBox(err));
                            }
                          },
                        },
                        t("dose_given"),
                      )
                    : null,
                ),
              ),
            ),
          ),
        );
      } catch (err) {
        lists.replaceChildren(errorBox(err));
      }
    };
    mount(t("vday_title"), header("vday_title", "#/vaccine"), msg, checkInForm(`${base}/check-in`, msg, refresh), dayForm, lists);
    refresh();
  };
}
