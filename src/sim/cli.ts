import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { PROFILE_NAMES, type ProfileName } from '../config/tuning.js'
import { coverageSvg, type ModelCurve, type Reference } from './plot.js'
import { serfCurve, serfTimeTo } from './serf-model.js'
import { DEFAULT_OPTIONS, simulate, type SimOptions } from './simulate.js'
import type { PublishReport, SimReport } from './report.js'

/*
 * npm run simulate -- --nodes 1000 [--seed S] [--latency-ms 0.3 --jitter-ms 0.1]
 *   [--loss 0.01] [--churn 0.05] [--partition 0.5:60000] [--profile lan|local]
 *   [--publishes K] [--out docs/sim/NAME]
 * Prints a table; with --out writes NAME.md (table), NAME.svg (coverage plot)
 * and NAME.json (the full report).
 */

const USAGE = `usage: npm run simulate -- [--nodes 1000] [--seed 1] [--latency-ms 0.3] [--jitter-ms 0.1] [--loss 0] [--rto-ms 200]
  [--churn 0] [--away-ms 30000] [--partition FRACTION:DURATION_MS] [--profile ${PROFILE_NAMES.join('|')}]
  [--fanout N] [--push-pull-ms MS] [--target-peers N] [--publishes 5] [--size 1024]
  [--settle-ms 2000] [--horizon-ms 300000] [--gap-ms 1000]
  [--cpu-frame-ms MS --cpu-stream-ms MS [--cores N]] [--reference LABEL:MS:FRACTION] [--serf] [--title T] [--out docs/sim/NAME]`

function options (argv: string[]): { sim: SimOptions, out: string | undefined, title: string | undefined, references: Reference[], serf: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: Object.fromEntries(['nodes', 'seed', 'latency-ms', 'jitter-ms', 'loss', 'rto-ms', 'churn', 'away-ms', 'partition', 'profile', 'fanout',
      'push-pull-ms', 'target-peers', 'publishes', 'size', 'settle-ms', 'horizon-ms', 'gap-ms', 'cpu-frame-ms', 'cpu-stream-ms', 'cores', 'out', 'title']
      .map(k => [k, { type: 'string' as const }]).concat([['reference', { type: 'string' as const, multiple: true }], ['serf', { type: 'boolean' as const }], ['help', { type: 'boolean' as const }]] as never[]))
  }) as { values: Record<string, string | string[] | boolean | undefined> }
  if (values.help === true) { console.log(USAGE); process.exit(0) }
  const num = (k: string, d: number): number => {
    const v = values[k]
    if (v === undefined) return d
    const n = Number(v)
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} must be a non-negative number`)
    return n
  }
  const d = DEFAULT_OPTIONS
  const profile = (values.profile ?? d.profile) as ProfileName
  if (!PROFILE_NAMES.includes(profile)) throw new Error(`--profile is one of ${PROFILE_NAMES.join(', ')}`)
  let partition: SimOptions['partition']
  if (typeof values.partition === 'string') {
    const [f, ms] = values.partition.split(':').map(Number)
    if (!(f > 0 && f < 1) || !(ms >= 0)) throw new Error('--partition is FRACTION:DURATION_MS, e.g. 0.5:60000')
    partition = { fraction: f, durationMs: ms }
  }
  const overrides: SimOptions['overrides'] = {}
  if (values.fanout !== undefined) overrides.pushFanout = num('fanout', 0)
  if (values['push-pull-ms'] !== undefined) overrides.pushPullIntervalMs = num('push-pull-ms', 0)
  if (values['target-peers'] !== undefined) overrides.targetPeers = num('target-peers', 0)
  const cpu = values['cpu-frame-ms'] !== undefined || values['cpu-stream-ms'] !== undefined
    ? { frameMs: num('cpu-frame-ms', 0), streamMs: num('cpu-stream-ms', 0), cores: values.cores === undefined ? undefined : num('cores', 1) }
    : undefined
  const references = ((values.reference ?? []) as string[]).map(r => {
    const [label, ms, fraction] = r.split(':')
    return { label, ms: Number(ms), fraction: Number(fraction) }
  })
  return {
    sim: {
      nodes: num('nodes', d.nodes),
      seed: num('seed', d.seed),
      link: { latencyMs: num('latency-ms', d.link.latencyMs), jitterMs: num('jitter-ms', d.link.jitterMs), loss: num('loss', d.link.loss), rtoMs: num('rto-ms', d.link.rtoMs) },
      cpu,
      churn: num('churn', d.churn),
      awayMs: num('away-ms', d.awayMs),
      partition,
      profile,
      overrides,
      publishes: num('publishes', d.publishes),
      sizeBytes: num('size', d.sizeBytes),
      settleMs: num('settle-ms', partition !== undefined ? 10_000 : d.settleMs),
      horizonMs: num('horizon-ms', d.horizonMs),
      gapMs: num('gap-ms', d.gapMs)
    },
    out: values.out as string | undefined,
    title: values.title as string | undefined,
    references,
    serf: values.serf === true
  }
}

const ms = (v: number | null): string => v === null ? 'never' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(2)} ms`
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const medianOrNull = (xs: Array<number | null>): number | null => xs.some(x => x === null) ? null : median(xs as number[])

