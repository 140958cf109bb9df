// A tiny element builder. Strings always become text nodes, never HTML, so nothing a customer
// writes can inject markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2).toLowerCase(), value);
    else if (name === "class") el.className = value;
    else if (name === "value" || name === "checked") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function announce(text) {
  const region = document.getElementById("announcer");
  if (region) region.textContent = text;
}

// Runs fn at most once per `ms`, with the latest arguments.
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// A labelled form control: <label for=id>text</label><control id=id>.
let uid = 0;
export function field(labelText, control, { hideLabel = false } = {}) {
  control.id ||= `f${++uid}`;
  const label = h("label", { for: control.id, class: hideLabel ? "visually-hidden" : "" }, labelText);
  return h("div", { class: "field" }, label, control);
}

export function select(options, value, attrs = {}) {
  return h(
    "select",
    attrs,
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
  );
}
