import fs from 'node:fs'
import path from 'node:path'
import { DmError } from '../errors.js'
import { loadConfig } from '../config/load.js'
import { describeFault } from '../crypto/ed25519.js'
import { publicKeyToBase64 } from '../crypto/keys.js'
import { assertValidName } from '../format/names.js'
import { MAX_CONTENT_BYTES, decodeEnvelope, encodeEnvelope, hex, networkIdFrom, newVersion, signatureFaultOf, VersionKind } from '../format/version.js'
import { checkVersion } from '../policy/accept.js'
import { required, str, type Command, type OptionSpec, type ParsedArgs } from './command.js'
import { parseDuration } from './duration.js'
import { ensurePrivateParent, loadSigningKey } from './keys.js'
import { attachCertificateFile } from './cert-file.js'

const networkOptions = {
  config: { type: 'string', short: 'c', value: 'PATH', env: 'DM_CONFIG', description: 'config whose [network] id (and, for verify, [files]) to use' },
  network: { type: 'string', value: 'ID', description: 'network id, instead of a config' }
} satisfies Record<string, OptionSpec>

export const certOption = {
  cert: { type: 'string', value: 'CERT', description: 'attach this namespace certificate (dm cert issue): needed for a name under [namespaces]' }
} satisfies Record<string, OptionSpec>

export const ttlOption = {
  ttl: { type: 'string', short: 't', value: 'DURATION', description: 'expire this long after signing: seconds, or 30s, 15m, 4h, 90d, 2w' }
} satisfies Record<string, OptionSpec>

/** The network id to sign for: --network, else the config's [network] id, else the default. */
export function networkIdFor (args: ParsedArgs): { id: string, bytes: Uint8Array } {
  const explicit = str(args, 'network')
  const configPath = str(args, 'config')
  const id = explicit ?? (configPath !== undefined ? loadConfig(configPath).network.id : 'data-mesher')
  return { id, bytes: networkIdFrom(id) }
}

