import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { ComponentLogger, Logger } from '@libp2p/interface'
import { DmError } from '../errors.js'
import type { Identity } from './identity.js'
import { sendWindowUpdatesAtHalf } from './yamux-window.js'

export interface NodeOptions {
  identity: Identity
  listen: string[]
  /** Mixed into every Noise handshake: nodes of different networks cannot connect. */
  networkId: Uint8Array
  mdns: boolean
  /** Hard cap on open connections. */
  maxConnections: number
}

export type MeshNode = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>> }>

/** Yamux window: large enough that a 10 MiB transfer is not stalled waiting for window updates. */
const STREAM_WINDOW_BYTES = 4 * 1024 * 1024

/**
 * A connection to a peer that vanished (a laptop closed, a cable pulled) is
 * found by the kernel's TCP keep-alive, not by yamux pings every 30 s: a probe after
 * this long without traffic, then the kernel's own interval and count
 * (net.ipv4.tcp_keepalive_intvl and _probes; 75 s and 9 by default, so
 * about 12 minutes). Yamux pings never time out themselves; they only made
 * TCP's retransmissions give up (about 15 minutes), and each was a frame
 * through Noise and yamux both ways, every 30 s on every connection: about a
 * tenth of an idle daemon's CPU in a 30-node mesh.
 */
const TCP_KEEPALIVE_IDLE_MS = 30_000
const tcpSocket = { keepAlive: true, keepAliveInitialDelay: TCP_KEEPALIVE_IDLE_MS }

/**
 * Yamux still pings once as a connection opens, then hourly: a stream's
 * receive window grows (up to STREAM_WINDOW_BYTES) only once the round trip
 * is known from a ping. Without that first ping a 10 MiB fetch stayed at the
 * 256 KiB window (A's files/ -> B's files/ about 10 % slower).
 */
const YAMUX_PING_INTERVAL_MS = 3_600_000

export async function createMeshNode (o: NodeOptions): Promise<MeshNode> {
  return await startLibp2p(o).catch(err => { throw explainListenError(err, o.listen) })
}

/**
 * libp2p reports an address it cannot listen on as a paragraph about its
 * transport manager; an operator needs one line naming the address and the key.
 */
function explainListenError (err: unknown, listen: string[]): unknown {
  const text = String((err as Error)?.message ?? err)
  const failed = listen.filter(a => text.includes(a))
  const why = /EADDRINUSE/.test(text) ? 'the address is already in use (another daemon, or another program on that port?)'
    : /EADDRNOTAVAIL/.test(text) ? 'no interface of this machine has that address'
      : /EACCES/.test(text) ? 'permission denied (ports below 1024 need privileges)'
        : undefined
  if (why === undefined || failed.length === 0) return err
  return new DmError('ERR_LISTEN', `cannot listen on ${failed.join(', ')}: ${why}; change [network] listen`, { cause: err })
}

/**
 * libp2p's own debug logs only when asked for (DEBUG=libp2p:*, the debug
 * module's convention): otherwise loggers that do nothing. libp2p builds
 * loggers for every connection and stream, and the debug module's checks
 * behind them were about 6 % of an idle daemon's CPU in a 30-node mesh.
 */
function libp2pLogger (): ComponentLogger | undefined {
  if (process.env.DEBUG !== undefined && process.env.DEBUG !== '') return undefined
  const off: Logger = Object.assign(() => {}, { enabled: false, error: () => {}, trace: () => {}, newScope: () => off })
  return { forComponent: () => off }
}

async function startLibp2p (o: NodeOptions): Promise<MeshNode> {
  sendWindowUpdatesAtHalf()
  return await createLibp2p({
    privateKey: o.identity.privateKey,
    logger: libp2pLogger(),
    addresses: { listen: o.listen },
    // A quiet connection stays open: a settled mesh may not use a link for minutes (libp2p closes
    // a socket after 2 idle minutes by default); the kernel's keep-alive finds the dead ones.
    transports: [tcp({ dialOpts: tcpSocket, listenOpts: tcpSocket, inboundSocketInactivityTimeout: 0, outboundSocketInactivityTimeout: 0 })],
    connectionEncrypters: [noise({ prologueBytes: o.networkId })],
    streamMuxers: [yamux({ keepAliveInterval: YAMUX_PING_INTERVAL_MS, streamOptions: { maxStreamWindowSize: STREAM_WINDOW_BYTES } })],
    // Loaded only when enabled: it costs memory every daemon would otherwise pay.
    peerDiscovery: o.mdns ? [(await import('@libp2p/mdns')).mdns()] : [],
    connectionManager: {
      maxConnections: o.maxConnections,
      // A fleet restarting at once dials in bursts; the default of 5/s per host refuses them.
      inboundConnectionThreshold: 100,
      maxIncomingPendingConnections: 64
    },
    // The connection monitor opens a ping stream on every connection every 10 s; idle, that
    // was most of a daemon's CPU, and on 2 cores a 100-node mesh never settled. TCP's
    // keep-alive detects dead connections (above).
    connectionMonitor: { enabled: false },
    // identify tells membership a peer's listen addresses. No ping service: nothing here pings
    // (the connection monitor is off), and an unused protocol handler still costs memory.
    services: { identify: identify() }
  }) as unknown as MeshNode
}
