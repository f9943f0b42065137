// The daemons sharing this database, as GET /api/nodes lists them.

import { api } from "./api.js";
import { cell, clear, h } from "./dom.js";
import { icon } from "./icons.js";
import { when } from "./widgets.js";

export async function nodesPage(view, signal) {
  const { nodes } = await api("/api/nodes", { signal });
  const head = ["Node", "State", "Started", "Last heartbeat", "Running runs", "Config", "Version"];
  const differ = nodes.some((n) => !n.same_config);
  clear(
    view,
    h("h1", {}, "Nodes"),
    nodes.length === 1 ? h("p", { class: "note" }, "One daemon uses this database.") : null,
    differ
      ? h("p", { class: "error-box", role: "note" }, "Some nodes run a different configuration from this one: compare their config files.")
      : null,
    h(
      "table",
      { class: "grid nodes" },
      h("caption", { class: "sr-only" }, "Nodes"),
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        nodes.map((n) =>
          h(
            "tr",
            { dataset: { node: n.name } },
            h("th", { scope: "row" }, n.api_url && !n.this_node ? h("a", { href: n.api_url }, n.name) : n.name, n.this_node ? h("span", { class: "tag" }, "this node") : null),
            cell("State", {}, h("span", { class: `badge node-${n.state}` }, icon(n.state), ` ${n.state}`), n.taken_over_by ? h("span", { class: "small muted" }, ` (runs taken over by ${n.taken_over_by})`) : null),
            cell("Started", {}, when(n.started_at)),
            cell("Last heartbeat", {}, when(n.heartbeat_at), h("span", { class: "small muted" }, ` (${n.silent_s.toFixed(1)} s)`)),
            cell("Running runs", { class: "num" }, n.running_runs),
            cell("Config", {}, h("code", {}, n.config_hash ?? "—"), n.same_config ? null : h("span", { class: "tag paused" }, "differs")),
            cell("Version", {}, `${n.version} (pid ${n.pid})`),
          ),
        ),
      ),
    ),
    h("p", {}, h("button", { type: "button", class: "btn", onclick: () => nodesPage(view, signal).catch(() => {}) }, "Refresh")),
  );
}
