import fs from 'node:fs'
import path from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { DmError, describeError } from '../errors.js'
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
