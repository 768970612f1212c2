// Small DOM helpers for updating in place: live refreshes change text and reorder rows
// but keep the elements, so focus, selection and scroll position survive.

export const byId = (id) => document.getElementById(id);

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function setAttr(el, name, value) {
  const v = value === null || value === undefined ? null : String(value);
  if (v === null) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== v) el.setAttribute(name, v);
}

export function show(el, visible) {
  if (el.hidden === visible) el.hidden = !visible;
}

/**
 * Make `tbody` hold one row per item, in order, reusing rows by key. `create(item)` builds
 * a new row; `update(row, item)` refreshes one (called for new rows too).
 */
export function syncRows(tbody, items, keyOf, create, update) {
  const existing = new Map();
  for (const row of tbody.rows) existing.set(row.dataset.key, row);
  const wanted = new Set();
  let cursor = tbody.firstElementChild;
  for (const item of items) {
    const key = String(keyOf(item));
    wanted.add(key);
    let row = existing.get(key);
    if (!row) {
      row = create(item);
      row.dataset.key = key;
    }
    update(row, item);
    if (row !== cursor) tbody.insertBefore(row, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const [key, row] of existing) if (!wanted.has(key)) row.remove();
}
