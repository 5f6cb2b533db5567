// A tiny view helper instead of a framework. The screens are forms and lists redrawn
// whole after each answer; a framework would add tens of KB and a build step for nothing
// the ~60 lines below do not cover. Text is always set as text (never as HTML), so data
// from the server cannot inject markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "for") el.htmlFor = value;
    else if (name === "value") el.value = value;
    else if (name === "checked" || name === "selected") el[name] = Boolean(value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let unmountHooks = [];

// Cleanups (timers, event streams) of the screen on display, run when the next one mounts.
export function onUnmount(fn) {
  unmountHooks.push(fn);
}

// Replace the page's main content; move focus to its heading so that screen readers
// announce the new screen and keyboard users start from the top of it.
export function mount(title, ...nodes) {
  for (const fn of unmountHooks) fn();
  unmountHooks = [];
  const main = document.getElementById("main");
  main.replaceChildren(...nodes.flat().filter(Boolean));
  document.title = title;
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

// Reads started by a screen are aborted when the next screen starts, so a slow answer
// for a screen already left can never draw over the one now on display.
let navigation = new AbortController();
export function navSignal() {
  return navigation.signal;
}

// A hash router: "#/order/abc?x=1" → routes["order"]({id: "abc"}, {x: "1"}).
export function router(routes, fallback) {
  const go = () => {
    navigation.abort();
    navigation = new AbortController();
    const [path, qs] = (location.hash.slice(1) || "/").split("?");
    const [name, ...rest] = path.split("/").filter(Boolean);
    const query = Object.fromEntries(new URLSearchParams(qs || ""));
    const handler = routes[name || ""] || fallback;
    handler(rest.map(decodeURIComponent), query);
  };
  window.addEventListener("hashchange", go);
  go();
  return go;
}

export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

// A labelled form field; errors are tied to it with aria-describedby.
export function field(label, input, hint) {
  const id = input.id || (input.id = "f-" + Math.random().toString(36).slice(2, 9));
  const help = hint ? h("p", { class: "hint", id: id + "-hint" }, hint) : null;
  if (help) input.setAttribute("aria-describedby", help.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, help);
}

// Shows server-side field errors next to their inputs (by name) and returns the rest.
export function markFieldErrors(form, errors) {
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const left = [];
  for (const err of errors || []) {
    const input = err.field ? form.querySelector(`[name="${CSS.escape(err.field)}"]`) : null;
    if (!input) {
      left.push(err);
      continue;
    }
    const note = h("p", { class: "field-error", id: input.id + "-err" }, "⚠ " + err.message);
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", note.id);
    input.closest(".field").append(note);
  }
  return left;
}
