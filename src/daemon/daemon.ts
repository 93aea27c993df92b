import PQueue from 'p-queue'
import { multiaddr } from '@multiformats/multiaddr'
import type { Config } from '../config/config.js'
import { describeError } from '../errors.js'
import { hex, networkIdFrom, VersionKind } from '../format/version.js'
import { publicKeyToBase64 } from '../crypto/keys.js'
import { openStore, type HeldEntry } from '../store/store.js'
import { createSyncEngine } from '../sync/engine.js'
import { startApiServer, type ApiServer } from '../api/server.js'
import type { PeerInfoJson, StatusInfo, VersionInfo } from '../api/wire.js'
import { loadOrCreateIdentity } from '../net/identity.js'
import { createMeshNode, type MeshNode } from '../net/node.js'
import { libp2pTransport } from '../net/transport.js'
import { createMembership } from '../net/membership.js'
import { sample } from '../util/clock.js'
import { createLogger } from './logger.js'

/** Push-pull rounds started because a connection opened, run at most this many at once. */
const MAX_PARALLEL_JOIN_ROUNDS = 2

export interface Daemon {
  node: MeshNode
  stop: () => Promise<void>
}

export function versionInfo (e: HeldEntry): VersionInfo {
  const v = e.version
  return {
    name: e.name,
    size: v.size,
    timestampMs: v.timestampMs,
    signedAt: new Date(v.timestampMs).toISOString(),
    expiresAtMs: v.expiresAtMs,
    signer: publicKeyToBase64(v.signer),
    sha256: hex(v.sha256),
    id: hex(e.id),
    tombstone: v.kind === VersionKind.Tombstone,
    present: e.present
  }
}

/** Starts every component in data-flow order and returns once the API answers. */
export async function startDaemon (config: Config): Promise<Daemon> {
  const startedAt = Date.now()
  const log = createLogger(config.logLevel)
  const networkId = networkIdFrom(config.network.id)
  const store = await openStore(config.stateDir, { problem: message => log.warn({}, message) })
  const identity = await loadOrCreateIdentity(config.stateDir)
  const node = await createMeshNode({
    identity,
    listen: config.network.listen,
    networkId,
    mdns: config.network.mdns,
    maxConnections: config.network.targetPeers * 4 + 32
  })
  const transport = libp2pTransport(node)
  const joinRounds = new PQueue({ concurrency: MAX_PARALLEL_JOIN_ROUNDS })

  let engine: ReturnType<typeof createSyncEngine> | undefined
  const round = (peer: string, why: string): void => {
    void joinRounds.add(async () => await engine?.pushPull(peer))
      .catch(err => log.debug({ peer, why, err: describeError(err) }, 'push-pull failed'))
  }
  const membership = createMembership({
    node,
    bootstrap: config.network.bootstrap,
    targetPeers: config.network.targetPeers,
    log,
    onOutboundConnection: peer => round(peer, 'join')
  })
  engine = createSyncEngine({
    store,
    transport,
    policy: { networkId, allowlist: config.files, maxClockSkewMs: config.maxClockSkewMs },
    pushFanout: config.network.pushFanout,
    log,
    peers: membership
  })
  await engine.start()
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

  const sync = engine
  const api: ApiServer = await startApiServer(config.api.socket, {
    publish: async (v, content) => await sync.publish(v, content),
    list: () => [...store.entries()].map(versionInfo).sort((a, b) => a.name < b.name ? -1 : 1),
    peers: (): PeerInfoJson[] => membership.members().map(m => ({
      id: m.id, addrs: m.addrs, connected: m.connected, bootstrap: m.bootstrap, failures: m.failures, lastSeenMs: m.lastSeenMs ?? null
    })),
    status: (): StatusInfo => {
      const members = membership.members()
      return {
        peerId: node.peerId.toString(),
        listen: node.getMultiaddrs().map(a => a.toString()),
        network: config.network.id,
        uptimeMs: Date.now() - startedAt,
        peersConnected: node.getPeers().length,
        peersKnown: members.length,
        files: store.size(),
        syncRounds: sync.stats.rounds,
        lastSyncAtMs: sync.stats.lastRoundAtMs ?? null,
        lastSyncDurationMs: sync.stats.lastRoundMs ?? null
      }
    }
  })
  log.info({ peerId: node.peerId.toString(), listen: node.getMultiaddrs().map(a => a.toString()), socket: config.api.socket, files: store.size() }, 'daemon ready')

  return {
    node,
    async stop () {
      clearTimeout(antiEntropy)
      membership.stop()
      await api.close()
      joinRounds.clear()
      await node.stop()
      log.info({}, 'daemon stopped')
    }
  }
}

/** The multiaddrs others should use to reach this node, with /p2p/<id>. */
export function dialableAddrs (listen: string[], peerId: string): string[] {
  return listen.map(a => multiaddr(a).toString() + `/p2p/${peerId}`)
}
