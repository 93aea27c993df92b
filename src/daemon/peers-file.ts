import fs from 'node:fs'
import path from 'node:path'
import { DmError, describeError } from '../errors.js'
import type { PeerInfo } from '../protocol/messages.js'
import { readFileNoFollowSync, writeFileDurableSync } from '../store/durable.js'

/** state_dir/peers.json: members last seen, so a fleet restarted at once reforms without its bootstrap nodes. */
export const PEERS_FILE = 'peers.json'
/** Where an unparseable peers.json is moved, so it can be looked at (replaced by the next one). */
export const CORRUPT_PEERS_FILE = 'peers.json.corrupt'
const MAX_SAVED_PEERS = 256

/**
 * The members saved last time. Missing: none (first start). Unparseable: moved
 * aside to peers.json.corrupt and reported through `problem`, then none. Any
 * other read error (EIO, EMFILE, EACCES…) is thrown as ERR_STORE_IO: it is not
 * a first boot.
 */
export function loadPeers (stateDir: string, problem: (message: string) => void = () => {}): PeerInfo[] {
  const file = path.join(stateDir, PEERS_FILE)
  let text: string
  try {
    text = readFileNoFollowSync(file).toString('utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new DmError('ERR_STORE_IO', `cannot read ${file}: ${describeError(err)}`, { cause: err })
  }
  let data: unknown
  try {
    data = JSON.parse(text)
    if (!Array.isArray(data)) throw new Error('not a JSON array')
  } catch (err) {
    fs.renameSync(file, path.join(stateDir, CORRUPT_PEERS_FILE))
    problem(`${file} is corrupt (${describeError(err)}); moved to ${CORRUPT_PEERS_FILE}, starting from the bootstrap peers`)
    return []
  }
  return data.slice(0, MAX_SAVED_PEERS).filter((p): p is PeerInfo =>
    typeof p?.id === 'string' && Array.isArray(p.addrs) && p.addrs.every((a: unknown) => typeof a === 'string'))
}

/** Written durably (temp file, fsync, rename, fsync of the directory); errors are thrown. */
export function savePeers (stateDir: string, peers: PeerInfo[]): void {
  writeFileDurableSync(path.join(stateDir, PEERS_FILE), JSON.stringify(peers.slice(0, MAX_SAVED_PEERS)), 0o640)
}
