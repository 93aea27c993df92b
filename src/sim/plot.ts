import type { PublishReport } from './report.js'

/*
 * Coverage over time as a small self-contained SVG (no plotting dependency):
 * one step line per publish, guides at 50 / 90 / 99.9 %, optional reference
 * points (e.g. Serf's convergence model). The time axis turns logarithmic
 * when the tail is long (churn), so the first milliseconds stay readable.
 */

export interface Reference { label: string, ms: number, fraction: number }
/** A model's curve drawn dashed beside the simulated ones (e.g. Serf's convergence model). */
export interface ModelCurve { label: string, curve: Array<[number, number]> }

const W = 720
const H = 400
const M = { left: 60, right: 20, top: 30, bottom: 50 }
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf']

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const fmt = (ms: number): string => ms >= 1000 ? `${+(ms / 1000).toFixed(2)} s` : `${+ms.toFixed(2)} ms`

export function coverageSvg (title: string, publishes: PublishReport[], references: Reference[] = [], models: ModelCurve[] = []): string {
  const points = [...publishes.flatMap(p => p.curve), ...models.flatMap(m => m.curve.filter(([, f]) => f <= 0.9995))]
  const maxMs = Math.max(1, ...points.map(([t]) => t), ...references.map(r => r.ms))
  const positive = points.map(([t]) => t).filter(t => t > 0)
  const minMs = Math.max(0.01, Math.min(...positive, maxMs) * 0.8)
  const median = positive.sort((a, b) => a - b)[Math.floor(positive.length / 2)] ?? maxMs
  const log = maxMs / Math.max(median, 1e-9) > 20
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const x = (ms: number): number => M.left + pw * (log
    ? (Math.log10(Math.max(ms, minMs)) - Math.log10(minMs)) / (Math.log10(maxMs * 1.05) - Math.log10(minMs))
    : ms / (maxMs * 1.05))
  const y = (f: number): number => M.top + ph * (1 - f)
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`)
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  out.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${esc(title)}</text>`)
  // Axes and guides.
  for (const f of [0, 0.25, 0.5, 0.75, 0.9, 0.999, 1]) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y(f).toFixed(1)}" y2="${y(f).toFixed(1)}" stroke="${[0.5, 0.9, 0.999].includes(f) ? '#bbb' : '#eee'}" stroke-dasharray="${[0.5, 0.9, 0.999].includes(f) ? '4 3' : ''}"/>`)
    if (f !== 0.999) out.push(`<text x="${M.left - 6}" y="${(y(f) + 4).toFixed(1)}" text-anchor="end">${Math.round(f * 100)} %</text>`)
  }
  for (const t of ticks(log ? minMs : 0, maxMs * 1.05, log)) {
    out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${M.top}" y2="${H - M.bottom}" stroke="#eee"/>`)
    out.push(`<text x="${x(t).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle">${fmt(t)}</text>`)
  }
  out.push(`<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">time since publish${log ? ' (log scale)' : ''}</text>`)
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`)
  // One step line per publish.
  publishes.forEach((p, i) => {
    const c = COLOURS[i % COLOURS.length]
    let d = `M${x(log ? minMs : 0).toFixed(1)},${y(0).toFixed(1)}`
    for (const [t, f] of p.curve) d += ` H${x(t).toFixed(1)} V${y(f).toFixed(1)}`
    out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="1.5"/>`)
    out.push(`<text x="${W - M.right - 6}" y="${M.top + ph - 10 - 14 * i}" text-anchor="end" fill="${c}">publish ${i + 1}</text>`)
  })
  models.forEach((m, i) => {
    const pts = m.curve.filter(([t]) => !log || t >= minMs).map(([t, f]) => `${x(t).toFixed(1)},${y(f).toFixed(1)}`)
    out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="black" stroke-width="1.2" stroke-dasharray="6 4"/>`)
    out.push(`<text x="${M.left + 8}" y="${M.top + 14 + 14 * i}" fill="black">- - ${esc(m.label)}</text>`)
  })
  for (const r of references) {
    out.push(`<circle cx="${x(r.ms).toFixed(1)}" cy="${y(r.fraction).toFixed(1)}" r="5" fill="none" stroke="black" stroke-width="1.5"/>`)
    out.push(`<text x="${(x(r.ms) - 8).toFixed(1)}" y="${(y(r.fraction) + 16).toFixed(1)}" text-anchor="end">${esc(r.label)}</text>`)
  }
  out.push('</svg>')
  return out.join('\n') + '\n'
}

function ticks (from: number, to: number, log: boolean): number[] {
  if (log) {
    const out: number[] = []
    for (let e = Math.floor(Math.log10(from)); 10 ** e <= to; e++) for (const m of [1, 2, 5]) { const t = m * 10 ** e; if (t >= from && t <= to) out.push(t) }
    return out
  }
  const raw = to / 6
  const step = [1, 2, 5, 10].map(m => m * 10 ** Math.floor(Math.log10(raw))).find(s => s >= raw) ?? raw
  const out: number[] = []
  for (let t = 0; t <= to; t += step) out.push(t)
  return out
}
