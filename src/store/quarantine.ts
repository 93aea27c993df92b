import { randomBytes } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { HeldDir } from './held-dir.js'

/** Entries kept in quarantine/; the oldest are deleted beyond this. */
export const MAX_QUARANTINED = 64

/**
 * Moves an entry into quarantine/ (a rename: same filesystem), or with
 * `copy` links it there as evidence before it is replaced. Keeps at most
 * MAX_QUARANTINED entries. Returns where it went.
 */
export type MoveAside = (dir: HeldDir, entry: string, label: string, copy?: boolean) => Promise<string>

export function createQuarantine (quarantine: HeldDir): MoveAside {
  return async function moveAside (dir, entry, label, copy = false) {
    const target = `${String(Date.now()).padStart(15, '0')}-${randomBytes(3).toString('hex')}-${label.replaceAll('/', '%').slice(0, 200)}`
    if (copy) await fsp.link(dir.at(entry), quarantine.at(target))
    else await fsp.rename(dir.at(entry), quarantine.at(target))
    await Promise.all([dir.sync(), quarantine.sync()])
    const all = (await fsp.readdir(quarantine.at('.'))).sort()
    for (const old of all.slice(0, Math.max(0, all.length - MAX_QUARANTINED))) {
      await fsp.rm(quarantine.at(old), { recursive: true, force: true })
    }
    return path.join(quarantine.path, target)
  }
}
