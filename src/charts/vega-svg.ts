/**
 * The one charting library of modeldock: Vega-Lite specifications rendered to SVG by
 * Vega in Node.js (no browser, no canvas). The benchmark charts (bench/lib) and the web
 * console's charts (rendered by the router, see api/routes/console.ts) both come from
 * here, so they look alike and nothing draws SVG by hand.
 *
 * Vega is loaded on the first chart, not with the router: a router nobody looks at in a
 * browser never pays for it.
 */
import type * as Vega from 'vega';
import type * as VegaLite from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

/** Okabe and Ito's palette: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = [
  '#0072B2',
  '#E69F00',
  '#009E73',
  '#D55E00',
  '#56B4E9',
  '#CC79A7',
  '#F0E442',
  '#000000',
];

/** Shared look: fonts that every SVG viewer has, quiet axes, the palette above. */
export const BASE_CONFIG = {
  font: 'DejaVu Sans, Helvetica, Arial, sans-serif',
  background: 'white',
  padding: 12,
  range: { category: PALETTE },
  axis: {
    labelColor: '#333',
    titleColor: '#333',
    gridColor: '#e3e3e3',
    domainColor: '#888',
    tickColor: '#888',
    // Operation and path names are long: read whole, never cut short.
    labelLimit: 360,
  },
  legend: { orient: 'top', labelLimit: 360 },
  title: { anchor: 'start', fontSize: 15, subtitleColor: '#555', subtitleFontSize: 12 },
  view: { stroke: null },
} as const;

let engines: Promise<{ vega: typeof Vega; vegaLite: typeof VegaLite }> | undefined;

function load() {
  engines ??= Promise.all([import('vega'), import('vega-lite')]).then(([vega, vegaLite]) => ({
    vega,
    vegaLite,
  }));
  return engines;
}

/** Renders a Vega-Lite spec (with BASE_CONFIG under its own config) to SVG text. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const { vega, vegaLite } = await load();
  const withConfig = { ...spec, config: { ...BASE_CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec;
  const compiled = vegaLite.compile(withConfig).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
