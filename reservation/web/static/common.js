// Pieces every page shares: messages, times in China time, money, the language toggle.
import { h } from "./view.js";
import { errorText, lang, setLang, t } from "./i18n.js";

// Errors are announced (role=alert) and marked with a sign and words, never colour alone.
export function errorBox(err) {
  const lines = [errorText(err)];
  if (err.status === 503 && err.retryAfter) lines.push(`(${err.retryAfter} s)`);
  return h("div", { class: "msg msg-error", role: "alert" }, "⚠ ", lines.join(" "));
}

export function notice(text) {
  return h("div", { class: "msg msg-ok", role: "status" }, "✓ ", text);
}

const ZONE = { timeZone: "Asia/Shanghai" };

export function fmtTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB", {
    ...ZONE,
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function fmtDateTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", {
    ...ZONE,
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

// Today in China as YYYY-MM-DD, plus n days.
export function chinaDay(n = 0) {
  const d = new Date(Date.now() + n * 86400000);
  return new Intl.DateTimeFormat("en-CA", { ...ZONE }).format(d);
}

export const yuan = (fen) => (fen / 100).toFixed(2);

export function setupLangToggle(rerender) {
  const button = document.getElementById("lang");
  const label = () => {
    button.textContent = t("lang_toggle");
    button.setAttribute("aria-label", t("lang_toggle_label"));
    button.setAttribute("lang", lang === "zh" ? "en" : "zh-CN");
  };
  label();
  button.addEventListener("click", () => {
    setLang(lang === "zh" ? "en" : "zh");
    label();
    rerender();
  });
}

// A busy button: disabled while its action runs, so a double tap sends one request.
export async function busy(button, action) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}