/** The markdown table: one row per publish, then the median row. */
export function table (r: SimReport): string {
  const churn = r.publishes.some(p => p.catchUp !== undefined)
  const part = r.publishes.some(p => p.partition !== undefined)
  const head = ['publish', 'nodes counted', '50 %', '90 %', '99.9 %', '100 %', 'frames / node', 'KiB / node', 'streams / node', 'duplicates / node', 'push-pull rounds']
  if (churn) head.push('away at publish', 'catch-up after return (median / max)')
  if (part) head.push('repaired after heal')
  const row = (label: string, p: Omit<PublishReport, 'curve' | 'atMs' | 'byProtocol'>): string[] => {
    const cells = [label, `${p.reached} / ${p.population}`, ms(p.t50), ms(p.t90), ms(p.t999), ms(p.t100), p.perNode.frames.toFixed(2),
      (p.perNode.bytes / 1024).toFixed(2), p.perNode.streams.toFixed(2), (p.duplicates / r.nodes).toFixed(2), String(p.rounds)]
    if (churn) cells.push(String(p.catchUp?.away ?? ''), p.catchUp === undefined ? '' : `${p.catchUp.caughtUp} back: ${ms(p.catchUp.medianMs)} / ${ms(p.catchUp.maxMs)}`)
    if (part) cells.push(p.partition === undefined ? '' : p.partition.repairedAfterMs === null ? `never (healed at ${ms(p.partition.healedAtMs)}; ${p.partition.roundsAfterHeal} rounds after)` : `${ms(p.partition.repairedAfterMs)} (${p.partition.intervalsAfterHeal} intervals, ${p.partition.roundsAfterHeal} rounds fleet-wide)`)
    return cells
  }
  const rows = r.publishes.map((p, i) => row(String(i + 1), p))
  const ps = r.publishes
  if (ps.length > 1) {
    rows.push(row('median', {
      population: median(ps.map(p => p.population)),
      reached: median(ps.map(p => p.reached)),
      t50: medianOrNull(ps.map(p => p.t50)),
      t90: medianOrNull(ps.map(p => p.t90)),
      t999: medianOrNull(ps.map(p => p.t999)),
      t100: medianOrNull(ps.map(p => p.t100)),
      perNode: { frames: median(ps.map(p => p.perNode.frames)), bytes: median(ps.map(p => p.perNode.bytes)), streams: median(ps.map(p => p.perNode.streams)) },
      duplicates: median(ps.map(p => p.duplicates)),
      rounds: median(ps.map(p => p.rounds))
    }).map(c => c === '' ? '' : `**${c}**`))
  }
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map(c => `| ${c.join(' | ')} |`)].join('\n') + '\n'
}

async function main (): Promise<void> {
  let parsed
  try {
    parsed = options(process.argv.slice(2))
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`)
    process.exit(2)
  }
  const { sim, out, references } = parsed
  const models: ModelCurve[] = parsed.serf ? [{ label: `Serf's convergence model, LAN defaults (200 ms rounds, fanout 3), N = ${sim.nodes}`, curve: serfCurve(sim.nodes, sim.link.loss) }] : []
  const serfLine = parsed.serf
    ? `Serf's convergence model at the same N and loss: 50 % at ${ms(serfTimeTo(0.5, sim.nodes, sim.link.loss))}, 90 % at ${ms(serfTimeTo(0.9, sim.nodes, sim.link.loss))}, 99.9 % at ${ms(serfTimeTo(0.999, sim.nodes, sim.link.loss))}.\n\n`
    : ''
  const { link } = sim
  const what = [`${sim.nodes} nodes`, `latency ${link.latencyMs} ± ${link.jitterMs} ms`, link.loss > 0 ? `${link.loss * 100} % loss` : '',
    sim.churn > 0 ? `${sim.churn * 100} % churn` : '', sim.partition !== undefined ? `partition ${sim.partition.fraction * 100} % for ${ms(sim.partition.durationMs)}` : '',
    `profile ${sim.profile}`, sim.cpu !== undefined ? `CPU ${sim.cpu.frameMs} ms/frame, ${sim.cpu.streamMs} ms/stream${sim.cpu.cores !== undefined ? ` on ${sim.cpu.cores} cores` : ''}` : '', `seed ${sim.seed}`].filter(s => s !== '').join(', ')
  const title = parsed.title ?? what
  console.error(`simulating ${what} ...`)
  const { report, cost } = await simulate(sim)
  const md = table(report)
  const t = report.tuning
  const settings = `push_fanout ${t.pushFanout}, push_pull_interval_ms ${t.pushPullIntervalMs}, target_peers ${t.targetPeers}; degree after the mesh formed: min ${report.degree.min}, median ${report.degree.median}, mean ${report.degree.mean}, max ${report.degree.max}`
  const costLine = `${cost.events} events in ${(cost.wallMs / 1000).toFixed(1)} s wall, ${cost.heapMiB} MiB heap`
  console.log(`${what}\n${settings}\n\n${md}\n${serfLine}(${costLine})`)
  if (out !== undefined) {
    fs.mkdirSync(path.dirname(out), { recursive: true })
    const base = path.basename(out)
    const command = `npm run simulate -- ${process.argv.slice(2).join(' ')}`
    fs.writeFileSync(`${out}.svg`, coverageSvg(title, report.publishes, references, models))
    fs.writeFileSync(`${out}.json`, JSON.stringify({ command, options: sim, report }, null, 1) + '\n')
    fs.writeFileSync(`${out}.md`, `# ${title}\n\n\`${command}\`\n\n${settings}.\n\n${md}\n${serfLine}Times are from the publish on one node; percentages count the nodes up at the publish. Frames, bytes and streams are everything all nodes sent from the publish until ${sim.gapMs} ms after the last node had it (push-pull rounds included), divided by the number of nodes. Run cost (not part of the result): ${costLine}.\n\n![coverage over time](${base}.svg)\n`)
    console.error(`wrote ${out}.md, ${out}.svg, ${out}.json`)
  }
}

await main()
