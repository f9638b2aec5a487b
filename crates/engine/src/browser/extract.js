// Accord's `extract` step in the page: every field of the step in one
// round trip. Run with Runtime.evaluate as `(this function)(spec)`:
//
//   spec = { maxBytes, fields: [[name, field], ...], wantBody }
//   field = { selector, read: 'text' | 'html' | ['attribute', name], all }
//         | { items: { selector, fields: [[name, field], ...] } }
//
// A field with no `selector` inside `items` reads the record's element.
// Text is read as a user reads it: rendered text, whitespace collapsed.
// Answers { values: {name: value}, body? } or { error: 'selector', selector }
// or { error: 'limit' } once the text read passes `maxBytes`.
(spec) => {
  let bytes = 0;
  let over = false;
  const clean = (value) => {
    if (value === null || value === undefined) return null;
    const text = String(value).replace(/\u0000/g, '\uFFFD');
    bytes += text.length;
    if (bytes > spec.maxBytes) over = true;
    return text;
  };
  const read = (el, how) => {
    if (how === 'html') return el.innerHTML;
    if (Array.isArray(how)) return el.getAttribute(how[1]);
    const text = el.innerText !== undefined ? el.innerText : el.textContent;
    return (text || '').replace(/\s+/g, ' ').trim();
  };
  const css = (root, field) => {
    if (field.all) {
      const out = [];
      const matches = field.selector === undefined ? [root] : root.querySelectorAll(field.selector);
      for (const el of matches) {
        const value = read(el, field.read);
        // Elements without the attribute are left out of lists.
        if (value !== null) out.push(clean(value));
        if (over) break;
      }
      return out;
    }
    const el = field.selector === undefined ? root : root.querySelector(field.selector);
    return el ? clean(read(el, field.read)) : null;
  };
  const items = (root, field) => {
    const out = [];
    for (const el of root.querySelectorAll(field.items.selector)) {
      const record = {};
      for (const [name, sub] of field.items.fields) {
        record[name] = css(el, sub);
        if (over) return out;
      }
      out.push(record);
    }
    return out;
  };
  const values = {};
  for (const [name, field] of spec.fields) {
    try {
      values[name] = field.items ? items(document, field) : css(document, field);
    } catch (e) {
      if (e instanceof DOMException && e.name === 'SyntaxError') {
        return { error: 'selector', field: name };
      }
      throw e;
    }
    if (over) return { error: 'limit' };
  }
  const answer = { values };
  if (spec.wantBody) {
    // A JSON (or text) response is shown as a <pre> of its body.
    const pre = document.body && document.body.children.length === 1 && document.body.firstElementChild.tagName === 'PRE'
      ? document.body.firstElementChild : null;
    answer.contentType = document.contentType;
    answer.body = pre ? pre.textContent : (document.body ? document.body.textContent : '');
  }
  return answer;
}
