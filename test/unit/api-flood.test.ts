import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import path from 'node:path'
import { startApiServer, type ApiHandlers } from '../../src/api/server.js'
import { apiRequest } from '../../src/api/client.js'
import { MAX_API_CONNECTIONS, MAX_INFLIGHT_BODY_BYTES } from '../../src/api/limits.js'
import { encodePublishBody, MAX_PUBLISH_BODY_BYTES } from '../../src/api/wire.js'
import { networkIdFrom, newVersion } from '../../src/format/version.js'
import { waitFor } from '../helpers/wait.js'
import { tempDir, testKey } from './helpers.js'

/*
 * The API under flood, in-process with stub handlers: unfinished 10 MiB
 * bodies and thousands of idle connections must neither exhaust memory nor
 * keep a real publish or status call out.
 */

const MiB = 1024 * 1024
const key = testKey(41)

function stubHandlers (published: string[]): ApiHandlers {
  return {
    publish: async v => { published.push(v.name); return { ok: true, committed: true } },
    list: () => [],
    peers: () => [],
    status: () => ({ peerId: 'p', listen: [], network: 'n', uptimeMs: 0, peersConnected: 0, peersKnown: 0, files: 0, syncRounds: 0, lastSyncAtMs: null, lastSyncDurationMs: null }),
    content: async () => undefined
  }
}

function realPublishBody (name: string): Buffer {
  const content = Buffer.from(`content of ${name}`)
  const v = newVersion({ name, networkId: networkIdFrom('flood'), privateKey: key.privateKey, signer: key.publicKey, content, timestampMs: Date.now() })
  return encodePublishBody(v, content)
}

/** Opens a connection that declares a full-size publish and sends all but its last byte, then stalls. */
function unfinishedUpload (sock: string, junk: Buffer): net.Socket {
  const s = net.connect(sock)
  s.on('error', () => {})
  s.write(`POST /v1/versions HTTP/1.1\r\nhost: dm\r\ncontent-type: application/octet-stream\r\ncontent-length: ${MAX_PUBLISH_BODY_BYTES}\r\n\r\n`)
  s.write(junk)
  return s
}

test('150 unfinished 10 MiB bodies: memory stays bounded, publish and status keep working, everything is released after', async () => {
  const { dir, cleanup } = tempDir('dm-api-flood-')
  const sock = path.join(dir, 'api.sock')
  const published: string[] = []
  const api = await startApiServer(sock, stubHandlers(published))
  const attackers: net.Socket[] = []
  let peakBodyBytes = 0
  const sampler = setInterval(() => { peakBodyBytes = Math.max(peakBodyBytes, api.load.bodyBytes) }, 5)
  try {
    global.gc?.()
    const rssBefore = process.memoryUsage().rss
    const junk = Buffer.alloc(10 * MiB, 0x61) // one buffer, shared by every attacker's write
    let peakRss = rssBefore
    for (let i = 0; i < 150; i++) {
      attackers.push(unfinishedUpload(sock, junk))
      if (i % 10 === 9) {
        // Let the server read what was sent so far before opening more.
        await new Promise(resolve => setTimeout(resolve, 20))
        peakRss = Math.max(peakRss, process.memoryUsage().rss)
      }
    }
    // During the flood: a real publish and a status call get through.
    assert.equal((await apiRequest<{ ok: boolean }>(sock, 'POST', '/v1/versions', realPublishBody('during-flood'))).ok, true)
    assert.equal((await apiRequest<{ peerId: string }>(sock, 'GET', '/v1/status')).peerId, 'p')
    assert.deepEqual(published, ['during-flood'])
    peakRss = Math.max(peakRss, process.memoryUsage().rss)
    assert.ok(peakBodyBytes <= MAX_INFLIGHT_BODY_BYTES, `body bytes held peaked at ${peakBodyBytes}`)
    // Before the caps, 150 bodies took the daemon to 1.6 GB; the cap is 32 MiB plus buffers in flight.
    assert.ok(peakRss - rssBefore < 400 * MiB, `RSS grew by ${Math.round((peakRss - rssBefore) / MiB)} MiB`)
    for (const s of attackers) s.destroy()
    await waitFor('upload bytes released', () => api.load.bodyBytes === 0 && api.load.connections === 0, 10_000)
  } finally {
    clearInterval(sampler)
    for (const s of attackers) s.destroy()
    await api.close()
    cleanup()
  }
})

test('thousands of idle connections: at most the cap is held, and publish and status still answer at once', async () => {
  const { dir, cleanup } = tempDir('dm-api-idle-')
  const sock = path.join(dir, 'api.sock')
  const published: string[] = []
  const api = await startApiServer(sock, stubHandlers(published))
  const idle: net.Socket[] = []
  let closedByServer = 0
  try {
    for (let i = 0; i < 3000; i++) {
      const s = net.connect(sock)
      s.on('error', () => {})
      s.once('close', () => { closedByServer++ })
      idle.push(s)
      if (i % 200 === 199) await new Promise(resolve => setImmediate(resolve))
    }
    await waitFor('the server to shed idle connections', () => closedByServer >= 3000 - MAX_API_CONNECTIONS, 20_000)
    assert.ok(api.load.connections <= MAX_API_CONNECTIONS, `${api.load.connections} connections held`)
    const started = Date.now()
    assert.equal((await apiRequest<{ peerId: string }>(sock, 'GET', '/v1/status')).peerId, 'p')
    assert.equal((await apiRequest<{ ok: boolean }>(sock, 'POST', '/v1/versions', realPublishBody('among-idle'))).ok, true)
    assert.ok(Date.now() - started < 5000, 'the calls did not wait for a timeout')
    assert.deepEqual(published, ['among-idle'])
  } finally {
    for (const s of idle) s.destroy()
    await api.close()
    cleanup()
  }
})

test('an over-size declared body is refused with 413 before it is read', async () => {
  const { dir, cleanup } = tempDir('dm-api-413-')
  const sock = path.join(dir, 'api.sock')
  const api = await startApiServer(sock, stubHandlers([]))
  try {
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect(sock)
      let text = ''
      s.on('data', d => { text += d.toString() })
      s.on('close', () => resolve(text))
      s.on('error', reject)
      s.write(`POST /v1/versions HTTP/1.1\r\nhost: dm\r\ncontent-length: ${MAX_PUBLISH_BODY_BYTES + 1}\r\n\r\n`)
    })
    assert.match(answer, /^HTTP\/1\.1 413 /)
    assert.match(answer, /"code":"ERR_TOO_LARGE"/)
  } finally {
    await api.close()
    cleanup()
  }
})
