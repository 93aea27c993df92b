import type http from 'node:http'
import type net from 'node:net'
import { Readable, pipeline } from 'node:stream'
import { DmError } from '../errors.js'
import { assertSocketTrusted, type TrustOptions } from './socket.js'

/** How long a call may take; a publish waits for the daemon's fsyncs. */
const REQUEST_TIMEOUT_MS = 120_000
/** Largest answer read: a 10 MiB file plus slack; a listing of thousands of names fits. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024

interface Answer { status: number, body: Buffer }

/** A request body sent as it is produced: `length` bytes in all (the content-length), never held whole. */
export interface StreamedBody {
  length: number
  chunks: AsyncIterable<Uint8Array>
}

export type RequestBody = Uint8Array | StreamedBody

/**
 * One HTTP call on the API socket, after checking that the socket is one the
 * daemon made (src/api/socket.ts). Maps "no daemon" and "no permission" to
 * clear errors that name the config key.
 */
async function call (socketPath: string, method: 'GET' | 'POST', path: string, body: RequestBody | undefined, trust: TrustOptions): Promise<Answer> {
  assertSocketTrusted(socketPath, trust)
  return await new Promise<Answer>((resolve, reject) => {
    // Loaded when a request is made, not at start: on Node 22+ an ESM import of node:http also loads undici (about 40 ms).
    const { request } = process.getBuiltinModule('node:http') as typeof http
    const { createConnection } = process.getBuiltinModule('node:net') as typeof net
    // One connection of our own, no agent: an agent works out a TLS server name for
    // every request, and its first IPv6 test compiles a regular expression (~5 ms).
    let answered = false
    const req = request({ createConnection: () => createConnection(socketPath), method, path, headers: body !== undefined ? { 'content-type': 'application/octet-stream', 'content-length': body.length } : {} }, res => {
      answered = true
      const parts: Buffer[] = []
      let total = 0
      res.on('data', (c: Buffer) => {
        total += c.length
        if (total > MAX_ANSWER_BYTES) req.destroy(new DmError('ERR_API', `the daemon's answer exceeds ${MAX_ANSWER_BYTES} bytes`))
        else parts.push(c)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 500, body: Buffer.concat(parts) }))
      res.on('error', reject)
      res.on('close', () => { if (!res.complete) reject(new DmError('ERR_DAEMON_UNREACHABLE', `the daemon at ${socketPath} closed the connection mid-answer`)) })
    })
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new DmError('ERR_DAEMON_UNREACHABLE', `the daemon did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`)))
    req.on('error', (err: NodeJS.ErrnoException) => {
      // An early answer (a refusal) may come while the body is still going out: once
      // it has come, it is the answer that counts, not the broken pipe of the body.
      if (answered && !(err instanceof DmError)) return
      if (err instanceof DmError) reject(err)
      else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new DmError('ERR_DAEMON_UNREACHABLE', `no daemon is running (nothing listens on ${socketPath}, api.socket); start it with dm daemon`))
      } else if (err.code === 'EACCES') {
        reject(new DmError('ERR_DAEMON_UNREACHABLE', `permission denied on ${socketPath} (api.socket); run as the daemon's user or a member of its group`))
      } else {
        reject(new DmError('ERR_DAEMON_UNREACHABLE', `cannot reach the daemon at ${socketPath}: ${err.message}`))
      }
    })
    if (body === undefined || body instanceof Uint8Array) {
      req.end(body)
    } else {
      pipeline(Readable.from(body.chunks), req, err => { if (err != null && !req.destroyed) req.destroy(err) })
    }
  })
}

function refusal (a: Answer): DmError {
  let err: { code?: string, reason?: string } = {}
  try { err = JSON.parse(a.body.toString('utf8')) } catch {}
  return new DmError((err.code ?? 'ERR_API') as DmError['code'], err.reason ?? `HTTP ${a.status}`)
}

/** A JSON call; an error answer becomes a DmError with the daemon's code. */
export async function apiRequest<T> (socketPath: string, method: 'GET' | 'POST', path: string, body?: RequestBody, trust: TrustOptions = {}): Promise<T> {
  const a = await call(socketPath, method, path, body, trust)
  let json: unknown
  try {
    json = JSON.parse(a.body.toString('utf8'))
  } catch {
    throw new DmError('ERR_API', `daemon sent a malformed answer (HTTP ${a.status})`)
  }
  if (a.status >= 400 || (json as { ok?: boolean }).ok === false) throw refusal(a)
  return json as T
}

/** A call whose answer is raw bytes (GET /v1/content). */
export async function apiRequestBytes (socketPath: string, path: string, trust: TrustOptions = {}): Promise<Buffer> {
  const a = await call(socketPath, 'GET', path, undefined, trust)
  if (a.status >= 400) throw refusal(a)
  return a.body
}
