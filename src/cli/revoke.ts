import { apiRequest, apiRequestBytes } from '../api/client.js'
import { encodePublishBody } from '../api/wire.js'
import { loadConfig } from '../config/load.js'
import { parsePublicKeyBase64 } from '../crypto/keys.js'
import { DmError } from '../errors.js'
import { networkIdFrom, newVersion } from '../format/version.js'
import { NO_REVOCATIONS, REVOCATIONS_NAME, encodeRevocations, parseRevocations, type RevocationList } from '../policy/revocation.js'
import { configOption, required, str, type Command } from './command.js'
import { loadSigningKey } from './keys.js'

/*
 * `dm revoke`: adds a signer key or a node's identity key to the fleet-wide
 * revocation list held by the local daemon, signs the new list with the
 * network key, and publishes it. Every node then refuses the signer's
 * versions and withdraws the files it signed, and disconnects the node.
 */
export const revoke: Command = {
  summary: 'revoke a signer key or a node fleet-wide (needs the network key)',
  usage: 'dm revoke (--signer KEY | --node KEY) --reason TEXT --network-key PATH [--config PATH]',
  details: [
    'Reads the revocation list the local daemon holds, adds the key, signs the new list',
    `(${REVOCATIONS_NAME}) with the network key and publishes it. Files signed by a revoked`,
    'signer disappear from every node (fail closed) and any valid version replaces them;',
    'a revoked node is disconnected and refused. A key removed from [files] in a routine',
    'rotation is different: its files stay until replaced (see the README).'
  ].join('\n'),
  options: {
    ...configOption,
    signer: { type: 'string', value: 'KEY', description: 'base64 signer public key to revoke' },
    node: { type: 'string', value: 'KEY', description: 'base64 identity key of a node to revoke (dm cert show of its certificate)' },
    reason: { type: 'string', short: 'r', value: 'TEXT', description: 'why, kept in the list (at most 256 characters)' },
    'network-key': { type: 'string', value: 'PATH', description: 'the network\'s private key (dm network keygen)' }
  },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const cfg = loadConfig(str(args, 'config') as string)
    const signer = str(args, 'signer')
    const node = str(args, 'node')
    if ((signer === undefined) === (node === undefined)) throw new DmError('ERR_USAGE', 'give exactly one of --signer KEY or --node KEY')
    const key = parsePublicKeyBase64((signer ?? node) as string)
    if (typeof key === 'string') throw new DmError('ERR_USAGE', `--${signer !== undefined ? 'signer' : 'node'}: key ${key}`)
    const networkKey = loadSigningKey(required(args, 'network-key'))
    if (cfg.network.key === undefined || !Buffer.from(cfg.network.key).equals(networkKey.publicKey)) {
      throw new DmError('ERR_USAGE', '--network-key is not the key in [network] key: the list would be refused everywhere')
    }
    const current = await heldList(cfg.api.socket, cfg.stateDir)
    const entry = { key, reason: str(args, 'reason') ?? '', revokedAtMs: Date.now() }
    const section = signer !== undefined ? 'signers' : 'nodes'
    if (current[section].some(r => Buffer.from(r.key).equals(key))) {
      process.stdout.write(`already revoked: ${signer ?? node as string}\n`)
      return 0
    }
    const next: RevocationList = { ...current, [section]: [...current[section], entry] }
    const content = encodeRevocations(next)
    const v = newVersion({ name: REVOCATIONS_NAME, content, networkId: networkIdFrom(cfg.network.id), privateKey: networkKey.privateKey, signer: networkKey.publicKey, timestampMs: Date.now() })
    await apiRequest(cfg.api.socket, 'POST', '/v1/versions', encodePublishBody(v, content), { stateDir: cfg.stateDir })
    process.stdout.write(`revoked ${section === 'signers' ? 'signer' : 'node'} ${signer ?? node as string}; the list now names ${next.signers.length} signer(s) and ${next.nodes.length} node(s)\n`)
    return 0
  }
}

/** The list the daemon holds, or an empty one when it holds none. */
async function heldList (socket: string, stateDir: string): Promise<RevocationList> {
  try {
    return parseRevocations(await apiRequestBytes(socket, `/v1/content?name=${encodeURIComponent(REVOCATIONS_NAME)}`, { stateDir }))
  } catch (err) {
    if (err instanceof DmError && err.code === 'ERR_NOT_FOUND') return NO_REVOCATIONS
    throw err
  }
}
