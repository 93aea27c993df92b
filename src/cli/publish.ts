import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { RequestBody } from '../api/client.js'
import { encodePublishHead } from '../api/wire.js'
import type { Config } from '../config/config.js'
import { DmError } from '../errors.js'
import { assertValidName } from '../format/names.js'
import { MAX_CONTENT_BYTES, networkIdFrom, newVersion, signVersion, VersionKind, type SignedVersion } from '../format/version.js'
import { checkDigest } from '../policy/accept.js'
import { attachCertificateFile } from './cert-file.js'
import { config, post } from './client.js'
import { configOption, required, str, type Command, type ParsedArgs } from './command.js'
import { loadSigningKey } from './keys.js'
import { formatBytes } from './output.js'
import { certOption, checkContentFile, expiryFrom, readEnvelopeFile, ttlOption } from './sign.js'

/* dm publish and dm delete: sign here (or take a pre-signed envelope) and hand the version to the daemon. */

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
