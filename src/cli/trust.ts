import fs from 'node:fs'
import { DmError, describeError } from '../errors.js'
import { generatePrivateKeyFile, parsePublicKeyBase64, publicKeyToBase64 } from '../crypto/keys.js'
import { CertKind, encodeCertificate, kindName, signCertificate, type Certificate } from '../format/certificate.js'
import { assertValidName } from '../format/names.js'
import { ownerSegment } from '../policy/namespaces.js'
import { required, str, type Command, type OptionSpec, type ParsedArgs } from './command.js'
import { parseDuration } from './duration.js'
import { ensurePrivateParent, loadSigningKey } from './keys.js'
import { readCertificateFile } from './cert-file.js'
import { table } from './output.js'
import { writeNew } from './sign.js'

/*
 * The trust verbs: make a network key, admit a node (membership certificate),
 * certify a namespace signer, and read a certificate. All offline: the
 * network key stays on the operator's machine.
 */

/** Upstream's fixed validity, kept as the default. */
const DEFAULT_VALIDITY = '90d'
const issuerOptions = {
  'network-key': { type: 'string', value: 'PATH', description: 'private network key (dm network keygen), or a listed issuer key' },
  validity: { type: 'string', value: 'DURATION', default: DEFAULT_VALIDITY, description: 'how long from now it is valid: 30d, 12w, 2160h' },
  out: { type: 'string', short: 'o', value: 'CERT', description: 'where to write the certificate (never overwritten)' }
} satisfies Record<string, OptionSpec>

function issue (args: ParsedArgs, body: Omit<Parameters<typeof signCertificate>[0], 'issuer' | 'notBeforeMs' | 'notAfterMs'>): Certificate {
  const issuer = loadSigningKey(required(args, 'network-key'))
  const out = required(args, 'out')
  const nowMs = Date.now()
  const cert = signCertificate({ ...body, issuer: issuer.publicKey, notBeforeMs: nowMs, notAfterMs: nowMs + parseDuration(str(args, 'validity') ?? DEFAULT_VALIDITY, 'validity') * 1000 }, issuer.privateKey)
  writeNew(out, encodeCertificate(cert), false)
  return cert
}

export const networkKeygen: Command = {
  summary: 'create a network key (the root of a private mesh)',
  usage: 'dm network keygen --out PATH',
  details: [
    'Writes the private key (PKCS#8 PEM, mode 0600, never overwritten) and prints the',
    'line to put in every node\'s config. Keep the private key off the fleet: it signs',
    'membership and namespace certificates and the revocation list.'
  ].join('\n'),
  options: { out: { type: 'string', short: 'o', value: 'PATH', description: 'where to write the private network key' } },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const out = required(args, 'out')
    ensurePrivateParent(out)
    const key = generatePrivateKeyFile(out)
    process.stdout.write(`# under [network] in every node's config:\nkey = "${publicKeyToBase64(key.publicKey)}"\n`)
    return 0
  }
}

/** The raw Ed25519 public key of a node: from its peer id, or from its identity.key file. */
async function nodeKey (args: ParsedArgs): Promise<Uint8Array> {
  const peerId = str(args, 'peer-id')
  const identityFile = str(args, 'identity-key')
  if ((peerId === undefined) === (identityFile === undefined)) throw new DmError('ERR_USAGE', 'give exactly one of --peer-id ID or --identity-key FILE')
  if (peerId !== undefined) {
    const { peerIdFromString } = await import('@libp2p/peer-id')
    let id
    try { id = peerIdFromString(peerId) } catch (err) { throw new DmError('ERR_USAGE', `--peer-id ${peerId}: not a peer id (${describeError(err)})`) }
    if (id.type !== 'Ed25519') throw new DmError('ERR_USAGE', `--peer-id ${peerId}: a ${id.type} peer id; data-mesher nodes have Ed25519 ones (dm id prints it)`)
    return new Uint8Array(id.publicKey.raw)
  }
  const { privateKeyFromProtobuf } = await import('@libp2p/crypto/keys')
  let key
  try { key = privateKeyFromProtobuf(fs.readFileSync(identityFile as string)) } catch (err) { throw new DmError('ERR_KEY', `--identity-key ${identityFile}: not a node identity (state_dir/identity.key): ${describeError(err)}`) }
  if (key.type !== 'Ed25519') throw new DmError('ERR_KEY', `--identity-key ${identityFile}: a ${key.type} key, not Ed25519`)
  return new Uint8Array(key.publicKey.raw)
}

