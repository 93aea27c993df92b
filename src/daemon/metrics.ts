import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { HeldEntry } from '../store/store.js'

/*
 * Prometheus metrics, off by default. prom-client is loaded only when
 * [metrics] listen is set, so a daemon without metrics does not pay its memory.
 */

export interface MetricsSink {
  accepted: (entry: HeldEntry, source: string) => void
  refused: (code: string) => void
  round: (durationMs: number) => void
  bytes: (direction: 'in' | 'out', n: number) => void
  /** A held file found changed on disk, by what was done about it. */
  tampered: (action: string) => void
}

/** Metrics off: the sink drops everything, and there is nothing to close. */
export const noMetrics: MetricsServer = { sink: { accepted () {}, refused () {}, round () {}, bytes () {}, tampered () {} }, address: null, async close () {} }

export interface MetricsSources {
  peersConnected: () => number
  peersKnown: () => number
  entries: () => Iterable<HeldEntry>
  /** The node's health judgement (src/daemon/health.ts): 1 when degraded. */
  degraded: () => boolean
  /** When this node's membership certificate expires (ms since the epoch); undefined on an open mesh. */
  certificateNotAfterMs?: () => number | undefined
}

export interface MetricsServer {
  sink: MetricsSink
  /** host:port being served, with the port the kernel picked for port 0; null when off. */
  address: string | null
  close: () => Promise<void>
}

export async function startMetrics (listen: string, sources: MetricsSources, nowMs = () => Date.now()): Promise<MetricsServer> {
  // prom-client is CommonJS: bundled, its exports sit on the default export.
  const mod = await import('prom-client')
  const prom = (mod as unknown as { default?: typeof mod }).default ?? mod
  const registry = new prom.Registry()
  prom.collectDefaultMetrics({ register: registry, prefix: 'dm_' })
  const reg = { registers: [registry] }
  new prom.Gauge({ ...reg, name: 'dm_peers_connected', help: 'Peers connected now', collect () { this.set(sources.peersConnected()) } })
  new prom.Gauge({ ...reg, name: 'dm_health_degraded', help: 'Whether the node is degraded (dm status exits 4 and says why)', collect () { this.set(sources.degraded() ? 1 : 0) } })
  new prom.Gauge({
    ...reg,
    name: 'dm_certificate_expiry_seconds',
    help: 'When this node\'s membership certificate expires, in seconds since the epoch (absent on an open mesh); alert on dm_certificate_expiry_seconds - time() < 14 * 86400',
    collect () {
      const at = sources.certificateNotAfterMs?.()
      if (at !== undefined) this.set(at / 1000)
    }
  })
  new prom.Gauge({ ...reg, name: 'dm_peers_known', help: 'Members known (connected or not)', collect () { this.set(sources.peersKnown()) } })
  const accepted = new prom.Counter({ ...reg, name: 'dm_versions_accepted_total', help: 'Versions accepted and stored' })
  const refused = new prom.Counter({ ...reg, name: 'dm_versions_refused_total', help: 'Versions refused, by reason code', labelNames: ['reason'] })
  const rounds = new prom.Histogram({ ...reg, name: 'dm_sync_round_duration_seconds', help: 'Push-pull anti-entropy rounds and their duration', buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30] })
  const tampered = new prom.Counter({ ...reg, name: 'dm_local_tamper_total', help: 'Held files found changed on disk, by the action taken (restored, moved aside)', labelNames: ['action'] })
  const bytes = new prom.Counter({ ...reg, name: 'dm_sync_bytes_total', help: 'Bytes of sync protocol frames, by direction', labelNames: ['direction'] })
  const delay = new prom.Histogram({ ...reg, name: 'dm_propagation_delay_seconds', help: 'From a version\'s signing time to its acceptance here (versions from peers)', buckets: [0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600] })
  new prom.Gauge({
    ...reg,
    name: 'dm_file_version_age_seconds',
    help: 'Age of the held version of each file, from its signing time',
    labelNames: ['name'],
    collect () {
      this.reset()
      for (const e of sources.entries()) this.set({ name: e.name }, (nowMs() - e.timestampMs) / 1000)
    }
  })

  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') { res.writeHead(404).end(); return }
    registry.metrics().then(text => {
      res.writeHead(200, { 'content-type': registry.contentType }).end(text)
    }, () => res.writeHead(500).end())
  })
  const [host, port] = splitHostPort(listen)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const bound = server.address() as AddressInfo
  return {
    address: `${host.includes(':') ? `[${host}]` : host}:${bound.port}`,
    sink: {
      accepted (entry, source) {
        accepted.inc()
        if (source !== 'local') delay.observe(Math.max(0, nowMs() - entry.timestampMs) / 1000)
      },
      refused: code => refused.inc({ reason: code }),
      round: ms => rounds.observe(ms / 1000),
      bytes: (direction, n) => bytes.inc({ direction }, n),
      tampered: action => tampered.inc({ action })
    },
    async close () {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

function splitHostPort (listen: string): [string, number] {
  const i = listen.lastIndexOf(':')
  return [listen.slice(0, i).replace(/^\[|\]$/g, ''), Number(listen.slice(i + 1))]
}
