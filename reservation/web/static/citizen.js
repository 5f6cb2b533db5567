// The citizen app: account, passengers, trains (search → reserve → pay → e-ticket →
// refund/change). Hospital, vaccine, waiting room, waitlist and inbox screens register
// themselves from their own modules (see extra.js) so this file stays readable.
import { api, get, newKey, post, session } from "./api.js";
import { busy, chinaDay, errorBox, fmtDateTime, fmtTime, notice, setupLangToggle, yuan } from "./common.js";
import { t } from "./i18n.js";
import { queueHeaders, spendQueueToken, toWaitingRoom } from "./queuetoken.js";
import { field, h, markFieldErrors, mount, navigate, onUnmount, router } from "./view.js";

export const routes = {};
let rerender = () => {};
// A message for the next screen after a navigation (e.g. "changed" on the new order).
let flash = null;
export function setFlash(text) {
  flash = text;
}
export function takeFlash() {
  const text = flash;
  flash = null;
  return text;
}

// ---- shared bits --------------------------------------------------------------------

export function heading(key, vars) {
  return h("h1", {}, t(key, vars));
}

export function input(name, attrs = {}) {
  return h("input", { name, id: "in-" + name, ...attrs });
}

export function submitButton(key) {
  return h("button", { type: "submit", class: "primary" }, t(key));
}

export function loading(titleKey) {
  mount(t(titleKey), heading(titleKey), h("p", { role: "status" }, t("loading")));
}

export function failed(titleKey, err, again) {
  if (err && err.name === "AbortError") return; // the user has moved on
  mount(
    t(titleKey),
    heading(titleKey),
    errorBox(err),
    h("button", { type: "button", onclick: again }, t("retry")),
  );
}

// Runs a form's action; shows the answer's errors beside the fields and above the form.
export function formAction(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = form.querySelector(".form-msg");
    box.replaceChildren();
    const button = form.querySelector("button[type=submit]");
    try {
      await busy(button, () => action(new FormData(form)));
    } catch (err) {
      if (!err.status && err.status !== 0) throw err;
      const rest = markFieldErrors(form, (err.fields && err.fields.errors) || []);
      box.append(errorBox(err));
      for (const e of rest) box.append(h("p", { class: "field-error" }, `${e.field}: ${e.message}`));
      const invalid = form.querySelector("[aria-invalid]");
      (invalid || box).focus?.();
    }
  });
  return form;
}

export function formMsg() {
  return h("div", { class: "form-msg", tabindex: "-1" });
}

export function requireSignIn() {
  if (session.token) return true;
  mount(
    t("signin_needed"),
    heading("me_title"),
    h("p", {}, t("signin_needed")),
    h("a", { class: "button primary", href: "#/me" }, t("signin") + " / " + t("register")),
  );
  return false;
}

const className = (c) => t("class_" + c);
const stateText = (s) => t("state_" + s);

// ---- home ---------------------------------------------------------------------------

routes[""] = () => {
  const tile = (href, key, icon) =>
    h("a", { class: "tile", href }, h("span", { class: "icon", "aria-hidden": "true" }, icon), t(key));
  mount(
    t("app"),
    heading("home_title"),
    h("p", {}, t("home_intro")),
    h(
      "nav",
      { class: "tiles", "aria-label": t("nav") },
      tile("#/trains", "home_trains", "🚄"),
      tile("#/hospital", "home_hospital", "🏥"),
      tile("#/vaccine", "home_vaccine", "💉"),
      tile("#/orders", "home_orders", "🎫"),
      tile("#/passengers", "home_passengers", "👪"),
    ),
  );
};

// ---- account ------------------------------------------------------------------------

