// The daemons sharing this database, as GET /api/nodes lists them.

import { api, ApiError } from "./api.js";
import { clear, h } from "./dom.js";
import { when } from "./widgets.js";

export async function nodesPage(view, signal) {
  let nodes;
  try {
    ({ nodes } = await api("/api/nodes", { signal }));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    const info = await api("/api/info", { signal });
    clear(view, h("h1", {}, "Nodes"), h("p", {}, `This daemon (${info.node}) runs alone: no other node shares its database.`));
    return;
  }
  const head = ["Node", "State", "Started", "Last heartbeat", "Running runs", "Config", "Version"];
  const hashes = new Set(nodes.map((n) => n.config_hash));
  clear(
    view,
    h("h1", {}, "Nodes"),
    hashes.size > 1 ? h("p", { class: "error-box", role: "note" }, "The nodes run different configurations: compare their config files.") : null,
    h(
      "table",
      { class: "grid" },
      h("caption", { class: "sr-only" }, "Nodes"),
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        nodes.map((n) =>
          h(
            "tr",
            {},
            h("th", { scope: "row", "data-label": "Node" }, n.name),
            h("td", { "data-label": "State" }, h("span", { class: `badge node-${n.state}` }, n.state)),
            h("td", { "data-label": "Started" }, when(n.started_at)),
            h("td", { "data-label": "Last heartbeat" }, when(n.heartbeat_at)),
            h("td", { "data-label": "Running runs", class: "num" }, n.running_runs),
            h("td", { "data-label": "Config" }, h("code", {}, n.config_hash ?? "—")),
            h("td", { "data-label": "Version" }, n.version),
          ),
        ),
      ),
    ),
  );
  view.append(h("p", {}, h("button", { type: "button", class: "btn", onclick: () => nodesPage(view, signal) }, "Refresh")));
}
