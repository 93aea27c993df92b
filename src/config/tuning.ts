/**
 * Every knob of the sync core and the mesh, in one table (after memberlist's
 * config.go). Each field says what it buys and what it costs; the relations
 * between fields are checked by assertTuning() at start. Profiles are built
 * from the LAN defaults by changing a few fields.
 *
 * The TOML keys `[network] profile`, `push_pull_interval_ms`, `push_fanout`
 * and `target_peers` map onto this table; the other fields are fixed per
 * profile because they guard against hostile peers and should not be loosened
 * casually.
 */
export interface Tuning {
  // --- Anti-entropy (the safety net) ---
  /**
   * Interval of the push-pull exchange with one random peer, jittered by ±25 %.
   * A node a push missed is repaired in about interval / 2. Costs one
   * reconciliation per node per interval: 66 bytes when in sync, whatever the
   * index size. Joins reconcile at once on each new connection, whatever the
   * interval, so a shorter one only pays off while pushes are being lost.
   */
  pushPullIntervalMs: number
  /** Push-pull rounds started by new connections that may run at once; more catches up a rejoining node from several peers, at more CPU during a restart storm. */
  maxParallelJoinRounds: number

  // --- Eager push (the fast path) ---
  /**
   * Peers each newly accepted version is pushed to. With degree d and fanout f,
   * a node is missed by the flood with probability about (1 − f/(d−1))^d, and
   * waits about pushPullIntervalMs / 2 for anti-entropy; f ≥ d − 1 floods every
   * connection and misses none on a connected mesh. Hops ≈ log N / log(min(f, d) − 1);
   * each node receives about min(f, d − 1) copies, one of them news. Simulated
   * at 1,000 nodes, d ≥ 8 (docs/SIMULATION.md): f = 4 left nodes to
   * anti-entropy in every publish, f = 6 missed one node in three publishes,
   * f = 8 none. Keep it ≥ targetPeers.
   */
  pushFanout: number
  /** Pushes waiting for one peer; beyond this new pushes to it are dropped and anti-entropy repairs. Bounds memory to this × 80 KiB per peer. */
  maxQueuedPushesPerPeer: number

  // --- Fetch (content that does not ride in a push) ---
  /** Fetch batches running at once; bounds memory to about this × 10 MiB. */
  maxParallelFetches: number
  /**
   * Commits in flight at once during a catch-up; their fsyncs overlap and
   * their directory fsyncs are shared (group commit). Also the received
   * versions a fetch stream may hold waiting for the disk (≤ 64 KiB each in memory).
   */
  maxParallelCommits: number
  /** Fetch batches one peer may have running at once, so one peer cannot hold every fetch slot. */
  maxFetchesPerPeer: number
  /** Fetch batches that may wait for one peer; beyond this, wants are dropped until the next round. */
  maxQueuedFetchesPerPeer: number
  /** Other peers remembered as sources of a version being fetched, tried in turn if the first fails. */
  maxAlternateSources: number
  /** A transfer must average at least this rate after the grace period, or it is cut: no trickling. */
  minTransferBytesPerS: number
  /** Time a transfer gets before the rate floor applies (covers a cold disk or a busy peer). */
  transferGraceMs: number

  // --- Streams ---
  /**
   * How long a peer may take to deliver one whole frame, and to accept a new
   * stream. A slow-loris peer loses its stream here; lower frees resources
   * sooner, at the risk of cutting an honest peer on a slow link.
   */
  frameTimeoutMs: number

  // --- Membership ---
  /**
   * Connections the node keeps; it dials known members until it has this
   * many. A random graph of degree d ≥ 3 has diameter about log N / log(d − 1).
   * With flooding, time to 100 % is set by hops × CPU per hop more than by d
   * (simulated: 108–139 ms for d = 4..12 at 1,000 nodes); copies per node grow
   * as d − 1. 8 keeps the mesh connected under churn.
   */
  targetPeers: number
  /**
   * Above this many connected peers, the node sheds connections (those that
   * never exchanged anything useful first, then inbound ones at random), so a
   * bootstrap node that every newcomer dials keeps room for the next ones and
   * the mesh settles into a random graph rather than a star. Higher keeps
   * more redundant paths, at the cost of memory and keep-alive traffic.
   */
  highWaterPeers: number
  /** A connection younger than this is never shed: time for a newcomer's join round (members swapped, index reconciled). */
  pruneGraceMs: number
  /**
   * Every this often (jittered), a node at its target dials one known member
   * it is not connected to, as memberlist's push-pull with a random member:
   * the graph keeps mixing, and two halves of a healed partition find each
   * other within about this interval (the new connection starts a join round).
   * Costs one dial and one reconciliation per node per interval.
   */
  rotateIntervalMs: number
  /** Hard cap on open connections (inbound included), refused by libp2p above it: room for a burst of newcomers above highWaterPeers. */
  maxConnections: number
  /** How often the connection count is checked and topped up. */
  maintainIntervalMs: number
  /** Dials running at once. */
  maxParallelDials: number
  /** Time a dial (TCP, Noise, Yamux) may take. */
  dialTimeoutMs: number
  /** Redial backoff: doubles from the base per consecutive failure, up to the cap. */
  redialBaseMs: number
  redialMaxMs: number
  /** Members remembered at most; further strangers are ignored, so a peer cannot flood the table. */
  maxKnownMembers: number
  /** Members one peer may introduce in all; the rest of its gossip about members is ignored. */
  maxIntroducedPerPeer: number
  /** Members sampled into each push-pull summary, so the mesh does not stay a star around bootstrap nodes. */
  peersPerSummary: number
  /** How often the members seen are saved to peers.json. */
  savePeersIntervalMs: number

