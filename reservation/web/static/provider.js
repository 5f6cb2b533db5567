// The provider console: publish slots (a form, or a CSV file checked row by row and
// published all or nothing), a day's slots and bookings. Hospital staff actions
// (check-in, no-show, cancel a session) are added by provider_hospital.js when the
// hospital API exists.
import { get, post } from "./api.js";
import { busy, chinaDay, errorBox, fmtTime, notice, setupLangToggle } from "./common.js";
import { extend, t } from "./i18n.js";
import { install as installExtra } from "./provider_extra.js";
import { askKey, staffKey, tabs, whoami } from "./staff.js";
import { field, h, markFieldErrors, mount, router } from "./view.js";

extend({
  en: {
    console_title: "Provider console",
    api_key: "Staff API key",
    api_key_hint: "Starts with sk_; given by your administrator.",
    sign_in_key: "Open the console",
    sign_out_key: "Forget key",
    provider: "Provider",
    tab_publish: "Publish",
    tab_csv: "Upload CSV",
    tab_day: "Bookings of a day",
    publish_title: "Publish slots",
    resource_code: "Resource code",
    resource_code_hint: "Your code for the doctor or line, e.g. derm-sun",
    resource_name: "Resource name (new resource only)",
    resource_kind: "Kind",
    day: "Day",
    start: "Starts",
    end: "Ends",
    capacity: "Places",
    release_at: "Bookable from",
    repeat: "Number of consecutive slots",
    publish: "Publish",
    published: "Published {n} slot(s), {c} new.",
    csv_title: "Upload a CSV file",
    csv_intro: "One slot per line after the header. Times are China time. If any line is wrong, nothing is published.",
    csv_file: "CSV file",
    csv_kind: "What the file holds",
    csv_kind_slots: "Slots (resource_code, starts_at, ends_at, capacity, release_at)",
    csv_kind_hospital: "Hospital doctor schedules",
    csv_kind_vaccine: "Vaccination sessions",
    csv_text: "Contents (you can also paste or edit here)",
    upload: "Check and publish",
    nothing_published: "Nothing was published: {n} problem(s) to fix.",
    line: "Line",
    field: "Field",
    problem: "Problem",
    day_title: "Slots and bookings",
    show: "Show",
    slots: "Slots",
    bookings: "Bookings",
    time: "Time",
    resource: "Resource",
    available: "Free",
    person: "Person",
    state: "State",
    no_bookings: "No bookings.",
  },
  zh: {
    console_title: "机构工作台",
    api_key: "工作人员密钥",
    api_key_hint: "以 sk_ 开头，由管理员发放。",
    sign_in_key: "进入工作台",
    sign_out_key: "清除密钥",
    provider: "机构",
    tab_publish: "发布号源",
    tab_csv: "上传CSV",
    tab_day: "当日预约",
    publish_title: "发布号源",
    resource_code: "资源代码",
    resource_code_hint: "医生或接种线的代码，例如 derm-sun",
    resource_name: "资源名称（仅新资源）",
    resource_kind: "类型",
    day: "日期",
    start: "开始",
    end: "结束",
    capacity: "名额",
    release_at: "放号时间",
    repeat: "连续时段数",
    publish: "发布",
    published: "已发布 {n} 个时段，其中新增 {c} 个。",
    csv_title: "上传CSV文件",
    csv_intro: "表头之后每行一个时段，时间为北京时间。任一行有误则全部不发布。",
    csv_file: "CSV文件",
    csv_kind: "文件内容类型",
    csv_kind_slots: "号源时段（resource_code, starts_at, ends_at, capacity, release_at）",
    csv_kind_hospital: "医生出诊排班",
    csv_kind_vaccine: "疫苗接种场次",
    csv_text: "文件内容（也可在此粘贴或修改）",
    upload: "检查并发布",
    nothing_published: "未发布任何时段：有 {n} 处需要修改。",
    line: "行",
    field: "字段",
    problem: "问题",
    day_title: "号源与预约",
    show: "查看",
    slots: "时段",
    bookings: "预约",
    time: "时间",
    resource: "资源",
    available: "剩余",
    person: "预约人",
    state: "状态",
    no_bookings: "暂无预约。",
  },
});

// The three kinds of file staff upload: generic slots (this service's own CSV route),
// hospital doctor schedules and vaccination sessions (their domains' CSV routes). Each
// answers 422 with every bad row and publishes nothing partial.
const CSV_KINDS = {
  slots: {
    path: (p) => `/v1/providers/${encodeURIComponent(p)}/slots/csv`,
    line: (r) => r.line,
    sample: `resource_code,starts_at,ends_at,capacity,release_at
cardiology-li,${chinaDay(8)} 08:00,${chinaDay(8)} 08:30,5,${chinaDay(1)} 07:00
`,
  },
  hospital: {
    path: (p) => `/v1/hospital/providers/${encodeURIComponent(p)}/schedules.csv`,
    line: (r) => r.row, // already the file's line
    sample: `department_code,department_name,doctor_code,doctor_name,title,specialty,fee_cny,day,session,start,end,slot_minutes,capacity,counter_capacity
cardio,Cardiology 心内科,dr-li,李主任 Dr Li,Chief physician,,100,${chinaDay(6)},morning,08:00,11:00,30,5,1
`,
  },
  vaccine: {
    path: (p) => `/v1/providers/${encodeURIComponent(p)}/vaccine/sessions.csv`,
    line: (r) => (typeof r.row === "number" ? r.row + 2 : null), // rows count from 0 after the header
    sample: `product,day,start,end,capacity
flu,${chinaDay(6)},09:00,10:00,30
`,
  },
};
const SAMPLE = CSV_KINDS.slots.sample;

