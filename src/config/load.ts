import fs from 'node:fs'
import path from 'node:path'
import { parse as parseToml, TomlError } from 'smol-toml'
import * as v from 'valibot'
import { DmError } from '../errors.js'
import { parsePublicKeyBase64 } from '../crypto/keys.js'
import { nameProblem, printable } from '../format/names.js'
import { DEFAULT_HOOK_TIMEOUT_MS, defaultConfig, LOG_LEVELS, type Config } from './config.js'
import { PROFILE_NAMES, tuningFor, tuningProblems } from './tuning.js'
import { allowlist, namespaceTable } from './allowlist.js'

/** Thrown with every problem found, one line each, so an operator fixes them in one go. */
export class ConfigError extends DmError {
  constructor (readonly source: string, readonly problems: string[]) {
    super('ERR_CONFIG', problems.map(p => `${source}: ${p}`).join('\n'))
  }
}

/*
 * The TOML schema, declared once: every key, its type, range and message. The
 * loader reports every violation as one line naming the key; what the schema
 * cannot say (file names, keys, name collisions) is checked after it.
 */

const MAX_SKEW_MS = 7 * 24 * 3600 * 1000

const str = (nonEmpty: boolean) => v.pipe(
  v.string('must be a string'),
  v.check(s => !nonEmpty || s !== '', 'must not be empty')
)
const int = (min: number, max: number) => v.pipe(
  v.number(`must be a whole number from ${min} to ${max}`),
  v.check(n => Number.isInteger(n) && n >= min && n <= max, `must be a whole number from ${min} to ${max}`)
)
const oneOf = (allowed: readonly string[]) => v.picklist(allowed, `must be one of ${allowed.join(', ')}`)
const bool = v.boolean('must be true or false')
/** Shape only: a full multiaddr parse loads libp2p code, so it waits for checkAddresses(). */
const multiaddrs = (needPeerId: boolean) => v.array(
  v.pipe(
    v.string('must be a multiaddr string'),
    v.check(s => s.startsWith('/'), issue => `"${printable(String(issue.input))}" is not a multiaddr (it must start with "/")`),
    v.check(s => !needPeerId || /\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/.test(s), issue => `"${printable(String(issue.input))}" must end in /p2p/<peer id> (see dm id)`)
  ),
  'must be a list of multiaddr strings'
)
const table = <T extends v.ObjectEntries>(entries: T) => v.strictObject(entries)

const schema = table({
  state_dir: v.optional(str(true)),
  log_level: v.optional(oneOf(LOG_LEVELS)),
  max_clock_skew_ms: v.optional(int(0, MAX_SKEW_MS)),
  network: v.optional(table({
    id: v.optional(str(true)),
    listen: v.optional(multiaddrs(false)),
    bootstrap: v.optional(multiaddrs(true)),
    mdns: v.optional(bool),
    profile: v.optional(oneOf(PROFILE_NAMES)),
    push_pull_interval_ms: v.optional(int(100, 24 * 3600 * 1000)),
    push_fanout: v.optional(int(1, 64)),
    target_peers: v.optional(int(1, 256)),
    key: v.optional(v.pipe(
      v.string('must be a base64 Ed25519 public key (dm network keygen prints it)'),
      v.check(s => typeof parsePublicKeyBase64(s) !== 'string', issue => `key ${String(parsePublicKeyBase64(String(issue.input)))}`)
    )),
    certificate: v.optional(str(true))
  })),
  api: v.optional(table({
    socket: v.optional(str(true))
  })),
  metrics: v.optional(table({
    listen: v.optional(v.pipe(
      str(false),
      v.check(s => s === '' || /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(s),
        issue => `"${printable(String(issue.input))}" must be host:port, such as 127.0.0.1:9464`)
    ))
  })),
  hooks: v.optional(v.array(table({
    name: v.optional(str(true)),
    prefix: v.optional(str(true)),
    exec: v.pipe(
      v.array(v.string('must be a list of strings'), 'must be a list: the program and its arguments'),
      v.check(a => a.length > 0 && a[0].startsWith('/'), 'must start with the program\'s absolute path (no shell is involved)')
    ),
    timeout_ms: v.optional(int(100, 24 * 3600 * 1000))
  }), 'must be an array of tables ([[hooks]])')),
  files: v.optional(v.record(v.string(), v.unknown())),
  namespaces: v.optional(v.record(v.string(), v.unknown()))
})

