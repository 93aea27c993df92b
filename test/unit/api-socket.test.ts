import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { startApiServer, SOCKET_MODE, type ApiHandlers } from '../../src/api/server.js'
import { apiRequest } from '../../src/api/client.js'
import { encodePublishHead } from '../../src/api/wire.js'
import { networkIdFrom, newVersion } from '../../src/format/version.js'
import { dmError, tempDir, testKey } from './helpers.js'

const isRoot = process.getuid?.() === 0
const NOBODY = 65534

const handlers: ApiHandlers = {
  publish: async () => ({ ok: true, committed: true }),
  list: () => [],
  peers: () => [],
  status: () => ({ peerId: 'real', listen: [], network: 'n', uptimeMs: 0, peersConnected: 0, peersKnown: 0, files: 0, syncRounds: 0, lastSyncAtMs: null, lastSyncDurationMs: null }),
  content: async () => undefined
}

async function withDir (fn: (dir: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir('dm-api-sock-')
  try { await fn(dir) } finally { cleanup() }
}

/** A server that answers anything with fake data, bound without any of the daemon's checks. */
async function fakeServer (socketPath: string): Promise<{ hits: () => number, close: () => Promise<void> }> {
  let hits = 0
  const s = http.createServer((_req, res) => { hits++; res.end(JSON.stringify({ ok: true, committed: true, peerId: 'FAKE' })) })
  await new Promise<void>(resolve => s.listen(socketPath, resolve))
  return { hits: () => hits, close: async () => await new Promise<void>(resolve => s.close(() => resolve())) }
}

test('a missing socket directory is created mode 0750 and the socket is bound mode 0660 without chmod', async () => {
  await withDir(async dir => {
    const sock = path.join(dir, 'run', 'api.sock')
    const umask = process.umask()
    const api = await startApiServer(sock, handlers)
    try {
      assert.equal(fs.statSync(path.dirname(sock)).mode & 0o777, 0o750)
      const st = fs.lstatSync(sock)
      assert.ok(st.isSocket())
      assert.equal(st.mode & 0o777, SOCKET_MODE)
      assert.equal(process.umask(), umask, 'the process umask is restored')
      assert.equal((await apiRequest<{ peerId: string }>(sock, 'GET', '/v1/status')).peerId, 'real')
    } finally { await api.close() }
  })
})

test('a socket directory others can write is refused (sticky or not), and so is one below a directory others can write', async () => {
  await withDir(async dir => {
    for (const mode of [0o777, 0o1777, 0o772]) {
      const d = path.join(dir, `open-${mode.toString(8)}`)
      fs.mkdirSync(d)
      fs.chmodSync(d, mode)
      await assert.rejects(startApiServer(path.join(d, 'api.sock'), handlers), dmError('ERR_SOCKET_UNSAFE'))
      assert.equal(fs.existsSync(path.join(d, 'api.sock')), false)
    }
    const parent = path.join(dir, 'open-parent')
    fs.mkdirSync(parent)
    fs.chmodSync(parent, 0o777)
    fs.mkdirSync(path.join(parent, 'run'), { mode: 0o750 })
    await assert.rejects(startApiServer(path.join(parent, 'run', 'api.sock'), handlers), dmError('ERR_SOCKET_UNSAFE'))
  })
})

test('a socket directory owned by another user is refused', { skip: isRoot ? false : 'needs root to chown' }, async () => {
  await withDir(async dir => {
    const d = path.join(dir, 'theirs')
    fs.mkdirSync(d, { mode: 0o755 })
    fs.chownSync(d, NOBODY, NOBODY)
    await assert.rejects(startApiServer(path.join(d, 'api.sock'), handlers), dmError('ERR_SOCKET_UNSAFE'))
  })
})

test('a squatting listener, a dangling symlink or a plain file at the socket path: one refusal each; a stale socket is replaced', async () => {
  await withDir(async dir => {
    const sock = path.join(dir, 'api.sock')
    const squatter = net.createServer(s => s.destroy())
    await new Promise<void>(resolve => squatter.listen(sock, resolve))
    await assert.rejects(startApiServer(sock, handlers), dmError('ERR_SOCKET_IN_USE'))
    await new Promise<void>(resolve => squatter.close(() => resolve()))

    const target = path.join(dir, 'elsewhere', 'target')
    fs.symlinkSync(target, sock)
    await assert.rejects(startApiServer(sock, handlers), dmError('ERR_SOCKET_IN_USE'))
    assert.ok(fs.lstatSync(sock).isSymbolicLink(), 'the link is left for the operator')
    assert.equal(fs.existsSync(target), false, 'the link was not followed')
    fs.rmSync(sock)

    fs.writeFileSync(sock, 'not a socket')
    await assert.rejects(startApiServer(sock, handlers), dmError('ERR_SOCKET_IN_USE'))
    fs.rmSync(sock)

    // A stale socket file: its daemon was killed -9, so nobody unlinked it.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise<void>(resolve => child.stdout.once('data', () => resolve()))
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    assert.ok(fs.lstatSync(sock).isSocket(), 'a stale socket file is in place')
    const api = await startApiServer(sock, handlers)
    try {
      assert.equal((await apiRequest<{ peerId: string }>(sock, 'GET', '/v1/status')).peerId, 'real')
    } finally { await api.close() }
  })
})

test('the client refuses a fake server in a world-writable directory: nothing is sent to it', async () => {
  await withDir(async dir => {
    const open = path.join(dir, 'open')
    fs.mkdirSync(open)
    fs.chmodSync(open, 0o777)
    const sock = path.join(open, 'api.sock')
    const fake = await fakeServer(sock)
    try {
      await assert.rejects(apiRequest(sock, 'GET', '/v1/status'), dmError('ERR_SOCKET_UNSAFE'))
      await assert.rejects(apiRequest(sock, 'POST', '/v1/versions', Buffer.alloc(8)), dmError('ERR_SOCKET_UNSAFE'))
      assert.equal(fake.hits(), 0)
    } finally { await fake.close() }
  })
})

test('the client refuses a socket owned by a user other than root, itself or the owner of state_dir', { skip: isRoot ? false : 'needs root to chown' }, async () => {
  await withDir(async dir => {
    const run = path.join(dir, 'run')
    fs.mkdirSync(run, { mode: 0o755 })
    const sock = path.join(run, 'api.sock')
    const fake = await fakeServer(sock)
    try {
      fs.chownSync(sock, NOBODY, NOBODY)
      const state = path.join(dir, 'state')
      fs.mkdirSync(state)
      await assert.rejects(apiRequest(sock, 'GET', '/v1/status', undefined, { stateDir: state }), dmError('ERR_SOCKET_UNSAFE'))
      assert.equal(fake.hits(), 0)
      // The daemon's user is whoever owns state_dir: the same socket is then trusted.
      fs.chownSync(state, NOBODY, NOBODY)
      assert.equal((await apiRequest<{ peerId: string }>(sock, 'GET', '/v1/status', undefined, { stateDir: state })).peerId, 'FAKE')
    } finally { await fake.close() }
  })
})

test('a dangling symlink at the socket path reads as "no daemon" on the client', async () => {
  await withDir(async dir => {
    const sock = path.join(dir, 'api.sock')
    fs.symlinkSync(path.join(dir, 'nowhere'), sock)
    await assert.rejects(apiRequest(sock, 'GET', '/v1/status'), dmError('ERR_DAEMON_UNREACHABLE'))
  })
})

const refusingHandlers: ApiHandlers = { ...handlers, publish: async () => ({ ok: false, code: 'ERR_NOT_ALLOWED', reason: 'no' }) }

// dm's own client asks to close the connection after the answer (it keeps none open); other clients may not.
for (const [how, head, code, connection] of [
  ['by the handler, before it reads the content', encodePublishHead(newVersion({ name: 'a.txt', networkId: networkIdFrom('n'), privateKey: testKey(61).privateKey, signer: testKey(61).publicKey, content: Buffer.alloc(1), timestampMs: 1 })), 'ERR_NOT_ALLOWED', ''],
  ['by the handler, on a request that asks to close the connection after the answer', encodePublishHead(newVersion({ name: 'a.txt', networkId: networkIdFrom('n'), privateKey: testKey(61).privateKey, signer: testKey(61).publicKey, content: Buffer.alloc(1), timestampMs: 1 })), 'ERR_NOT_ALLOWED', 'connection: close\r\n'],
  ['as malformed, with an envelope length of zero', Buffer.alloc(4), 'ERR_DECODE', ''],
  ['as malformed, on a request that asks to close the connection after the answer', Buffer.alloc(4), 'ERR_DECODE', 'connection: close\r\n']
] as const) {
  test(`an upload refused ${how}: the answer comes while the body is still going out, and the rest is read and dropped, not answered with a broken pipe`, async () => {
    await withDir(async dir => {
      const sock = path.join(dir, 'api.sock')
      const api = await startApiServer(sock, refusingHandlers)
      try {
        const total = 1024 * 1024
        const piece = 64 * 1024
        // Half-open, as an HTTP client is: the daemon may end its side after the answer while this one still sends.
        const s = net.createConnection({ path: sock, allowHalfOpen: true })
        const errors: Error[] = []
        s.on('error', err => errors.push(err))
        let answer = ''
        const answered = new Promise<void>(resolve => s.on('data', (d: Buffer) => { answer += d.toString('latin1'); if (/\r\n\r\n[^]*\}$/.test(answer)) resolve() }))
        s.write(`POST /v1/versions HTTP/1.1\r\nhost: dm\r\n${connection}content-type: application/octet-stream\r\ncontent-length: ${total}\r\n\r\n`)
        s.write(Buffer.concat([head, Buffer.alloc(piece - head.length)]))
        await answered
        assert.match(answer, /^HTTP\/1\.1 4\d\d /)
        assert.equal(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).code, code)
        // The client is still sending: the rest goes through and the connection ends cleanly.
        for (let sent = piece; sent < total; sent += piece) {
          await new Promise<void>((resolve, reject) => s.write(Buffer.alloc(piece), err => err != null ? reject(err) : resolve()))
        }
        await new Promise<void>(resolve => { s.once('close', () => resolve()); s.end() })
        assert.deepEqual(errors, [])
        assert.equal(api.load.bodyBytes, 0, 'the dropped rest is not held')
      } finally { await api.close() }
    })
  })
}

test('answers carry no Date header (working it out loads the time zone data into the daemon for good)', async () => {
  await withDir(async dir => {
    const sock = path.join(dir, 'api.sock')
    const api = await startApiServer(sock, handlers)
    try {
      const headers = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
        http.get({ socketPath: sock, path: '/v1/status' }, res => { res.resume(); resolve(res.headers) }).on('error', reject)
      })
      assert.equal(headers['content-type'], 'application/json', 'the check reads a real answer')
      assert.equal(headers.date, undefined)
    } finally { await api.close() }
  })
})
