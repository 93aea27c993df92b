import fs from 'node:fs'
import path from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { DmError } from '../errors.js'

/** The node's libp2p identity (not a signing key): state_dir/identity.key, protobuf-encoded, mode 0600. */
export const IDENTITY_FILE = 'identity.key'

export interface Identity {
  privateKey: PrivateKey
  peerId: PeerId
}

/** Loads the identity, creating it on first use so the peer id is stable across restarts. */
export async function loadOrCreateIdentity (stateDir: string): Promise<Identity> {
  const file = path.join(stateDir, IDENTITY_FILE)
  let privateKey: PrivateKey
  try {
    privateKey = privateKeyFromProtobuf(fs.readFileSync(file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new DmError('ERR_KEY', `identity ${file}: ${(err as Error).message}`)
    }
    privateKey = await generateKeyPair('Ed25519')
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o750 })
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, privateKeyToProtobuf(privateKey), { mode: 0o600 })
    fs.renameSync(tmp, file)
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey) }
}