type Doc = v.InferOutput<typeof schema>

/** The keys of the table a schema entry stands for: an optional table, or an optional array of tables. */
function tableEntries (entry: unknown): Record<string, unknown> | undefined {
  const wrapped = (entry as { wrapped?: { entries?: Record<string, unknown>, item?: { entries?: Record<string, unknown> } } }).wrapped
  return wrapped?.entries ?? wrapped?.item?.entries
}

/** Every key the loader accepts, as `table.key` (config.example.toml must document each). */
export function knownKeys (): string[] {
  const out: string[] = []
  for (const [key, entry] of Object.entries(schema.entries)) {
    out.push(key)
    const inner = tableEntries(entry)
    if (key !== 'files' && key !== 'namespaces' && inner !== undefined) for (const k of Object.keys(inner)) out.push(`${key}.${k}`)
  }
  return out
}

/** Reads and validates a config file. Relative paths in it are relative to its directory. */
export function loadConfig (file: string): Config {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file (pass --config PATH)' : code === 'EACCES' ? 'permission denied' : (err as Error).message
    throw new ConfigError(file, [why])
  }
  return parseConfig(text, file)
}

export function parseConfig (text: string, source = 'config'): Config {
  let raw: unknown
  try {
    raw = parseToml(text)
  } catch (err) {
    const msg = err instanceof TomlError ? `bad TOML at line ${err.line}, column ${err.column}: ${err.message.split('\n')[0]}` : `bad TOML: ${(err as Error).message}`
    throw new ConfigError(source, [msg])
  }
  const result = v.safeParse(schema, raw, { abortEarly: false, abortPipeEarly: true })
  const problems = result.success ? [] : inDocumentOrder(raw, result.issues).map(describeIssue)
  // The allowlist is checked even when the rest failed, so every problem is reported together.
  const filesRaw = (raw as Record<string, unknown>).files
  const files = isTable(filesRaw) ? allowlist(filesRaw, problems) : new Map<string, Uint8Array[]>()
  if (result.success) hookProblems(result.output, problems)
  const nsRaw = (raw as Record<string, unknown>).namespaces
  const networkKey = result.success && result.output.network?.key !== undefined ? parsePublicKeyBase64(result.output.network.key) as Uint8Array : undefined
  const namespaces = isTable(nsRaw) ? namespaceTable(nsRaw, files, networkKey, problems) : new Map<string, Uint8Array[]>()
  if (problems.length > 0 || !result.success) throw new ConfigError(source, problems)
  const cfg = build(result.output, files, path.dirname(path.resolve(source)))
  cfg.namespaces = namespaces
  const broken = tuningProblems(cfg.tuning)
  if (broken.length > 0) throw new ConfigError(source, broken.map(p => `[network] tuning: ${p}`))
  return cfg
}

/** What the schema cannot say about [[hooks]]: exactly one of name and prefix, and a valid name. */
function hookProblems (doc: Doc, problems: string[]): void {
  (doc.hooks ?? []).forEach((h, i) => {
    if ((h.name === undefined) === (h.prefix === undefined)) problems.push(`hooks[${i}]: give exactly one of name or prefix`)
    const problem = h.name !== undefined ? nameProblem(h.name) : undefined
    if (problem !== undefined) problems.push(`hooks[${i}].name: bad name: ${problem}`)
  })
}

