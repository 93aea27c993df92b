import fs from 'node:fs'
import path from 'node:path'
import { parse as parseToml, TomlError } from 'smol-toml'
import { DmError } from '../errors.js'
import { parsePublicKeyBase64 } from '../crypto/keys.js'
import { nameProblem, printable } from '../format/names.js'
import { defaultConfig, LOG_LEVELS, type Config } from './config.js'

/** Thrown with every problem found, one line each, so an operator fixes them in one go. */
export class ConfigError extends DmError {
  constructor (readonly source: string, readonly problems: string[]) {
    super('ERR_CONFIG', problems.map(p => `${source}: ${p}`).join('\n'))
  }
}

type Table = Record<string, unknown>

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
  let doc: Table
  try {
    doc = parseToml(text) as Table
  } catch (err) {
    const msg = err instanceof TomlError ? `bad TOML at line ${err.line}, column ${err.column}: ${err.message.split('\n')[0]}` : `bad TOML: ${(err as Error).message}`
    throw new ConfigError(source, [msg])
  }
  const v = new Validator(source)
  const cfg = defaultConfig()
  const baseDir = path.dirname(path.resolve(source))

  v.known(doc, '', ['state_dir', 'log_level', 'max_clock_skew_ms', 'network', 'api', 'metrics', 'files'])
  cfg.stateDir = path.resolve(baseDir, v.string(doc, 'state_dir', cfg.stateDir, true))
  cfg.logLevel = v.oneOf(doc, 'log_level', LOG_LEVELS, cfg.logLevel)
  cfg.maxClockSkewMs = v.integer(doc, 'max_clock_skew_ms', cfg.maxClockSkewMs, 0, 7 * 24 * 3600 * 1000)

  const net = v.table(doc, 'network')
  if (net !== undefined) {
    v.known(net, 'network.', ['id', 'listen', 'bootstrap', 'mdns', 'push_pull_interval_ms', 'push_fanout', 'target_peers'])
    cfg.network.id = v.string(net, 'id', cfg.network.id, true, 'network.')
    cfg.network.listen = v.multiaddrs(net, 'listen', cfg.network.listen, false)
    cfg.network.bootstrap = v.multiaddrs(net, 'bootstrap', cfg.network.bootstrap, true)
    cfg.network.mdns = v.boolean(net, 'mdns', cfg.network.mdns, 'network.')
    cfg.network.pushPullIntervalMs = v.integer(net, 'push_pull_interval_ms', cfg.network.pushPullIntervalMs, 100, 24 * 3600 * 1000, 'network.')
    cfg.network.pushFanout = v.integer(net, 'push_fanout', cfg.network.pushFanout, 1, 64, 'network.')
    cfg.network.targetPeers = v.integer(net, 'target_peers', cfg.network.targetPeers, 1, 256, 'network.')
  }

  const api = v.table(doc, 'api')
  if (api !== undefined) {
    v.known(api, 'api.', ['socket'])
    cfg.api.socket = path.resolve(baseDir, v.string(api, 'socket', cfg.api.socket, true, 'api.'))
  }

  const metrics = v.table(doc, 'metrics')
  if (metrics !== undefined) {
    v.known(metrics, 'metrics.', ['listen'])
    cfg.metrics.listen = v.string(metrics, 'listen', cfg.metrics.listen, false, 'metrics.')
    if (cfg.metrics.listen !== '' && !/^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d{1,5}$/.test(cfg.metrics.listen)) {
      v.problem(`metrics.listen: "${printable(cfg.metrics.listen)}" must be a loopback host:port such as 127.0.0.1:9464`)
    }
  }

  const files = v.table(doc, 'files')
  if (files !== undefined) cfg.files = v.allowlist(files)

  v.finish()
  return cfg
}

class Validator {
  private readonly problems: string[] = []
  constructor (private readonly source: string) {}

  problem (p: string): void { this.problems.push(p) }

  finish (): void {
    if (this.problems.length > 0) throw new ConfigError(this.source, this.problems)
  }

  known (t: Table, prefix: string, keys: string[]): void {
    for (const k of Object.keys(t)) {
      if (!keys.includes(k)) this.problem(`unknown key "${prefix}${printable(k)}" (known: ${keys.map(x => prefix + x).join(', ')})`)
    }
  }