  // --- Local housekeeping ---
  /** How often expired files are looked for; a file outlives its expiry by at most this. */
  expirySweepMs: number
}

/** The default: a LAN or data-centre fleet. */
export const LAN_PROFILE: Readonly<Tuning> = Object.freeze({
  // 30 s as upstream: a missed push is repaired within a minute.
  pushPullIntervalMs: 30_000,
  maxParallelJoinRounds: 2,
  // With targetPeers 8, every node is reached in about log(N)/log(7) hops: 3 at 100 nodes, 5 at 10,000.
  pushFanout: 8,
  maxQueuedPushesPerPeer: 256,
  maxParallelFetches: 4,
  maxParallelCommits: 64,
  maxFetchesPerPeer: 1,
  maxQueuedFetchesPerPeer: 32,
  maxAlternateSources: 8,
  // 256 KiB/s: a 10 MiB file gets 40 s after the grace period, far below any honest link.
  minTransferBytesPerS: 256 * 1024,
  transferGraceMs: 10_000,
  frameTimeoutMs: 15_000,
  targetPeers: 8,
  // targetPeers × 2: as many inbound as outbound on average, plus slack.
  highWaterPeers: 16,
  pruneGraceMs: 10_000,
  rotateIntervalMs: 60_000,
  // targetPeers × 8 + 32: a burst of newcomers joining through us before shedding catches up.
  maxConnections: 96,
  maintainIntervalMs: 1000,
  maxParallelDials: 4,
  dialTimeoutMs: 5000,
  redialBaseMs: 500,
  redialMaxMs: 60_000,
  maxKnownMembers: 4096,
  maxIntroducedPerPeer: 64,
  peersPerSummary: 16,
  savePeersIntervalMs: 60_000,
  expirySweepMs: 1000
})

/**
 * Tests and benchmarks on one machine: short timeouts so hostile-peer tests do
 * not wait out LAN time-outs, and fast redials. Never for a real fleet: an
 * honest peer on a slow link would be cut off.
 */
export const LOCAL_PROFILE: Readonly<Tuning> = Object.freeze({
  ...LAN_PROFILE,
  pushPullIntervalMs: 5000,
  transferGraceMs: 1000,
  frameTimeoutMs: 2000,
  dialTimeoutMs: 2000,
  maintainIntervalMs: 250,
  redialBaseMs: 100,
  redialMaxMs: 2000,
  pruneGraceMs: 2000,
  rotateIntervalMs: 5000,
  savePeersIntervalMs: 5000,
  expirySweepMs: 250
})

export const PROFILES = { lan: LAN_PROFILE, local: LOCAL_PROFILE } as const
export type ProfileName = keyof typeof PROFILES
export const PROFILE_NAMES = Object.keys(PROFILES) as ProfileName[]

/** The relations between knobs; a table that breaks one is a bug, reported by name. */
export function tuningProblems (t: Tuning): string[] {
  const problems: string[] = []
  const need = (ok: boolean, what: string): void => { if (!ok) problems.push(what) }
  need(t.dialTimeoutMs <= t.frameTimeoutMs, 'dialTimeoutMs must not exceed frameTimeoutMs')
  need(t.redialBaseMs <= t.redialMaxMs, 'redialBaseMs must not exceed redialMaxMs')
  need(t.highWaterPeers >= t.targetPeers, 'highWaterPeers must be at least targetPeers, or the node sheds the connections it just made')
  need(t.maxConnections >= 2 * t.highWaterPeers, 'maxConnections must be at least twice highWaterPeers, or newcomers are refused before shedding makes room')
  need(t.pushFanout <= t.maxConnections, 'pushFanout above maxConnections can never be used')
  need(t.rotateIntervalMs > t.pruneGraceMs, 'rotateIntervalMs must exceed pruneGraceMs, or rotated connections are shed before they are used')
  need(t.maxFetchesPerPeer <= t.maxParallelFetches, 'maxFetchesPerPeer must not exceed maxParallelFetches')
  need(t.maintainIntervalMs < t.pushPullIntervalMs, 'maintainIntervalMs must be below pushPullIntervalMs, or rounds find no peer after a drop')
  for (const [k, v] of Object.entries(t)) need(Number.isFinite(v) && v > 0, `${k} must be a positive number`)
  return problems
}

/** Throws when the table breaks a relation: called once at start. */
export function assertTuning (t: Tuning): void {
  const problems = tuningProblems(t)
  if (problems.length > 0) throw new Error(`inconsistent tuning: ${problems.join('; ')}`)
}

/** The profile with the TOML overrides applied; maxConnections follows targetPeers unless the profile sets more. */
export function tuningFor (profile: ProfileName, overrides: Partial<Pick<Tuning, 'pushPullIntervalMs' | 'pushFanout' | 'targetPeers'>>): Tuning {
  const base = PROFILES[profile]
  const t: Tuning = { ...base, ...overrides }
  t.highWaterPeers = Math.max(base.highWaterPeers, t.targetPeers * 2)
  t.maxConnections = Math.max(base.maxConnections, t.targetPeers * 8 + 32)
  t.maintainIntervalMs = Math.min(t.maintainIntervalMs, Math.floor(t.pushPullIntervalMs / 2))
  return t
}
