// Vaccination for citizens: choose who (oneself or a consenting family member on the
// list) and the campaign, find a site by city/district, pick dose 1 (and dose 2 in the
// product's interval when the series is booked together), check eligibility, reserve,
// pay before the deadline; the vaccination record.
import { get, newKey, post } from "./api.js";
import { countdown, failed, heading, loading, requireSignIn, routes, setFlash, takeFlash } from "./citizen.js";
import { busy, chinaDay, errorBox, fmtDateTime, fmtTime, notice } from "./common.js";
import { extend, t } from "./i18n.js";
import { field, h, mount, navigate } from "./view.js";

extend({
  en: {
    vac_title: "Vaccination",
    vac_who: "Who is being vaccinated?",
    vac_me: "Myself",
    vac_consent: "How did they agree that you book for them?",
    vac_consent_hint: "Required when booking for someone else, e.g. “Agreed in person”",
    vac_campaign: "Vaccine",
    vac_city: "City",
    vac_city_hint: "e.g. 广州 or Guangzhou",
    vac_district: "District (optional)",
    vac_find: "Find sites",
    vac_sites: "{n} sites",
    vac_no_sites: "No site found. Try another city or district.",
    vac_places: "{n} places",
    vac_site: "Choose times",
    vac_dose: "Dose {n}",
    vac_choose: "Choose",
    vac_chosen: "Chosen: {t}",
    vac_dose2_window: "Dose 2 must be {a}–{b} days after dose 1.",
    vac_eligible: "Eligible for dose {n} on {d}.",
    vac_not_eligible: "Not eligible: {m}",
    vac_reserve: "Reserve",
    vac_series: "Vaccination booking",
    vac_pay: "Confirm and pay",
    vac_paid: "Confirmed. Show the code at the site.",
    vac_cancel: "Cancel booking",
    vac_record: "Vaccination record",
    vac_given: "Given",
    vac_next_due: "Next dose due",
    vac_appointments: "Appointments",
    vac_state_held: "Reserved — not paid",
    vac_state_confirmed: "Confirmed",
    vac_state_cancelled: "Cancelled",
    vac_state_expired: "Expired",
    vac_state_given: "Given",
    vac_state_checked_in: "Checked in",
    vac_state_moved: "Moved",
    vac_state_mixed: "Partly confirmed",
  },
  zh: {
    vac_title: "疫苗接种",
    vac_who: "为谁预约？",
    vac_me: "本人",
    vac_consent: "对方如何同意由您代为预约？",
    vac_consent_hint: "为他人预约时必填，例如“当面同意”",
    vac_campaign: "疫苗",
    vac_city: "城市",
    vac_city_hint: "例如 广州 或 Guangzhou",
    vac_district: "区县（可选）",
    vac_find: "查找接种点",
    vac_sites: "共 {n} 个接种点",
    vac_no_sites: "没有找到接种点，请换个城市或区县。",
    vac_places: "余 {n} 个名额",
    vac_site: "选择时间",
    vac_dose: "第 {n} 针",
    vac_choose: "选择",
    vac_chosen: "已选：{t}",
    vac_dose2_window: "第二针须在第一针后 {a}–{b} 天。",
    vac_eligible: "可在 {d} 接种第 {n} 针。",
    vac_not_eligible: "不符合条件：{m}",
    vac_reserve: "提交预约",
    vac_series: "接种预约",
    vac_pay: "确认并支付",
    vac_paid: "预约成功，请在接种点出示核验码。",
    vac_cancel: "取消预约",
    vac_record: "接种记录",
    vac_given: "已接种",
    vac_next_due: "下一针",
    vac_appointments: "预约",
    vac_state_held: "已占号，待确认",
    vac_state_confirmed: "已确认",
    vac_state_cancelled: "已取消",
    vac_state_expired: "已超时",
    vac_state_given: "已接种",
    vac_state_checked_in: "已签到",
    vac_state_moved: "已改期",
    vac_state_mixed: "部分确认",
  },
});

const enc = encodeURIComponent;
const stateText = (s) => (t("vac_state_" + s) === "vac_state_" + s ? s : t("vac_state_" + s));
let catalogue = null;

