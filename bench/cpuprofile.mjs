#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof): top functions by self time
// and by inclusive time, optionally only inside a time window.
//
//   node bench/cpuprofile.mjs FILE.cpuprofile [--top 25] [--from MS] [--to MS] [--windows FILE] [--filter TEXT] [--callers TEXT] [--depth N]
//
// --from/--to are milliseconds since the profile started. --windows keeps
// only samples inside the windows listed in FILE, a JSON array of
// [fromUs, toUs] on the monotonic clock V8 stamps profiles with
// (process.hrtime in µs; propagation.mjs --cpu-prof writes such files). --filter keeps
// only functions whose name or URL contains TEXT in the inclusive table.
// --callers prints the heaviest call stacks (--depth frames, default 8) through functions
// whose label contains TEXT.
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from './lib.mjs'

export function summarise (profile, { from = 0, to = Infinity, windows, callers = '', depth = 8 } = {}) {
  // Windows on the profile's own time line, in ms since it started.
  const spans = (windows ?? [[-Infinity, Infinity]]).map(([a, b]) => [(a - profile.startTime) / 1000, (b - profile.startTime) / 1000])
  const inWindow = (t) => t >= from && t <= to && spans.some(([a, b]) => t >= a && t <= b)
  const nodes = new Map(profile.nodes.map(n => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map()
  const total = new Map()
  const stacks = new Map()
  let t = 0
  let sampled = 0
  const label = (n) => {
    const f = n.callFrame
    const url = f.url === '' ? '' : ` ${path.basename(f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}`
    return `${f.functionName || '(anonymous)'}${url}`
  }
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000
    t += dt
    if (!inWindow(t)) continue
    sampled += dt
    let id = profile.samples[i]
    const n = nodes.get(id)
    self.set(label(n), (self.get(label(n)) ?? 0) + dt)
    const onStack = new Set()
    const chain = []
    while (id !== undefined) {
      const l = label(nodes.get(id))
      chain.push(l)
      if (!onStack.has(l)) { onStack.add(l); total.set(l, (total.get(l) ?? 0) + dt) }
      id = parent.get(id)
    }
    if (callers !== '') {
      const at = chain.findIndex(l => l.includes(callers))
      if (at >= 0) {
        const key = chain.slice(at, at + depth).join('\n      <- ')
        stacks.set(key, (stacks.get(key) ?? 0) + dt)
      }
    }
  }
  return { self, total, stacks, sampled, windows: spans.length, durationMs: (profile.endTime - profile.startTime) / 1000 }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2]
  if (file === undefined || file.startsWith('--')) { console.error('usage: node bench/cpuprofile.mjs FILE.cpuprofile [--top N] [--from MS] [--to MS] [--windows FILE] [--filter TEXT] [--callers TEXT] [--depth N]'); process.exit(2) }
  const o = parseArgs({ top: 25, from: 0, to: Infinity, windows: '', filter: '', callers: '', depth: 8 }, process.argv.slice(3))
  const windows = o.windows === '' ? undefined : JSON.parse(fs.readFileSync(o.windows, 'utf8'))
  const s = summarise(JSON.parse(fs.readFileSync(file, 'utf8')), { ...o, windows })
  const sorted = (m) => [...m].sort((a, b) => b[1] - a[1])
  const busy = s.sampled - (s.self.get('(idle)') ?? 0)
  const per = windows === undefined ? '' : ` (${(busy / s.windows).toFixed(1)} ms per window, ${s.windows} windows)`
  console.log(`${path.basename(file)}: ${s.durationMs.toFixed(0)} ms profiled, ${s.sampled.toFixed(0)} ms in window, ${busy.toFixed(0)} ms not idle${per}`)
  console.log('\nself time')
  for (const [k, v] of sorted(s.self).slice(0, o.top)) console.log(`${v.toFixed(1).padStart(9)} ms  ${k}`)
  console.log(`\ninclusive time${o.filter ? ` (matching "${o.filter}")` : ''}`)
  for (const [k, v] of sorted(s.total).filter(([k]) => k.includes(o.filter)).slice(0, o.top)) console.log(`${v.toFixed(1).padStart(9)} ms  ${k}`)
  if (o.callers !== '') {
    console.log(`\nheaviest stacks through "${o.callers}"`)
    for (const [k, v] of sorted(s.stacks).slice(0, 8)) console.log(`${v.toFixed(1).padStart(9)} ms  ${k}`)
  }
}
