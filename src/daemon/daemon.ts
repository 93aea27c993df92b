import type { Config, LogFormat } from '../config/config.js'
import { loadConfig } from '../config/load.js'
import { changesNeedingRestart } from '../config/reload.js'
import { assertTuning } from '../config/tuning.js'
import { DmError, describeError } from '../errors.js'
import { hex, networkIdFrom, VersionKind } from '../format/version.js'
import { publicKeyToBase64 } from '../crypto/keys.js'
import { openStore, type HeldEntry } from '../store/store.js'
import { lockStateDir } from '../store/lock.js'
import { inspectStateDir } from '../store/state-dir.js'
import { createTamperWatch } from '../store/tamper-watch.js'
import { mayStayHeld } from '../policy/accept.js'
import { revokedReason } from '../policy/revocation.js'
import { LOCAL_SOURCE, type PolicyConfig } from '../sync/acceptor-api.js'
import { createSync } from '../sync/index.js'
import { assertSocketFree, startApiServer } from '../api/server.js'
import type { Health, PeerInfoJson, StatusInfo } from '../api/wire.js'
import { identitySigningKey, loadOrCreateIdentity, peerIdOfKey } from '../net/identity.js'
import { createMeshNode } from '../net/node.js'
import { libp2pTransport } from '../net/transport.js'
import { createAdmission } from '../net/admission.js'
import { loadOwnCertificate } from '../net/admit-trust.js'
import { createMembership } from '../net/membership.js'
import { sample, systemClock } from '../util/clock.js'
import { createLogger } from './logger.js'
import { noMetrics, startMetrics } from './metrics.js'
import { loadPeers, savePeers } from './peers-file.js'
import { versionInfo } from '../api/version-info.js'
import { judgeHealth } from './health.js'
import { createReloadRecord } from './reload-record.js'
import { createHooks, type HookEvent, type HookKind } from './hooks.js'
import { createNodeReporter } from './node-report.js'
import { createFleet } from './fleet.js'

/*
 * The daemon: wiring only. Components are built and started in data-flow
 * order (store → network → sync services → API); each one that
 * started registers how to stop it, and stop() (or a failed start) runs those
 * in reverse, so the API closes first and in-flight commits drain last.
 */

export interface Daemon {
  /** Names held, for systemd's status line. */
  files: () => number
  /** The node's health, as `dm status` shows it. */
  health: () => Health
  /** Re-reads the config file: [files], log_level and max_clock_skew_ms take effect at once. */
  reload: (configPath: string) => void
  stop: () => Promise<void>
}

