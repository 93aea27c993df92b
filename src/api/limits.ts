import type { Socket } from 'node:net'

/*
 * Caps on what local clients can make the daemon hold (docs/SECURITY.md, "the
 * local API"). A flood must not starve a real caller, so at a cap the
 * connection that has been quiet longest is dropped to make room (a real
 * caller on a Unix socket is never quiet for long); only when every
 * connection is mid-answer is the newcomer refused with 503 ERR_API_BUSY.
 */

/** Connections served at once. A dm call uses one; more than a few dozen is a flood. */
export const MAX_API_CONNECTIONS = 128
/**
 * Request-body bytes taken in across all connections until each request is
 * answered: six full publishes (10 MiB content each) at once. Content over
 * 64 KiB streams to staging/ on disk, so this bounds the staging space
 * unfinished uploads take; memory holds only the chunks in flight.
 */
export const MAX_INFLIGHT_BODY_BYTES = 64 * 1024 * 1024

/**
 * How long the rest of a refused request body is read and dropped after the
 * answer, so the client can read the answer; past it the connection is cut.
 * A local publish of 10 MiB is sent in well under a second.
 */
export const REFUSED_BODY_GRACE_MS = 2000

interface Conn {
  socket: Socket
  /** Last time a request started, a body chunk arrived or an answer finished. */
  lastActiveMs: number
  /** Body bytes held for this connection's current request. */
  bodyBytes: number
  /** Requests whose body is complete and whose answer is not yet sent: not evictable. */
  answering: number
}

export interface ConnectionGovernor {
  /** Registers a new connection; false when it was refused (the caller ends it with a 503). */
  admit: (socket: Socket) => boolean
  /** Marks activity (a request or a body chunk). */
  touch: (socket: Socket) => void
  /** Reserves `n` more body bytes for the socket's request; false when there is no room even after evicting. */
  reserve: (socket: Socket, n: number) => boolean
  /** The request's body is complete and being answered: never evicted until `done`. */
  answering: (socket: Socket) => void
  /** A request finished (answered or aborted): its `bodyBytes` are released. */
  done: (socket: Socket, answered: boolean, bodyBytes: number) => void
  readonly connections: number
  readonly bodyBytes: number
}

export interface GovernorLimits {
  maxConnections?: number
  maxBodyBytes?: number
  now?: () => number
}

export function createConnectionGovernor (limits: GovernorLimits = {}): ConnectionGovernor {
  const maxConnections = limits.maxConnections ?? MAX_API_CONNECTIONS
  const maxBodyBytes = limits.maxBodyBytes ?? MAX_INFLIGHT_BODY_BYTES
  const now = limits.now ?? Date.now
  const conns = new Map<Socket, Conn>()
  let bodyBytes = 0

  function forget (socket: Socket): void {
    const c = conns.get(socket)
    if (c === undefined) return
    bodyBytes -= c.bodyBytes
    conns.delete(socket)
  }

  /** Drops the quietest evictable connection other than `keep` (optionally only those holding body bytes). */
  function evictOne (keep: Socket | undefined, holdingBytes: boolean): boolean {
    let victim: Conn | undefined
    for (const c of conns.values()) {
      if (c.socket === keep || c.answering > 0 || (holdingBytes && c.bodyBytes === 0)) continue
      if (victim === undefined || c.lastActiveMs < victim.lastActiveMs) victim = c
    }
    if (victim === undefined) return false
    forget(victim.socket)
    victim.socket.destroy()
    return true
  }

  return {
    admit (socket) {
      if (conns.size >= maxConnections && !evictOne(undefined, false)) return false
      conns.set(socket, { socket, lastActiveMs: now(), bodyBytes: 0, answering: 0 })
      socket.once('close', () => forget(socket))
      return true
    },
    touch (socket) {
      const c = conns.get(socket)
      if (c !== undefined) c.lastActiveMs = now()
    },
    reserve (socket, n) {
      const c = conns.get(socket)
      if (c === undefined) return false
      c.lastActiveMs = now()
      while (bodyBytes + n > maxBodyBytes) {
        if (!evictOne(socket, true)) return false
      }
      c.bodyBytes += n
      bodyBytes += n
      return true
    },
    answering (socket) {
      const c = conns.get(socket)
      if (c !== undefined) c.answering++
    },
    done (socket, answered, n) {
      const c = conns.get(socket)
      if (c === undefined) return
      if (answered) c.answering--
      // Per request, not per connection: a pipelined request may still be reading its body.
      c.bodyBytes -= n
      bodyBytes -= n
      c.lastActiveMs = now()
    },
    get connections () { return conns.size },
    get bodyBytes () { return bodyBytes }
  }
}
