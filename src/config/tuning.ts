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
   * With interval T (docs/SIMULATION.md, "Recommended defaults"):
   *   wait of a node the push missed ≈ T / 2 (its own round, or one a peer starts with it)
   *   rounds per node               ≈ 2 per T (its own, and on average one a peer starts),
   *                                   64 bytes each when in sync, whatever the index size;
   *                                   fewer once nothing changes (pushPullMaxIntervalMs)
   * Joins reconcile at once on each new connection, whatever T, and with
   * pushFanout ≥ targetPeers − 1 the push misses no node of a connected mesh,
   * so a shorter T only pays off while pushes are being lost.
   */
  pushPullIntervalMs: number
  /**
   * Each of a node's rounds that finds nothing to fetch doubles its interval,
   * up to this; a version accepted, or a round that finds one to fetch, brings
   * it back to pushPullIntervalMs. After a publish, the nodes that got the push
   * run rounds at the short interval, so a node the push missed waits about as
   * long as before; an idle fleet runs a quarter of the rounds. A node that
   * missed versions while nothing was published anywhere (rare: its own
   * disconnect starts a join round when it is back) waits up to this.
   * Follows pushPullIntervalMs when that is set in the TOML.
   */
  pushPullMaxIntervalMs: number
  /** Push-pull rounds started by new connections that may run at once; more catches up a rejoining node from several peers, at more CPU during a restart storm. */
  maxParallelJoinRounds: number

  // --- Eager push (the fast path) ---
  /**
   * Peers each newly accepted version is pushed to. With fanout f, degree d and
   * N nodes (docs/SIMULATION.md, "Recommended defaults"):
   *   nodes the flood misses ≈ N · (1 − f/(d − 1))^d per publish, each waiting
   *                            ≈ pushPullIntervalMs / 2; none once f ≥ d − 1
   *   copies per node        ≈ min(f, d − 1) in a flood, one of them news (fewer with two
   *                            waves, pushEagerFanout, where hops are fast); CPU ≈ that × 3.5 ms per
   *                            publish on open streams, plus 7.4 ms once per push stream
   *                            per connection (calibrated)
   *   hops                   ≈ log N / log(min(f, d) − 1)
   * Simulated at 1,000 nodes, d ≥ 8: f = 4 left 3–5 nodes to anti-entropy in every
   * publish, f = 6 one node in three publishes, f = 8 none. Keep it ≥ targetPeers.
   */
  pushFanout: number
  /**
   * Of those, the peers a version received from a peer goes to at once; the
   * rest get it pushLaterMs later unless they sent a copy meanwhile (they hold
   * it). A flood sends each version over every link both ways; with e of d
   * peers at once, a link carries it about 1 + (e/d)² times instead of 2, so
   * each node receives and sends about that many copies per link. Lower sends
   * fewer copies; the nodes the first waves miss wait pushLaterMs more per hop.
   */
  pushEagerFanout: number
  /**
   * The least wait before the second wave; it waits about two hops' time as
   * measured (the time from a version's first copy to its second), up to 20
   * times this. Longer catches more copies; the nodes only the second wave
   * reaches get the version that much later.
   */
  pushLaterMs: number
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
   * many. With d = targetPeers and N nodes (docs/SIMULATION.md, "Recommended defaults"):
   *   diameter of the random graph ≈ log N / log(d − 1)   (d ≥ 3)
   *   copies per node per publish  ≈ d − 1 when pushFanout ≥ d − 1
   *   a node is cut off only if its d peers leave at once
   * Time to 100 % is set by hops × CPU per hop more than by d (simulated:
   * 114–132 ms for a first publish, 37–52 ms for a third, d = 4..12 at 1,000 nodes).
   * 8 is for resilience under churn; 6 would send 15 % fewer messages at about the
   * same latency.
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
   * it is not connected to and then drops an old connection (rotation), as
   * memberlist's push-pull with a random member: the graph keeps mixing, and
   * two halves of a healed partition find each other within about
   * 2 × this / N (the new connection starts a join round). Costs one dial and
   * one reconciliation per node per interval.
   */
  rotateIntervalMs: number
  /**
   * Each rotation that finds the mesh unchanged doubles the interval up to
   * this; a new member met on a connection (not one only heard of in a
   * summary), or a connection lost below targetPeers, resets it.
   * Higher makes a settled fleet cheaper at idle; a partition that loses no
   * connection (none crossed it) then heals within about 2 × this / N.
   */
  rotateMaxIntervalMs: number
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

  // --- Node reports (private mesh only; docs/PROTOCOL.md section 14) ---
  /**
   * Least time between two reports of this node: a change (a version held or
   * refused, the peer count moving) is reported at once unless a report went
   * out less than this ago, then at the end of it. Each report is one small
   * version spread to every node, so this bounds what a busy or attacked node
   * costs the fleet; `dm wait` sees a node's progress at most this late.
   */
  nodeReportMinIntervalMs: number
  /**
   * A report is re-published after this long with no change, and expires
   * after three of these: a node silent for two is listed as not heard from
   * (a freeze or partition suspect). Lower notices silence sooner, at one
   * report per node per interval across the fleet.
   */
  nodeReportRefreshMs: number
}