routes.me = async () => {
  if (session.token) {
    loading("me_title");
    try {
      const me = await get("/v1/me");
      mount(
        t("me_title"),
        heading("me_title"),
        h("p", { id: "me-name" }, t("signed_in_as", { name: me.name, id: me.id_masked })),
        h("p", {}, h("a", { href: "#/passengers" }, t("passengers_title"))),
        h(
          "button",
          {
            type: "button",
            onclick: () => {
              session.token = null;
              navigate("#/me");
            },
          },
          t("signout"),
        ),
      );
    } catch (err) {
      if (err.status === 401) return routes.me();
      failed("me_title", err, routes.me);
    }
    return;
  }
  const register = formAction(
    h(
      "form",
      { "aria-labelledby": "reg-h", novalidate: true },
      h("h2", { id: "reg-h" }, t("register_title")),
      h("p", { class: "hint" }, t("register_intro")),
      field(t("name"), input("name", { autocomplete: "name", required: true, maxlength: 50 })),
      field(
        t("phone"),
        input("phone", { type: "tel", inputmode: "numeric", autocomplete: "tel", required: true }),
        t("phone_hint"),
      ),
      field(t("id_number"), input("id_number", { autocomplete: "off", required: true, maxlength: 18 }), t("id_hint")),
      formMsg(),
      submitButton("register"),
    ),
    async (data) => {
      const out = await post("/v1/citizens", Object.fromEntries(data));
      session.token = out.token;
      navigate(sessionStorage.getItem("fairseat.after") || "#/me");
      sessionStorage.removeItem("fairseat.after");
    },
  );
  const signin = formAction(
    h(
      "form",
      { "aria-labelledby": "in-h", novalidate: true },
      h("h2", { id: "in-h" }, t("signin_title")),
      field(t("phone"), h("input", { name: "phone", id: "si-phone", type: "tel", inputmode: "numeric", required: true })),
      field(t("id_number"), h("input", { name: "id_number", id: "si-id", required: true, maxlength: 18 })),
      formMsg(),
      submitButton("signin"),
    ),
    async (data) => {
      const out = await post("/v1/sessions", Object.fromEntries(data));
      session.token = out.token;
      navigate(sessionStorage.getItem("fairseat.after") || "#/me");
      sessionStorage.removeItem("fairseat.after");
    },
  );
  mount(t("me_title"), heading("me_title"), register, signin);
};

// ---- passengers ---------------------------------------------------------------------

routes.passengers = async (_params, _query, message) => {
  if (!requireSignIn()) return;
  loading("passengers_title");
  let list;
  try {
    list = (await get("/v1/passengers")).passengers;
  } catch (err) {
    return failed("passengers_title", err, () => routes.passengers());
  }
  const items = list.map((p) =>
    h(
      "li",
      { class: "card row" },
      h("span", {}, h("strong", {}, p.name), " ", p.id_masked, " · ", t("kind_" + p.kind), p.is_holder ? ` (${t("holder")})` : ""),
      p.is_holder
        ? null
        : h(
            "button",
            {
              type: "button",
              class: "small",
              "aria-label": `${t("remove")} ${p.name}`,
              onclick: async (e) => {
                try {
                  await busy(e.currentTarget, () => api("DELETE", `/v1/passengers/${encodeURIComponent(p.id)}`));
                  routes.passengers([], {}, t("removed"));
                } catch (err) {
                  e.target.after(errorBox(err));
                }
              },
            },
            t("remove"),
          ),
    ),
  );
  const add = formAction(
    h(
      "form",
      { "aria-labelledby": "add-h", novalidate: true },
      h("h2", { id: "add-h" }, t("add_passenger")),
      field(t("name"), input("name", { required: true, maxlength: 50 })),
      field(t("id_number"), input("id_number", { required: true, maxlength: 18 }), t("id_hint")),
      field(
        t("kind"),
        h(
          "select",
          { name: "kind", id: "in-kind" },
          ["adult", "child", "student"].map((k) => h("option", { value: k }, t("kind_" + k))),
        ),
      ),
      formMsg(),
      submitButton("add"),
    ),
    async (data) => {
      const added = await post("/v1/passengers", Object.fromEntries(data));
      routes.passengers([], {}, t("added", { name: added.name }));
    },
  );
  mount(
    t("passengers_title"),
    heading("passengers_title"),
    message ? notice(message) : null,
    h("p", {}, t("passengers_intro")),
    h("ul", { class: "list", id: "passenger-list" }, items),
    add,
  );
};

// ---- trains: search -----------------------------------------------------------------

function stationInput(name, value) {
  const listId = "dl-" + name;
  const el = input(name, { value, list: listId, autocomplete: "off", required: true });
  const datalist = h("datalist", { id: listId });
  let timer;
  el.addEventListener("input", () => {
    clearTimeout(timer);
    // Ask once typing pauses: one request per word, not per keystroke, on a slow line.
    timer = setTimeout(async () => {
      if (!el.value.trim()) return;
      try {
        const { stations } = await get(`/v1/stations?q=${encodeURIComponent(el.value.trim())}&limit=8`);
        datalist.replaceChildren(
          ...stations.map((s) => h("option", { value: s.name_zh }, `${s.name_en} (${s.code})`)),
        );
      } catch {
        /* suggestions are a convenience */
      }
    }, 250);
  });
  return [el, datalist];
}

