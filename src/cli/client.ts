import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { apiRequest, apiRequestBytes, type RequestBody } from '../api/client.js'
import { encodePublishHead, type CertificateInfo, type PeerInfoJson, type StatusInfo, type VersionInfo, type VersionState } from '../api/wire.js'
import type { Config } from '../config/config.js'
import { loadConfig } from '../config/load.js'
import { DmError } from '../errors.js'
import { assertValidName } from '../format/names.js'
import { MAX_CONTENT_BYTES, networkIdFrom, newVersion, signVersion, VersionKind, type SignedVersion } from '../format/version.js'
import { configOption, jsonOption, required, str, type Command, type ParsedArgs } from './command.js'
import { checkDigest } from '../policy/accept.js'
import { EXIT } from './exit.js'
import { loadSigningKey } from './keys.js'
import { ago, formatBytes, printJson, table, warn } from './output.js'
import { certOption, checkContentFile, expiryFrom, readEnvelopeFile, ttlOption } from './sign.js'
import { attachCertificateFile } from './cert-file.js'

export function config (args: ParsedArgs): Config {
  return loadConfig(str(args, 'config') as string)
}

export async function get<T> (cfg: Config, route: string): Promise<T> {
  return await apiRequest<T>(cfg.api.socket, 'GET', route, undefined, { stateDir: cfg.stateDir })
}

async function post (cfg: Config, body: RequestBody): Promise<void> {
  await apiRequest(cfg.api.socket, 'POST', '/v1/versions', body, { stateDir: cfg.stateDir })
}

/** A file to publish: its size and SHA-256, and its bytes when it is small. */
interface Content { size: number, sha256: Buffer, bytes?: Buffer }

/**
 * Reads a file to publish, refusing one over the limit first. A small file
 * is read once, whole: hashed and sent from the same bytes, without streams.
 * A larger one is hashed in chunks (never whole in memory) and read again
 * as it is sent (publishBody).
 */
async function readForPublish (file: string): Promise<Content> {
  checkContentFile(file)
  if (fs.statSync(file).size <= READ_CHUNK_BYTES) {
    const bytes = fs.readFileSync(file)
    if (bytes.length <= READ_CHUNK_BYTES) return { size: bytes.length, sha256: createHash('sha256').update(bytes).digest(), bytes }
  }
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of fs.createReadStream(file, { highWaterMark: READ_CHUNK_BYTES })) {
    size += (chunk as Buffer).length
    if (size > MAX_CONTENT_BYTES) throw new DmError('ERR_TOO_LARGE', `${file} grew past the limit of ${MAX_CONTENT_BYTES} bytes (10 MiB)`)
    hash.update(chunk as Buffer)
  }
  return { size, sha256: hash.digest() }
}

/** Read size of the streamed publish, and the largest file read whole: few system calls, little memory. */
const READ_CHUNK_BYTES = 256 * 1024

/** The publish body for a file: the envelope, then the file's bytes (read again as they are sent, unless read whole). */
function publishBody (v: SignedVersion, file: string, content: Content): RequestBody {
  const head = encodePublishHead(v)
  if (content.bytes !== undefined) return Buffer.concat([head, content.bytes])
  return {
    length: head.length + v.size,
    chunks: (async function * () {
      yield head
      let sent = 0
      if (v.size > 0) {
        for await (const chunk of fs.createReadStream(file, { start: 0, end: v.size - 1, highWaterMark: READ_CHUNK_BYTES })) {
          sent += (chunk as Buffer).length
          yield chunk as Buffer
        }
      }
      if (sent !== v.size) throw new DmError('ERR_CONTENT_MISMATCH', `${file} changed while it was being published`)
    })()
  }
}

/** Signs on the client side (the private key never reaches the daemon); a file is described by its size and hash. */
function signHere (args: ParsedArgs, cfg: Config, name: string, content: { size: number, sha256: Uint8Array } | undefined): SignedVersion {
  assertValidName(name)
  const key = loadSigningKey(required(args, 'key'))
  const nowMs = Date.now()
  const networkId = networkIdFrom(cfg.network.id)
  const expiresAtMs = expiryFrom(args, nowMs)
  if (content === undefined) return newVersion({ name, networkId, privateKey: key.privateKey, signer: key.publicKey, timestampMs: nowMs, expiresAtMs })
  return signVersion({ kind: VersionKind.File, networkId, name, timestampMs: nowMs, expiresAtMs, size: content.size, sha256: content.sha256 }, key.privateKey, key.publicKey)
}

const keyOption = { key: { type: 'string', short: 'k', value: 'PATH', description: 'private signing key (dm keygen); not needed with --sig' } } as const