/** The default: a LAN or data-centre fleet. */
export const LAN_PROFILE: Readonly<Tuning> = Object.freeze({
  // 30 s as upstream: a missed push is repaired within a minute.
  pushPullIntervalMs: 30_000,
  pushPullMaxIntervalMs: 120_000,
  maxParallelJoinRounds: 2,
  // With targetPeers 8, every node is reached in about log(N)/log(7) hops: 3 at 100 nodes, 5 at 10,000.
  pushFanout: 8,
  // Three of 8 at once: a link carries a version about 1.14 times, against 2 in a flood.
  pushEagerFanout: 3,
  // Several hops' time on a LAN (a hop is a few ms); on a busy machine the measured hop time sets it.
  pushLaterMs: 20,
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
  // 8 minutes: with 100 nodes, still a rotation somewhere every 5 s.
  rotateMaxIntervalMs: 480_000,
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
  expirySweepMs: 1000,
  // A deploy's progress reaches `dm wait` within about 10 s; 100 nodes refreshing every 10 minutes is one small report every 6 s.
  nodeReportMinIntervalMs: 10_000,
  nodeReportRefreshMs: 600_000
})

/**
 * Tests and benchmarks on one machine: short timeouts so hostile-peer tests do
 * not wait out LAN time-outs, and fast redials. Never for a real fleet: an
 * honest peer on a slow link would be cut off.
 */
export const LOCAL_PROFILE: Readonly<Tuning> = Object.freeze({
  ...LAN_PROFILE,
  pushPullIntervalMs: 5000,
  pushPullMaxIntervalMs: 20_000,
  transferGraceMs: 1000,
  frameTimeoutMs: 2000,
  dialTimeoutMs: 2000,
  maintainIntervalMs: 250,
  redialBaseMs: 100,
  redialMaxMs: 2000,
  pruneGraceMs: 2000,
  rotateIntervalMs: 5000,
  rotateMaxIntervalMs: 40_000,
  savePeersIntervalMs: 5000,
  expirySweepMs: 250,
  nodeReportMinIntervalMs: 250,
  // Changes are reported within 250 ms; an unchanged report is re-sent once a minute, not every
  // few seconds: refreshes were most of an idle private mesh's CPU (the unit tests run them on a fake clock).
  nodeReportRefreshMs: 60_000
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
  need(t.pushEagerFanout <= t.pushFanout, 'pushEagerFanout must not exceed pushFanout')
  need(t.rotateIntervalMs > t.pruneGraceMs, 'rotateIntervalMs must exceed pruneGraceMs, or rotated connections are shed before they are used')
  need(t.pushPullMaxIntervalMs >= t.pushPullIntervalMs, 'pushPullMaxIntervalMs must be at least pushPullIntervalMs')
  need(t.rotateMaxIntervalMs >= t.rotateIntervalMs, 'rotateMaxIntervalMs must be at least rotateIntervalMs')
  need(t.maxFetchesPerPeer <= t.maxParallelFetches, 'maxFetchesPerPeer must not exceed maxParallelFetches')
  need(t.maintainIntervalMs < t.pushPullIntervalMs, 'maintainIntervalMs must be below pushPullIntervalMs, or rounds find no peer after a drop')
  need(t.nodeReportMinIntervalMs < t.nodeReportRefreshMs, 'nodeReportMinIntervalMs must be below nodeReportRefreshMs, or reports cannot refresh in time')
  for (const [k, v] of Object.entries(t)) need(Number.isFinite(v) && v > 0, `${k} must be a positive number`)
  return problems
}

/** Throws when the table breaks a relation: called once at start. */
export function assertTuning (t: Tuning): void {
  const problems = tuningProblems(t)
  if (problems.length > 0) throw new Error(`inconsistent tuning: ${problems.join('; ')}`)
}

/** The profile with the TOML overrides applied; maxConnections follows targetPeers unless the profile sets more, pushPullMaxIntervalMs follows pushPullIntervalMs, pushEagerFanout stays within pushFanout. */
export function tuningFor (profile: ProfileName, overrides: Partial<Pick<Tuning, 'pushPullIntervalMs' | 'pushFanout' | 'targetPeers'>>): Tuning {
  const base = PROFILES[profile]
  const t: Tuning = { ...base, ...overrides }
  t.pushPullMaxIntervalMs = t.pushPullIntervalMs * base.pushPullMaxIntervalMs / base.pushPullIntervalMs
  t.pushEagerFanout = Math.min(t.pushEagerFanout, t.pushFanout)
  t.highWaterPeers = Math.max(base.highWaterPeers, t.targetPeers * 2)
  t.maxConnections = Math.max(base.maxConnections, t.targetPeers * 8 + 32)
  t.maintainIntervalMs = Math.min(t.maintainIntervalMs, Math.floor(t.pushPullIntervalMs / 2))
  return t
}
