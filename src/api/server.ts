import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { DmError, describeError, type ErrorCode } from '../errors.js'
import type { SignedVersion } from '../format/version.js'
import type { Refusal } from '../policy/accept.js'
import { assertValidName } from '../format/names.js'
import type { FleetQuery, FleetView } from './fleet-view.js'
import { createConnectionGovernor, REFUSED_BODY_GRACE_MS, type ConnectionGovernor, type GovernorLimits } from './limits.js'
import { prepareSocketDir, socketPathKind, SOCKET_MODE } from './socket.js'
import { MAX_ENVELOPE_BYTES, MAX_PUBLISH_BODY_BYTES, decodePublishHead, type PeerInfoJson, type StatusInfo, type VersionInfo } from './wire.js'

export { SOCKET_MODE } from './socket.js'

/** Binding under this umask gives the socket SOCKET_MODE directly: no chmod, which would follow a link swapped in. */
const SOCKET_UMASK = 0o777 & ~SOCKET_MODE

export interface ApiHandlers {
  /**
   * Stores a version; ok only once it is committed here. `content` is the rest
   * of the request body, streamed: read it only once the version's header has
   * passed, and stop at its signed size. It throws ERR_API_BUSY or
   * ERR_TOO_LARGE when a limit of the API is reached.
   */
  publish: (v: SignedVersion, content: AsyncIterable<Uint8Array>) => Promise<{ ok: true } | Refusal>
  list: () => VersionInfo[]
  peers: () => PeerInfoJson[]
  status: () => StatusInfo
  /** The held content of `name`, checked against its signed hash; undefined when not held (or a tombstone). */
  content: (name: string) => Promise<Uint8Array | undefined>
  /** The fleet view from the node reports held; absent on an open mesh, which has none. */
  fleet?: (q: FleetQuery) => Promise<FleetView>
}

export interface ApiServer {
  close: () => Promise<void>
  /** Connections open and body bytes held, for tests and metrics. */
  readonly load: { connections: number, bodyBytes: number }
}

export interface ApiServerOptions {
  /** Overrides the caps of src/api/limits.ts (tests). */
  limits?: GovernorLimits
}

/**
 * Makes the socket path usable: creates its directory privately (refusing
 * one others can write), removes a stale socket left by a dead daemon, and
 * refuses, in one line, a path another process serves or something else
 * occupies (a symbolic link is never followed or removed).
 */
export async function assertSocketFree (socketPath: string): Promise<void> {
  prepareSocketDir(socketPath)
  const kind = socketPathKind(socketPath)
  if (kind === 'none') return
  if (kind === 'link') throw new DmError('ERR_SOCKET_IN_USE', `api.socket: ${socketPath} is a symbolic link; the daemon never follows one there: remove it`)
  if (kind === 'other') throw new DmError('ERR_SOCKET_IN_USE', `api.socket: ${socketPath} exists and is not a socket: remove it or change api.socket`)
  if (await answers(socketPath)) throw new DmError('ERR_SOCKET_IN_USE', `another daemon is serving ${socketPath}`)
  fs.rmSync(socketPath, { force: true })
}