export const publish: Command = {
  summary: 'sign a file and hand it to the local daemon, or publish a pre-signed one',
  usage: 'dm publish FILE --key PATH [--name NAME] [--ttl DURATION] [--cert CERT] [--config PATH]\n       dm publish FILE --sig SIG [--cert CERT] [--config PATH]\n       dm publish --sig SIG   (a tombstone from dm sign --tombstone)',
  details: 'Exits 0 once the daemon has accepted and stored the version; otherwise prints the\nreason on one line and exits 1 (refused) or 3 (no daemon). NAME defaults to the\nbase name of FILE. With --sig the version was signed elsewhere (dm sign): name,\nexpiry and signer come from SIG, and this machine needs no key.',
  options: {
    ...configOption,
    ...keyOption,
    name: { type: 'string', short: 'n', value: 'NAME', description: 'file name in [files] (default: base name of FILE)' },
    ...ttlOption,
    ...certOption,
    sig: { type: 'string', short: 's', value: 'SIG', description: 'publish this pre-signed envelope (dm sign --out) instead of signing here' }
  },
  positionals: { min: 0, max: 1 },
  async run (args) {
    const file = args.positionals[0] as string | undefined
    const sigFile = str(args, 'sig')
    const cfg = config(args)
    let v: SignedVersion
    let content: Content | undefined
    if (sigFile !== undefined) {
      for (const k of ['key', 'name', 'ttl']) if (args.values[k] !== undefined) throw new DmError('ERR_USAGE', `--${k} cannot be used with --sig: the signed envelope fixes it`)
      v = readEnvelopeFile(sigFile)
      if (v.kind === VersionKind.File && file === undefined) throw new DmError('ERR_USAGE', `${sigFile} signs the content of "${v.name}": give that file too (dm publish FILE --sig SIG)`)
      if (v.kind === VersionKind.Tombstone && file !== undefined) throw new DmError('ERR_USAGE', `${sigFile} is a deletion of "${v.name}"; it takes no FILE`)
      if (file !== undefined) {
        // The content rules (11, 12) of the policy, from one streamed read.
        content = await readForPublish(file)
        const match = checkDigest(v, content.size, content.sha256)
        if (!match.ok) throw new DmError(match.code, `${file}: ${match.reason}`)
      }
    } else {
      if (file === undefined) throw new DmError('ERR_USAGE', 'usage: dm publish FILE --key PATH, or dm publish [FILE] --sig SIG')
      content = await readForPublish(file)
      v = signHere(args, cfg, str(args, 'name') ?? path.basename(file), content)
    }
    const certFile = str(args, 'cert')
    if (certFile !== undefined) v = attachCertificateFile(v, certFile)
    await post(cfg, file === undefined || content === undefined ? encodePublishHead(v) : publishBody(v, file, content))
    process.stdout.write(v.kind === VersionKind.Tombstone ? `deleted "${v.name}"\n` : `published "${v.name}" (${formatBytes(v.size)})\n`)
    return 0
  }
}

export const remove: Command = {
  summary: 'delete a file everywhere with a signed tombstone',
  usage: 'dm delete NAME --key PATH [--cert CERT] [--config PATH]',
  details: 'The tombstone replicates like a version: every daemon removes the file and\nrefuses older versions of it. To delete without a key on this machine, sign it\nelsewhere (dm sign --tombstone NAME) and run dm publish --sig SIG here.',
  options: { ...configOption, key: { type: 'string', short: 'k', value: 'PATH', description: 'private signing key (dm keygen)' }, ...certOption },
  positionals: { min: 1, max: 1 },
  async run (args) {
    const cfg = config(args)
    const v = signHere(args, cfg, args.positionals[0], undefined)
    const certFile = str(args, 'cert')
    await post(cfg, encodePublishHead(certFile !== undefined ? attachCertificateFile(v, certFile) : v))
    process.stdout.write(`deleted "${args.positionals[0]}"\n`)
    return 0
  }
}

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

export const status: Command = {
  summary: 'show the daemon\'s peer id, uptime, peers, files, last sync and health',
  usage: 'dm status [--config PATH] [--json]',
  details: 'Exits 4 when the daemon reports itself degraded (for example no peer connected\nwhile bootstrap addresses are configured), after printing why.',
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
        ['health', s.health === undefined ? 'unknown' : degraded ? `degraded: ${s.health.reasons.join('; ')}` : 'ok'],
        ...(s.certificate === undefined ? [] : [['certificate', s.certificate === null ? 'none (open mesh)' : certificateLine(s.certificate)]]),
        ['uptime', `${Math.round(s.uptimeMs / 1000)}s`],
        ['peers', `${s.peersConnected} connected, ${s.peersKnown} known`],
        ['files', String(s.files)],
        ['last sync', `${ago(s.lastSyncAtMs)} (${s.syncRounds} rounds)`],
        ['listening', s.listen.join(' ')]
      ]))
      for (const w of s.health?.warnings ?? []) warn(w)
    }
    return degraded ? EXIT.degraded : EXIT.ok
  }
}
