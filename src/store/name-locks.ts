/** Per-name serialisation of the store's writes. */
export interface NameLocks {
  /** Runs fn after every earlier operation on the same name: writes to one name never interleave. */
  run: <T>(name: string, fn: () => Promise<T>) => Promise<T>
  /** Resolves once every operation started so far has finished. */
  flush: () => Promise<void>
}

export function createNameLocks (): NameLocks {
  const locks = new Map<string, Promise<void>>()
  return {
    async run<T> (name: string, fn: () => Promise<T>): Promise<T> {
      const prev = locks.get(name) ?? Promise.resolve()
      const next = prev.then(fn)
      const settled = next.then(() => {}, () => {})
      locks.set(name, settled)
      void settled.then(() => { if (locks.get(name) === settled) locks.delete(name) })
      return await next
    },
    async flush () {
      await Promise.all(locks.values())
    }
  }
}
