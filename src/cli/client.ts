import path from 'node:path'
import { apiRequest } from '../api/client.js'
import { encodePublishBody, type PeerInfoJson, type StatusInfo, type VersionInfo } from '../api/wire.js'
import { loadConfig } from '../config/load.js'
import { loadPrivateKey } from '../crypto/keys.js'
import { assertValidName } from '../format/names.js'
import { networkIdFrom, newVersion } from '../format/version.js'
import { configOption, jsonOption, required, str, type Command, type ParsedArgs } from './command.js'
import { formatBytes, printJson, table, warn } from './output.js'
import { expiryFrom, readContent } from './sign.js'

/** Signs on the client side (the private key never reaches the daemon) and hands the version over. */
async function submit (args: ParsedArgs, name: string, content: Uint8Array | undefined): Promise<void> {
  assertValidName(name)
  const config = loadConfig(str(args, 'config') as string)
  const key = loadPrivateKey(required(args, 'key'), { warn })
  const nowMs = Date.now()
  const v = newVersion({ name, networkId: networkIdFrom(config.network.id), privateKey: key.privateKey, signer: key.publicKey, content, timestampMs: nowMs, expiresAtMs: expiryFrom(args, nowMs) })
  await apiRequest(config.api.socket, 'POST', '/v1/versions', encodePublishBody(v, content ?? new Uint8Array(0)))
}

export const publish: Command = {
  summary: 'sign a file and hand it to the local daemon',
  usage: 'dm publish FILE --key PATH [--name NAME] [--ttl SECONDS] [--config PATH]',
  details: 'Exits 0 once the daemon has accepted and stored the version; otherwise prints the\nreason on one line and exits 1 (refused) or 3 (no daemon). NAME defaults to the\nbase name of FILE.',
  options: { ...configOption, key: { type: 'string', short: 'k' }, name: { type: 'string', short: 'n' }, ttl: { type: 'string' } },
  positionals: { min: 1, max: 1 },
  async run (args) {
    const file = args.positionals[0]
    const name = str(args, 'name') ?? path.basename(file)
    const content = readContent(file)
    await submit(args, name, content)
    process.stdout.write(`published "${name}" (${formatBytes(content.length)})\n`)
    return 0
  }
}

export const remove: Command = {
  summary: 'delete a file everywhere with a signed tombstone',
  usage: 'dm delete NAME --key PATH [--config PATH]',
  details: 'The tombstone replicates like a version: every daemon removes the file and\nrefuses older versions of it.',
  options: { ...configOption, key: { type: 'string', short: 'k' } },
  positionals: { min: 1, max: 1 },
  async run (args) {
    await submit(args, args.positionals[0], undefined)
    process.stdout.write(`deleted "${args.positionals[0]}"\n`)
    return 0
  }
}

async function query<T> (args: ParsedArgs, route: string): Promise<T> {
  const config = loadConfig(str(args, 'config') as string)
  return await apiRequest<T>(config.api.socket, 'GET', route)
}

function ago (ms: number | null): string {
  if (ms === null) return 'never'
  const s = Math.round((Date.now() - ms) / 1000)
  return s < 1 ? 'just now' : `${s}s ago`
}

export const list: Command = {
  summary: 'list the versions the daemon holds',
  usage: 'dm list [--config PATH] [--json]',
  options: { ...configOption, ...jsonOption },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const versions = await query<VersionInfo[]>(args, '/v1/versions')
    if (args.values.json === true) { printJson(versions); return 0 }
    process.stdout.write(table([
      ['NAME', 'SIZE', 'SIGNED', 'SIGNER', 'SHA256'],
      ...versions.map(v => [v.name + (v.tombstone ? ' (deleted)' : v.present ? '' : ' (missing)'), formatBytes(v.size), v.signedAt, v.signer, v.sha256.slice(0, 16)])
    ]))
    return 0
  }
}

export const peers: Command = {
  summary: 'list known and connected members',
  usage: 'dm peers [--config PATH] [--json]',
  options: { ...configOption, ...jsonOption },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const members = await query<PeerInfoJson[]>(args, '/v1/peers')
    if (args.values.json === true) { printJson(members); return 0 }
    process.stdout.write(table([
      ['PEER', 'STATE', 'SEEN', 'ADDRESS'],
      ...members.map(m => [m.id, m.connected ? 'connected' : m.failures > 0 ? `unreachable (${m.failures})` : 'known', ago(m.lastSeenMs), m.addrs[0] ?? ''])
    ]))
    return 0
  }
}

export const status: Command = {
  summary: 'show the daemon\'s peer id, uptime, peers, files and last sync',
  usage: 'dm status [--config PATH] [--json]',
  options: { ...configOption, ...jsonOption },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const s = await query<StatusInfo>(args, '/v1/status')
    if (args.values.json === true) { printJson(s); return 0 }
    process.stdout.write(table([
      ['peer id', s.peerId],
      ['network', s.network],
      ['uptime', `${Math.round(s.uptimeMs / 1000)}s`],
      ['peers', `${s.peersConnected} connected, ${s.peersKnown} known`],
      ['files', String(s.files)],
      ['last sync', `${ago(s.lastSyncAtMs)} (${s.syncRounds} rounds)`],
      ['listening', s.listen.join(' ')]
    ]))
    return 0
  }
}