function trainCard(train, onBook, verb = "book", onWait = null) {
  const classes = train.classes.map((c) => {
    const available = train.on_sale && c.remaining > 0;
    // Sold out: offer the waitlist (候补) instead of a dead button.
    if (onWait && train.on_sale && c.remaining === 0) {
      return h(
        "li",
        { class: "class-row" },
        h("span", { class: "class-name" }, className(c.class)),
        h("span", {}, "¥" + c.fare_cny),
        h("span", { class: "none" }, "○ ", t("sold_out")),
        h(
          "button",
          { type: "button", class: "small", "aria-label": `${t("waitlist_join")}: ${train.number} ${className(c.class)}`, onclick: () => onWait(train, c.class) },
          t("waitlist_join"),
        ),
      );
    }
    const status = !train.on_sale ? t("not_on_sale") : c.remaining > 0 ? t("remaining", { n: c.remaining }) : t("sold_out");
    return h(
      "li",
      { class: "class-row" },
      h("span", { class: "class-name" }, className(c.class)),
      h("span", {}, "¥" + c.fare_cny),
      h("span", { class: available ? "ok" : "none" }, available ? "● " : "○ ", status),
      h(
        "button",
        {
          type: "button",
          class: "small primary",
          disabled: !available,
          "aria-label": `${t(verb)}: ${train.number} ${className(c.class)}`,
          onclick: () => onBook(train, c.class),
        },
        t(verb),
      ),
    );
  });
  return h(
    "li",
    { class: "card train", "data-train": train.number },
    h(
      "div",
      { class: "train-head" },
      h("strong", { class: "train-no" }, train.number),
      h("span", {}, `${t("depart")} ${fmtTime(train.departs_at)}`),
      h("span", {}, `${t("arrive")} ${fmtTime(train.arrives_at)}`),
      h("span", { class: "hint" }, t("duration", { d: train.duration })),
    ),
    h("ul", { class: "classes" }, classes),
  );
}

async function searchTrains(from, to, date) {
  return get(`/v1/trains/search?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&date=${date}`);
}

routes.trains = async (_params, query) => {
  const from = query.from || localStorage.getItem("fairseat.from") || "";
  const to = query.to || localStorage.getItem("fairseat.to") || "";
  const date = query.date || chinaDay(1);
  const [fromEl, fromList] = stationInput("from", from);
  const [toEl, toList] = stationInput("to", to);
  const form = formAction(
    h(
      "form",
      { class: "search", role: "search", novalidate: true },
      field(t("from"), fromEl, t("station_hint")),
      fromList,
      h(
        "button",
        {
          type: "button",
          class: "small",
          "aria-label": t("swap"),
          onclick: () => ([fromEl.value, toEl.value] = [toEl.value, fromEl.value]),
        },
        "⇅",
      ),
      field(t("to"), toEl),
      toList,
      field(t("date"), input("date", { type: "date", value: date, min: chinaDay(0), required: true })),
      formMsg(),
      submitButton("search"),
    ),
    async (data) => {
      const q = new URLSearchParams(data);
      localStorage.setItem("fairseat.from", q.get("from"));
      localStorage.setItem("fairseat.to", q.get("to"));
      navigate("#/trains?" + q.toString());
    },
  );
  const results = h("section", { "aria-live": "polite", id: "results" });
  mount(t("trains_title"), heading("trains_title"), form, results);
  if (!(query.from && query.to)) return;
  results.append(h("p", { role: "status" }, t("loading")));
  try {
    const found = await searchTrains(query.from, query.to, date);
    const book = (train, cls) => {
      const q = new URLSearchParams({
        run: train.run_id,
        from: found.from.code,
        to: found.to.code,
        cls,
        train: train.number,
        date: train.service_date,
        names: `${found.from.name_zh}|${found.to.name_zh}`,
      });
      navigate("#/book?" + q.toString());
    };
    const wait = (train, cls) => {
      const q = new URLSearchParams({ run: train.run_id, from: found.from.code, to: found.to.code, cls, train: train.number, date: train.service_date, departs: train.departs_at });
      navigate("#/waitlist/new?" + q.toString());
    };
    results.replaceChildren(
      h("h2", {}, t("results", { n: found.trains.length })),
      found.trains.length
        ? h("ul", { class: "list" }, found.trains.map((tr) => trainCard(tr, book, "book", wait)))
        : h("p", {}, t("no_trains")),
    );
  } catch (err) {
    results.replaceChildren(errorBox(err));
  }
};

