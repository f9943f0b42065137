// The dashboard's icons, drawn as inline SVG: a symbol from a font shows as an empty box
// where the font lacks it (U+29D7, the hourglass, in Debian's default fonts), a path draws
// everywhere.  Each is a 16x16 outline in the text's colour, hidden from assistive
// technology: the word beside it says the same.

import { svg } from "./dom.js";

const CIRCLE = ["circle", { cx: 8, cy: 8, r: 6 }];
const line = (d) => ["path", { d }];
const solid = (d) => ["path", { d, class: "solid" }];

const SHAPES = {
  pending: [CIRCLE, line("M8 4.5V8l2.5 1.5")],
  running: [solid("M5 3.2v9.6L12.8 8z")],
  success: [line("M3 8.5l3.2 3.2L13 4.6")],
  failed: [line("M4.2 4.2l7.6 7.6M11.8 4.2l-7.6 7.6")],
  timeout: [line("M4.5 2h7M4.5 14h7M5.5 2c0 3.5 5 3.8 5 6s-5 2.5-5 6M10.5 2c0 3.5-5 3.8-5 6s5 2.5 5 6")],
  stopped: [solid("M4 4h8v8H4z")],
  crashed: [line("M8 2.2l6.3 11.3H1.7z"), line("M8 6.5v3.2M8 11.8v.1")],
  skipped: [line("M2.5 11a5.5 5.5 0 0 1 10-3.2"), line("M13 3.5V8H8.5")],
  log_overflow: [line("M2 5q1.5-1.6 3 0t3 0 3 0 3 0M2 8q1.5-1.6 3 0t3 0 3 0 3 0M2 11q1.5-1.6 3 0t3 0 3 0 3 0")],
  missed: [CIRCLE, line("M3 13L13 3")],
  expired: [CIRCLE, line("M8 4.5V8M5 11l6-6")],
  paused: [line("M5.5 3.5v9M10.5 3.5v9")],
  stuck: [line("M4.5 2h7M4.5 14h7M5.5 2c0 3.5 5 3.8 5 6s-5 2.5-5 6M10.5 2c0 3.5-5 3.8-5 6s5 2.5 5 6"), line("M13.5 10.5v2")],
  overdue: [CIRCLE, line("M8 4.5V8.5M8 11v.1")],
  alive: [["circle", { cx: 8, cy: 8, r: 4.5, class: "solid" }]],
  lapsed: [["circle", { cx: 8, cy: 8, r: 4.5 }]],
  dead: [line("M4.5 4.5l7 7M11.5 4.5l-7 7")],
  close: [line("M4 4l8 8M12 4l-8 8")],
  next: [line("M6 3.5L10.5 8 6 12.5")],
};
SHAPES.failing = SHAPES.failed;

export function icon(name) {
  const shapes = SHAPES[name] ?? [CIRCLE];
  return svg(
    "svg",
    { class: `icon i-${name}`, viewBox: "0 0 16 16", width: 16, height: 16, "aria-hidden": "true", focusable: "false" },
    shapes.map(([tag, attrs]) => svg(tag, attrs)),
  );
}