/** Starts every component and returns once the API answers. */
export async function startDaemon (config: Config, logFormat: LogFormat = 'auto'): Promise<Daemon> {
  const startedAt = Date.now()
  const { tuning } = config
  assertTuning(tuning)
  const log = await createLogger(config.logLevel, logFormat)
  const clock = systemClock
  const reloads = createReloadRecord(clock.nowMs)
  const random = Math.random
  const policyFrom = (c: Config): PolicyConfig => ({ networkId: networkIdFrom(c.network.id), allowlist: c.files, namespaces: c.namespaces, networkKey: c.network.key, maxClockSkewMs: c.maxClockSkewMs })
  const stops: Array<() => unknown> = []
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.splice(0).reverse()) {
      try { await stop() } catch (err) { log.error({ err: describeError(err) }, 'error while stopping') }
    }
  }

  try {
    // Checked before anything starts, so a second daemon fails fast and leaves no port open.
    const lock = lockStateDir(config.stateDir)
    stops.push(() => lock.release())
    await assertSocketFree(config.api.socket)
    for (const f of await inspectStateDir(config.stateDir)) if (!f.fatal) log.warn({ code: f.code, path: f.path }, f.message)
    const store = await openStore(config.stateDir, { problem: message => log.warn({}, message), verify: v => mayStayHeld(policyFrom(config), v) })
    stops.push(async () => await store.close())
    const identity = await loadOrCreateIdentity(config.stateDir)
    // A private mesh: this node's own certificate is checked before any port opens.
    let ownCert = config.network.key === undefined ? undefined : loadOwnCertificate(config.network.certificate, config.network.key, identity.privateKey.publicKey.raw)
    const node = await createMeshNode({
      identity,
      listen: config.network.listen,
      networkId: networkIdFrom(config.network.id),
      mdns: config.network.mdns,
      maxConnections: tuning.maxConnections
    })
    stops.push(async () => await node.stop())
    const admission = config.network.key === undefined || ownCert === undefined
      ? undefined
      : createAdmission({ node, networkKey: config.network.key, certificate: ownCert.bytes, frameTimeoutMs: tuning.frameTimeoutMs, log })
    await admission?.start()
    stops.push(async () => await admission?.stop())
    // The mesh as membership, health and status see it: admitted peers only, on a private mesh.
    const mesh = admission?.node ?? node
    const membership = createMembership({
      node: mesh, bootstrap: config.network.bootstrap, remembered: loadPeers(config.stateDir, m => log.warn({}, m)), tuning, log, clock, random,
      save: peers => savePeers(config.stateDir, peers)
    })

    const health = (): Health => {
      const members = membership.members()
      return judgeHealth({
        peersConnected: mesh.getPeers().length,
        peersExpected: members.length,
        lastDialError: members.find(m => m.lastError !== undefined)?.lastError?.words,
        // A withdrawn file (its signer revoked) is absent on purpose: not counted as missing.
        missing: [...store.entries()].filter(e => !e.present && sync.acceptor.held(e.name) !== undefined).length,
        certificate: ownCert?.cert,
        nowMs: clock.nowMs()
      })
    }
    const metrics = config.metrics.listen === ''
      ? noMetrics
      : await startMetrics(config.metrics.listen, { peersConnected: () => mesh.getPeers().length, peersKnown: () => membership.members().length, entries: () => store.entries(), degraded: () => health().state === 'degraded', certificateNotAfterMs: () => ownCert?.cert.notAfterMs })
    stops.push(async () => await metrics.close())

    const transport = libp2pTransport(node, { frameTimeoutMs: tuning.frameTimeoutMs, count: metrics.sink.bytes, admission })
    const sync = createSync({ store, transport, peers: membership, clock, random, log }, { policy: policyFrom(config), tuning })
    const { acceptor, antiEntropy } = sync
    acceptor.events.on('accepted', e => metrics.sink.accepted(e.entry, e.source))
    acceptor.events.on('refused', e => metrics.sink.refused(e.code))
    antiEntropy.events.on('round', r => metrics.sink.round(r.durationMs))
    // Peers that take part in the mesh's work are the last to be shed above the high-water mark.
    acceptor.events.on('accepted', e => membership.heard(e.source))
    acceptor.events.on('refused', e => { if (e.code === 'ERR_ALREADY_HELD') membership.heard(e.source) })
    antiEntropy.events.on('round', r => membership.heard(r.peer))
    // Nodes the network's revocation list names are refused at admission and disconnected.
    acceptor.events.on('revoked', ({ list }) => admission?.setRevoked(key => revokedReason(list.nodes, key)))
    await sync.start()
    stops.push(async () => await sync.stop())
    // Dialing starts once the services listen: a connection made earlier would miss its join round and its push stream.
    membership.start()
    stops.push(() => membership.stop())

    // A private mesh: this node reports on itself under _dm/nodes, and the fleet view is built from every node's report.
    const self = { key: identitySigningKey(identity), peerId: node.peerId.toString() }
    const reporter = ownCert === undefined ? undefined : createNodeReporter({
      acceptor, store, clock, log, networkId: networkIdFrom(config.network.id), identity: self.key, peerId: self.peerId,
      certificate: () => ownCert as NonNullable<typeof ownCert>, peers: () => mesh.getPeers().length
    }, tuning)
    reporter?.start()
    stops.push(async () => await reporter?.stop())
    const fleet = reporter === undefined || config.network.key === undefined
      ? undefined
      : createFleet({ store, acceptor, reporter, self: { key: self.key.publicKey, peerId: self.peerId }, networkKey: config.network.key, peerIdOf: peerIdOfKey, nowMs: clock.nowMs })

    const hooks = createHooks(config.hooks, { filesDir: store.filesDir, log })
    stops.push(async () => await hooks.stop())
    const hookEvent = (e: HeldEntry, kind: HookKind): HookEvent =>
      ({ name: e.name, kind, id: hex(e.id), signer: publicKeyToBase64(e.version.signer), timestampMs: e.timestampMs })
    acceptor.events.on('accepted', ({ entry }) => hooks.notify(hookEvent(entry, entry.version.kind === VersionKind.Tombstone ? 'tombstone' : 'file')))
    acceptor.events.on('expired', ({ entries }) => { for (const e of entries) hooks.notify(hookEvent(e, 'expired')) })

    // A held file edited or deleted on disk is restored, or moved aside and fetched again from peers.
    const tamper = createTamperWatch({
      store,
      onEvent: r => {
        log.warn({ name: r.name, action: r.action }, r.reason)
        metrics.sink.tampered(r.action)
        acceptor.events.emit('changed', undefined)
        const peer = sample(transport.connectedPeers(), 1, random)[0]
        if (peer !== undefined && !store.get(r.name)?.present) void antiEntropy.round(peer).catch(() => {})
      },
      onError: m => log.error({}, m)
    })
    tamper.start()
    stops.push(async () => await tamper.stop())

    const api = await startApiServer(config.api.socket, {
      publish: async (v, content) => await acceptor.ingest(v, content, LOCAL_SOURCE),
      list: () => [...store.entries()].map(e => versionInfo(e, clock.nowMs(), acceptor.listed(e.name))).sort((a, b) => a.name < b.name ? -1 : 1),
      content: async name => await store.readContent(name),
      ...(fleet !== undefined ? { fleet: fleet.view } : {}),
      peers: (): PeerInfoJson[] => membership.members().map(m => ({
        id: m.id, addrs: m.addrs, connected: m.connected, bootstrap: m.bootstrap, failures: m.failures, lastError: m.lastError?.words ?? null, lastErrorCode: m.lastError?.code ?? null, name: admission?.nameOf(m.id) ?? null, lastSeenMs: m.lastSeenMs ?? null
      })),
      status: (): StatusInfo => ({
        peerId: node.peerId.toString(),
        listen: node.getMultiaddrs().map(a => a.toString()),
        network: config.network.id,
        uptimeMs: Date.now() - startedAt,
        peersConnected: mesh.getPeers().length,
        degree: membership.degree(),
        peersKnown: membership.members().length,
        files: store.size(),
        syncRounds: antiEntropy.stats.rounds,
        lastSyncAtMs: antiEntropy.stats.lastRoundAtMs ?? null,
        lastSyncDurationMs: antiEntropy.stats.lastRoundMs ?? null,
        health: health(),
        certificate: ownCert === undefined ? null : { name: ownCert.cert.name, notBeforeMs: ownCert.cert.notBeforeMs, notAfterMs: ownCert.cert.notAfterMs },
        config: reloads.info(),
        metrics: metrics.address
      })
    })
    stops.push(async () => await api.close())
    log.info({ peerId: node.peerId.toString(), listen: node.getMultiaddrs().map(a => a.toString()), socket: config.api.socket, files: store.size() }, 'daemon ready')

    return {
      files: () => store.size(),
      health,
      reload (configPath) {
        let next: Config
        try {
          next = loadConfig(configPath)
        } catch (err) {
          log.error({ err: describeError(err) }, 'config reload failed; keeping the running config')
          reloads.failed(err)
          return
        }
        acceptor.setPolicy(policyFrom({ ...next, network: config.network }))
        let certProblem: unknown
        if (admission !== undefined && config.network.key !== undefined) {
          // A renewed certificate, copied over the old file, is taken at once.
          try {
            ownCert = loadOwnCertificate(config.network.certificate, config.network.key, identity.privateKey.publicKey.raw)
            admission.setCertificate(ownCert.bytes)
          } catch (err) {
            log.error({ code: err instanceof DmError ? err.code : undefined, err: describeError(err) }, 'cannot reload this node\'s certificate; keeping the one loaded')
            certProblem = err
          }
        }
        log.level = next.logLevel
        const later = changesNeedingRestart(config, next)
        if (later.length > 0) log.warn({ keys: later }, 'config reloaded; these changes take effect at the next restart')
        log.info({ files: next.files.size }, 'config reloaded')
        reloads.took(certProblem)
      },
      async stop () {
        await stopAll()
        log.info({}, 'daemon stopped')
      }
    }
  } catch (err) {
    // Start-up failed part-way: stop what runs, so the process can exit.
    await stopAll()
    throw err
  }
}