/** Listens on a Unix socket; refuses to take over a socket another process is serving. */
export async function startApiServer (socketPath: string, handlers: ApiHandlers, opts: ApiServerOptions = {}): Promise<ApiServer> {
  await assertSocketFree(socketPath)
  const governor = createConnectionGovernor(opts.limits)
  const server = http.createServer((req, res) => {
    // No Date header: no client reads it, and computing it loads the time zone data (ICU) into the daemon for good.
    res.sendDate = false
    void route(req, res, handlers, governor)
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 60_000
  server.on('connection', (socket: net.Socket) => {
    if (!governor.admit(socket)) refuseConnection(socket)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // bind() happens inside listen(), synchronously: the umask covers exactly it.
    const old = process.umask(SOCKET_UMASK)
    try {
      server.listen(socketPath, () => { server.off('error', reject); resolve() })
    } finally {
      process.umask(old)
    }
  })
  return {
    async close () {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    },
    get load () { return { connections: governor.connections, bodyBytes: governor.bodyBytes } }
  }
}

async function answers (socketPath: string): Promise<boolean> {
  return await new Promise(resolve => {
    const s = net.connect(socketPath)
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

const BUSY_BODY = JSON.stringify({ ok: false, code: 'ERR_API_BUSY', reason: 'the API is at its connection limit; try again' })

/** Over the connection cap with nothing to evict: a plain 503, then close. */
function refuseConnection (socket: net.Socket): void {
  socket.end(`HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(BUSY_BODY)}\r\nconnection: close\r\n\r\n${BUSY_BODY}`, () => socket.destroy())
}

const STATUS_FOR: Partial<Record<ErrorCode, number>> = {
  ERR_TOO_LARGE: 413,
  ERR_NOT_FOUND: 404,
  ERR_API_BUSY: 503,
  ERR_OPEN_MESH: 409,
  ERR_API: 500,
  ERR_STORE_IO: 500
}

function send (res: http.ServerResponse, status: number, body: unknown): void {
  if (res.destroyed || res.headersSent) return
  const data = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) })
  res.end(data)
}

/**
 * The request body as it arrives, each chunk counted (in `held.bytes`)
 * against the API's shared byte budget: `head()` reads up to a byte count and
 * returns it, then `rest` yields the remainder.
 */
function bodyReader (req: http.IncomingMessage, governor: ConnectionGovernor, held: { bytes: number }): { head: (n: number) => Promise<Buffer>, rest: AsyncIterable<Uint8Array> } {
  const chunks = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  let left: Buffer | undefined
  let total = 0
  async function next (): Promise<Buffer | undefined> {
    if (left !== undefined) { const b = left; left = undefined; return b }
    const r = await chunks.next()
    if (r.done === true) return undefined
    total += r.value.length
    if (total > MAX_PUBLISH_BODY_BYTES) throw new DmError('ERR_TOO_LARGE', `request body exceeds ${MAX_PUBLISH_BODY_BYTES} bytes`)
    if (!governor.reserve(req.socket, r.value.length)) throw new DmError('ERR_API_BUSY', 'the API holds as many upload bytes as it may; try again')
    held.bytes += r.value.length
    return r.value
  }
  return {
    async head (n) {
      const parts: Buffer[] = []
      let got = 0
      while (got < n) {
        const b = await next()
        if (b === undefined) break
        const take = Math.min(b.length, n - got)
        parts.push(b.subarray(0, take))
        if (take < b.length) left = b.subarray(take)
        got += take
      }
      return Buffer.concat(parts, got)
    },
    rest: (async function * () {
      for (let b = await next(); b !== undefined; b = await next()) yield b
    })()
  }
}

/** Reads the envelope at the head of a publish body: `u32 length || envelope`. */
async function readPublishHead (body: ReturnType<typeof bodyReader>): Promise<SignedVersion> {
  const length = await body.head(4)
  if (length.length < 4) throw new DmError('ERR_DECODE', 'publish request: body ends before the envelope')
  const n = length.readUInt32BE(0)
  if (n > MAX_ENVELOPE_BYTES) throw new DmError('ERR_DECODE', `publish request: envelope of ${n} bytes exceeds ${MAX_ENVELOPE_BYTES}`)
  return decodePublishHead(Buffer.concat([length, await body.head(n)]))
}

async function route (req: http.IncomingMessage, res: http.ServerResponse, h: ApiHandlers, governor: ConnectionGovernor): Promise<void> {
  const socket = req.socket
  governor.touch(socket)
  let answering = false
  const held = { bytes: 0 }
  res.once('close', () => governor.done(socket, answering, held.bytes))
  try {
    const url = new URL(req.url ?? '/', 'http://dm')
    const route = `${req.method ?? ''} ${url.pathname}`
    if (route === 'POST /v1/versions') {
      const declared = Number(req.headers['content-length'] ?? 0)
      if (declared > MAX_PUBLISH_BODY_BYTES) throw new DmError('ERR_TOO_LARGE', `request body of ${declared} bytes exceeds ${MAX_PUBLISH_BODY_BYTES}`)
      const body = bodyReader(req, governor, held)
      const version = await readPublishHead(body)
      // The content streams through the handler (to a staged file): the body is never held whole.
      const result = await h.publish(version, body.rest)
      governor.answering(socket)
      answering = true
      if (result.ok) answerUpload(req, res, 200, { ok: true, name: version.name })
      else answerUpload(req, res, result.code === 'ERR_STORE_IO' ? 500 : 422, { ok: false, code: result.code, reason: result.reason })
      return
    }
    governor.answering(socket)
    answering = true
    if (route === 'GET /v1/versions') {
      send(res, 200, h.list())
    } else if (route === 'GET /v1/peers') {
      send(res, 200, h.peers())
    } else if (route === 'GET /v1/status') {
      send(res, 200, h.status())
    } else if (route === 'GET /v1/fleet') {
      send(res, 200, await fleet(h, url.searchParams))
    } else if (route === 'GET /v1/content') {
      const name = url.searchParams.get('name')
      if (name === null) throw new DmError('ERR_USAGE', 'GET /v1/content needs ?name=')
      // As everywhere a name is a string already: one that breaks the rules (empty included) is ERR_NAME_INVALID.
      assertValidName(name)
      const content = await h.content(name)
      if (content === undefined) throw new DmError('ERR_NOT_FOUND', `no content held for "${name}"`)
      if (!res.destroyed) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': content.length })
        res.end(content)
      }
    } else {
      send(res, 404, { ok: false, code: 'ERR_API', reason: `no route ${req.method ?? ''} ${url.pathname}` })
    }
  } catch (err) {
    const code = err instanceof DmError ? err.code : 'ERR_API'
    answerUpload(req, res, STATUS_FOR[code] ?? 400, { ok: false, code, reason: describeError(err) })
  }
}

/**
 * Answers, and if the request's body is still coming (a refusal before its
 * content was read) drops the rest as it comes (discardRest). The connection
 * then stays open even if the request asked to close it (`Connection: close`,
 * as dm's own client does): Node would close it after the answer, and the
 * client, still sending, would get a broken pipe, which may reach it before
 * the answer. A GET has no body to refuse.
 */
function answerUpload (req: http.IncomingMessage, res: http.ServerResponse, status: number, body: unknown): void {
  const early = !req.complete && req.method !== 'GET'
  if (early) res.shouldKeepAlive = true
  send(res, status, body)
  if (early) discardRest(req, req.socket)
}

/**
 * The rest of a refused body is read and dropped, never held, so a client
 * still writing reads the answer instead of a broken pipe; one that is still
 * sending REFUSED_BODY_GRACE_MS later is cut off.
 */
function discardRest (req: http.IncomingMessage, socket: net.Socket): void {
  // Read in paused mode: the body reader's iterator listens for 'readable', which makes resume() a no-op.
  const drop = (): void => { while (req.read() !== null); }
  req.on('readable', drop)
  drop()
  const cut = setTimeout(() => socket.destroy(), REFUSED_BODY_GRACE_MS)
  cut.unref()
  req.once('end', () => clearTimeout(cut))
  socket.once('close', () => clearTimeout(cut))
}

/** GET /v1/fleet[?name=NAME][&version=HEX]: refused plainly on an open mesh, never a partial view. */
async function fleet (h: ApiHandlers, params: URLSearchParams): Promise<FleetView> {
  if (h.fleet === undefined) throw new DmError('ERR_OPEN_MESH', 'this mesh is open (no [network] key): the fleet view is built from node reports, which only a private mesh has')
  const name = params.get('name') ?? undefined
  const version = params.get('version') ?? undefined
  if (name !== undefined) assertValidName(name)
  if (version !== undefined && !/^[0-9a-f]{16,64}$/.test(version)) throw new DmError('ERR_USAGE', '?version= must be 16 to 64 lowercase hex digits of a version id')
  return await h.fleet({ name, version })
}
