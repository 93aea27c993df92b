import fs from 'node:fs'
import path from 'node:path'
import type { PeerInfo } from '../protocol/messages.js'

/** state_dir/peers.json: members last seen, so a fleet restarted at once reforms without its bootstrap nodes. */
export const PEERS_FILE = 'peers.json'
const MAX_SAVED_PEERS = 256

export function loadPeers (stateDir: string): PeerInfo[] {
  try {
    const data = JSON.parse(fs.readFileSync(path.join(stateDir, PEERS_FILE), 'utf8')) as unknown
    if (!Array.isArray(data)) return []
    return data.slice(0, MAX_SAVED_PEERS).filter((p): p is PeerInfo =>
      typeof p?.id === 'string' && Array.isArray(p.addrs) && p.addrs.every((a: unknown) => typeof a === 'string'))
  } catch {
    return []
  }
}

/** Written atomically (temp file, rename); losing it only costs a slower rejoin. */
export function savePeers (stateDir: string, peers: PeerInfo[]): void {
  const file = path.join(stateDir, PEERS_FILE)
  const tmp = `${file}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(peers.slice(0, MAX_SAVED_PEERS)), { mode: 0o640 })
  fs.renameSync(tmp, file)
}
