import PQueue from 'p-queue'
import { multiaddr } from '@multiformats/multiaddr'
import type { Config, LogFormat } from '../config/config.js'
import { loadConfig } from '../config/load.js'
import { describeError } from '../errors.js'
import { networkIdFrom } from '../format/version.js'
import { openStore } from '../store/store.js'
import { createSyncEngine } from '../sync/engine.js'
import { assertSocketFree, startApiServer } from '../api/server.js'
import type { PeerInfoJson, StatusInfo } from '../api/wire.js'
import { versionInfo } from '../api/version-info.js'
import { loadOrCreateIdentity } from '../net/identity.js'
import { createMeshNode, type MeshNode } from '../net/node.js'
import { libp2pTransport } from '../net/transport.js'
import { createMembership } from '../net/membership.js'
import { sample } from '../util/clock.js'
import { createLogger } from './logger.js'
import { noMetrics, startMetrics, type MetricsServer } from './metrics.js'
import { loadPeers, savePeers } from './peers-file.js'

/** Push-pull rounds started because a connection opened, run at most this many at once. */
const MAX_PARALLEL_JOIN_ROUNDS = 2
/** How often expired files are looked for; a file outlives its expiry by at most this. */
const EXPIRY_SWEEP_MS = 1000
/** How often the members seen are saved to peers.json. */
const SAVE_PEERS_INTERVAL_MS = 60_000

export interface Daemon {
  node: MeshNode
  /** Names held, for systemd's status line. */
  files: () => number
  /** Re-reads the config file: the [files] allowlist, log level and clock skew take effect at once. */
  reload: (configPath: string) => void
  stop: () => Promise<void>
}

