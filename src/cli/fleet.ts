import type { Cell, FleetFile, FleetNode, FleetView } from '../api/fleet-view.js'
import type { VersionInfo } from '../api/wire.js'
import type { Config } from '../config/config.js'
import { DmError } from '../errors.js'
import { assertValidName } from '../format/names.js'
import { configOption, jsonOption, str, type Command, type ParsedArgs } from './command.js'
import { parseDuration } from './duration.js'
import { EXIT } from './exit.js'
import { config, get } from './client.js'
import { ago, printJson, table } from './output.js'

/*
 * `dm fleet` and `dm wait`: the fleet view of the local daemon (GET /v1/fleet,
 * built from every node's report), as a table, or polled until a version has
 * reached the fleet. A private mesh only: on an open one the daemon answers
 * ERR_OPEN_MESH and these say so.
 */

/** How often dm wait asks the daemon; reports themselves arrive at most every nodeReportMinIntervalMs per node. */
const POLL_MS = 500

async function view (cfg: Config, query: Record<string, string> = {}): Promise<FleetView> {
  const qs = new URLSearchParams(query).toString()
  return await get<FleetView>(cfg, `/v1/fleet${qs === '' ? '' : `?${qs}`}`)
}

/** A node as people know it: its certificate's name, else the start of its peer id. */
function label (n: FleetNode): string {
  return `${n.name !== '' ? n.name : n.peerId.slice(0, 16)}${n.self ? ' (this node)' : ''}`
}

function describeCell (c: Cell): string {
  return c.state === 'refused' ? `refused (${c.code ?? '?'})` : c.state
}

function share (f: FleetFile): string {
  return `${f.reached}/${f.total} (${Math.floor(f.coverage * 100)}%)`
}

/** Nodes not on the version (nor ahead of it), with what each is doing. */
function stragglers (v: FleetView, f: FleetFile): Array<{ node: FleetNode, cell: Cell }> {
  return v.nodes.map(node => ({ node, cell: f.cells[node.peerId] })).filter(({ cell }) => cell.state !== 'latest' && cell.state !== 'ahead')
}

function heardLine (n: FleetNode, nowMs: number): string {
  return n.heard === 'self' || n.heard === 'fresh' ? '' : `not heard from (${n.heard}; last report ${ago(n.reportedAtMs, nowMs)})`
}

export const fleet: Command = {
  summary: 'show every node against every file: latest, behind, missing or refused (private mesh)',
  usage: 'dm fleet [--config PATH] [--json]',
  details: 'Built from the node reports every daemon publishes about itself on a private mesh\n(docs/PROTOCOL.md section 14): per node when it last reported, its peers, its\ncertificate\'s end and software; per file the newest version, its coverage and\nwhich nodes are not on it and why (a refusal shows its code). Nodes not heard\nfrom (no report within two of their refresh intervals) are freeze or partition\nsuspects. On an open mesh it fails (ERR_OPEN_MESH): there are no reports.',
  options: { ...configOption, ...jsonOption },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const v = await view(config(args))
    if (args.values.json === true) { printJson(v); return EXIT.ok }
    const day = (ms: number | null): string => ms === null ? '' : new Date(ms).toISOString().slice(0, 10)
    process.stdout.write(table([
      ['NODE', 'PEER ID', 'HEARD', 'REPORTED', 'PEERS', 'CERTIFICATE ENDS', 'SOFTWARE', 'REFUSALS'],
      ...v.nodes.map(n => [label(n), n.peerId, n.heard, n.self ? 'live' : ago(n.reportedAtMs, v.nowMs), n.peers === null ? '' : String(n.peers), day(n.certificateNotAfterMs), n.software ?? '',
        Object.entries(n.refusalCounts).map(([code, count]) => `${code}×${count}`).join(' ')])
    ]) + '\n')
    process.stdout.write(table([
      ['FILE', 'VERSION', 'COVERAGE', 'NOT ON IT'],
      ...v.files.map(f => [f.name, f.version?.id ?? '', share(f), stragglers(v, f).map(({ node, cell }) => `${label(node)}: ${describeCell(cell)}`).join(', ')])
    ]))
    const silent = v.nodes.filter(n => heardLine(n, v.nowMs) !== '')
    if (silent.length > 0) process.stdout.write('\n' + silent.map(n => `${label(n)} ${n.peerId}: ${heardLine(n, v.nowMs)}\n`).join(''))
    return EXIT.ok
  }
}