export const networkAdmit: Command = {
  summary: 'sign a membership certificate for a node',
  usage: 'dm network admit --network-key PATH (--peer-id ID | --identity-key FILE) [--name NAME] [--validity 90d] --out CERT',
  details: [
    'Binds the node\'s identity (its peer id, from dm id, or its state_dir/identity.key)',
    'to a validity window and an optional name. Copy CERT to the node and set',
    '[network] certificate = "PATH" in its config.'
  ].join('\n'),
  options: {
    'peer-id': { type: 'string', value: 'ID', description: 'the node\'s peer id (dm id prints it)' },
    'identity-key': { type: 'string', value: 'FILE', description: 'the node\'s state_dir/identity.key, instead of --peer-id' },
    name: { type: 'string', short: 'n', value: 'NAME', description: 'node name, up to 64 characters of [A-Za-z0-9._-]' },
    ...issuerOptions
  },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const subject = await nodeKey(args)
    const cert = issue(args, { kind: CertKind.Membership, subject, name: str(args, 'name') ?? '' })
    process.stdout.write(`admitted ${cert.name === '' ? 'a node' : `"${cert.name}"`} until ${new Date(cert.notAfterMs).toISOString()}\n`)
    return 0
  }
}

export const certIssue: Command = {
  summary: 'certify a signing key for a namespace',
  usage: 'dm cert issue --network-key PATH --key-pub PUB --namespace NS [--validity 90d] --out CERT',
  details: [
    'PUB is the signer\'s base64 public key (dm pubkey). The signer may then write names',
    'NS/<its key in base64url>/..., printed below, with dm publish --cert CERT. The',
    'issuer is the network key, or a key listed for NS under [namespaces].'
  ].join('\n'),
  options: {
    'key-pub': { type: 'string', value: 'PUB', description: 'the signer\'s base64 public key' },
    namespace: { type: 'string', value: 'NS', description: 'the namespace, as declared under [namespaces]' },
    ...issuerOptions
  },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const subject = parsePublicKeyBase64(required(args, 'key-pub'))
    if (typeof subject === 'string') throw new DmError('ERR_USAGE', `--key-pub ${subject}`)
    const ns = required(args, 'namespace')
    assertValidName(ns)
    const cert = issue(args, { kind: CertKind.Namespace, subject, name: ns })
    process.stdout.write(`certified for "${ns}" until ${new Date(cert.notAfterMs).toISOString()}; its names: ${ns}/${ownerSegment(subject)}/...\n`)
    return 0
  }
}

export const certShow: Command = {
  summary: 'print what a certificate says (it checks the structure, not the trust)',
  usage: 'dm cert show CERT',
  options: {},
  positionals: { min: 1, max: 1 },
  async run (args) {
    const { cert } = readCertificateFile(args.positionals[0])
    const nowMs = Date.now()
    const window = nowMs < cert.notBeforeMs ? 'not yet valid' : nowMs >= cert.notAfterMs ? 'expired' : 'valid now'
    process.stdout.write(table([
      ['kind', kindName(cert.kind)],
      [cert.kind === CertKind.Namespace ? 'namespace' : 'node name', cert.name],
      ['subject', publicKeyToBase64(cert.subject)],
      ...(cert.kind === CertKind.Namespace ? [['directory', `${cert.name}/${ownerSegment(cert.subject)}/`]] : []),
      ['not before', new Date(cert.notBeforeMs).toISOString()],
      ['not after', `${new Date(cert.notAfterMs).toISOString()} (${window})`],
      ['issuer', publicKeyToBase64(cert.issuer)]
    ]))
    return 0
  }
}
