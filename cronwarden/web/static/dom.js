// Building DOM from data without innerHTML: every value lands as text, never as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Like clear, for a view redrawn in place: a child equal to its replacement
// (isEqualNode) is left where it is.  A redraw that changes nothing under the pointer
// then leaves the link or button being pressed alone: replaced between mousedown and
// mouseup, its click would be lost.
export function patch(el, ...children) {
  const old = [...el.childNodes];
  const fresh = [...clear(document.createElement("div"), ...children).childNodes];
  fresh.forEach((node, i) => {
    if (i >= old.length) el.append(node);
    else if (!old[i].isEqualNode(node)) old[i].replaceWith(node);
  });
  for (const node of old.slice(fresh.length)) node.remove();
  return el;
}

// A table cell labelled for the phone layout, where each row becomes a card whose cells
// show their column's name beside their content.
export function cell(label, attrs, ...children) {
  return h("td", { ...attrs, "data-label": label }, h("div", {}, ...children));
}