// ---- trains: reserve ----------------------------------------------------------------

routes.book = async (_params, q) => {
  if (!session.token) sessionStorage.setItem("fairseat.after", location.hash);
  if (!requireSignIn()) return;
  loading("book_title");
  let passengers;
  try {
    passengers = (await get("/v1/passengers")).passengers;
  } catch (err) {
    return failed("book_title", err, () => routes.book([], q));
  }
  const [fromName, toName] = (q.names || "|").split("|");
  // One key per intended order: a double tap or a retry after a lost answer returns the
  // same order instead of reserving twice.
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
          h(
            "div",
            { class: "check" },
            h("input", { type: "checkbox", name: "passenger_ids", value: p.id, id: "p-" + i, checked: p.is_holder }),
            h("label", { for: "p-" + i }, `${p.name} ${p.id_masked}`),
          ),
        ),
      ),
      h("p", {}, h("a", { href: "#/passengers" }, t("add_passenger"))),
      field(
        t("wish"),
        h(
          "select",
          { name: "wish", id: "in-wish" },
          h("option", { value: "" }, t("wish_none")),
          h("option", { value: "window" }, t("wish_window")),
          h("option", { value: "aisle" }, t("wish_aisle")),
        ),
      ),
      formMsg(),
      submitButton("hold"),
    ),
    async (data) => {
      let order;
      try {
        order = await post(
          "/v1/orders",
          {
            run_id: q.run,
            from: q.from,
            to: q.to,
            seat_class: q.cls,
            passenger_ids: data.getAll("passenger_ids"),
            wish: data.get("wish") || "",
          },
          { idem: key, headers: queueHeaders() },
        );
      } catch (err) {
        // A queued sale: wait in its room, then come back here with the admission.
        if (toWaitingRoom(err)) return;
        throw err;
      }
      spendQueueToken();
      navigate("#/order/" + encodeURIComponent(order.id));
    },
  );
  mount(
    t("book_title"),
    heading("book_title"),
    h("p", { class: "trip" }, t("trip", { train: q.train, from: fromName || q.from, to: toName || q.to, date: q.date }), " · ", className(q.cls)),
    form,
  );
};

// ---- trains: order, pay, e-tickets --------------------------------------------------

export function countdown(deadlineIso, onExpired) {
  const el = h("p", { class: "countdown", id: "countdown" });
  // Announced politely once a minute, not every second (screen readers would chatter).
  const live = h("span", { class: "sr-only", "aria-live": "polite" });
  const deadline = Date.parse(deadlineIso);
  let lastMinute = null;
  const tick = () => {
    const left = Math.max(0, Math.floor((deadline - Date.now()) / 1000));
    const mm = String(Math.floor(left / 60)).padStart(2, "0");
    const ss = String(left % 60).padStart(2, "0");
    el.replaceChildren("⏱ ", t("pay_within", { t: `${mm}:${ss}` }));
    if (Math.floor(left / 60) !== lastMinute) {
      lastMinute = Math.floor(left / 60);
      live.textContent = t("pay_within", { t: `${mm}:${ss}` });
    }
    if (left === 0) {
      clearInterval(timer);
      onExpired();
    }
  };
  const timer = setInterval(tick, 1000);
  onUnmount(() => clearInterval(timer));
  tick();
  return [el, live];
}

function ticketLine(tk) {
  return h(
    "li",
    { class: "card ticket", "data-ticket": tk.id },
    h("strong", {}, tk.passenger.name),
    " ",
    tk.passenger.id_masked,
    h("br"),
    `${tk.train} ${tk.from} ${fmtTime(tk.departs_at)} → ${tk.to} ${fmtTime(tk.arrives_at)}`,
    h("br"),
    t("seat", { coach: tk.coach, seat: tk.seat }),
    " · ",
    h("span", { class: "state" }, stateText(tk.state)),
    tk.state === "confirmed" ? [" ", h("a", { class: "button small", href: "#/ticket/" + encodeURIComponent(tk.id) }, t("show_ticket"))] : null,
  );
}

