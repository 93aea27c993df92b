import type { Tuning } from '../config/tuning.js'
import type { Traffic } from './network.js'

/* What a simulation reports (per publish and per run), and the arithmetic that builds it. */

export interface PublishReport {
  /** Virtual ms since the start of the run. */
  atMs: number
  /** Nodes the percentages count: those up at the publish. */
  population: number
  /** Ms from the publish until 50 / 90 / 99.9 / 100 % of the population held the version; null if never within the horizon. */
  t50: number | null
  t90: number | null
  t999: number | null
  t100: number | null
  /** Population nodes holding the version when the publish stopped being followed. */
  reached: number
  /** Coverage curve: [ms since publish, fraction of the population]. */
  curve: Array<[number, number]>
  /** Sent by all nodes during the publish and the gap after it, divided by N (background push-pull included). */
  perNode: { frames: number, bytes: number, streams: number }
  /** Frames per protocol during the same window, all nodes together. */
  byProtocol: Record<string, Traffic>
  /** Copies of the version refused as already held or being stored (ERR_ALREADY_HELD), all nodes together. */
  duplicates: number
  /** Push-pull rounds completed during the window, all nodes together. */
  rounds: number
  /** With churn: nodes away at the publish, and how long each took to hold it after coming back. */
  catchUp?: { away: number, caughtUp: number, medianMs: number | null, maxMs: number | null }
  /** With a partition: when it healed (ms since publish), and how long after that every node held the version. */
  partition?: { healedAtMs: number, repairedAfterMs: number | null, roundsAfterHeal: number, intervalsAfterHeal: number | null }
}

export interface SimReport {
  nodes: number
  seed: number
  tuning: Pick<Tuning, 'pushFanout' | 'pushPullIntervalMs' | 'targetPeers' | 'maxConnections'>
  degree: { min: number, median: number, mean: number, max: number }
  publishes: PublishReport[]
}

export interface SimCost {
  events: number
  wallMs: number
  heapMiB: number
}

export function totals (ts: Iterable<Traffic>): Traffic {
  const sum = { frames: 0, bytes: 0, streams: 0 }
  for (const t of ts) { sum.frames += t.frames; sum.bytes += t.bytes; sum.streams += t.streams }
  return sum
}

/** The coverage curve at each 1 % of the population, plus 99.9 % and the last node. */
export function curve (times: number[], population: number): Array<[number, number]> {
  const out: Array<[number, number]> = []
  let lastIndex = -1
  for (let pct = 1; pct <= 100; pct++) {
    const i = Math.ceil(pct / 100 * population) - 1
    if (i < times.length && i > lastIndex) { out.push([round2(times[i]), round2(pct / 100 * 1e4) / 1e4]); lastIndex = i }
  }
  const i999 = Math.ceil(0.999 * population) - 1
  if (i999 < times.length && i999 > 0) out.push([round2(times[i999]), round2((i999 + 1) / population * 1e4) / 1e4])
  if (times.length > 0) out.push([round2(times[times.length - 1]), round2(times.length / population * 1e4) / 1e4])
  return out.sort((a, b) => a[0] - b[0] || a[1] - b[1])
}

export const round2 = (x: number): number => Math.round(x * 100) / 100