async function getCatalogue() {
  catalogue = catalogue || (await get("/v1/vaccine/catalogue"));
  return catalogue;
}

const addDays = (day, n) => new Date(Date.parse(day + "T00:00:00Z") + n * 86400000).toISOString().slice(0, 10);

const screens = {
  // Who, which vaccine, where.
  async find(q) {
    if (!requireSignIn()) return;
    loading("vac_title");
    let passengers, cat;
    try {
      [{ passengers }, cat] = await Promise.all([get("/v1/passengers"), getCatalogue()]);
    } catch (err) {
      return failed("vac_title", err, () => screens.find(q));
    }
    const results = h("section", { "aria-live": "polite", id: "sites" });
    const who = h(
      "select",
      { name: "person", id: "in-person" },
      passengers.map((p) => h("option", { value: p.is_holder ? "" : p.id, selected: (q.person || "") === (p.is_holder ? "" : p.id) }, p.is_holder ? `${t("vac_me")} (${p.name})` : `${p.name} ${p.id_masked}`)),
    );
    const consent = h("input", { name: "consent", id: "in-consent", value: q.consent || "" });
    const consentField = field(t("vac_consent"), consent, t("vac_consent_hint"));
    const showConsent = () => (consentField.hidden = !who.value);
    who.addEventListener("change", showConsent);
    showConsent();
    const form = h(
      "form",
      {
        novalidate: true,
        onsubmit: (e) => {
          e.preventDefault();
          navigate("#/vaccine?" + new URLSearchParams(new FormData(e.target)));
        },
      },
      field(t("vac_who"), who),
      consentField,
      field(t("vac_campaign"), h("select", { name: "campaign", id: "in-campaign" }, cat.campaigns.map((c) => h("option", { value: c.id, selected: c.id === q.campaign }, c.name)))),
      field(t("vac_city"), h("input", { name: "city", id: "in-city", value: q.city || "", required: true }), t("vac_city_hint")),
      field(t("vac_district"), h("input", { name: "district", id: "in-district", value: q.district || "" })),
      field(t("date"), h("input", { name: "day", id: "in-vday", type: "date", value: q.day || chinaDay(1), min: chinaDay(0) })),
      h("button", { type: "submit", class: "primary" }, t("vac_find")),
    );
    mount(t("vac_title"), heading("vac_title"), h("p", {}, h("a", { href: "#/vaccine/record" + (q.person ? "?person=" + enc(q.person) : "") }, t("vac_record"))), form, results);
    if (!q.city) return;
    const campaign = cat.campaigns.find((c) => c.id === q.campaign) || cat.campaigns[0];
    try {
      const params = new URLSearchParams({ city: q.city, product: campaign.product, day: q.day || chinaDay(1), limit: "30" });
      if (q.district) params.set("district", q.district);
      const { sites } = await get("/v1/vaccine/sites?" + params);
      const next = (s) => `#/vaccine/site/${enc(s.id)}?` + new URLSearchParams({ ...q, campaign: campaign.id });
      results.replaceChildren(
        h("h2", {}, t("vac_sites", { n: sites.length })),
        sites.length
          ? h(
              "ul",
              { class: "list" },
              sites.map((s) =>
                h("li", {}, h("a", { class: "card block", href: next(s), "data-site": s.id }, h("strong", {}, s.name), h("br"), `${s.district} · ${s.address}`, s.available !== null ? ` · ${t("vac_places", { n: s.available })}` : "")),
              ),
            )
          : h("p", {}, t("vac_no_sites")),
      );
    } catch (err) {
      results.replaceChildren(errorBox(err));
    }
  },

  // Pick dose 1 (and dose 2 when the product books its series together), then reserve.
  async site(id, q) {
    if (!requireSignIn()) return;
    loading("vac_site");
    let data, cat;
    try {
      cat = await getCatalogue();
      const campaign = cat.campaigns.find((c) => c.id === q.campaign);
      data = await get(`/v1/vaccine/sites/${enc(id)}/slots?product=${enc(campaign.product)}&days=62`);
    } catch (err) {
      return failed("vac_site", err, () => screens.site(id, q));
    }
    const campaign = cat.campaigns.find((c) => c.id === q.campaign);
    const product = cat.products.find((p) => p.code === campaign.product);
    const together = product.book_series && product.doses >= 2;
    const now = Date.now();
    const open = data.slots.filter((s) => s.available > 0 && Date.parse(s.release_at) <= now);
    const chosen = [];
    const msg = h("div", { class: "form-msg", tabindex: "-1" });
    const stage = h("section", {});
    const slotList = (slots, dose) =>
      h(
        "ul",
        { class: "list" },
        slots.slice(0, 40).map((s) => {
          const label = `${s.day} ${fmtTime(s.starts_at)}–${fmtTime(s.ends_at)}`;
          return h(
            "li",
            { class: "card row", "data-slot": s.id },
            h("span", {}, h("strong", {}, label), " · ", t("vac_places", { n: s.available })),
            h("button", { type: "button", class: "small primary", "aria-label": `${t("vac_dose", { n: dose })}: ${label}`, onclick: () => pick(s) }, t("vac_choose")),
          );
        }),
      );
    const pick = async (slot) => {
      chosen.push(slot);
      await draw();
    };
    const draw = async () => {
      const need = together ? 2 : 1;
      const done = chosen.map((s, i) => h("p", { class: "chosen" }, "✓ ", t("vac_dose", { n: i + 1 }), " · ", t("vac_chosen", { t: `${s.day} ${fmtTime(s.starts_at)}` })));
      if (chosen.length < need) {
        let slots = open;
        let hint = null;
        if (chosen.length === 1) {
          const [min, max] = product.intervals_days[0];
          const [from, to] = [addDays(chosen[0].day, min), addDays(chosen[0].day, max)];
          slots = open.filter((s) => s.day >= from && s.day <= to);
          hint = h("p", { class: "hint" }, t("vac_dose2_window", { a: min, b: max }));
        }
        stage.replaceChildren(...done, h("h2", {}, t("vac_dose", { n: chosen.length + 1 })), hint, slots.length ? slotList(slots, chosen.length + 1) : h("p", {}, t("vac_no_sites")));
        stage.querySelector("h2").setAttribute("tabindex", "-1");
        stage.querySelector("h2").focus();
        return;
      }
      let elig = null;
      try {
        const params = new URLSearchParams({ campaign_id: campaign.id, day: chosen[0].day });
        if (q.person) params.set("passenger_id", q.person);
        elig = await get("/v1/vaccine/eligibility?" + params);
      } catch (err) {
        msg.replaceChildren(errorBox(err));
      }
      const key = newKey();
      const reserve = h(
        "button",
        {
          type: "button",
          class: "primary",
          id: "reserve",
          disabled: elig && !elig.eligible,
          onclick: async (e) => {
            msg.replaceChildren();
            try {
              const body = { campaign_id: campaign.id, slot_ids: chosen.map((s) => s.id) };
              if (q.person) body.passenger_id = q.person;
              const booked = await busy(e.currentTarget, () => post("/v1/vaccine/bookings", body, { idem: key }));
              navigate(`#/vaccine/series/${enc(booked.id)}`);
            } catch (err) {
              msg.replaceChildren(errorBox(err));
              msg.focus();
            }
          },
        },
        t("vac_reserve"),
      );
      stage.replaceChildren(
        ...done,
        elig
          ? h("p", { id: "eligibility", class: elig.eligible ? "ok" : "none" }, elig.eligible ? "✓ " + t("vac_eligible", { n: elig.next_dose, d: chosen[0].day }) : "⚠ " + t("vac_not_eligible", { m: elig.message }))
          : null,
        reserve,
      );
      reserve.focus();
    };
    mount(t("vac_site"), h("h1", {}, data.site.name), h("p", {}, `${campaign.name} · ${data.site.district}`), msg, stage);
    // Consent is recorded before choosing times, so a refusal shows up front.
    if (q.person && q.consent) {
      try {
        await post(`/v1/passengers/${enc(q.person)}/consent`, { statement: q.consent });
      } catch (err) {
        msg.replaceChildren(errorBox(err));
      }
    }
    draw();
  },

  async series(id) {
    if (!requireSignIn()) return;
    loading("vac_series");
    let b;
    try {
      b = await get(`/v1/vaccine/bookings/${enc(id)}`);
    } catch (err) {
      return failed("vac_series", err, () => screens.series(id));
    }
    const flash = takeFlash();
    const msg = h("div", { class: "form-msg", tabindex: "-1" }, flash ? notice(flash) : null);
    const actions = [];
    const held = b.appointments.find((a) => a.state === "held");
    if (held) {
      const pay = h(
        "button",
        {
          type: "button",
          class: "primary",
          id: "pay",
          onclick: async (e) => {
            try {
              await busy(e.currentTarget, () => post(`/v1/vaccine/bookings/${enc(id)}/confirm`));
              setFlash(t("vac_paid"));
              screens.series(id);
            } catch (err) {
              msg.replaceChildren(errorBox(err));
              msg.focus();
            }
          },
        },
        t("vac_pay"),
      );
      if (held.deadline) actions.push(...countdown(held.deadline, () => (pay.disabled = true)));
      actions.push(pay);
    }
    if (b.appointments.some((a) => ["held", "confirmed"].includes(a.state))) {
      actions.push(
        h(
          "button",
          {
            type: "button",
            onclick: async (e) => {
              try {
                await busy(e.currentTarget, () => post(`/v1/vaccine/bookings/${enc(id)}/cancel`));
                screens.series(id);
              } catch (err) {
                msg.replaceChildren(errorBox(err));
              }
            },
          },
          t("vac_cancel"),
        ),
      );
    }
    const person = b.appointments[0]?.person;
    mount(
      t("vac_series"),
      heading("vac_series"),
      msg,
      h("p", {}, h("strong", { id: "series-state" }, stateText(b.state)), person ? ` · ${person.name} ${person.id_masked}` : ""),
      actions,
      h(
        "ul",
        { class: "list" },
        b.appointments.map((a) =>
          h(
            "li",
            { class: "card", "data-dose": a.dose },
            h("strong", {}, t("vac_dose", { n: a.dose })),
            ` · ${fmtDateTime(a.starts_at)} · ${a.site_name || a.site_id} · `,
            h("span", { class: "dose-state" }, stateText(a.state)),
            a.verification_code ? [h("br"), t("code"), ": ", h("span", { class: "code" }, a.verification_code)] : null,
          ),
        ),
      ),
      h("p", {}, h("a", { href: "#/vaccine/record" + (person?.passenger_id ? "?person=" + enc(person.passenger_id) : "") }, t("vac_record"))),
    );
  },

  async record(q) {
    if (!requireSignIn()) return;
    loading("vac_record");
    try {
      const r = await get("/v1/vaccine/record" + (q.person ? "?passenger_id=" + enc(q.person) : ""));
      mount(
        t("vac_record"),
        heading("vac_record"),
        h("p", { id: "record-person" }, `${r.person.name} ${r.person.id_masked}`),
        r.products.map((p) =>
          h(
            "section",
            { class: "card", "data-product": p.product },
            h("h2", {}, p.name),
            h("p", {}, `${t("vac_given")}: ${p.given.length} / ${p.doses}`, p.given.map((g) => h("span", { class: "hint" }, ` · ${t("vac_dose", { n: g.dose })} ${g.given_on}`))),
            p.next_due ? h("p", {}, `${t("vac_next_due")}: ${t("vac_dose", { n: p.next_due.dose })} ${p.next_due.from || ""}${p.next_due.until ? " – " + p.next_due.until : ""}`) : null,
            (p.appointments || []).length
              ? h(
                  "ul",
                  { class: "list" },
                  p.appointments.map((a) => h("li", {}, `${t("vac_dose", { n: a.dose })} · ${fmtDateTime(a.starts_at)} · ${stateText(a.state)}`)),
                )
              : null,
          ),
        ),
      );
    } catch (err) {
      failed("vac_record", err, () => screens.record(q));
    }
  },
};

routes.vaccine = ([kind, id], q) => {
  if (kind === "site") return screens.site(id, q);
  if (kind === "series") return screens.series(id);
  if (kind === "record") return screens.record(q);
  return screens.find(q);
};
