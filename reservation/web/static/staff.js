// Key handling shared by the provider console and the operator dashboard: staff and
// operators authenticate with their API key, typed in once per browser tab (kept in
// sessionStorage, so closing the tab forgets it on a shared desk computer).
import { get } from "./api.js";
import { errorBox } from "./common.js";
import { t } from "./i18n.js";
import { field, h, mount } from "./view.js";

// One key per console: a staff key typed into the provider console is not offered to
// the operator dashboard in the same tab.
const KEY = location.pathname.startsWith("/operator") ? "fairseat.operatorkey" : "fairseat.staffkey";

export const staffKey = {
  get value() {
    return sessionStorage.getItem(KEY);
  },
  set value(v) {
    if (v) sessionStorage.setItem(KEY, v);
    else sessionStorage.removeItem(KEY);
  },
};

// Asks for the key until one is accepted; resolves with whoami's answer.
export function askKey(titleKey, onAccepted, role = null) {
  const keyInput = h("input", { name: "key", id: "in-key", type: "password", autocomplete: "off", required: true });
  const msg = h("div", { class: "form-msg", tabindex: "-1" });
  const form = h(
    "form",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        msg.replaceChildren();
        try {
          const who = await get("/v1/staff/whoami", { key: keyInput.value.trim() });
          if (role && who.role !== role) throw { status: 403, code: "forbidden", message: t("wrong_role"), fields: {} };
          staffKey.value = keyInput.value.trim();
          onAccepted(who);
        } catch (err) {
          msg.append(errorBox(err));
          keyInput.setAttribute("aria-invalid", "true");
          keyInput.focus();
        }
      },
    },
    field(t("api_key"), keyInput, t("api_key_hint")),
    msg,
    h("button", { type: "submit", class: "primary" }, t("sign_in_key")),
  );
  mount(t(titleKey), h("h1", {}, t(titleKey)), form);
}

export async function whoami() {
  if (!staffKey.value) return null;
  try {
    return await get("/v1/staff/whoami", { key: staffKey.value });
  } catch {
    staffKey.value = null;
    return null;
  }
}

export function tabs(items, current) {
  const nav = document.getElementById("tabs");
  nav.replaceChildren(
    ...items.map(([href, key]) =>
      h("a", { href, "aria-current": href === current ? "page" : null }, href === current ? "• " : "", t(key)),
    ),
  );
}