let who = null;
const routes = {};
const tabItems = [
  ["#/", "tab_publish"],
  ["#/csv", "tab_csv"],
  ["#/day", "tab_day"],
];

const providerId = () => who.provider_id || sessionStorage.getItem("fairseat.provider") || "pumch";
const keyOpt = () => ({ key: staffKey.value });

function header(titleKey, current) {
  // A tab marked with a provider kind shows only to that kind's staff (and operators).
  const kind = who.role === "operator" ? null : who.provider_kind;
  tabs(tabItems.filter(([, , only]) => !only || !kind || only === kind), current);
  return [
    h("h1", {}, t(titleKey)),
    h(
      "p",
      { class: "row" },
      h("span", {}, `${t("provider")}: `, h("strong", { id: "provider-id" }, providerId())),
      h(
        "button",
        {
          type: "button",
          class: "small",
          onclick: () => {
            staffKey.value = null;
            location.reload();
          },
        },
        t("sign_out_key"),
      ),
    ),
  ];
}

const at = (day, time) => `${day}T${time}:00+08:00`;

routes[""] = () => {
  const msg = h("div", { class: "form-msg", tabindex: "-1" });
  const inp = (name, attrs) => h("input", { name, id: "in-" + name, ...attrs });
  const form = h(
    "form",
    { novalidate: true },
    field(t("resource_code"), inp("resource_code", { required: true }), t("resource_code_hint")),
    field(t("resource_name"), inp("resource_name", {})),
    field(
      t("resource_kind"),
      h("select", { name: "kind", id: "in-kind" }, ["doctor", "clinic", "vaccination", "other"].map((k) => h("option", { value: k }, k))),
    ),
    field(t("day"), inp("day", { type: "date", value: chinaDay(7), required: true })),
    field(t("start"), inp("start", { type: "time", value: "08:00", required: true })),
    field(t("end"), inp("end", { type: "time", value: "08:30", required: true })),
    field(t("repeat"), inp("repeat", { type: "number", min: 1, max: 48, value: 1 })),
    field(t("capacity"), inp("capacity", { type: "number", min: 1, value: 5, required: true })),
    field(t("release_at"), inp("release_at", { type: "datetime-local", value: `${chinaDay(0)}T07:00` })),
    msg,
    h("button", { type: "submit", class: "primary" }, t("publish")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    msg.replaceChildren();
    const d = Object.fromEntries(new FormData(form));
    // "Repeat" lays slots of the same length end to end (a morning of 30-minute slots).
    const length = Date.parse(at(d.day, d.end)) - Date.parse(at(d.day, d.start));
    const slots = [];
    for (let i = 0; i < Math.max(1, Number(d.repeat) || 1); i++) {
      const start = new Date(Date.parse(at(d.day, d.start)) + i * length);
      slots.push({
        resource_code: d.resource_code,
        starts_at: start.toISOString(),
        ends_at: new Date(start.getTime() + length).toISOString(),
        capacity: Number(d.capacity),
        release_at: d.release_at ? `${d.release_at}:00+08:00` : new Date().toISOString(),
      });
    }
    const body = { slots };
    if (d.resource_name) body.resources = [{ code: d.resource_code, name: d.resource_name, kind: d.kind }];
    try {
      const out = await busy(form.querySelector("button[type=submit]"), () =>
        post(`/v1/providers/${encodeURIComponent(providerId())}/slots`, body, keyOpt()),
      );
      const created = out.slots.filter((s) => s.created).length;
      msg.append(notice(t("published", { n: out.slots.length, c: created })));
    } catch (err) {
      const rows = (err.fields && err.fields.errors) || [];
      // Rule errors name slot fields; map them onto this form's inputs.
      const mapped = rows.map((r) => ({
        ...r,
        field: { starts_at: "start", ends_at: "end", "slots.0.capacity": "capacity" }[r.field] || r.field,
      }));
      const rest = markFieldErrors(form, mapped);
      msg.append(errorBox(err), ...rest.map((r) => h("p", { class: "field-error" }, `${r.field}: ${r.message}`)));
    }
    msg.focus();
  });
  mount(t("publish_title"), header("publish_title", "#/"), form);
};

