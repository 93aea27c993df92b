import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { apiRequestBytes } from '../api/client.js'
import type { CertificateInfo, PeerInfoJson, StatusInfo, VersionInfo, VersionState } from '../api/wire.js'
import type { Config } from '../config/config.js'
import { DmError } from '../errors.js'
import { assertValidName } from '../format/names.js'
import { config, get } from './client.js'
import { configOption, jsonOption, str, type Command } from './command.js'
import { EXIT } from './exit.js'
import { ago, formatBytes, printJson, table, warn } from './output.js'

/* The verbs that read the daemon's state: dm list, get, peers and status. */

/** The state of an entry; answers from a daemon older than the `state` field are derived. */
function stateOf (v: VersionInfo): VersionState {
  return v.state ?? (v.tombstone ? 'tombstoned' : v.present ? 'present' : 'missing')
}

function expires (v: VersionInfo): string {
  return v.expiresAtMs === 0 ? 'never' : new Date(v.expiresAtMs).toISOString()
}

async function held (cfg: Config, name: string): Promise<VersionInfo> {
  const v = (await get<VersionInfo[]>(cfg, '/v1/versions')).find(e => e.name === name)
  if (v === undefined) throw new DmError('ERR_NOT_FOUND', `"${name}" is not held by this node (dm list shows what is)`)
  return v
}

export const list: Command = {
  summary: 'list the versions the daemon holds, or one in detail',
  usage: 'dm list [NAME] [--config PATH] [--json]',
  details: 'STATE is present, missing (being fetched again), expired, tombstoned (deleted)\nor unlisted (the name left [files]). With NAME, shows that entry in detail and\nexits 5 if it is not held.',
  options: { ...configOption, ...jsonOption },
  positionals: { min: 0, max: 1 },
  async run (args) {
    const cfg = config(args)
    const name = args.positionals[0]
    if (name !== undefined) {
      const v = await held(cfg, name)
      if (args.values.json === true) { printJson(v); return 0 }
      process.stdout.write(table([
        ['name', v.name],
        ['state', stateOf(v)],
        ['size', `${formatBytes(v.size)} (${v.size} bytes)`],
        ['signed', v.signedAt],
        ['expires', expires(v)],
        ['signer', v.signer],
        ['sha256', v.sha256],
        ['id', v.id]
      ]))
      return 0
    }
    const versions = await get<VersionInfo[]>(cfg, '/v1/versions')
    if (args.values.json === true) { printJson(versions); return 0 }
    process.stdout.write(table([
      ['NAME', 'STATE', 'SIZE', 'SIGNED', 'EXPIRES', 'SIGNER'],
      ...versions.map(v => [v.name, stateOf(v), formatBytes(v.size), v.signedAt, expires(v), v.signer])
    ]))
    return 0
  }
}

/** Attempts at fetching content whose hash matches the listing (a new version may land in between). */
const GET_ATTEMPTS = 3

export const getContent: Command = {
  summary: 'print or write the content held for a name, checked against its signed hash',
  usage: 'dm get NAME [--out PATH] [--config PATH]',
  details: 'Writes the content to stdout, or to PATH (replaced atomically). Exits 5 when the\nname is not held, deleted, expired or missing, and 1 if the content does not\nmatch its signed SHA-256.',
  options: { ...configOption, out: { type: 'string', short: 'o', value: 'PATH', description: 'write to PATH instead of stdout' } },
  positionals: { min: 1, max: 1 },
  async run (args) {
    const cfg = config(args)
    const name = args.positionals[0]
    assertValidName(name)
    for (let attempt = 1; ; attempt++) {
      const v = await held(cfg, name)
      const state = stateOf(v)
      if (state !== 'present' && state !== 'unlisted') throw new DmError('ERR_NOT_FOUND', `"${name}" is ${state}; there is no content to get`)
      const content = await apiRequestBytes(cfg.api.socket, `/v1/content?name=${encodeURIComponent(name)}`, { stateDir: cfg.stateDir })
      const sha = createHash('sha256').update(content).digest('hex')
      if (sha === v.sha256 && content.length === v.size) {
        writeOut(str(args, 'out'), content)
        return 0
      }
      if (attempt === GET_ATTEMPTS) throw new DmError('ERR_CONTENT_MISMATCH', `the content of "${name}" does not match its signed SHA-256 ${v.sha256}`)
    }
  }
}

