import { VersionKind, encodeEnvelope, isExpired, versionId, type SignedVersion } from '../format/version.js'
import { supersedes } from '../policy/accept.js'
import { createHash } from 'node:crypto'
import type { StagedContent } from '../store/staged.js'
import type { HeldEntry, Store } from '../store/store.js'
import type { Clock } from '../util/clock.js'

/*
 * The Store interface held in memory, for the simulator: the same
 * compare-and-set and per-name serialisation as src/store/ (store.ts, commit.ts, name-locks.ts), no disk.
 * Operations resolve at once (a commit costs no virtual time), so 10,000
 * nodes fit in one process. Content is kept by reference, not copied.
 */
export function memoryStore (clock: Clock): Store {
  const index = new Map<string, HeldEntry>()
  const contents = new Map<string, Uint8Array>()
  const expired = new Set<string>()
  const locks = new Map<string, Promise<void>>()

  /** Runs fn after every earlier operation on the same name, as the disk store does. */
  async function withLock<T> (name: string, fn: () => T): Promise<T> {
    const prev = locks.get(name)
    if (prev === undefined) return fn() // nothing queued: no extra turn, like an idle disk store
    const next = prev.then(fn)
    const settled = next.then(() => {}, () => {})
    locks.set(name, settled)
    void settled.then(() => { if (locks.get(name) === settled) locks.delete(name) })
    return await next
  }

  /** Staged content held in memory (the simulator sends small files; this keeps the interface whole). */
  function stageInMemory (): StagedContent & { bytes: () => Uint8Array } {
    const parts: Uint8Array[] = []
    const hash = createHash('sha256')
    let size = 0
    return {
      async write (chunk) { parts.push(chunk); hash.update(chunk); size += chunk.length },
      get size () { return size },
      get landed () { return size },
      // Not relayed onward: the simulator's versions are small.
      whenLanded: async () => {},
      openReader: async () => { throw new Error('in-memory staged content has no file') },
      sha256: () => hash.copy().digest(),
      seal: async () => '(memory)',
      async discard () { parts.length = 0 },
      bytes: () => Buffer.concat(parts)
    }
  }

  const store: Store = {
    filesDir: '(memory)',
    get: name => index.get(name),
    entries: () => index.values(),
    size: () => index.size,
    commit: async (version: SignedVersion, content: Uint8Array, opts = {}) => await withLock(version.name, () => {
      const id = versionId(version)
      const held = index.get(version.name)
      const replaces = opts.replaces ?? (h => supersedes({ timestampMs: version.timestampMs, id }, h))
      if (!replaces(held)) return { committed: false }
      const entry: HeldEntry = { name: version.name, version, envelope: encodeEnvelope(version), id, timestampMs: version.timestampMs, present: true }
      index.set(version.name, entry)
      if (version.kind === VersionKind.File) contents.set(version.name, content)
      else contents.delete(version.name)
      expired.delete(version.name)
      return { committed: true }
    }),
    async readContent (name) {
      const held = index.get(name)
      if (held === undefined || !held.present || held.version.kind !== VersionKind.File || isExpired(held.version, clock.nowMs())) return undefined
      return contents.has(name) ? Buffer.from(contents.get(name) as Uint8Array) : undefined
    },
    async expire () {
      const now = clock.nowMs()
      const due = [...index.values()].filter(e => e.version.kind === VersionKind.File && isExpired(e.version, now) && !expired.has(e.name))
      for (const e of due) {
        contents.delete(e.name)
        expired.add(e.name)
      }
      return due.map(e => e.name)
    },
    async flush () {
      await Promise.all(locks.values())
    },
    async openContent (name, chunkBytes) {
      const data = await store.readContent(name)
      if (data === undefined) return undefined
      return (async function * () {
        for (let off = 0; off < data.length; off += chunkBytes) yield data.subarray(off, off + chunkBytes)
      })()
    },
    async withdraw (name) {
      contents.delete(name)
      const held = index.get(name)
      if (held !== undefined) held.present = false
    },
    stage: async () => stageInMemory(),
    commitStaged: async (version, staged, opts) => await store.commit(version, (staged as ReturnType<typeof stageInMemory> | undefined)?.bytes() ?? new Uint8Array(0), opts),
    // Nothing on disk to tamper with, and nothing to close.
    check: async () => undefined,
    async close () {}
  }
  return store
}