function build (doc: Doc, files: Map<string, Uint8Array[]>, baseDir: string): Config {
  const cfg = defaultConfig()
  const net = doc.network ?? {}
  cfg.stateDir = path.resolve(baseDir, doc.state_dir ?? cfg.stateDir)
  cfg.logLevel = doc.log_level as Config['logLevel'] ?? cfg.logLevel
  cfg.maxClockSkewMs = doc.max_clock_skew_ms ?? cfg.maxClockSkewMs
  cfg.network = {
    id: net.id ?? cfg.network.id,
    listen: net.listen ?? cfg.network.listen,
    bootstrap: net.bootstrap ?? cfg.network.bootstrap,
    mdns: net.mdns ?? cfg.network.mdns,
    profile: net.profile as Config['network']['profile'] ?? cfg.network.profile,
    ...(net.key !== undefined ? { key: parsePublicKeyBase64(net.key) as Uint8Array } : {}),
    certificate: net.certificate !== undefined ? path.resolve(baseDir, net.certificate) : ''
  }
  cfg.tuning = tuningFor(cfg.network.profile, {
    ...(net.push_pull_interval_ms !== undefined ? { pushPullIntervalMs: net.push_pull_interval_ms } : {}),
    ...(net.push_fanout !== undefined ? { pushFanout: net.push_fanout } : {}),
    ...(net.target_peers !== undefined ? { targetPeers: net.target_peers } : {})
  })
  cfg.api.socket = path.resolve(baseDir, doc.api?.socket ?? cfg.api.socket)
  cfg.metrics.listen = doc.metrics?.listen ?? cfg.metrics.listen
  cfg.hooks = (doc.hooks ?? []).map(h => ({ name: h.name, prefix: h.prefix, exec: h.exec, timeoutMs: h.timeout_ms ?? DEFAULT_HOOK_TIMEOUT_MS }))
  cfg.files = files
  return cfg
}

/** One line per schema violation, naming the key as the operator wrote it. */
function describeIssue (issue: v.BaseIssue<unknown>): string {
  const keys = (issue.path ?? []).map(p => p.key as string | number)
  const where = keys.map((k, i) => typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`).join('')
  if (issue.type === 'strict_object' && issue.expected === 'never') {
    const parent = where.slice(0, where.length - String(keys.at(-1)).length).replace(/\.$/, '')
    const siblings = Object.keys(entriesAt(keys.slice(0, -1)))
    return `unknown key "${printable(where)}" (known: ${siblings.map(k => parent === '' ? k : `${parent}.${k}`).join(', ')})`
  }
  if (issue.type === 'strict_object') return `"${where}" must be a table ([${where}])`
  if (issue.type === 'record') return `"${where}" must be a table ([${where}])`
  return `${where}: ${issue.message}`
}

/** Issues sorted as their keys appear in the file, so the report reads top to bottom. */
function inDocumentOrder (raw: unknown, issues: Array<v.BaseIssue<unknown>>): Array<v.BaseIssue<unknown>> {
  const position = (issue: v.BaseIssue<unknown>): number[] => {
    const out: number[] = []
    let node = raw
    for (const p of issue.path ?? []) {
      out.push(isTable(node) ? Object.keys(node).indexOf(String(p.key)) : Number(p.key))
      node = isTable(node) ? node[String(p.key)] : Array.isArray(node) ? node[Number(p.key)] : undefined
    }
    return out
  }
  const cmp = (a: number[], b: number[]): number => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i]
    return a.length - b.length
  }
  return issues.map(issue => ({ issue, at: position(issue) })).sort((x, y) => cmp(x.at, y.at)).map(x => x.issue)
}

function entriesAt (keys: Array<string | number>): Record<string, unknown> {
  let entries: Record<string, unknown> = schema.entries
  for (const k of keys) if (typeof k === 'string') entries = tableEntries(entries[k]) ?? {}
  return entries
}

function isTable (x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Date)
}

/** Whether a metrics host:port is reachable only from this machine. */
export function isLoopbackListen (listen: string): boolean {
  return /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d{1,5}$/.test(listen)
}

/**
 * Parses every multiaddr in the config. Separate from loadConfig() because
 * the multiaddr library costs ~100 ms to load, which `dm publish` should not pay.
 */
export async function checkAddresses (cfg: Config, source = 'config'): Promise<void> {
  const { multiaddr } = await import('@multiformats/multiaddr')
  const { peerIdFromString } = await import('@libp2p/peer-id')
  const problems: string[] = []
  const check = (key: string, list: string[]): void => list.forEach((s, i) => {
    try {
      const last = multiaddr(s).getComponents().at(-1)
      if (last?.name === 'p2p' && last.value !== undefined) peerIdFromString(last.value)
    } catch (err) {
      problems.push(`network.${key}[${i}]: "${printable(s)}" is not a multiaddr (${(err as Error).message})`)
    }
  })
  check('listen', cfg.network.listen)
  check('bootstrap', cfg.network.bootstrap)
  if (problems.length > 0) throw new ConfigError(source, problems)
}