function writeOut (out: string | undefined, content: Buffer): void {
  if (out === undefined) { process.stdout.write(content); return }
  const tmp = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.dm-get-${process.pid}`)
  try {
    fs.writeFileSync(tmp, content, { flag: 'wx' })
    fs.renameSync(tmp, out)
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw new DmError('ERR_USAGE', `cannot write ${out}: ${(err as Error).message}`)
  }
}

export const peers: Command = {
  summary: 'list known and connected members',
  usage: 'dm peers [--config PATH] [--json]',
  options: { ...configOption, ...jsonOption },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const members = await get<PeerInfoJson[]>(config(args), '/v1/peers')
    if (args.values.json === true) { printJson(members); return 0 }
    process.stdout.write(table([
      ['PEER', 'NAME', 'STATE', 'SEEN', 'ADDRESS', 'LAST ERROR'],
      ...members.map(m => [m.id, m.name ?? '', m.connected ? 'connected' : m.failures > 0 ? `unreachable (${m.failures})` : 'known', ago(m.lastSeenMs), m.addrs[0] ?? '', m.lastError ?? ''])
    ]))
    return 0
  }
}

/** This node's certificate in one cell: its name and until when, in days. */
function certificateLine (c: CertificateInfo): string {
  const days = (c.notAfterMs - Date.now()) / 86_400_000
  const left = days <= 0 ? 'expired' : `in ${days < 1 ? 'less than a day' : `${Math.floor(days)} day${Math.floor(days) === 1 ? '' : 's'}`}`
  return `${c.name === '' ? '(no node name)' : c.name}, valid until ${new Date(c.notAfterMs).toISOString()} (${left})`
}

/** A sentence with its stable code, as error lines end: "… (CODE)". */
function coded (sentence: string, code: string | undefined): string {
  return code === undefined ? sentence : `${sentence} (${code})`
}

export const status: Command = {
  summary: 'show the daemon\'s peer id, uptime, peers, files, last sync and health',
  usage: 'dm status [--config PATH] [--json]',
  details: 'Exits 4 when the daemon reports itself degraded (for example no peer connected\nwhile bootstrap addresses are configured), after printing why, each reason with\nits code. Warns on stderr of a certificate near its end and of a failed config\nreload. --json prints the API\'s answer (docs/API.md).',
  options: { ...configOption, ...jsonOption },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const s = await get<StatusInfo>(config(args), '/v1/status')
    const degraded = s.health?.state === 'degraded'
    if (args.values.json === true) {
      printJson(s)
    } else {
      process.stdout.write(table([
        ['peer id', s.peerId],
        ['network', s.network],
        ['health', s.health === undefined ? 'unknown' : degraded ? `degraded: ${s.health.reasons.map((r, i) => coded(r, s.health?.reasonCodes?.[i])).join('; ')}` : 'ok'],
        ...(s.certificate === undefined ? [] : [['certificate', s.certificate === null ? 'none (open mesh)' : certificateLine(s.certificate)]]),
        ['uptime', `${Math.round(s.uptimeMs / 1000)}s`],
        ['peers', `${s.peersConnected} connected, ${s.peersKnown} known`],
        ['files', String(s.files)],
        ['last sync', `${ago(s.lastSyncAtMs)} (${s.syncRounds} rounds)`],
        ['listening', s.listen.join(' ')],
        ...(s.config === undefined ? [] : [['config', `read ${ago(s.config.loadedAtMs)} (${s.config.reloads} reload${s.config.reloads === 1 ? '' : 's'} since start)`]])
      ]))
      for (const [i, w] of (s.health?.warnings ?? []).entries()) warn(coded(w, s.health?.warningCodes?.[i]))
      const failed = s.config?.lastReloadError
      if (failed != null) warn(coded(`the last config reload, ${ago(failed.atMs)}, failed: ${failed.reason.split('\n').join('; ')}`, failed.code))
    }
    return degraded ? EXIT.degraded : EXIT.ok
  }
}
