import fs from 'node:fs'
import path from 'node:path'
import { DmError } from '../errors.js'
import { loadConfig } from '../config/load.js'
import { describeFault } from '../crypto/ed25519.js'
import { loadPrivateKey, publicKeyToBase64 } from '../crypto/keys.js'
import { assertValidName } from '../format/names.js'
import { MAX_CONTENT_BYTES, decodeEnvelope, encodeEnvelope, hex, networkIdFrom, newVersion, signatureFaultOf, VersionKind } from '../format/version.js'
import { checkContent, checkHeader } from '../policy/accept.js'
import { required, str, type Command, type ParsedArgs } from './command.js'
import { warn } from './output.js'

const networkOptions = {
  config: { type: 'string', short: 'c' },
  network: { type: 'string' }
} as const

/** The network id to sign for: --network, else the config's [network] id, else the default. */
export function networkIdFor (args: ParsedArgs): { id: string, bytes: Uint8Array } {
  const explicit = str(args, 'network')
  const configPath = str(args, 'config')
  const id = explicit ?? (configPath !== undefined ? loadConfig(configPath).network.id : 'data-mesher')
  return { id, bytes: networkIdFrom(id) }
}

/** Reads a file to publish, refusing before reading anything over the limit. */
export function readContent (file: string): Buffer {
  let st: fs.Stats
  try {
    st = fs.statSync(file)
  } catch (err) {
    throw new DmError('ERR_USAGE', `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  if (!st.isFile()) throw new DmError('ERR_USAGE', `${file}: not a regular file`)
  if (st.size > MAX_CONTENT_BYTES) throw new DmError('ERR_TOO_LARGE', `${file} is ${st.size} bytes; the limit is ${MAX_CONTENT_BYTES} (10 MiB)`)
  return fs.readFileSync(file)
}

/** Parses --ttl (seconds) into an absolute expiry, 0 for none. */
export function expiryFrom (args: ParsedArgs, nowMs: number): number {
  const ttl = str(args, 'ttl')
  if (ttl === undefined) return 0
  const s = Number(ttl)
  if (!Number.isInteger(s) || s <= 0) throw new DmError('ERR_USAGE', '--ttl must be a whole number of seconds above 0')
  return nowMs + s * 1000
}

export const sign: Command = {
  summary: 'sign a file offline, writing a signature envelope',
  usage: 'dm sign FILE --key PATH --out SIG [--name NAME] [--ttl SECONDS] [--config PATH | --network ID]',
  details: [
    'The name defaults to the base name of FILE. The network id comes from --network,',
    'else from the config\'s [network] id, else "data-mesher". --ttl makes the version',
    'expire that many seconds after signing. See docs/PROTOCOL.md for the envelope.'
  ].join('\n'),
  options: { key: { type: 'string', short: 'k' }, out: { type: 'string', short: 'o' }, name: { type: 'string', short: 'n' }, ttl: { type: 'string' }, ...networkOptions },
  positionals: { min: 1, max: 1 },
  async run (args) {
    const file = args.positionals[0]
    const name = str(args, 'name') ?? path.basename(file)
    assertValidName(name)
    const key = loadPrivateKey(required(args, 'key'), { warn })
    const out = required(args, 'out')
    const content = readContent(file)
    const nowMs = Date.now()
    const v = newVersion({ name, networkId: networkIdFor(args).bytes, privateKey: key.privateKey, signer: key.publicKey, content, timestampMs: nowMs, expiresAtMs: expiryFrom(args, nowMs) })
    fs.writeFileSync(out, encodeEnvelope(v))
    process.stdout.write(`signed "${name}" (${content.length} bytes, sha256 ${hex(v.sha256)}) as ${publicKeyToBase64(key.publicKey)}\n`)
    return 0
  }
}

export const verify: Command = {
  summary: 'check a signature envelope against a file (and a config)',
  usage: 'dm verify FILE SIG [--config PATH | --network ID]',
  details: [
    'Checks the signature and that FILE matches the signed size and hash. With --config',
    'it also checks the network id, that the name is listed in [files] and that the',
    'signer is listed for it. Prints the first failing check and exits 1.'
  ].join('\n'),
  options: networkOptions,
  positionals: { min: 2, max: 2 },
  async run (args) {
    const [file, sigFile] = args.positionals
    let envelope: Buffer
    try {
      envelope = fs.readFileSync(sigFile)
    } catch (err) {
      throw new DmError('ERR_USAGE', `${sigFile}: ${(err as Error).message}`)
    }
    const v = decodeEnvelope(envelope)
    const content = v.kind === VersionKind.File ? readContent(file) : new Uint8Array(0)
    const fail = (reason: string, code: string): number => {
      process.stdout.write(`FAIL ${code}: ${reason}\n`)
      return 1
    }
    const fault = signatureFaultOf(v)
    if (fault !== undefined) return fail(`signature on "${v.name}" is not valid: ${describeFault(fault)} (${fault})`, 'ERR_BAD_SIGNATURE')
    const body = checkContent(v, content)
    if (!body.ok) return fail(body.reason, body.code)
    const configPath = str(args, 'config')
    if (configPath !== undefined || str(args, 'network') !== undefined) {
      const cfg = configPath !== undefined ? loadConfig(configPath) : undefined
      const header = checkHeader(v, undefined, {
        networkId: networkIdFor(args).bytes,
        allowlist: cfg?.files ?? new Map([[v.name, [v.signer]]]),
        maxClockSkewMs: cfg?.maxClockSkewMs ?? Infinity,
        nowMs: Date.now()
      })
      if (!header.ok) return fail(header.reason, header.code)
    }
    process.stdout.write(`OK "${v.name}" ${v.size} bytes, signed ${new Date(v.timestampMs).toISOString()} by ${publicKeyToBase64(v.signer)}\n`)
    return 0
  }
}
