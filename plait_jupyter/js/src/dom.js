// DOM helpers. Every string child becomes a text node and attributes are set with
// setAttribute, so model output and user data are never parsed as HTML (SPEC F6).

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * @param {Element} el
 * @param {Record<string, unknown>} attrs  keys starting with "on" add event listeners
 */
function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

/** @param {Element} el @param {unknown[]} children */
function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * An HTML element.
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/**
 * An SVG element.
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...unknown} children
 * @returns {SVGElement}
 */
export function svg(tag, attrs = {}, ...children) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Shorten `text` to `limit` characters with an ellipsis. */
export function clip(text, limit) {
  const s = String(text ?? "");
  return s.length <= limit ? s : s.slice(0, Math.max(1, limit - 1)) + "…";
}

/** "1.23 s" / "45 ms" for seconds, "–" for null. */
export function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value >= 1 ? `${value.toFixed(2)} s` : `${(value * 1000).toFixed(0)} ms`;
}

/**
 * A cost with enough digits to show it, as plait._format.format_money writes it:
 * "$1.50", "$0.0123", "$0.000001" (at least two decimals, three significant digits below $1).
 */
export function dollars(value) {
  const amount = value ?? 0;
  if (amount === 0 || !Number.isFinite(amount)) return `$${amount.toFixed(2)}`;
  const sign = amount < 0 ? "-" : "";
  const abs = Math.abs(amount);
  if (abs >= 1) {
    const shown = abs.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    return `${sign}$${shown}`;
  }
  const decimals = Math.min(Math.max(2, 2 - Math.floor(Math.log10(abs))), 15);
  const [whole, frac = ""] = abs.toFixed(decimals).replace(/0+$/, "").split(".");
  return `${sign}$${whole}.${frac.padEnd(2, "0")}`;
}
