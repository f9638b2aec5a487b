// Accord's helpers for browser steps, run in the page with Runtime.evaluate
// as `(this function)(op, args)`. Each call is one round trip and returns
// plain JSON. Selectors that the browser cannot parse answer
// `{badSelector: true}`; everything else a step needs to report comes back
// as data, never as a thrown error.
async (op, args) => {
  const collapse = (text) => (text || '').replace(/\s+/g, ' ').trim();
  const visible = (el) => {
    if (!el || !el.isConnected) return false;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || style.visibility === 'collapse') {
      return false;
    }
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  const pageText = () => collapse(document.body ? document.body.innerText : document.documentElement ? document.documentElement.innerText : '');
  const state = (selector) => {
    const el = document.querySelector(selector);
    return el ? (visible(el) ? 'visible' : 'hidden') : 'missing';
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  // Polls `check` until it returns something other than undefined, or the
  // deadline passes. Polling (not observers) also sees style changes.
  const until = async (check, timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = check();
      if (found !== undefined) return found;
      if (Date.now() >= deadline) return undefined;
      await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
    }
  };
  const ops = {
    // Waits for an element to be visible (or hidden), or text to appear.
    async wait(a) {
      const met = await until(() => {
        if (a.text !== undefined) return pageText().includes(collapse(a.text)) ? true : undefined;
        const now = state(a.selector);
        if (a.hidden) return now !== 'visible' ? true : undefined;
        return now === 'visible' ? true : undefined;
      }, a.timeoutMs);
      return met ? { ok: true } : { timedOut: true, state: a.selector ? state(a.selector) : undefined };
    },
    // Waits for an element to be visible, scrolls it into view, and says
    // where its centre is, for a mouse action.
    async point(a) {
      const el = await until(() => {
        const el = document.querySelector(a.selector);
        return visible(el) ? el : undefined;
      }, a.timeoutMs);
      if (!el) return { timedOut: true, state: state(a.selector) };
      el.scrollIntoView({ block: 'center', inline: 'center', behavior: 'instant' });
      const box = el.getBoundingClientRect();
      return { x: box.left + box.width / 2, y: box.top + box.height / 2 };
    },
    // Waits for an element to exist (shown or not).
    async present(a) {
      const el = await until(() => document.querySelector(a.selector) || undefined, a.timeoutMs);
      return el ? { ok: true } : { timedOut: true, state: 'missing' };
    },
    fill(a) {
      const el = document.querySelector(a.selector);
      if (!el) return { problem: 'is gone' };
      const textual = (el instanceof HTMLInputElement && !['checkbox', 'radio', 'file', 'submit', 'button', 'image', 'reset', 'hidden', 'range', 'color'].includes(el.type))
        || el instanceof HTMLTextAreaElement;
      if (!textual && !el.isContentEditable) return { problem: 'is not a text field' };
      if (el.disabled || el.readOnly) return { problem: 'is disabled or read-only' };
      el.focus();
      if (textual) {
        // The native setter, so frameworks that track the value see the change.
        const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
        Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, a.value);
        if (el.value !== a.value) return { problem: `does not accept the value (it holds ${JSON.stringify(el.value)})` };
      } else {
        el.textContent = a.value;
      }
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
      return { ok: true };
    },
    select(a) {
      const el = document.querySelector(a.selector);
      if (!el) return { problem: 'is gone' };
      if (!(el instanceof HTMLSelectElement)) return { problem: 'is not a select element' };
      if (el.disabled) return { problem: 'is disabled' };
      const option = Array.from(el.options).find((o) => o.value === a.value);
      if (!option) {
        const values = Array.from(el.options).slice(0, 20).map((o) => JSON.stringify(o.value)).join(', ');
        return { problem: `has no option with the value ${JSON.stringify(a.value)} (it has ${values})` };
      }
      if (option.disabled) return { problem: `has the option ${JSON.stringify(a.value)} disabled` };
      el.focus();
      option.selected = true;
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
      return { ok: true };
    },
    // Ticks or clears a checkbox (or chooses a radio button) with a click,
    // so the page's handlers run, then checks that it took.
    check(a) {
      const el = document.querySelector(a.selector);
      if (!el) return { problem: 'is gone' };
      if (!(el instanceof HTMLInputElement) || !['checkbox', 'radio'].includes(el.type)) {
        return { problem: 'is not a checkbox or radio button' };
      }
      if (el.disabled) return { problem: 'is disabled' };
      if (!a.checked && el.type === 'radio') return { problem: 'is a radio button: choose another option instead' };
      if (el.checked !== a.checked) el.click();
      if (el.checked !== a.checked) return { problem: `did not become ${a.checked ? 'checked' : 'unchecked'}` };
      return { ok: true };
    },
    focus(a) {
      const el = document.querySelector(a.selector);
      if (!el) return { problem: 'is gone' };
      el.focus();
      return { ok: true };
    },
    submit(a) {
      const el = a.selector === undefined ? document.activeElement : document.querySelector(a.selector);
      if (a.selector !== undefined && !el) return { problem: 'is gone' };
      const form = el instanceof HTMLFormElement ? el : el && (el.form || el.closest('form'));
      if (!form) return { problem: a.selector === undefined ? 'no form has the focus' : 'is not a form nor in one' };
      if (!form.checkValidity()) {
        const bad = form.querySelector(':invalid');
        const name = bad ? bad.name || bad.id || bad.tagName.toLowerCase() : 'a field';
        return { problem: `is not valid: ${name}: ${bad ? bad.validationMessage : ''}` };
      }
      form.requestSubmit();
      return { ok: true };
    },
    // One round of `scroll`: to the bottom, then wait for the page to grow.
    async scroll(a) {
      const root = document.scrollingElement || document.documentElement;
      const before = root.scrollHeight;
      window.scrollTo(0, before);
      const grew = await until(() => (root.scrollHeight > before ? true : undefined), a.settleMs);
      return { grew: !!grew, height: root.scrollHeight };
    },
    checks(a) {
      const out = {};
      if (a.text !== undefined || a.textAbsent !== undefined) {
        const text = pageText();
        if (a.text !== undefined) out.text = text.includes(collapse(a.text));
        if (a.textAbsent !== undefined) out.textAbsent = !text.includes(collapse(a.textAbsent));
        out.snippet = text.slice(0, 200);
      }
      if (a.selector !== undefined) out.selector = document.querySelector(a.selector) !== null;
      if (a.selectorAbsent !== undefined) out.selectorAbsent = document.querySelector(a.selectorAbsent) === null;
      return out;
    },
    // The size of the whole page, for a full-page screenshot.
    pageSize() {
      const root = document.scrollingElement || document.documentElement;
      const body = document.body;
      return {
        width: Math.max(root.scrollWidth, body ? body.scrollWidth : 0),
        height: Math.max(root.scrollHeight, body ? body.scrollHeight : 0),
      };
    },
    // Where an element is in the page (not the viewport), for a screenshot.
    async box(a) {
      const el = await until(() => {
        const el = document.querySelector(a.selector);
        return visible(el) ? el : undefined;
      }, a.timeoutMs);
      if (!el) return { timedOut: true, state: state(a.selector) };
      const box = el.getBoundingClientRect();
      return { x: box.left + window.scrollX, y: box.top + window.scrollY, width: box.width, height: box.height };
    },
    // What a step needs to know about the page after a load.
    loaded() {
      const entry = performance.getEntriesByType('navigation')[0];
      return { url: location.href, status: entry ? entry.responseStatus || 0 : 0 };
    },
    // The absolute address the first element matching the selector links
    // to (its href, else its src), resolved against the document's base.
    link(a) {
      const el = document.querySelector(a.selector);
      if (!el) return { missing: true };
      const raw = el.getAttribute('href') ?? el.getAttribute('src');
      if (raw === null || raw.trim() === '') return { problem: 'has no link to follow (no `href` or `src`)' };
      try {
        return { url: new URL(raw.trim(), document.baseURI).href };
      } catch (e) {
        return { problem: 'links to an address that does not parse' };
      }
    },
    html(a) {
      let html = '';
      if (document.doctype) html = new XMLSerializer().serializeToString(document.doctype);
      if (document.documentElement) html += document.documentElement.outerHTML;
      return html.length > a.maxChars ? html.slice(0, a.maxChars) : html;
    },
  };
  try {
    return await ops[op](args);
  } catch (e) {
    if (e instanceof DOMException && e.name === 'SyntaxError') return { badSelector: true };
    throw e;
  }
}