routes.order = async ([id], _q, message) => {
  if (!requireSignIn()) return;
  message = message || takeFlash();
  loading("order_title");
  let order;
  try {
    order = await get("/v1/orders/" + encodeURIComponent(id));
  } catch (err) {
    return failed("order_title", err, () => routes.order([id]));
  }
  const msg = h("div", { class: "form-msg", tabindex: "-1" }, message ? notice(message) : null);
  const actions = [];
  if (order.state === "held") {
    const payKey = newKey();
    const pay = h(
      "button",
      {
        type: "button",
        class: "primary",
        id: "pay",
        onclick: async (e) => {
          msg.replaceChildren();
          try {
            await busy(e.currentTarget, () =>
              post(`/v1/orders/${encodeURIComponent(id)}/pay`, undefined, { idem: payKey }),
            );
            routes.order([id], {}, t("paid"));
          } catch (err) {
            msg.append(errorBox(err));
            msg.focus();
          }
        },
      },
      t("pay", { p: yuan(order.price_fen) }),
    );
    const cancel = h(
      "button",
      {
        type: "button",
        onclick: async (e) => {
          try {
            await busy(e.currentTarget, () => post(`/v1/orders/${encodeURIComponent(id)}/cancel`));
            routes.order([id]);
          } catch (err) {
            msg.replaceChildren(errorBox(err));
          }
        },
      },
      t("cancel_order"),
    );
    const [clock, live] = countdown(order.deadline, () => {
      pay.disabled = true;
      msg.replaceChildren(h("div", { class: "msg msg-error", role: "alert" }, "⚠ ", t("pay_expired")));
    });
    actions.push(clock, live, pay, cancel);
  }
  mount(
    t("order_title"),
    heading("order_title"),
    msg,
    h("p", { class: "state-line" }, h("strong", { id: "order-state" }, stateText(order.state)), " · ", t("total", { p: yuan(order.price_fen) })),
    actions,
    h("ul", { class: "list" }, order.tickets.map(ticketLine)),
  );
};

routes.orders = async () => {
  if (!requireSignIn()) return;
  loading("orders_title");
  let orders;
  try {
    orders = (await get("/v1/orders")).orders;
  } catch (err) {
    return failed("orders_title", err, routes.orders);
  }
  mount(
    t("orders_title"),
    heading("orders_title"),
    h("p", {}, h("a", { href: "#/waitlist" }, t("waitlist_join")), " · ", h("a", { href: "#/hospital/mine" }, t("home_hospital")), " · ", h("a", { href: "#/vaccine/record" }, t("home_vaccine"))),
    orders.length
      ? h(
          "ul",
          { class: "list" },
          orders.map((o) =>
            h(
              "li",
              { class: "card" },
              h(
                "a",
                { href: "#/order/" + encodeURIComponent(o.id) },
                `${o.tickets[0]?.train || o.run_id} · ${o.tickets[0]?.service_date || ""} · ${o.tickets[0]?.from || ""} → ${o.tickets[0]?.to || ""}`,
              ),
              " · ",
              stateText(o.state),
            ),
          ),
        )
      : h("p", {}, t("no_orders")),
  );
};

routes.ticket = async ([id], _q, message) => {
  if (!requireSignIn()) return;
  loading("ticket_title");
  let tk;
  try {
    tk = await get("/v1/tickets/" + encodeURIComponent(id));
  } catch (err) {
    return failed("ticket_title", err, () => routes.ticket([id]));
  }
  const qrBox = h("div", { class: "qr", role: "img", "aria-label": t("qr_label", { id: tk.id }) });
  const msg = h("div", { class: "form-msg", tabindex: "-1" }, message ? notice(message) : null);
  const live = tk.state === "confirmed";
  const refundArea = h("div", {});
  const refund = h(
    "button",
    {
      type: "button",
      onclick: () => {
        // A second, explicit step: a refund cannot be undone.
        refundArea.replaceChildren(
          h("p", { id: "refund-q" }, t("refund_confirm")),
          h(
            "button",
            {
              type: "button",
              class: "primary",
              id: "refund-yes",
              "aria-describedby": "refund-q",
              onclick: async (e) => {
                try {
                  const out = await busy(e.currentTarget, () => post(`/v1/tickets/${encodeURIComponent(id)}/refund`));
                  routes.ticket([id], {}, t("refunded", { r: yuan(out.refunded_fen), f: yuan(out.fee_fen) }));
                } catch (err) {
                  msg.replaceChildren(errorBox(err));
                  msg.focus();
                }
              },
            },
            t("confirm"),
          ),
          h("button", { type: "button", onclick: () => refundArea.replaceChildren() }, t("cancel")),
        );
        refundArea.querySelector("#refund-yes").focus();
      },
    },
    t("refund"),
  );
  mount(
    t("ticket_title"),
    heading("ticket_title"),
    msg,
    h(
      "div",
      { class: "card eticket" },
      live ? qrBox : null,
      h(
        "dl",
        {},
        h("dt", {}, t("code")),
        h("dd", { class: "code", id: "verification-code" }, tk.verification_code || "—"),
        h("dt", {}, t("name")),
        h("dd", {}, `${tk.passenger.name} ${tk.passenger.id_masked}`),
        h("dt", {}, tk.train),
        h("dd", {}, `${tk.service_date} ${tk.from} ${fmtTime(tk.departs_at)} → ${tk.to} ${fmtTime(tk.arrives_at)}`),
        h("dt", {}, className(tk.seat_class)),
        h("dd", {}, t("seat", { coach: tk.coach, seat: tk.seat })),
        h("dt", {}, t("status")),
        h("dd", { id: "ticket-state" }, stateText(tk.state)),
      ),
    ),
    live ? [refund, h("a", { class: "button", href: "#/change/" + encodeURIComponent(id) }, t("change")), refundArea] : null,
    tk.changed_to ? h("p", {}, h("a", { href: "#/order/" + encodeURIComponent(tk.changed_to) }, t("state_changed") + " →")) : null,
  );
  if (live) {
    // Loaded only here: the citizen's first screens do not pay for the QR encoder.
    const { default: qrcode } = await import("./qrcode-generator.mjs");
    const qr = qrcode(0, "M");
    qr.addData(`FAIRSEAT1|${tk.id}|${tk.verification_code}`);
    qr.make();
    qrBox.innerHTML = qr.createSvgTag({ cellSize: 4, margin: 2, scalable: true });
  }
};

