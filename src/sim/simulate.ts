import { createPrivateKey, createPublicKey } from 'node:crypto'
import { assertTuning, tuningFor, type ProfileName, type Tuning } from '../config/tuning.js'
import { rawPublicKey } from '../crypto/keys.js'
import { hex, networkIdFrom, newVersion, versionId } from '../format/version.js'
import { LOCAL_SOURCE } from '../sync/acceptor-api.js'
import { createSync, type Sync } from '../sync/index.js'
import { silentLog } from '../util/log.js'
import { memoryStore } from './memory-store.js'
import { MembershipModel, nodeId } from './membership-model.js'
import { SimNetwork, type CpuModel, type LinkModel, type Traffic } from './network.js'
import { exponential, seededRandom } from './prng.js'
import { Scheduler } from './scheduler.js'
import { curve, round2, totals, type PublishReport, type SimCost, type SimReport } from './report.js'

/*
 * One simulation: N nodes, each running the real sync services (createSync:
 * acceptor with Ed25519 verification, push, fetch, anti-entropy) over the
 * simulated network on virtual time, with membership modelled. A publisher
 * signs a version; the run follows it until every node holds it (or the
 * horizon), then the next publish follows. Everything random comes from the
 * seed, so a seed replays a run exactly.
 */

export interface SimOptions {
  nodes: number
  seed: number
  link: LinkModel
  /** CPU per received message; undefined: free (the network alone decides). */
  cpu: CpuModel | undefined
  /** Fraction of nodes away at any moment (0: no churn). */
  churn: number
  /** Mean length of an away period, ms (exponential). */
  awayMs: number
  /** Splits off `fraction` of the nodes before the first publish, healed `durationMs` after it. */
  partition: { fraction: number, durationMs: number } | undefined
  profile: ProfileName
  overrides: Partial<Pick<Tuning, 'pushFanout' | 'pushPullIntervalMs' | 'targetPeers'>>
  publishes: number
  sizeBytes: number
  /** Virtual time before the first publish (the mesh is built at 0; services start at once). */
  settleMs: number
  /** How long one publish is followed at most. */
  horizonMs: number
  /** Quiet time after a publish reached everyone, before the next (its traffic counts to the publish). */
  gapMs: number
}

export const DEFAULT_OPTIONS: SimOptions = {
  nodes: 1000,
  seed: 1,
  link: { latencyMs: 0.3, jitterMs: 0.1, loss: 0, rtoMs: 200 },
  cpu: undefined,
  churn: 0,
  awayMs: 30_000,
  partition: undefined,
  profile: 'lan',
  overrides: {},
  publishes: 5,
  sizeBytes: 1024,
  settleMs: 2000,
  horizonMs: 300_000,
  // Publishes 7 s apart, as bench/propagation.mjs spaces its cold rounds; push streams stay open between them, as in the daemon.
  gapMs: 7000
}

/** A deterministic Ed25519 key from the seed (PKCS#8 wrapping of a 32-byte seed). */
function signingKey (random: () => number): ReturnType<typeof createPrivateKey> {
  const seed = Buffer.from(Array.from({ length: 32 }, () => Math.floor(random() * 256)))
  return createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' })
}

const EPOCH_MS = Date.UTC(2026, 0, 1)
const NAME = 'sim/file'

