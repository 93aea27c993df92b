/*
 * Serf's own convergence model, as its documentation's "convergence
 * simulator" computes it (hashicorp/serf, website _simulator.js): a logistic
 * epidemic, fraction infected after x gossip rounds
 *   I(x) = 1 / (1 + (N + 1) e^(-c N x)),  c = fanout / N × (1 - loss) × (1 - failed) × 0.5
 * with LAN defaults gossip_interval 200 ms and fanout 3. At N = 1,000 it
 * gives 99.9 % after 9.2 rounds, 1.84 s. It is a model of gossip rounds, not
 * a measurement: it leaves out latency and CPU.
 */

export const SERF_LAN = { intervalMs: 200, fanout: 3 }

export function serfFraction (nodes: number, rounds: number, loss = 0, failed = 0, fanout = SERF_LAN.fanout): number {
  const contact = (fanout / nodes) * (1 - loss) * (1 - failed) * 0.5
  return 1 / (1 + (nodes + 1) * Math.exp(-contact * nodes * rounds))
}

/** Ms until the model reaches `fraction`. */
export function serfTimeTo (fraction: number, nodes: number, loss = 0, intervalMs = SERF_LAN.intervalMs, fanout = SERF_LAN.fanout): number {
  const contact = (fanout / nodes) * (1 - loss) * 0.5
  const rounds = Math.log((nodes + 1) * fraction / (1 - fraction)) / (contact * nodes)
  return rounds * intervalMs
}

/** The model's curve, sampled finely, as [ms, fraction] up to 99.99 %. */
export function serfCurve (nodes: number, loss = 0): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (let r = 0; r <= 100; r += 0.25) {
    const f = serfFraction(nodes, r, loss)
    out.push([r * SERF_LAN.intervalMs, f])
    if (f >= 0.9999) break
  }
  return out
}
