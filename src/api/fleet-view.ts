import type { NodeReport, ReportedVersion } from '../format/node-report.js'
import { byCodeUnits } from '../util/compare.js'

/*
 * The daemon's side of GET /v1/fleet (docs/API.md): nodes against files,
 * computed from the node reports this daemon holds. Pure, with the clock
 * passed in, so every state is tested without a daemon.
 */

/** A node's report is stale, and the node listed as not heard from, after this many of its own refresh intervals. */
export const STALE_REFRESHES = 2

/**
 * What the view knows of one node: its report, or why not.
 * `report` is undefined when its content is gone (it expired) and was never read here, or does not parse.
 */
export interface ReportSource {
  peerId: string
  /** The node's identity key, base64. */
  key: string
  /** The node name its membership certificate carries. */
  name: string
  self: boolean
  /** When the report was signed, and when it expires (0: never, for this node's own live row). */
  timestampMs: number
  expiresAtMs: number
  report: NodeReport | undefined
  /** Why the report is unreadable (it broke the format), when it is. */
  problem?: string
}

/** self: this daemon (live); fresh: reported within STALE_REFRESHES of its interval; stale, expired, unreadable: not heard from. */
export type Heard = 'self' | 'fresh' | 'stale' | 'expired' | 'unreadable'

export interface FleetNode {
  peerId: string
  key: string
  name: string
  self: boolean
  heard: Heard
  reportedAtMs: number
  expiresAtMs: number
  software: string | null
  peers: number | null
  certificateNotAfterMs: number | null
  /** The report left names out (it hit its size bound): their cells are unknown. */
  truncated: boolean
  refusalCounts: Record<string, number>
  problem?: string
}

/**
 * A node's state for one file, against the version the file row is judged by:
 * latest (holds it), ahead (holds a newer one), behind (an older one),
 * refused (refused it; `code` says why), missing (holds none), unknown (no readable report, or truncated).
 */
export type CellState = 'latest' | 'ahead' | 'behind' | 'refused' | 'missing' | 'unknown'

export interface Cell {
  state: CellState
  /** The version held (id prefix and signing time), when one is. */
  id?: string
  timestampMs?: number
  code?: string
}

export interface FleetFile {
  name: string
  /** The version judged by: the one asked for, else the newest any node reports; null when nobody holds the name. */
  version: { id: string, timestampMs: number | null } | null
  /** Nodes on that version or ahead of it, of all nodes. */
  reached: number
  total: number
  coverage: number
  cells: Record<string, Cell>
}

export interface FleetView {
  nowMs: number
  self: string
  nodes: FleetNode[]
  files: FleetFile[]
  /** Peer ids of nodes not heard from: a freeze or partition suspect. */
  notHeardFrom: string[]
}

export interface FleetQuery {
  /** One file only. */
  name?: string
  /** Judge the file by this version (a prefix of its id, at least 16 hex digits) instead of the newest. */
  version?: string
}

function heard (s: ReportSource, nowMs: number): Heard {
  if (s.self) return 'self'
  if (s.problem !== undefined) return 'unreadable'
  if (s.expiresAtMs !== 0 && nowMs >= s.expiresAtMs) return 'expired'
  if (s.report === undefined) return 'unreadable'
  return nowMs - s.timestampMs > STALE_REFRESHES * s.report.refreshMs ? 'stale' : 'fresh'
}

/** >0 when a is the newer version: timestamp, then id (the id order of docs/PROTOCOL.md section 5, on the prefix). */
function newer (a: { timestampMs: number, id: string }, b: { timestampMs: number, id: string }): number {
  return a.timestampMs !== b.timestampMs ? a.timestampMs - b.timestampMs : byCodeUnits(a.id, b.id)
}

export function fleetView (sources: readonly ReportSource[], nowMs: number, q: FleetQuery = {}): FleetView {
  const ordered = [...sources].sort((a, b) => Number(b.self) - Number(a.self) || byCodeUnits(a.name, b.name) || byCodeUnits(a.peerId, b.peerId))
  const nodes: FleetNode[] = ordered.map(s => ({
    peerId: s.peerId, key: s.key, name: s.name, self: s.self, heard: heard(s, nowMs), reportedAtMs: s.timestampMs, expiresAtMs: s.expiresAtMs,
    software: s.report?.software ?? null, peers: s.report?.peers ?? null, certificateNotAfterMs: s.report?.certificateNotAfterMs ?? null,
    truncated: s.report?.truncated ?? false, refusalCounts: s.report?.refusalCounts ?? {}, ...(s.problem !== undefined ? { problem: s.problem } : {})
  }))
  const heldBy = ordered.map(s => new Map<string, ReportedVersion>((s.report?.held ?? []).map(h => [h.name, h])))
  const names = q.name !== undefined ? [q.name] : [...new Set(heldBy.flatMap(m => [...m.keys()]))].sort()
  const files = names.map(name => fileRow(name, ordered, heldBy, q.version?.slice(0, 16)))
  return { nowMs, self: ordered.find(s => s.self)?.peerId ?? '', nodes, files, notHeardFrom: nodes.filter(n => n.heard !== 'self' && n.heard !== 'fresh').map(n => n.peerId) }
}

function fileRow (name: string, sources: readonly ReportSource[], heldBy: ReadonlyArray<Map<string, ReportedVersion>>, asked: string | undefined): FleetFile {
  const versions = heldBy.flatMap(m => m.get(name) ?? [])
  const newest = versions.reduce<ReportedVersion | undefined>((best, h) => best === undefined || newer(h, best) > 0 ? h : best, undefined)
  const known = asked === undefined ? newest : versions.find(h => h.id === asked)
  const version = asked !== undefined ? { id: asked, timestampMs: known?.timestampMs ?? null } : newest !== undefined ? { id: newest.id, timestampMs: newest.timestampMs } : null
  const cells: Record<string, Cell> = {}
  sources.forEach((s, i) => { cells[s.peerId] = cell(s.report, heldBy[i].get(name), name, version) })
  const reached = Object.values(cells).filter(c => c.state === 'latest' || c.state === 'ahead').length
  return { name, version, reached, total: sources.length, coverage: sources.length === 0 ? 0 : reached / sources.length, cells }
}

function cell (report: NodeReport | undefined, held: ReportedVersion | undefined, name: string, version: FleetFile['version']): Cell {
  if (report === undefined) return { state: 'unknown' }
  const at = held !== undefined ? { id: held.id, timestampMs: held.timestampMs } : {}
  if (version !== null && held?.id === version.id) return { state: 'latest', ...at }
  const refusal = version === null ? undefined : report.refusals.find(r => r.name === name && r.id === version.id)
  if (refusal !== undefined) return { state: 'refused', code: refusal.code, ...at }
  if (held !== undefined) {
    // Ahead only of a version the view knows the time of; of an unknown one, any other version is behind.
    const ahead = version !== null && version.timestampMs !== null && newer(held, { id: version.id, timestampMs: version.timestampMs }) > 0
    return { state: ahead ? 'ahead' : 'behind', ...at }
  }
  return { state: report.truncated ? 'unknown' : 'missing' }
}