export async function simulate (opts: SimOptions): Promise<{ report: SimReport, cost: SimCost }> {
  const started = performance.now()
  const random = seededRandom(opts.seed)
  const tuning = tuningFor(opts.profile, opts.overrides)
  assertTuning(tuning)
  const scheduler = new Scheduler(EPOCH_MS)
  const net = new SimNetwork(scheduler, seededRandom(random() * 2 ** 32), opts.link, opts.cpu, tuning.frameTimeoutMs)
  const ids = Array.from({ length: opts.nodes }, (_, i) => nodeId(i))
  const mesh = new MembershipModel(net, scheduler, seededRandom(random() * 2 ** 32), ids, tuning)

  const key = signingKey(random)
  const signer = rawPublicKey(createPublicKey(key))
  const networkId = networkIdFrom('sim')
  const policy = { networkId, allowlist: new Map([[NAME, [signer]]]), maxClockSkewMs: 60_000 }

  // What the current publish is, and what happened to it.
  let current = ''
  const arrivals = new Map<string, number>()
  let duplicates = 0
  let rounds = 0

  // Churn: each node is away a `churn` share of the time, in exponential periods.
  const churnRandom = seededRandom(random() * 2 ** 32)
  const backAt = new Map<string, number>()
  if (opts.churn > 0) {
    const upMs = opts.awayMs * (1 - opts.churn) / opts.churn
    const cycle = (id: string, away: boolean): void => {
      scheduler.after(exponential(churnRandom, away ? opts.awayMs : upMs), () => {
        if (away) { backAt.set(id, scheduler.elapsedMs); mesh.rejoin(id) } else mesh.leave(id)
        cycle(id, !away)
      })
    }
    for (const id of ids) {
      const away = churnRandom() < opts.churn
      if (away) mesh.up.delete(id)
      cycle(id, away)
    }
  }
  const transports = new Map(ids.map(id => [id, net.addNode(id)]))
  mesh.build()
  mesh.startRotation()

  const syncs = new Map<string, Sync>()
  for (const id of ids) {
    const sync = createSync({
      store: memoryStore(scheduler),
      transport: transports.get(id) as ReturnType<SimNetwork['addNode']>,
      peers: mesh.peerExchange(id),
      clock: scheduler,
      random: seededRandom(random() * 2 ** 32),
      log: silentLog
    }, { policy, tuning })
    sync.acceptor.events.on('accepted', ({ entry }) => {
      if (hex(entry.id) === current && !arrivals.has(id)) arrivals.set(id, scheduler.elapsedMs)
    })
    sync.acceptor.events.on('refused', ({ code }) => { if (code === 'ERR_ALREADY_HELD') duplicates++ })
    sync.antiEntropy.events.on('round', () => { rounds++ })
    await sync.start()
    syncs.set(id, sync)
  }
  const degrees = ids.filter(id => mesh.up.has(id)).map(id => net.degree(id)).sort((a, b) => a - b)

  const sides = new Map<string, number>()
  if (opts.partition !== undefined) {
    for (const id of ids) sides.set(id, random() < opts.partition.fraction ? 1 : 0)
    scheduler.at(opts.settleMs / 2, () => mesh.split(sides))
  }
  await scheduler.run(opts.settleMs)

  const contentRandom = seededRandom(random() * 2 ** 32)
  const publishes: PublishReport[] = []
  for (let k = 0; k < opts.publishes; k++) {
    const atMs = scheduler.elapsedMs
    const population = new Set(ids.filter(id => mesh.up.has(id)))
    const awayAtPublish = ids.filter(id => !mesh.up.has(id))
    const publisher = [...population][Math.floor(random() * population.size)]
    const content = Buffer.from(Array.from({ length: opts.sizeBytes }, () => Math.floor(contentRandom() * 256)))
    const version = newVersion({ name: NAME, content, networkId, privateKey: key, signer, timestampMs: scheduler.nowMs() })
    current = hex(versionId(version))
    arrivals.clear()
    duplicates = 0
    rounds = 0
    const sentBefore = totals(net.sent.values())
    const protoBefore = new Map([...net.byProtocol].map(([p, t]) => [p, { ...t }]))
    let healedAtMs: number | undefined
    let roundsAtHeal = 0
    if (k === 0 && opts.partition !== undefined) {
      scheduler.after(opts.partition.durationMs, () => { mesh.heal(); healedAtMs = scheduler.elapsedMs; roundsAtHeal = rounds })
    }
    void syncs.get(publisher)?.acceptor.ingest(version, content, LOCAL_SOURCE)
    const inPopulation = (): number => { let n = 0; for (const id of arrivals.keys()) if (population.has(id)) n++; return n }
    await scheduler.run(atMs + opts.horizonMs, () => arrivals.size === opts.nodes)
    const reached = inPopulation()
    const roundsAtEnd = rounds
    await scheduler.run(scheduler.elapsedMs + opts.gapMs)

    const times = [...arrivals].filter(([id]) => population.has(id)).map(([, t]) => t - atMs).sort((a, b) => a - b)
    const at = (p: number): number | null => {
      const need = Math.ceil(p * population.size - 1e-9)
      return times.length >= need ? round2(times[need - 1]) : null
    }
    const sent = totals(net.sent.values())
    const byProtocol: Record<string, Traffic> = {}
    for (const [p, t] of net.byProtocol) {
      const b = protoBefore.get(p) ?? { frames: 0, bytes: 0, streams: 0 }
      byProtocol[p.replace(/^\/data-mesher\//, '')] = { frames: t.frames - b.frames, bytes: t.bytes - b.bytes, streams: t.streams - b.streams }
    }
    const report: PublishReport = {
      atMs,
      population: population.size,
      t50: at(0.5),
      t90: at(0.9),
      t999: at(0.999),
      t100: at(1),
      reached,
      curve: curve(times, population.size),
      perNode: {
        frames: round2((sent.frames - sentBefore.frames) / opts.nodes),
        bytes: Math.round((sent.bytes - sentBefore.bytes) / opts.nodes),
        streams: round2((sent.streams - sentBefore.streams) / opts.nodes)
      },
      byProtocol,
      duplicates,
      rounds
    }
    if (opts.churn > 0) {
      const waits = awayAtPublish.filter(id => arrivals.has(id)).map(id => (arrivals.get(id) as number) - (backAt.get(id) as number)).sort((a, b) => a - b)
      report.catchUp = { away: awayAtPublish.length, caughtUp: waits.length, medianMs: waits.length > 0 ? waits[Math.floor((waits.length - 1) / 2)] : null, maxMs: waits.at(-1) ?? null }
    }
    if (k === 0 && opts.partition !== undefined) {
      const repaired = arrivals.size === opts.nodes && healedAtMs !== undefined ? Math.max(...arrivals.values()) - healedAtMs : null
      report.partition = {
        healedAtMs: opts.partition.durationMs,
        repairedAfterMs: repaired === null ? null : Math.max(0, repaired),
        roundsAfterHeal: healedAtMs === undefined ? 0 : roundsAtEnd - roundsAtHeal,
        intervalsAfterHeal: repaired === null ? null : round2(Math.max(0, repaired) / tuning.pushPullIntervalMs)
      }
    }
    publishes.push(report)
  }

  for (const s of syncs.values()) void s.stop()
  await scheduler.run(scheduler.elapsedMs + 1)
  return {
    report: {
      nodes: opts.nodes,
      seed: opts.seed,
      tuning: { pushFanout: tuning.pushFanout, pushPullIntervalMs: tuning.pushPullIntervalMs, targetPeers: tuning.targetPeers, maxConnections: tuning.maxConnections },
      degree: {
        min: degrees[0] ?? 0,
        median: degrees[Math.floor(degrees.length / 2)] ?? 0,
        mean: round2(degrees.reduce((a, b) => a + b, 0) / Math.max(1, degrees.length)),
        max: degrees.at(-1) ?? 0
      },
      publishes
    },
    cost: { events: scheduler.events, wallMs: Math.round(performance.now() - started), heapMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20) }
  }
}
