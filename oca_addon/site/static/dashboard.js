// oca-proxy dashboard: vanilla JS, no build step. State comes embedded in the page, then
// from GET /api/state (a long poll that answers when traffic changes); the mapping editor
// saves with POST /api/settings (x-csrf-token header). Everything is built with DOM calls
// and textContent: names from settings files or OCA are never parsed as HTML.
(() => {
  "use strict";

  let S = JSON.parse(document.getElementById("state").textContent);
  const CSRF = document.querySelector("meta[name=csrf-token]").content;
  const app = document.getElementById("app");
  let draft = null; // the mapping being edited
  let dirty = false;
  let setupTab = "claude";
  let saveStatus = null; // {text, cls}
  let replayStatus = null; // {text, cls}

  // -- helpers ------------------------------------------------------------------------------

  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "value") el.value = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }
  const int = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "—");
  const compact = (n) =>
    typeof n === "number"
      ? new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 }).format(n)
      : "—";
  const duration = (ms) =>
    typeof ms !== "number" ? "—" : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
  const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
  function until(ts) {
    const s = Math.round(ts - Date.now() / 1000);
    if (s <= 0) return "expired";
    if (s < 90) return `${s} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }
  const apiLabel = (api) => (api === "messages" ? "anthropic" : api);
  const clone = (x) => JSON.parse(JSON.stringify(x));

  async function copy(text, btn) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const ta = h("textarea", { value: text });
      document.body.append(ta);
      ta.select();
      document.execCommand("copy");
      ta.remove();
    }
    const old = btn.textContent;
    btn.textContent = "Copied";
    setTimeout(() => (btn.textContent = old), 1200);
  }
  const copyButton = (text, label = "Copy") =>
    h("button", { class: "btn small", type: "button", onclick: (e) => copy(text, e.currentTarget) }, label);

  // -- header and banners -------------------------------------------------------------------

  function header() {
    const L = S.login;
    const pill = L.logged_in
      ? h("span", { class: "pill ok", id: "login-state" }, h("span", { class: "dot" }), "Logged in",
          L.expires_at ? h("span", { class: "sub" }, `· token valid ${until(L.expires_at)}`) : null)
      : h("span", { class: "pill bad", id: "login-state" }, h("span", { class: "dot" }), "Not logged in");
    const actions = h("div", { class: "actions" });
    if (S.urls.mitmweb)
      actions.append(h("a", { class: "btn", id: "mitmweb-link", href: S.urls.mitmweb, target: "_blank", rel: "noopener" }, "Open mitmweb ↗"));
    if (L.logged_in)
      actions.append(
        h("form", { method: "post", action: "/logout" },
          h("input", { type: "hidden", name: "csrf", value: CSRF }),
          h("button", { class: "btn", type: "submit" }, "Log out")));
    else actions.append(h("a", { class: "btn primary", href: "/login" }, "Log in"));
    return h("header", { class: "top" },
      h("div", { class: "brand" }, h("span", { class: "logo" }, "O"), "oca-proxy", h("small", {}, `v${S.version}`)),
      pill, h("span", { class: "chip" }, `${S.mode} mode`), h("div", { class: "spacer" }), actions);
  }

  function banners() {
    const out = [];
    if (!S.login.logged_in)
      out.push(h("section", { class: "banner bad" },
        h("div", { class: "spacer" },
          h("strong", {}, "Sign in to Oracle Code Assist"),
          h("p", {}, `${S.login.problem || "No login yet"}. API calls fail until you sign in; the proxy keeps the login fresh afterwards.`)),
        h("a", { class: "btn primary", href: "/login" }, "Log in")));
    else if (S.login.problem)  // logged in, but e.g. the login is held in memory only
      out.push(h("section", { class: "banner warn", id: "login-problem" },
        h("div", { class: "spacer" },
          h("strong", {}, "The login has a problem"),
          h("p", {}, `${S.login.problem}.`))));
    for (const notice of S.upstream_notices || [])  // the tokens go somewhere not Oracle's
      out.push(h("section", { class: "banner warn upstream-notice" },
        h("div", { class: "spacer" },
          h("strong", {}, "OCA is not reached on Oracle's domains"),
          h("p", {}, notice))));
    if (S.files.settings_error)
      out.push(h("section", { class: "banner warn" },
        h("div", { class: "spacer" },
          h("strong", {}, "The settings file has a problem"),
          h("p", {}, `${S.files.settings_error}. The previous settings stay in force until it is fixed.`))));
    return out;
  }

  // -- overview -----------------------------------------------------------------------------

  function overview() {
    const sum = (k) => S.totals.reduce((a, t) => a + (t[k] || 0), 0);
    const errors = sum("errors");
    const tile = (k, v, cls) => h("div", { class: "tile" }, h("div", { class: "k" }, k), h("div", { class: `v ${cls || ""}` }, v));
    const fact = (k, v, copyable) =>
      [h("dt", {}, k), h("dd", {}, h("span", { class: "mono", title: v || "" }, v || "—"), copyable && v ? copyButton(v) : null)];
    return h("section", { class: "card span-12", id: "overview" },
      h("div", { class: "tiles" },
        tile("Requests", int(sum("requests"))),
        tile("Tokens in", int(sum("input_tokens"))),
        tile("Tokens out", int(sum("output_tokens"))),
        tile("Failed", int(errors), errors ? "bad" : ""),
        tile("In flight", int(S.inflight))),
      h("dl", { class: "facts" },
        fact("OpenAI base URL", S.urls.openai, true),
        fact("Anthropic base URL", S.urls.anthropic, true),
        fact("OCA API", S.urls.oca),
        fact("Login (IDCS)", S.urls.idcs),
        fact("Settings file", S.files.settings),
        fact("Token file", S.files.token),
        S.urls.mitmweb ? [h("dt", {}, "mitmweb"), h("dd", {}, h("a", { href: S.urls.mitmweb, target: "_blank", rel: "noopener" }, S.urls.mitmweb), h("span", { class: "muted small" }, "every call: what the client sent, what went to OCA, what came back"))] : null));
  }

  // -- requests and totals ------------------------------------------------------------------

  function statusChip(r) {
    const s = r.status;
    const cls = !s || s >= 500 ? "bad" : s >= 400 ? "warn" : "ok";
    return h("span", { class: `chip ${cls}`, title: r.error || "" }, s ? String(s) : "failed");
  }

  function requests() {
    const rows = S.recent.map((r) =>
      h("tr", {},
        h("td", { class: "nowrap muted" }, clock(r.started)),
        h("td", {},
          h("div", { class: "mono" }, r.path),
          h("div", { class: "chips" },
            h("span", { class: `chip ${r.route === "native" ? "info" : r.route === "refused" ? "bad" : "accent"}` },
              r.route === "translated" ? `${apiLabel(r.api)} → chat`
                : r.route.startsWith("via ") ? `${apiLabel(r.api)} → ${r.route.slice(4)}`
                : r.route === "refused" ? `${apiLabel(r.api)} · refused` : apiLabel(r.api)),
            r.stream ? h("span", { class: "chip" }, "stream") : null,
            r.retried ? h("span", { class: "chip warn", title: `OCA refused the first try; sent again: ${r.retried}` }, "retried") : null,
            r.learned ? h("span", { class: "chip", title: `changed as OCA said of this model before: ${r.learned}` }, "adapted") : null)),
        h("td", {},
          r.requested_model === r.target_model
            ? h("span", { class: "mono" }, r.target_model)
            : [h("span", { class: "mono" }, r.requested_model), h("span", { class: "arrow" }, "→"), h("span", { class: "mono" }, r.target_model)],
          r.error ? h("div", { class: "err", title: r.error }, r.error) : null),
        h("td", { class: "num nowrap" }, `${int(r.input_tokens)} / ${int(r.output_tokens)}`),
        h("td", { class: "num nowrap" }, duration(r.latency_ms),
          r.stream && typeof r.ttfb_ms === "number" ? h("div", { class: "faint small" }, `first byte ${duration(r.ttfb_ms)}`) : null),
        h("td", { class: "num" }, statusChip(r)),
        h("td", { class: "num" },
          r.flow_id && r.route !== "refused" && r.route !== "replay"
            ? h("button", { class: "small replay", title: "Send the client's request again (a new flow)", onclick: (e) => replay(r, e.target) }, "Replay")
            : null)));
    const body = rows.length
      ? h("div", { class: "table-wrap" },
          h("table", { id: "recent" },
            h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "API"), h("th", {}, "Model"),
              h("th", { class: "num" }, "Tokens in / out"), h("th", { class: "num" }, "Latency"), h("th", { class: "num" }, "Status"), h("th", {}, ""))),
            h("tbody", {}, rows)))
      : h("div", { class: "empty", id: "recent-empty" }, "No requests yet. Point a client at ", h("span", { class: "mono" }, S.urls.proxy), " (see “Set up your tools”).");
    return h("section", { class: "card span-8", id: "requests" },
      h("div", { class: "head" }, h("h2", {}, "Recent requests", h("span", { class: "count" }, S.recent.length ? `${S.recent.length}` : "")),
        h("div", { class: "spacer" }),
        S.urls.mitmweb ? h("a", { class: "small", href: S.urls.mitmweb, target: "_blank", rel: "noopener" }, "Full traffic in mitmweb ↗") : null),
      h("p", { class: "lead" }, "Newest first. Live: the page updates as calls finish."),
      S.view_note ? h("p", { class: "small muted", id: "view-note" }, S.view_note) : null,
      replayStatus ? h("p", { class: `status small ${replayStatus.cls}`, id: "replay-status" }, replayStatus.text) : null,
      body);
  }

  // The call again through the whole pipeline, as a new flow (POST /api/replay).
  async function replay(r, btn) {
    btn.disabled = true;
    let body = {};
    let ok = false;
    try {
      const resp = await fetch("/api/replay", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": CSRF },
        body: JSON.stringify({ flow: r.flow_id }),
        cache: "no-store",
      });
      body = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
      ok = resp.ok && body.ok;
    } catch (e) {
      body = { error: `oca-proxy did not answer (${e})` };
    }
    replayStatus = ok
      ? { text: `Replaying ${r.path} (${r.requested_model}) as flow ${body.flow}: it shows here when it ends.`, cls: "ok" }
      : { text: `Not replayed: ${body.error || "unknown error"}`, cls: "bad" };
    btn.disabled = false;
    replace("requests", requests());
  }

  function totals() {
    const sum = (k) => S.totals.reduce((a, t) => a + (t[k] || 0), 0);
    const body = S.totals.length
      ? h("table", { id: "totals" },
          h("thead", {}, h("tr", {}, h("th", {}, "OCA model"), h("th", { class: "num" }, "Calls"), h("th", { class: "num" }, "In"), h("th", { class: "num" }, "Out"))),
          h("tbody", {}, S.totals.map((t) =>
            h("tr", {},
              h("td", { class: "mono" }, t.model, t.errors ? h("span", { class: "chip bad", title: "failed calls" }, ` ${t.errors} failed`) : null),
              h("td", { class: "num" }, int(t.requests)), h("td", { class: "num" }, int(t.input_tokens)), h("td", { class: "num" }, int(t.output_tokens))))),
          S.totals.length > 1
            ? h("tfoot", {}, h("tr", {}, h("td", {}, "All models"), h("td", { class: "num" }, int(sum("requests"))), h("td", { class: "num" }, int(sum("input_tokens"))), h("td", { class: "num" }, int(sum("output_tokens")))))
            : null)
      : h("div", { class: "empty" }, "Token counts per model appear here.");
    return h("section", { class: "card span-4", id: "totals-card" },
      h("h2", {}, "Tokens per model"),
      h("p", { class: "lead" }, `Since the proxy started at ${clock(S.uptime_since)}.`),
      h("div", { class: "table-wrap" }, body));
  }

  // -- the mapping editor -------------------------------------------------------------------

  function resetDraft() {
    draft = clone(S.settings);
    dirty = false;
  }

  function globRegex(pattern) {
    let re = "";
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern[i];
      if (c === "*") re += ".*";
      else if (c === "?") re += ".";
      else if (c === "[") {
        const j = pattern.indexOf("]", i + 2);
        if (j < 0) re += "\\[";
        else {
          let cls = pattern.slice(i + 1, j);
          if (cls.startsWith("!")) cls = "^" + cls.slice(1);
          re += "[" + cls.replace(/\\/g, "\\\\") + "]";
          i = j;
        }
      } else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    }
    return new RegExp("^" + re + "$", "s");
  }
  const isPattern = (name) => /[*?[]/.test(name);

  // The same rules as config.resolve_model, over the mapping being edited.
  function resolve(name) {
    const d = draft;
    const effort = (e) => e || d.default_reasoning_effort || "";
    if (name.startsWith("oca/")) return { target: name, effort: effort(""), via: "oca/ names pass through" };
    const rows = d.model_mapping.filter((r) => r.name && r.target);
    const exact = rows.find((r) => r.name === name);
    if (exact) return { target: exact.target, effort: effort(exact.reasoning_effort), via: "exact mapping" };
    for (const r of rows) {
      if (isPattern(r.name)) {
        try {
          if (globRegex(r.name.toLowerCase()).test(name.toLowerCase()))
            return { target: r.target, effort: effort(r.reasoning_effort), via: `pattern ${r.name}` };
        } catch { /* a broken pattern matches nothing */ }
      }
    }
    if (S.models.some((m) => m.name === `oca/${name}`)) return { target: `oca/${name}`, effort: effort(""), via: "OCA has this model" };
    return { target: d.default_model, effort: effort(""), via: "default model" };
  }

  function effortSelect(value, onchange, id, noneLabel = "—") {
    return h("select", { id, onchange: (e) => onchange(e.target.value) },
      h("option", { value: "" }, noneLabel),
      S.efforts.map((e) => { const o = h("option", { value: e }, e); if (e === value) o.selected = true; return o; }));
  }

  function markDirty() {
    dirty = true;
    saveStatus = null;
    const save = document.getElementById("save-mapping");
    if (save) save.disabled = false;
    const revert = document.getElementById("revert-mapping");
    if (revert) revert.disabled = false;
    const st = document.getElementById("mapping-status");
    if (st) st.replaceChildren(h("span", { class: "dirty-dot" }), " Unsaved changes");
    const out = document.getElementById("try-result");
    if (out) out.replaceChildren(...tryResult());
  }

  let tryName = "claude-sonnet-4-6";
  function tryResult() {
    if (!tryName) return [h("span", { class: "muted" }, "type a model name")];
    const r = resolve(tryName);
    return [h("span", { class: "arrow" }, "→"), h("strong", { class: "mono" }, r.target),
      r.effort ? h("span", { class: "chip" }, `effort ${r.effort}`) : null, h("span", { class: "muted small" }, `(${r.via})`)];
  }

  function mappingEditor() {
    if (draft === null) resetDraft();
    const d = draft;
    const rerender = () => { markDirty(); replace("mapping", mappingEditor()); };
    const rows = d.model_mapping.map((r, i) =>
      h("tr", { "data-row": i },
        h("td", { class: "name-cell" },
          h("input", { class: "mono map-name", value: r.name, placeholder: "claude-sonnet-4-6 or claude-*", "aria-label": "client model name",
            oninput: (e) => { r.name = e.target.value; r.pattern = isPattern(r.name); markDirty(); } })),
        h("td", { class: "arrow" }, "→"),
        h("td", { class: "target-cell" },
          h("input", { class: "mono map-target", value: r.target, list: "oca-models", placeholder: "oca/…", "aria-label": "OCA model",
            oninput: (e) => { r.target = e.target.value; markDirty(); } })),
        h("td", {}, effortSelect(r.reasoning_effort, (v) => { r.reasoning_effort = v; markDirty(); }, null, "effort: default")),
        h("td", { class: "ops" },
          h("button", { class: "btn icon", type: "button", title: "Move up (patterns are tried in order)", disabled: i === 0,
            onclick: () => { d.model_mapping.splice(i - 1, 0, d.model_mapping.splice(i, 1)[0]); rerender(); } }, "↑"),
          h("button", { class: "btn icon", type: "button", title: "Move down", disabled: i === d.model_mapping.length - 1,
            onclick: () => { d.model_mapping.splice(i + 1, 0, d.model_mapping.splice(i, 1)[0]); rerender(); } }, "↓"),
          h("button", { class: "btn icon", type: "button", title: "Remove", onclick: () => { d.model_mapping.splice(i, 1); rerender(); } }, "✕"))));
    const status = saveStatus
      ? h("div", { class: `status ${saveStatus.cls}`, id: "mapping-status" }, saveStatus.text)
      : dirty ? h("div", { class: "status", id: "mapping-status" }, h("span", { class: "dirty-dot" }), " Unsaved changes")
      : h("div", { class: "status muted", id: "mapping-status" });
    return h("section", { class: "card span-7", id: "mapping" },
      h("h2", {}, "Model mapping"),
      h("p", { class: "lead" }, "Which OCA model each client model name uses: exact names first, then patterns (", h("code", {}, "*"), " ", h("code", {}, "?"), " ", h("code", {}, "[…]"), ") top to bottom, then ", h("code", {}, "oca/<name>"), " if OCA has it, then the default."),
      h("datalist", { id: "oca-models" }, S.models.map((m) => h("option", { value: m.name }))),
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "default-model" }, "Default model"),
          h("input", { class: "mono", id: "default-model", list: "oca-models", value: d.default_model, oninput: (e) => { d.default_model = e.target.value; markDirty(); } })),
        h("div", { class: "field" }, h("label", { for: "default-effort" }, "Default reasoning effort"),
          effortSelect(d.default_reasoning_effort, (v) => { d.default_reasoning_effort = v; markDirty(); }, "default-effort", "none"))),
      h("div", { class: "table-wrap" },
        h("table", { class: "mapping", id: "mapping-table" },
          h("thead", {}, h("tr", {}, h("th", {}, "Client model name"), h("th", {}), h("th", {}, "OCA model"), h("th", {}, "Reasoning"), h("th", {}))),
          h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No mappings: every name goes to the default model."))))),
      h("div", { class: "editor-foot" },
        h("button", { class: "btn", id: "add-mapping", type: "button",
          onclick: () => { d.model_mapping.push({ name: "", target: "", reasoning_effort: "", pattern: false }); rerender();
            const inputs = document.querySelectorAll("#mapping-table .map-name"); if (inputs.length) inputs[inputs.length - 1].focus(); } }, "+ Add mapping"),
        h("div", { class: "spacer" }),
        h("button", { class: "btn", id: "revert-mapping", type: "button", disabled: !dirty, onclick: () => { resetDraft(); saveStatus = null; replace("mapping", mappingEditor()); } }, "Revert"),
        h("button", { class: "btn primary", id: "save-mapping", type: "button", disabled: !dirty, onclick: save }, "Save")),
      status,
      h("div", { class: "try" },
        h("label", { for: "try-name", class: "muted small" }, "Try a name"),
        h("input", { class: "mono", id: "try-name", value: tryName, oninput: (e) => { tryName = e.target.value.trim(); document.getElementById("try-result").replaceChildren(...tryResult()); } }),
        h("span", { id: "try-result" }, tryResult())));
  }

  async function save() {
    const btn = document.getElementById("save-mapping");
    btn.disabled = true;
    const payload = {
      default_model: draft.default_model,
      default_reasoning_effort: draft.default_reasoning_effort,
      model_mapping: draft.model_mapping.map((r) => ({ name: r.name, target: r.target, reasoning_effort: r.reasoning_effort })),
    };
    let body = {};
    let ok = false;
    try {
      const r = await fetch("/api/settings", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": CSRF },
        body: JSON.stringify(payload),
        cache: "no-store",
      });
      body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
      ok = r.ok && body.ok;
    } catch (e) {
      body = { error: `oca-proxy did not answer (${e})` };
    }
    if (ok) {
      S.settings = body.settings;
      resetDraft();
      const warn = body.warnings && body.warnings.length ? ` Not in OCA's model list: ${body.warnings.join(", ")}.` : "";
      saveStatus = { text: `✓ Saved to ${body.saved_to}. The next request uses it.${warn}`, cls: warn ? "bad" : "ok" };
      replace("mapping", mappingEditor());
      replace("setup", setup());
    } else {
      saveStatus = { text: `Not saved: ${body.error || "unknown error"}`, cls: "bad" };
      replace("mapping", mappingEditor());
      document.getElementById("save-mapping").disabled = false;
    }
  }

  // -- setup --------------------------------------------------------------------------------

  function setup() {
    const snippets = S.setup;
    const current = snippets.find((s) => s.id === setupTab) || snippets[0];
    return h("section", { class: "card span-5", id: "setup" },
      h("h2", {}, "Set up your tools"),
      h("p", { class: "lead" }, "Ready to paste, with this proxy's address."),
      h("div", { class: "tabs", role: "tablist" },
        snippets.map((s) => h("button", { class: "tab", role: "tab", type: "button", "aria-selected": String(s.id === current.id), "data-tab": s.id,
          onclick: () => { setupTab = s.id; replace("setup", setup()); } }, s.title))),
      h("div", { class: "code" }, h("pre", { id: `snippet-${current.id}` }, h("code", {}, current.code)), copyButton(current.code)),
      h("p", { class: "note" }, current.note));
  }

  // -- what OCA's refusals taught (addons/retry.py) ---------------------------------------

  let learnedStatus = null;
  async function forget(payload, btn) {
    btn.disabled = true;
    let body = {};
    try {
      const resp = await fetch("/api/learned", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": CSRF },
        body: JSON.stringify(payload),
        cache: "no-store",
      });
      body = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
      if (resp.ok && body.ok) {
        S.learned = body.learned;
        learnedStatus = { text: `Forgotten (${body.forgotten}): the next calls ask OCA as its model list says.`, cls: "ok" };
      } else learnedStatus = { text: `Not forgotten: ${body.error || "unknown error"}`, cls: "bad" };
    } catch (e) {
      learnedStatus = { text: `oca-proxy did not answer (${e})`, cls: "bad" };
    }
    replace("learned-card", learned());
  }

  function learned() {
    const facts = S.learned || [];
    const body = facts.length
      ? h("div", { class: "table-wrap" },
          h("table", { id: "learned" },
            h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", {}, "What OCA said"), h("th", {}, "Learned"), h("th", {}, "Kept until"), h("th", {}, ""))),
            h("tbody", {}, facts.map((f) =>
              h("tr", {},
                h("td", { class: "mono" }, f.model),
                h("td", {}, f.detail),
                h("td", { class: "nowrap muted" }, f.learned_at || ""),
                h("td", { class: "nowrap muted" }, f.expires_at || ""),
                h("td", { class: "num" }, h("button", { class: "small forget", title: `Forget what was learned of ${f.model}`, onclick: (e) => forget({ model: f.model }, e.target) }, "Forget")))))))
      : h("div", { class: "empty", id: "learned-empty" }, S.learning ? "Nothing yet. When OCA refuses a call and says why, oca-proxy retries it without the cause and notes it here." : "Learning is off (oca_learn_from_refusals=false).");
    return h("section", { class: "card span-12", id: "learned-card" },
      h("div", { class: "head" }, h("h2", {}, "Learned from OCA", h("span", { class: "count" }, facts.length ? `${facts.length}` : "")),
        h("div", { class: "spacer" }),
        facts.length > 1 ? h("button", { class: "small", id: "forget-all", onclick: (e) => forget({ all: true }, e.target) }, "Forget all") : null),
      h("p", { class: "lead" }, "OCA's model list is a hint: what OCA itself refused, per model, and how oca-proxy adapts each call since."),
      learnedStatus ? h("p", { class: `status small ${learnedStatus.cls}`, id: "learned-status" }, learnedStatus.text) : null,
      body);
  }

  // -- models -------------------------------------------------------------------------------

  function models() {
    const body = S.models.length
      ? h("div", { class: "table-wrap" },
          h("table", { id: "models" },
            h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", { class: "num" }, "Context"), h("th", { class: "num" }, "Output"),
              h("th", {}, "Vision"), h("th", {}, "Reasoning efforts"), h("th", {}, "APIs"))),
            h("tbody", {}, S.models.map((m) =>
              h("tr", {},
                h("td", {}, h("div", { class: "mono" }, m.name),
                  m.display_name && m.display_name !== m.name ? h("div", { class: "small" }, m.display_name) : null,
                  m.description ? h("div", { class: "muted small" }, m.description) : null,
                  m.banner ? h("div", { class: "model-banner small", title: "OCA's notice for this model" }, "ⓘ ", m.banner) : null),
                h("td", { class: "num", title: int(m.context_window) }, compact(m.context_window)),
                h("td", { class: "num", title: int(m.max_output_tokens) }, compact(m.max_output_tokens)),
                h("td", {}, m.vision ? h("span", { class: "yes", title: "accepts images" }, "✓") : h("span", { class: "faint" }, "—")),
                h("td", {}, m.efforts.length ? h("div", { class: "chips" }, m.efforts.map((e) => h("span", { class: "chip" }, e)))
                  : m.reasoning ? h("span", { class: "chip" }, "reasoning") : h("span", { class: "faint" }, "—")),
                h("td", {}, h("div", { class: "chips" }, m.apis.map((a) => h("span", { class: "chip info" }, a)),
                  m.caching ? h("span", { class: "chip", title: "prompt caching" }, "caching") : null)))))))
      : h("div", { class: "empty" }, S.login.logged_in ? "OCA's model list could not be loaded right now." : "Log in to see OCA's models.");
    return h("section", { class: "card span-12", id: "models-card" },
      h("h2", {}, "OCA models", h("span", { class: "count" }, S.models.length ? `${S.models.length}` : "")),
      h("p", { class: "lead" }, "What your OCA account offers. Clients whose API a model does not speak natively are translated to chat."),
      body);
  }

  // -- page ---------------------------------------------------------------------------------

  function replace(id, el) {
    const old = document.getElementById(id);
    if (old) old.replaceWith(el);
  }

  function render() {
    app.replaceChildren(
      header(),
      h("main", {},
        banners(),
        overview(),
        requests(),
        totals(),
        mappingEditor(),
        setup(),
        models(),
        learned(),
        h("footer", {}, `oca-proxy ${S.version} · `, h("a", { href: "/health" }, "/health"), " · ", h("a", { href: "https://mitmproxy.org", rel: "noopener" }, "a mitmproxy addon"))));
    document.body.dataset.ready = "1";
  }

  function apply(next) {
    const settingsChanged = JSON.stringify(next.settings) !== JSON.stringify(S.settings);
    S = next;
    if (settingsChanged && !dirty) resetDraft();
    // Re-render everything except an editor with unsaved changes (keeps focus and edits).
    const active = document.activeElement && document.activeElement.id;
    const keep = document.getElementById("mapping");
    render();
    if (dirty && keep) replace("mapping", keep);
    if (active && document.getElementById(active) && !(dirty && keep)) document.getElementById(active).focus();
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  async function poll() {
    for (;;) {
      if (document.hidden) { await sleep(1000); continue; }
      try {
        const r = await fetch(`/api/state?after=${encodeURIComponent(S.seq)}`, { cache: "no-store" });
        if (r.ok) apply(await r.json());
        else await sleep(5000);
      } catch {
        await sleep(5000);
      }
    }
  }

  render();
  setInterval(() => { const el = document.querySelector(".top"); if (el) el.replaceWith(header()); }, 30000);
  poll();
})();
