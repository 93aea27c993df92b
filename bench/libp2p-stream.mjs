#!/usr/bin/env node
// A bare libp2p stream (TCP + Noise + Yamux, no data-mesher code) carrying
// 10 MiB between two processes, against raw loopback TCP in the same run.
// Isolates what the libraries cost from what our protocol and store cost.
//
// Each variant sends `--size` bytes in writes of `chunk` bytes on a fresh
// stream (send() and onDrain(), as src/net/channel.ts does); the receiver
// counts the bytes and answers one byte when it has them all. Timed from just
// before the stream opens (or the TCP connect) to that byte. Nothing touches
// the disk. Variants: write size, Yamux window (initial = max), Noise cipher
// (node:crypto, or the pure-JS @noble fallback).
//
//   node bench/libp2p-stream.mjs [--runs 7] [--size 10485760] [--profile DIR]
//
// --profile DIR writes a V8 CPU profile of both processes for the default
// variant (bench/cpuprofile.mjs summarises it).
import { spawn } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { CHILD_ENV, NODE, loadLine, machineLine, median, ms, parseArgs, printTable, ratio, track } from './lib.mjs'

const P = Promise
P.withResolvers ??= function () { let resolve, reject; const promise = new P((res, rej) => { resolve = res; reject = rej }); return { promise, resolve, reject } }

const PROTOCOL = '/bench/bulk/1.0.0'
const KiB = 1024
const MiB = 1024 * KiB
const SELF = fileURLToPath(import.meta.url)

async function createNode ({ window, cipher, listen }) {
  const [{ createLibp2p }, { tcp }, { noise, pureJsCrypto }, { yamux }] = await Promise.all([
    import('libp2p'), import('@libp2p/tcp'), import('@chainsafe/libp2p-noise'), import('@chainsafe/libp2p-yamux')
  ])
  return await createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise(cipher === 'js' ? { crypto: pureJsCrypto } : {})],
    streamMuxers: [yamux({ streamOptions: { initialStreamWindowSize: window, maxStreamWindowSize: window } })],
    connectionMonitor: { enabled: false }
  })
}

// ---------------------------------------------------------------- receiver (child process)

async function receiver () {
  const variants = JSON.parse(process.argv[3])
  const nodes = []
  for (const v of variants) {
    const node = await createNode({ ...v, listen: true })
    await node.handle(PROTOCOL, async (stream) => {
      let got = 0
      for await (const chunk of stream) {
        got += chunk.byteLength
        if (got >= v.size) { stream.send(Uint8Array.of(1)); await stream.close(); return }
      }
    }, { maxInboundStreams: 4 })
    nodes.push(node.getMultiaddrs()[0].toString())
  }
  const tcpServer = net.createServer(sock => {
    let got = 0
    sock.on('data', d => { got += d.length; if (got >= variants[0].size) sock.end(Uint8Array.of(1)) })
  })
  await new Promise(resolve => tcpServer.listen(0, '127.0.0.1', resolve))
  process.stdout.write(JSON.stringify({ addrs: nodes, tcpPort: tcpServer.address().port }) + '\n')
  process.on('SIGTERM', () => process.exit(0))
}

// ---------------------------------------------------------------- sender (this process)

async function sendLibp2p (node, addr, data, chunk) {
  const { multiaddr } = await import('@multiformats/multiaddr')
  const t0 = performance.now()
  const stream = await node.dialProtocol(multiaddr(addr), PROTOCOL)
  for (let off = 0; off < data.length; off += chunk) {
    if (!stream.send(data.subarray(off, off + chunk))) await stream.onDrain()
  }
  for await (const _ of stream) break // eslint-disable-line no-unused-vars
  const t = performance.now() - t0
  await stream.close().catch(() => {})
  return t
}

async function sendTcp (port, data) {
  const t0 = performance.now()
  await new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(data))
    s.once('data', () => { s.destroy(); resolve() })
    s.once('error', reject)
  })
  return performance.now() - t0
}

async function sender () {
  const o = parseArgs({ runs: 7, size: 10 * MiB, profile: '' })
  const variants = [
    { label: 'default here: 256 KiB writes, 4 MiB window, node:crypto', chunk: 256 * KiB, window: 4 * MiB, cipher: 'node' },
    { label: 'yamux default window (256 KiB)', chunk: 256 * KiB, window: 256 * KiB, cipher: 'node' },
    { label: '16 MiB window', chunk: 256 * KiB, window: 16 * MiB, cipher: 'node' },
    { label: '64 KiB writes', chunk: 64 * KiB, window: 4 * MiB, cipher: 'node' },
    { label: '1 MiB writes', chunk: 1 * MiB, window: 4 * MiB, cipher: 'node' },
    { label: 'pure-JS ChaCha20-Poly1305', chunk: 256 * KiB, window: 4 * MiB, cipher: 'js' }
  ].map(v => ({ ...v, size: o.size }))
  console.log(`libp2p-stream: ${o.size / MiB} MiB over one libp2p stream (TCP + Noise + Yamux) vs raw TCP, 2 processes, ${o.runs} runs each`)
  console.log(machineLine())
  console.log(await loadLine())
  const prof = o.profile === '' ? [] : ['--cpu-prof', '--cpu-prof-dir', o.profile]
  const child = track(spawn(NODE, [...prof, SELF, 'receive', JSON.stringify(variants)], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'inherit'] }))
  const info = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', d => { out += d; const i = out.indexOf('\n'); if (i >= 0) resolve(JSON.parse(out.slice(0, i))) })
    child.once('exit', () => reject(new Error('receiver exited')))
  })
  const data = Buffer.alloc(o.size, 0x5a)
  const senders = await Promise.all(variants.map(async v => await createNode({ ...v, listen: false })))
  const times = variants.map(() => [])
  const raw = []
  // Warm up every path (dial, handshake, JIT), then interleave the variants run by run.
  for (let i = 0; i < variants.length; i++) await sendLibp2p(senders[i], info.addrs[i], data, variants[i].chunk)
  await sendTcp(info.tcpPort, data)
  for (let r = 0; r < o.runs; r++) {
    raw.push(await sendTcp(info.tcpPort, data))
    for (let i = 0; i < variants.length; i++) times[i].push(await sendLibp2p(senders[i], info.addrs[i], data, variants[i].chunk))
  }
  const rawMed = median(raw)
  const rate = (t) => `${(o.size / MiB / (t / 1000)).toFixed(0)} MiB/s`
  printTable([
    ['variant', 'median', 'rate', 'x raw TCP'],
    ['raw TCP (net, one write)', ms(rawMed), rate(rawMed), '1.00x'],
    ...variants.map((v, i) => [v.label, ms(median(times[i])), rate(median(times[i])), ratio(median(times[i]), rawMed)])
  ], `results: ${o.size / MiB} MiB, medians of ${o.runs}; nothing written to disk`)
  await Promise.all(senders.map(async n => await n.stop()))
  child.kill('SIGTERM')
  await new Promise(resolve => child.once('exit', resolve))
}

if (process.argv[2] === 'receive') await receiver()
else await sender()