  table (t: Table, key: string): Table | undefined {
    const val = t[key]
    if (val === undefined) return undefined
    if (typeof val !== 'object' || val === null || Array.isArray(val) || val instanceof Date) {
      this.problem(`"${key}" must be a table ([${key}])`)
      return undefined
    }
    return val as Table
  }

  string (t: Table, key: string, def: string, nonEmpty: boolean, prefix = ''): string {
    const val = t[key]
    if (val === undefined) return def
    if (typeof val !== 'string') { this.problem(`${prefix}${key}: must be a string`); return def }
    if (nonEmpty && val === '') { this.problem(`${prefix}${key}: must not be empty`); return def }
    return val
  }

  boolean (t: Table, key: string, def: boolean, prefix = ''): boolean {
    const val = t[key]
    if (val === undefined) return def
    if (typeof val !== 'boolean') { this.problem(`${prefix}${key}: must be true or false`); return def }
    return val
  }

  integer (t: Table, key: string, def: number, min: number, max: number, prefix = ''): number {
    const val = t[key]
    if (val === undefined) return def
    const n = typeof val === 'bigint' ? Number(val) : val
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      this.problem(`${prefix}${key}: must be a whole number from ${min} to ${max}`)
      return def
    }
    return n
  }

  oneOf<T extends string> (t: Table, key: string, allowed: readonly T[], def: T): T {
    const val = t[key]
    if (val === undefined) return def
    if (typeof val !== 'string' || !allowed.includes(val as T)) {
      this.problem(`${key}: must be one of ${allowed.join(', ')}`)
      return def
    }
    return val as T
  }

  /** Shape only: a full multiaddr parse loads libp2p code, so it waits for checkAddresses(). */
  multiaddrs (t: Table, key: string, def: string[], needPeerId: boolean): string[] {
    const val = t[key]
    if (val === undefined) return def
    if (!Array.isArray(val) || !val.every(x => typeof x === 'string')) {
      this.problem(`network.${key}: must be a list of multiaddr strings`)
      return def
    }
    val.forEach((s: string, i: number) => {
      if (!s.startsWith('/')) this.problem(`network.${key}[${i}]: "${printable(s)}" is not a multiaddr (it must start with "/")`)
      else if (needPeerId && !/\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/.test(s)) this.problem(`network.${key}[${i}]: "${printable(s)}" must end in /p2p/<peer id> (see dm id)`)
    })
    return val
  }

  allowlist (files: Table): Map<string, Uint8Array[]> {
    const out = new Map<string, Uint8Array[]>()
    for (const [name, signers] of Object.entries(files)) {
      const where = `files."${printable(name)}"`
      const problem = nameProblem(name)
      if (problem !== undefined) { this.problem(`${where}: bad name: ${problem}`); continue }
      if (!Array.isArray(signers) || signers.length === 0) {
        this.problem(`${where}: must be a non-empty list of base64 Ed25519 public keys`)
        continue
      }
      const keys: Uint8Array[] = []
      const seen = new Set<string>()
      signers.forEach((s: unknown, i: number) => {
        const key = parsePublicKeyBase64(s as string)
        if (typeof key === 'string') { this.problem(`${where}[${i}]: key ${key}`); return }
        const id = Buffer.from(key).toString('base64')
        if (seen.has(id)) { this.problem(`${where}[${i}]: duplicate signer ${id}`); return }
        seen.add(id)
        keys.push(key)
      })
      out.set(name, keys)
    }
    // "a" as a file and "a/b" need "a" to be both a file and a directory.
    for (const name of out.keys()) {
      const segs = name.split('/')
      for (let i = 1; i < segs.length; i++) {
        const dir = segs.slice(0, i).join('/')
        if (out.has(dir)) this.problem(`files."${dir}": is a file, but files."${name}" needs it as a directory`)
        // The store keeps the envelope of "a" at versions/a.sig, a file, which "a.sig/b" needs as a directory.
        if (dir.endsWith('.sig') && out.has(dir.slice(0, -4))) {
          this.problem(`files."${dir.slice(0, -4)}": its envelope is the file versions/${dir}, but files."${name}" needs that path as a directory`)
        }
      }
    }
    return out
  }
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