routes.change = async ([id], q) => {
  if (!requireSignIn()) return;
  loading("change_title");
  let tk;
  try {
    tk = await get("/v1/tickets/" + encodeURIComponent(id));
  } catch (err) {
    return failed("change_title", err, () => routes.change([id], q));
  }
  const date = q.date || tk.service_date;
  const key = newKey();
  const results = h("section", { "aria-live": "polite" });
  const form = h(
    "form",
    {
      novalidate: true,
      onsubmit: (e) => {
        e.preventDefault();
        navigate(`#/change/${encodeURIComponent(id)}?date=${new FormData(e.target).get("date")}`);
      },
    },
    field(t("date"), input("date", { type: "date", value: date, min: chinaDay(0) })),
    submitButton("search"),
  );
  mount(t("change_title"), heading("change_title"), h("p", {}, `${tk.train} ${tk.from} → ${tk.to}`), form, results);
  try {
    const found = await searchTrains(tk.from, tk.to, date);
    const change = async (train, cls) => {
      try {
        const order = await post(
          `/v1/tickets/${encodeURIComponent(id)}/change`,
          { run_id: train.run_id, seat_class: cls },
          { idem: key },
        );
        setFlash(t("changed"));
        navigate("#/order/" + encodeURIComponent(order.id));
      } catch (err) {
        results.prepend(errorBox(err));
      }
    };
    const others = found.trains.filter((tr) => tr.run_id !== tk.run_id);
    results.replaceChildren(
      others.length ? h("ul", { class: "list" }, others.map((tr) => trainCard(tr, change, "change"))) : h("p", {}, t("no_trains")),
    );
  } catch (err) {
    results.replaceChildren(errorBox(err));
  }
};

// ---- placeholders replaced by extra.js when those APIs exist ------------------------

for (const [name, key] of [["hospital", "hospital_title"], ["vaccine", "vaccine_title"], ["inbox", "inbox_title"]]) {
  routes[name] = () => mount(t(key), heading(key), h("p", {}, t("coming")));
}

// ---- start --------------------------------------------------------------------------

export function start() {
  rerender = router(routes, routes[""]);
  setupLangToggle(() => {
    renderNav();
    rerender();
  });
  renderNav();
}

function renderNav() {
  const nav = document.getElementById("tabs");
  nav.setAttribute("aria-label", t("nav"));
  const link = (href, key, icon) =>
    h("a", { href }, h("span", { "aria-hidden": "true", class: "icon" }, icon), h("span", {}, t(key)));
  nav.replaceChildren(
    link("#/", "nav_home", "⌂"),
    link("#/trains", "nav_trains", "🚄"),
    link("#/orders", "nav_orders", "🎫"),
    link("#/inbox", "nav_inbox", "✉"),
    link("#/me", "nav_me", "☺"),
  );
  document.getElementById("brand").textContent = t("app");
}
