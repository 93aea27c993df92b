import { DmError } from '../errors.js'
import { nameProblem } from './names.js'

/*
 * A node report (docs/PROTOCOL.md section 14.2): the small JSON document a
 * daemon publishes about itself under `_dm/nodes/<its identity key>`. What
 * it holds is listed compactly, one array per name, so a reader can tell
 * whether the node is on the latest version of each file, behind or ahead;
 * its recent refusals say why it did not take a version. Parsed as hostile:
 * every field is checked, and a report that breaks a rule is unreadable.
 */

export const NODE_REPORT_FORMAT = 1
/** A report's whole content, at most: a tenth of the file limit, so even a full one spreads like a small file. */
export const MAX_REPORT_BYTES = 1024 * 1024
/** Hex digits of a version id a report carries: 64 bits tell versions of one name apart. */
export const REPORT_ID_HEX = 16
/** Refusals listed, the most recent distinct (name, version, code) first. */
export const MAX_REPORTED_REFUSALS = 32
/** Refusal codes counted; codes are the daemon's own, far fewer than this. */
const MAX_REFUSAL_CODES = 64
const ID = /^[0-9a-f]{16}$/
const CODE = /^ERR_[A-Z_]{1,60}$/
const NODE_NAME = /^[A-Za-z0-9._-]{0,64}$/
const SOFTWARE = /^[\x20-\x7e]{0,64}$/
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{1,128}$/

/** A held version: its name, the first 16 hex digits of its id, its signing time. */
export interface ReportedVersion { name: string, id: string, timestampMs: number }
/** A version this node refused, with the code, and when it last did. */
export interface ReportedRefusal { name: string, id: string, code: string, atMs: number }

export interface NodeReport {
  format: typeof NODE_REPORT_FORMAT
  /** The node name its membership certificate carries (may be empty). */
  node: string
  peerId: string
  software: string
  /** Peers connected (admitted) when the report was made. */
  peers: number
  /** The end of the node's own certificate. */
  certificateNotAfterMs: number
  /** How often the node publishes a report when nothing changes: a reader judges silence by it. */
  refreshMs: number
  /** Sorted by name; cut short (truncated) when the report would exceed MAX_REPORT_BYTES. */
  held: ReportedVersion[]
  truncated: boolean
  refusals: ReportedRefusal[]
  /** Refusals since the daemon started, per code. */
  refusalCounts: Record<string, number>
}

/** The content of a report: UTF-8 JSON. The held list is cut at the first name that would not fit, and `truncated` set. */
export function encodeNodeReport (r: NodeReport): Buffer {
  const held = r.held.map(h => [h.name, h.id, h.timestampMs])
  const doc = (n: number, truncated: boolean): object => ({
    format: r.format, node: r.node, peerId: r.peerId, software: r.software, peers: r.peers,
    certificateNotAfterMs: r.certificateNotAfterMs, refreshMs: r.refreshMs, truncated,
    refusals: r.refusals.slice(0, MAX_REPORTED_REFUSALS).map(x => [x.name, x.id, x.code, x.atMs]),
    refusalCounts: r.refusalCounts,
    held: held.slice(0, n)
  })
  // The document with no held names ("false" being the longer flag), then each name's array and a comma: names are ASCII (section 1).
  let size = Buffer.byteLength(JSON.stringify(doc(0, false))) - 1
  let n = 0
  while (n < held.length && size + JSON.stringify(held[n]).length + 1 <= MAX_REPORT_BYTES) size += JSON.stringify(held[n++]).length + 1
  return Buffer.from(JSON.stringify(doc(n, r.truncated || n < held.length)))
}

/** Parses a report's content; DmError('ERR_DECODE') naming the first field that breaks a rule. */
export function parseNodeReport (content: Uint8Array): NodeReport {
  if (content.length > MAX_REPORT_BYTES) throw bad(`is ${content.length} bytes (at most ${MAX_REPORT_BYTES})`)
  let doc: Record<string, unknown>
  try {
    doc = JSON.parse(Buffer.from(content).toString('utf8'))
  } catch (err) {
    throw bad(`is not JSON (${(err as Error).message})`)
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('is not a JSON object')
  if (doc.format !== NODE_REPORT_FORMAT) throw bad(`has format ${String(doc.format)}, not ${NODE_REPORT_FORMAT}`)
  const str = (k: string, re: RegExp): string => { const v = doc[k]; if (typeof v !== 'string' || !re.test(v)) throw bad(`has a bad "${k}"`); return v }
  const int = (v: unknown, what: string): number => { if (!Number.isSafeInteger(v) || (v as number) < 0) throw bad(`has a bad ${what}`); return v as number }
  const list = (k: string, max: number): unknown[][] => {
    const v = doc[k]
    if (!Array.isArray(v) || v.length > max || !v.every(Array.isArray)) throw bad(`has a bad "${k}" list`)
    return v as unknown[][]
  }
  const name = (v: unknown, what: string): string => { if (typeof v !== 'string' || nameProblem(v) !== undefined) throw bad(`has a bad name in ${what}`); return v }
  const id = (v: unknown, what: string): string => { if (typeof v !== 'string' || !ID.test(v)) throw bad(`has a bad version id in ${what}`); return v }
  const held = list('held', Math.floor(MAX_REPORT_BYTES / 24)).map(([n, i, t], k) => ({ name: name(n, `held[${k}]`), id: id(i, `held[${k}]`), timestampMs: int(t, `timestamp in held[${k}]`) }))
  const refusals = list('refusals', MAX_REPORTED_REFUSALS).map(([n, i, c, t], k) => {
    if (typeof c !== 'string' || !CODE.test(c)) throw bad(`has a bad code in refusals[${k}]`)
    return { name: name(n, `refusals[${k}]`), id: id(i, `refusals[${k}]`), code: c, atMs: int(t, `time in refusals[${k}]`) }
  })
  const counts = doc.refusalCounts
  if (typeof counts !== 'object' || counts === null || Array.isArray(counts) || Object.keys(counts).length > MAX_REFUSAL_CODES) throw bad('has a bad "refusalCounts"')
  const refusalCounts: Record<string, number> = {}
  for (const [c, n] of Object.entries(counts)) {
    if (!CODE.test(c)) throw bad('has a bad code in "refusalCounts"')
    refusalCounts[c] = int(n, `count of ${c}`)
  }
  if (typeof doc.truncated !== 'boolean') throw bad('has a bad "truncated"')
  return {
    format: NODE_REPORT_FORMAT,
    node: str('node', NODE_NAME),
    peerId: str('peerId', PEER_ID),
    software: str('software', SOFTWARE),
    peers: int(doc.peers, '"peers"'),
    certificateNotAfterMs: int(doc.certificateNotAfterMs, '"certificateNotAfterMs"'),
    refreshMs: int(doc.refreshMs, '"refreshMs"'),
    held,
    truncated: doc.truncated,
    refusals,
    refusalCounts
  }
}

function bad (what: string): DmError {
  return new DmError('ERR_DECODE', `node report ${what}`)
}