/** Checks a file to publish before reading it: it exists, is a regular file, and is within the limit. */
export function checkContentFile (file: string): void {
  let st: fs.Stats
  try {
    st = fs.statSync(file)
  } catch (err) {
    throw new DmError('ERR_USAGE', `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  if (!st.isFile()) throw new DmError('ERR_USAGE', `${file}: not a regular file`)
  if (st.size > MAX_CONTENT_BYTES) throw new DmError('ERR_TOO_LARGE', `${file} is ${st.size} bytes; the limit is ${MAX_CONTENT_BYTES} (10 MiB)`)
}

/** Reads a file to publish, refusing before reading anything over the limit. */
export function readContent (file: string): Buffer {
  checkContentFile(file)
  return fs.readFileSync(file)
}

/** Parses --ttl (seconds or a duration with a unit) into an absolute expiry, 0 for none. */
export function expiryFrom (args: ParsedArgs, nowMs: number): number {
  const ttl = str(args, 'ttl')
  if (ttl === undefined) return 0
  return nowMs + parseDuration(ttl, 'ttl') * 1000
}

/** Largest signature file read: an envelope is at most a few KiB. */
const MAX_SIG_FILE_BYTES = 64 * 1024

/** Reads and decodes a signature envelope file (dm sign --out). */
export function readEnvelopeFile (file: string): ReturnType<typeof decodeEnvelope> {
  let data: Buffer
  try {
    if (fs.statSync(file).size > MAX_SIG_FILE_BYTES) throw new DmError('ERR_USAGE', `${file}: larger than any signature envelope; is it the content file?`)
    data = fs.readFileSync(file)
  } catch (err) {
    if (err instanceof DmError) throw err
    throw new DmError('ERR_USAGE', `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  return decodeEnvelope(data)
}

/** Writes a new file; refuses to replace one unless `force`. */
export function writeNew (file: string, data: Uint8Array, force: boolean): void {
  ensurePrivateParent(file)
  try {
    fs.writeFileSync(file, data, { flag: force ? 'w' : 'wx', mode: 0o644 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new DmError('ERR_USAGE', `${file} already exists; refusing to overwrite it (add --force)`)
    throw new DmError('ERR_USAGE', `cannot write ${file}: ${(err as Error).message}`)
  }
}

export const sign: Command = {
  summary: 'sign a file (or a deletion) offline, writing a signature envelope',
  usage: 'dm sign FILE --key PATH --out SIG [--name NAME] [--ttl DURATION] [--cert CERT] [--config PATH | --network ID] [--force]\n       dm sign --tombstone NAME --key PATH --out SIG [--cert CERT] [--config PATH | --network ID] [--force]',
  details: [
    'The name defaults to the base name of FILE. The network id comes from --network,',
    'else from the config\'s [network] id, else "data-mesher". Copy SIG (and FILE) to a',
    'node and run dm publish FILE --sig SIG (dm publish --sig SIG for a tombstone):',
    'the node never needs the key. See docs/PROTOCOL.md for the envelope.'
  ].join('\n'),
  options: {
    key: { type: 'string', short: 'k', value: 'PATH', description: 'private signing key (dm keygen)' },
    out: { type: 'string', short: 'o', value: 'SIG', description: 'where to write the signature envelope' },
    name: { type: 'string', short: 'n', value: 'NAME', description: 'file name in [files] (default: base name of FILE)' },
    tombstone: { type: 'string', value: 'NAME', description: 'sign a deletion of NAME instead of a file' },
    force: { type: 'boolean', short: 'f', description: 'overwrite SIG if it exists' },
    ...ttlOption,
    ...certOption,
    ...networkOptions
  },
  positionals: { min: 0, max: 1 },
  async run (args) {
    const tombstone = str(args, 'tombstone')
    if ((tombstone === undefined) === (args.positionals.length === 0)) throw new DmError('ERR_USAGE', 'usage: dm sign FILE --key PATH --out SIG, or dm sign --tombstone NAME --key PATH --out SIG')
    if (tombstone !== undefined && (str(args, 'name') !== undefined || str(args, 'ttl') !== undefined)) throw new DmError('ERR_USAGE', '--tombstone takes no --name or --ttl')
    const file = args.positionals[0]
    const name = tombstone ?? str(args, 'name') ?? path.basename(file)
    assertValidName(name)
    const key = loadSigningKey(required(args, 'key'))
    const out = required(args, 'out')
    const content = file !== undefined ? readContent(file) : undefined
    const nowMs = Date.now()
    const signed = newVersion({ name, networkId: networkIdFor(args).bytes, privateKey: key.privateKey, signer: key.publicKey, content, timestampMs: nowMs, expiresAtMs: expiryFrom(args, nowMs) })
    const certFile = str(args, 'cert')
    const v = certFile !== undefined ? attachCertificateFile(signed, certFile) : signed
    writeNew(out, encodeEnvelope(v), args.values.force === true)
    const what = content === undefined ? 'a deletion of' : `${content.length} bytes of`
    process.stdout.write(`signed ${what} "${name}"${content !== undefined ? ` (sha256 ${hex(v.sha256)})` : ''} as ${publicKeyToBase64(key.publicKey)}\n`)
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
    const v = readEnvelopeFile(sigFile)
    const content = v.kind === VersionKind.File ? readContent(file) : new Uint8Array(0)
    const fail = (reason: string, code: string): number => {
      process.stdout.write(`FAIL ${code}: ${reason}\n`)
      return 1
    }
    const configPath = str(args, 'config')
    const checksNetwork = configPath !== undefined || str(args, 'network') !== undefined
    // With a config or network: the daemon's own acceptance function, so the first failing rule is the one a daemon reports.
    const cfg = configPath !== undefined ? loadConfig(configPath) : undefined
    const verdict = checkVersion(v, content, undefined, {
      networkId: checksNetwork ? networkIdFor(args).bytes : v.networkId,
      allowlist: cfg?.files ?? new Map([[v.name, [v.signer]]]),
      maxClockSkewMs: cfg?.maxClockSkewMs ?? Infinity,
      nowMs: Date.now()
    })
    if (!verdict.ok) {
      const fault = verdict.code === 'ERR_BAD_SIGNATURE' ? signatureFaultOf(v) : undefined
      return fail(fault !== undefined ? `${verdict.reason}: ${describeFault(fault)} (${fault})` : verdict.reason, verdict.code)
    }
    if (!checksNetwork) process.stderr.write('dm: note: no --config or --network given, so the network id, [files] and the signer\'s listing were not checked\n')
    if (v.kind === VersionKind.Tombstone) {
      process.stdout.write(`OK tombstone: deletes "${v.name}", signed ${new Date(v.timestampMs).toISOString()} by ${publicKeyToBase64(v.signer)}\n`)
      return 0
    }
    process.stdout.write(`OK "${v.name}" ${v.size} bytes, signed ${new Date(v.timestampMs).toISOString()} by ${publicKeyToBase64(v.signer)}\n`)
    return 0
  }
}
