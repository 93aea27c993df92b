import { createPrivateKey } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromPublicKey } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { DmError, describeError } from '../errors.js'
import type { SigningKey } from '../crypto/keys.js'
import { readFileNoFollowSync, writeFileDurableSync } from '../store/durable.js'

/** The node's libp2p identity (not a signing key): state_dir/identity.key, protobuf-encoded, mode 0600. */
export const IDENTITY_FILE = 'identity.key'

export interface Identity {
  privateKey: PrivateKey
  peerId: PeerId
}

/**
 * Loads the identity, creating it on first use so the peer id is stable across
 * restarts. Only a missing file means "first use": an unreadable, corrupt or
 * symlinked one is ERR_KEY, never silently replaced by a new identity.
 */
export async function loadOrCreateIdentity (stateDir: string): Promise<Identity> {
  const file = path.join(stateDir, IDENTITY_FILE)
  let bytes: Buffer | undefined
  try {
    bytes = readFileNoFollowSync(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new DmError('ERR_KEY', `identity ${file}: ${describeError(err)}`, { cause: err })
  }
  let privateKey: PrivateKey
  if (bytes !== undefined) {
    try {
      privateKey = privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new DmError('ERR_KEY', `identity ${file} is corrupt: ${describeError(err)}`, { cause: err })
    }
  } else {
    privateKey = await generateKeyPair('Ed25519')
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o750 })
    writeFileDurableSync(file, privateKeyToProtobuf(privateKey), 0o600)
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey) }
}

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows it. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

/** The identity as a signing key, for what a node signs about itself (its node report). */
export function identitySigningKey (identity: Identity): SigningKey {
  // libp2p's raw Ed25519 private key is seed (32) || public key (32).
  const seed = identity.privateKey.raw.subarray(0, 32)
  return { privateKey: createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' }), publicKey: new Uint8Array(identity.privateKey.publicKey.raw) }
}

/** The peer id a raw Ed25519 identity key stands for. */
export function peerIdOfKey (key: Uint8Array): string {
  return peerIdFromPublicKey(publicKeyFromRaw(key)).toString()
}
