// A run's artifacts (the files it left in $CRONWARDEN_ARTIFACTS_DIR): listed when it
// ended, each kept file a download link (fetched with the token, saved under its own
// name), and what was dropped, with why. Read again when the run ends while shown.

import { api, download } from "./api.js";
import { cell, clear, h } from "./dom.js";
import { bytes } from "./fmt.js";
import { failure } from "./widgets.js";

export function artifactsSection(run, signal) {
  const state = h("p", { class: "muted" });
  const kept = h("tbody");
  const dropped = h("ul", { class: "dropped" });
  const table = h(
    "table",
    { class: "grid artifacts", hidden: true },
    h("caption", { class: "sr-only" }, "Artifacts"),
    h("thead", {}, h("tr", {}, ["Name", "Size", "SHA-256"].map((t) => h("th", { scope: "col" }, t)))),
    kept,
  );
  const section = h("section", { "aria-labelledby": "artifacts-h" }, h("h2", { id: "artifacts-h" }, "Artifacts"), state, table, dropped);

  const draw = (listing, ended) => {
    table.hidden = listing.artifacts.length === 0;
    clear(kept, listing.artifacts.map((file) => h("tr", {}, cell("Name", {}, link(run, file.name)), cell("Size", { class: "num" }, bytes(file.size)), cell("SHA-256", {}, h("code", {}, file.sha256)))));
    clear(dropped, listing.dropped.map((file) => h("li", {}, h("code", {}, file.name), file.size === null ? "" : ` (${bytes(file.size)})`, ` dropped: ${file.why}`)));
    const none = !listing.artifacts.length && !listing.dropped.length;
    if (!ended) clear(state, "Listed when the run ends: the files it leaves in $CRONWARDEN_ARTIFACTS_DIR.");
    else clear(state, none ? "It kept no files." : null);
  };
  const load = (now) => {
    const ended = now.status === "ended";
    if (!ended) return draw({ artifacts: [], dropped: [] }, false);
    api(`/api/runs/${now.id}/artifacts`, { signal }).then(
      (listing) => draw(listing, true),
      (error) => signal.aborted || failure(error),
    );
  };
  load(run);
  let shown = run.status === "ended";
  return {
    section,
    ended: (now) => {
      if (shown || now.status !== "ended") return;
      shown = true;
      load(now);
    },
  };
}

function link(run, name) {
  const url = `/api/runs/${run.id}/artifacts/${name.split("/").map(encodeURIComponent).join("/")}`;
  const base = name.slice(name.lastIndexOf("/") + 1);
  const save = (event) => {
    event.preventDefault();
    download(url, base, "application/octet-stream").catch(failure);
  };
  return h("a", { href: url, download: base, onclick: save }, name);
}
