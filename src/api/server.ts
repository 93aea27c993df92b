import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { DmError, describeError } from '../errors.js'
import type { SignedVersion } from '../format/version.js'
import type { Refusal } from '../policy/accept.js'
import { decodePublishBody, MAX_PUBLISH_BODY_BYTES, type PeerInfoJson, type StatusInfo, type VersionInfo } from './wire.js'

/** Socket mode: the daemon's user and group may call the API, nobody else. */
export const SOCKET_MODE = 0o660

export interface ApiHandlers {
  /** Stores a version; ok only once it is committed here. */
  publish: (v: SignedVersion, content: Uint8Array) => Promise<{ ok: true } | Refusal>
  list: () => VersionInfo[]
  peers: () => PeerInfoJson[]
  status: () => StatusInfo
}

export interface ApiServer {
  close: () => Promise<void>
}

/** Throws when another daemon answers on the socket; removes a stale socket file left by a dead one. */
export async function assertSocketFree (socketPath: string): Promise<void> {
  if (!fs.existsSync(socketPath)) return
  if (await answers(socketPath)) throw new DmError('ERR_API', `another daemon is serving ${socketPath}`)
  fs.rmSync(socketPath, { force: true })
}

/** Listens on a Unix socket; refuses to take over a socket another daemon is serving. */
export async function startApiServer (socketPath: string, handlers: ApiHandlers): Promise<ApiServer> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o750 })
  await assertSocketFree(socketPath)
  const server = http.createServer((req, res) => { void route(req, res, handlers) })
  server.headersTimeout = 10_000
  server.requestTimeout = 60_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // A restrictive umask while binding, so the socket is never briefly open to all.
    const old = process.umask(0o117)
    server.listen(socketPath, () => { process.umask(old); resolve() })
  })
  fs.chmodSync(socketPath, SOCKET_MODE)
  return {
    async close () {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

async function answers (socketPath: string): Promise<boolean> {
  return await new Promise(resolve => {
    const s = net.connect(socketPath)
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

function send (res: http.ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) })
  res.end(data)
}

async function readBody (req: http.IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > max) throw new DmError('ERR_TOO_LARGE', `request body of ${declared} bytes exceeds ${max}`)
  const parts: Buffer[] = []
  let total = 0
  for await (const chunk of req) {
    total += (chunk as Buffer).length
    if (total > max) throw new DmError('ERR_TOO_LARGE', `request body exceeds ${max} bytes`)
    parts.push(chunk as Buffer)
  }
  return Buffer.concat(parts, total)
}

async function route (req: http.IncomingMessage, res: http.ServerResponse, h: ApiHandlers): Promise<void> {
  try {
    const url = req.url ?? ''
    if (req.method === 'POST' && url === '/v1/versions') {
      const { version, content } = decodePublishBody(await readBody(req, MAX_PUBLISH_BODY_BYTES))
      const result = await h.publish(version, content)
      if (result.ok) send(res, 200, { ok: true, name: version.name })
      else send(res, result.code === 'ERR_STORE_IO' ? 500 : 422, { ok: false, code: result.code, reason: result.reason })
    } else if (req.method === 'GET' && url === '/v1/versions') {
      send(res, 200, h.list())
    } else if (req.method === 'GET' && url === '/v1/peers') {
      send(res, 200, h.peers())
    } else if (req.method === 'GET' && url === '/v1/status') {
      send(res, 200, h.status())
    } else {
      send(res, 404, { ok: false, code: 'ERR_API', reason: `no route ${req.method ?? ''} ${url}` })
    }
  } catch (err) {
    const code = err instanceof DmError ? err.code : 'ERR_API'
    send(res, code === 'ERR_API' ? 500 : 400, { ok: false, code, reason: describeError(err) })
    req.resume()
  }
}