/** Starts every component in data-flow order and returns once the API answers. */
export async function startDaemon (config: Config, logFormat: LogFormat = 'auto'): Promise<Daemon> {
  const startedAt = Date.now()
  const log = await createLogger(config.logLevel, logFormat)
  const networkId = networkIdFrom(config.network.id)
  // Checked before anything starts, so a second daemon fails fast and leaves no port open.
  await assertSocketFree(config.api.socket)
  const store = await openStore(config.stateDir, { problem: message => log.warn({}, message) })
  const identity = await loadOrCreateIdentity(config.stateDir)
  const node = await createMeshNode({
    identity,
    listen: config.network.listen,
    networkId,
    mdns: config.network.mdns,
    maxConnections: config.network.targetPeers * 4 + 32
  })
  // Hooks read `metrics` when they fire, so it can be started once everything it observes exists.
  let metrics = noMetrics
  const transport = libp2pTransport(node, (direction, n) => metrics.bytes(direction, n))
  const joinRounds = new PQueue({ concurrency: MAX_PARALLEL_JOIN_ROUNDS })

  let engine: ReturnType<typeof createSyncEngine> | undefined
  const round = (peer: string, why: string): void => {
    void joinRounds.add(async () => await engine?.pushPull(peer))
      .catch(err => log.debug({ peer, why, err: describeError(err) }, 'push-pull failed'))
  }
  const membership = createMembership({
    node,
    bootstrap: config.network.bootstrap,
    remembered: loadPeers(config.stateDir),
    targetPeers: config.network.targetPeers,
    log,
    onOutboundConnection: peer => round(peer, 'join')
  })
  // Mutable, so SIGHUP can swap the allowlist without a restart.
  const policy = { networkId, allowlist: config.files, maxClockSkewMs: config.maxClockSkewMs }
  const sync = createSyncEngine({
    store,
    transport,
    policy,
    pushFanout: config.network.pushFanout,
    log,
    peers: membership,
    onAccepted: (entry, source) => metrics.accepted(entry, source),
    onRefused: code => metrics.refused(code),
    onRound: ms => metrics.round(ms)
  })
  engine = sync
  await sync.start()
  membership.start()

  // Anti-entropy: one push-pull with a random peer per interval, jittered so a fleet does not beat in step.
  let antiEntropy: NodeJS.Timeout | undefined
  const scheduleRound = (): void => {
    const interval = config.network.pushPullIntervalMs
    antiEntropy = setTimeout(() => {
      const peer = sample(transport.connectedPeers(), 1)[0]
      if (peer !== undefined) round(peer, 'interval')
      scheduleRound()
    }, interval * (0.75 + Math.random() / 2))
  }
  scheduleRound()

  const persistPeers = (): void => {
    try {
      savePeers(config.stateDir, membership.snapshot())
    } catch (err) {
      log.warn({ err: describeError(err) }, 'cannot save peers.json')
    }
  }
  const peersTimer = setInterval(persistPeers, SAVE_PEERS_INTERVAL_MS)
  const expiryTimer = setInterval(() => {
    sync.expire().catch(err => log.error({ err: describeError(err) }, 'cannot remove expired files'))
  }, EXPIRY_SWEEP_MS)

  const abandon = async (err: unknown): Promise<never> => {
    // Start-up failed after the node started: stop what runs, so the process can exit.
    clearTimeout(antiEntropy)
    clearInterval(peersTimer)
    clearInterval(expiryTimer)
    membership.stop()
    try { await node.stop() } catch {}
    throw err
  }
  let metricsServer: MetricsServer | undefined
  if (config.metrics.listen !== '') {
    metricsServer = await startMetrics(config.metrics.listen, {
      peersConnected: () => node.getPeers().length,
      peersKnown: () => membership.members().length,
      entries: () => store.entries()
    }).catch(abandon)
    metrics = metricsServer.sink
  }

  const api = await startApiServer(config.api.socket, {
    publish: async (v, content) => await sync.publish(v, content),
    list: () => [...store.entries()].map(e => versionInfo(e, Date.now(), policy.allowlist.has(e.name))).sort((a, b) => a.name < b.name ? -1 : 1),
    content: async name => await store.readContent(name),
    peers: (): PeerInfoJson[] => membership.members().map(m => ({
      id: m.id, addrs: m.addrs, connected: m.connected, bootstrap: m.bootstrap, failures: m.failures, lastSeenMs: m.lastSeenMs ?? null
    })),
    status: (): StatusInfo => ({
      peerId: node.peerId.toString(),
      listen: node.getMultiaddrs().map(a => a.toString()),
      network: config.network.id,
      uptimeMs: Date.now() - startedAt,
      peersConnected: node.getPeers().length,
      peersKnown: membership.members().length,
      files: store.size(),
      syncRounds: sync.stats.rounds,
      lastSyncAtMs: sync.stats.lastRoundAtMs ?? null,
      lastSyncDurationMs: sync.stats.lastRoundMs ?? null
    })
  }).catch(async err => { await metricsServer?.close(); return await abandon(err) })
  log.info({ peerId: node.peerId.toString(), listen: node.getMultiaddrs().map(a => a.toString()), socket: config.api.socket, files: store.size() }, 'daemon ready')

  return {
    node,
    files: () => store.size(),
    reload (configPath) {
      let next: Config
      try {
        next = loadConfig(configPath)
      } catch (err) {
        log.error({ err: describeError(err) }, 'config reload failed; keeping the running config')
        return
      }
      policy.allowlist = next.files
      policy.maxClockSkewMs = next.maxClockSkewMs
      log.level = next.logLevel
      if (JSON.stringify(next.network) !== JSON.stringify(config.network) || next.stateDir !== config.stateDir || next.api.socket !== config.api.socket || next.metrics.listen !== config.metrics.listen) {
        log.warn({}, 'config reloaded; changes outside [files], log_level and max_clock_skew_ms take effect at the next restart')
      }
      log.info({ files: next.files.size }, 'config reloaded')
    },
    async stop () {
      clearTimeout(antiEntropy)
      clearInterval(peersTimer)
      clearInterval(expiryTimer)
      membership.stop()
      persistPeers()
      await api.close()
      await metricsServer?.close()
      joinRounds.clear()
      await node.stop()
      // Writes already under way finish; each is atomic, so even a kill here loses nothing.
      await store.flush()
      log.info({}, 'daemon stopped')
    }
  }
}

/** The multiaddrs others should use to reach this node, with /p2p/<id>. */
export function dialableAddrs (listen: string[], peerId: string): string[] {
  return listen.map(a => multiaddr(a).toString() + `/p2p/${peerId}`)
}