/** `100%`, `90%` or a fraction such as `0.9`: the share of nodes that must hold the version. */
export function parseCoverage (text: string): number {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim())
  const value = m === null ? NaN : Number(m[1]) / (m[2] === '%' ? 100 : 1)
  if (!(value > 0 && value <= 1)) throw new DmError('ERR_USAGE', `--coverage ${JSON.stringify(text)}: give a share above 0 and at most 100%, such as 100%, 90% or 0.9`)
  return value
}

/** Whether `reached` of `total` nodes is at least the share asked. */
export function covered (reached: number, total: number, want: number): boolean {
  return total > 0 && reached >= Math.ceil(want * total - 1e-9)
}

async function heldId (cfg: Config, name: string): Promise<string> {
  const v = (await get<VersionInfo[]>(cfg, '/v1/versions')).find(e => e.name === name)
  if (v === undefined) throw new DmError('ERR_NOT_FOUND', `this node holds no version of "${name}"; publish it first, or give --version`)
  return v.id
}

export const wait: Command = {
  summary: 'wait until a version has reached the fleet (or a share of it); for deploy pipelines',
  usage: 'dm wait NAME [--version ID] [--coverage 100%] [--timeout 60s] [--config PATH]',
  details: 'Exits 0 once the version (default: the one this node holds, as dm list shows its id)\nis held by the share of the fleet\'s nodes asked for; a node holding a newer\nversion counts as reached. On timeout exits 6 and lists the nodes not on it, with\ntheir state (behind, missing, refused and its code, unknown) and whether they\nwere heard from. The fleet is every node whose report this daemon holds; a\nnode that stopped reporting still counts, until it is revoked. Private mesh only\n(ERR_OPEN_MESH otherwise). Call it after dm publish.',
  options: {
    ...configOption,
    version: { type: 'string', value: 'ID', description: 'the version id to wait for (at least its first 16 hex digits; default: the one held here)' },
    coverage: { type: 'string', value: 'SHARE', default: '100%', description: 'share of the nodes that must hold it: 100%, 90%, 0.9' },
    timeout: { type: 'string', value: 'DURATION', default: '60s', description: 'give up after this long (30s, 5m, …)' }
  },
  positionals: { min: 1, max: 1 },
  async run (args: ParsedArgs) {
    const cfg = config(args)
    const name = args.positionals[0]
    assertValidName(name)
    const want = parseCoverage(str(args, 'coverage') as string)
    const timeoutMs = parseDuration(str(args, 'timeout') as string, 'timeout') * 1000
    const asked = str(args, 'version')?.toLowerCase()
    if (asked !== undefined && !/^[0-9a-f]{16,64}$/.test(asked)) throw new DmError('ERR_USAGE', '--version: give at least the first 16 hex digits of a version id (dm list NAME shows it)')
    const version = asked ?? await heldId(cfg, name)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const v = await view(cfg, { name, version })
      const f = v.files[0]
      if (covered(f.reached, f.total, want)) {
        process.stdout.write(`"${name}" ${version.slice(0, 16)} reached ${share(f)} of the fleet\n`)
        return EXIT.ok
      }
      if (Date.now() >= deadline) {
        process.stdout.write(table([
          ['NODE', 'PEER ID', 'STATE', 'HEARD'],
          ...stragglers(v, f).map(({ node, cell }) => [label(node), node.peerId, describeCell(cell), heardLine(node, v.nowMs) !== '' ? heardLine(node, v.nowMs) : node.heard])
        ]))
        process.stderr.write(`dm: "${name}" ${version.slice(0, 16)} reached ${share(f)} of the fleet within ${timeoutMs / 1000}s; ${Math.round(want * 100)}% was asked\n`)
        return EXIT.stragglers
      }
      await new Promise(resolve => setTimeout(resolve, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))))
    }
  }
}
