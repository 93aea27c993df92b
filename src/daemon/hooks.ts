import { spawn } from 'node:child_process'
import path from 'node:path'
import type { HookConfig } from '../config/config.js'
import { describeError } from '../errors.js'
import type { Log } from '../util/log.js'

/*
 * Event hooks ([[hooks]]), as Serf's event handlers: a command runs after
 * each accepted version of a name. Runs for one name never overlap; a version
 * that lands while the hook runs makes it run once more afterwards, with the
 * latest version only (the intermediate ones are superseded anyway). This is
 * the race a systemd path unit has, closed.
 */

export type HookKind = 'file' | 'tombstone' | 'expired'

export interface HookEvent {
  name: string
  kind: HookKind
  /** Hex version id. */
  id: string
  /** Base64 signer key. */
  signer: string
  timestampMs: number
}

export interface Hooks {
  /** Queues the hooks that match `event.name`. Must not block. */
  notify: (event: HookEvent) => void
  /** Stops waiting work and waits for the runs under way. */
  stop: () => Promise<void>
}

/** Hook output kept for the log, per stream: the tail. */
const MAX_OUTPUT_BYTES = 4096
/** After the timeout's SIGTERM, a hook gets this long before SIGKILL. */
const KILL_GRACE_MS = 5000

export function createHooks (hooks: HookConfig[], init: { filesDir: string, log: Log }): Hooks {
  const { log } = init
  /** Per hook and name: the run under way, and the latest event that arrived meanwhile. */
  const slots = new Map<string, { running: Promise<void>, next: HookEvent | undefined }>()
  let stopped = false

  const matches = (h: HookConfig, name: string): boolean => h.name !== undefined ? h.name === name : name.startsWith(h.prefix as string)

  function notify (event: HookEvent): void {
    if (stopped) return
    hooks.forEach((hook, i) => {
      if (!matches(hook, event.name)) return
      const key = `${i}\0${event.name}`
      const slot = slots.get(key)
      if (slot !== undefined) { slot.next = event; return }
      const fresh = { running: Promise.resolve(), next: undefined as HookEvent | undefined }
      slots.set(key, fresh)
      fresh.running = (async () => {
        for (let e: HookEvent | undefined = event; e !== undefined && !stopped; e = fresh.next, fresh.next = undefined) {
          await run(hook, i, e)
        }
        slots.delete(key)
      })()
    })
  }

  async function run (hook: HookConfig, index: number, e: HookEvent): Promise<void> {
    const [program, ...args] = hook.exec
    const started = Date.now()
    const out = { stdout: '', stderr: '' }
    const env = {
      ...process.env,
      DM_NAME: e.name,
      DM_KIND: e.kind,
      DM_VERSION_ID: e.id,
      DM_SIGNER: e.signer,
      DM_TIMESTAMP_MS: String(e.timestampMs),
      DM_PATH: path.join(init.filesDir, e.name)
    }
    await new Promise<void>(resolve => {
      const child = spawn(program, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
      const keep = (which: 'stdout' | 'stderr') => (d: Buffer): void => { out[which] = (out[which] + d.toString()).slice(-MAX_OUTPUT_BYTES) }
      child.stdout.on('data', keep('stdout'))
      child.stderr.on('data', keep('stderr'))
      let killer: NodeJS.Timeout | undefined
      const timer = setTimeout(() => {
        log.warn({ hook: index, name: e.name, timeoutMs: hook.timeoutMs }, 'hook timed out; stopping it')
        child.kill('SIGTERM')
        killer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS)
      }, hook.timeoutMs)
      child.once('error', err => {
        clearTimeout(timer)
        log.error({ hook: index, name: e.name, program, err: describeError(err) }, 'hook could not be started')
        resolve()
      })
      child.once('close', (code, signal) => {
        clearTimeout(timer)
        clearTimeout(killer)
        const fields = { hook: index, name: e.name, kind: e.kind, id: e.id, code, signal, ms: Date.now() - started, stdout: out.stdout, stderr: out.stderr }
        if (code === 0) log.info(fields, 'hook ran')
        else log.warn(fields, 'hook failed')
        resolve()
      })
    })
  }

  return {
    notify,
    async stop () {
      stopped = true
      await Promise.allSettled([...slots.values()].map(async s => await s.running))
    }
  }
}