function errorTable(rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "csv-errors" },
      h("caption", { class: "sr-only" }, t("problem")),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("line")), h("th", { scope: "col" }, t("field")), h("th", { scope: "col" }, t("problem")))),
      h(
        "tbody",
        {},
        rows.map((r) => h("tr", {}, h("td", {}, r.line ?? "—"), h("td", {}, r.field ?? ""), h("td", {}, r.message))),
      ),
    ),
  );
}

routes.csv = () => {
  const msg = h("div", { class: "form-msg", tabindex: "-1", id: "csv-result" });
  const text = h("textarea", { name: "csv", id: "in-csv", spellcheck: "false", wrap: "off", value: SAMPLE });
  const file = h("input", {
    type: "file",
    id: "in-file",
    accept: ".csv,text/csv,text/plain",
    onchange: async () => {
      if (file.files[0]) text.value = await file.files[0].text();
    },
  });
  const kind = h(
    "select",
    {
      name: "kind",
      id: "in-kind",
      onchange: () => {
        text.value = CSV_KINDS[kind.value].sample;
      },
    },
    ["slots", "hospital", "vaccine"].map((k) => h("option", { value: k }, t("csv_kind_" + k))),
  );
  const form = h(
    "form",
    {
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        msg.replaceChildren();
        const how = CSV_KINDS[kind.value];
        try {
          const out = await busy(form.querySelector("button[type=submit]"), () =>
            post(how.path(providerId()), undefined, { ...keyOpt(), text: text.value, type: "text/csv" }),
          );
          const items = out.slots || out.sessions || [];
          const n = out.published ?? items.length;
          const c = out.created ?? items.filter((s) => s.created).length;
          msg.append(notice(t("published", { n, c })));
        } catch (err) {
          const rows = ((err.fields && err.fields.errors) || []).map((r) => ({ ...r, line: how.line(r) }));
          msg.append(
            h("div", { class: "msg msg-error", role: "alert" }, "⚠ ", rows.length ? t("nothing_published", { n: rows.length }) : err.message),
            rows.length ? errorTable(rows) : errorBox(err),
          );
        }
        msg.focus();
      },
    },
    h("p", {}, t("csv_intro")),
    field(t("csv_kind"), kind),
    field(t("csv_file"), file),
    field(t("csv_text"), text),
    h("button", { type: "submit", class: "primary" }, t("upload")),
  );
  mount(t("csv_title"), header("csv_title", "#/csv"), form, msg);
};

routes.day = async (_p, q) => {
  const day = q.day || chinaDay(1);
  const results = h("section", { "aria-live": "polite" });
  const form = h(
    "form",
    {
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = "#/day?day=" + new FormData(e.target).get("day");
      },
    },
    field(t("day"), h("input", { type: "date", name: "day", id: "in-day", value: day })),
    h("button", { type: "submit", class: "primary" }, t("show")),
  );
  mount(t("day_title"), header("day_title", "#/day"), form, results);
  try {
    const data = await get(`/v1/providers/${encodeURIComponent(providerId())}/slots?day=${day}`, keyOpt());
    const slotById = Object.fromEntries(data.slots.map((s) => [s.id, s]));
    results.replaceChildren(
      h("h2", {}, t("slots")),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, [t("time"), t("resource"), t("capacity"), t("available")].map((c) => h("th", { scope: "col" }, c)))),
          h(
            "tbody",
            {},
            data.slots.map((s) =>
              h("tr", { "data-slot": s.id }, h("td", {}, `${fmtTime(s.starts_at)}–${fmtTime(s.ends_at)}`), h("td", {}, s.resource_name), h("td", {}, s.capacity), h("td", {}, s.available ?? "—")),
            ),
          ),
        ),
      ),
      h("h2", {}, t("bookings")),
      data.bookings.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { id: "bookings" },
              h("thead", {}, h("tr", {}, [t("time"), t("resource"), t("person"), t("state")].map((c) => h("th", { scope: "col" }, c)))),
              h(
                "tbody",
                {},
                data.bookings.map((b) => {
                  const s = slotById[b.slot_id] || {};
                  return h("tr", { "data-booking": b.id }, h("td", {}, fmtTime(s.starts_at)), h("td", {}, s.resource_name || ""), h("td", {}, `${b.name} ${b.id_masked}`), h("td", {}, b.state));
                }),
              ),
            ),
          )
        : h("p", {}, t("no_bookings")),
    );
  } catch (err) {
    results.replaceChildren(errorBox(err));
  }
};

async function start() {
  let rerender = () => {};
  setupLangToggle(() => rerender());
  document.getElementById("brand").textContent = t("console_title");
  who = await whoami();
  const go = (accepted) => {
    who = accepted;
    if (who.role === "operator") sessionStorage.setItem("fairseat.provider", sessionStorage.getItem("fairseat.provider") || "pumch");
    rerender = router(routes, routes[""]);
  };
  if (who) go(who);
  else askKey("console_title", go);
}

// Extra screens (hospital staff actions) register on `routes` before the router starts.
installExtra({ routes, tabItems, header, providerId, keyOpt });
start();
