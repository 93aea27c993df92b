import type { Tuning } from '../config/tuning.js'
import type { Store } from '../store/store.js'
import type { Clock } from '../util/clock.js'
import type { Log } from '../util/log.js'
import { createAcceptor } from './acceptor.js'
import type { Acceptor, PolicyConfig } from './acceptor-api.js'
import { createAntiEntropy, type AntiEntropy } from './anti-entropy.js'
import { createFetchService, type FetchService } from './fetch.js'
import { createIndexView, type IndexView } from './index-view.js'
import { createPushService, type PushService } from './push.js'
import { createRelays } from './relay.js'
import { createRevocationService } from './revocations.js'
import type { PeerExchange, Transport } from './transport.js'

/*
 * The sync core: the five services wired together over a Transport. The
 * daemon runs it over libp2p; tests and the simulator run the same code over
 * an in-memory network with a virtual clock.
 */

export interface SyncComponents {
  store: Store
  transport: Transport
  peers: PeerExchange
  clock: Clock
  random: () => number
  log: Log
}

export interface Sync {
  acceptor: Acceptor
  index: IndexView
  fetch: FetchService
  push: PushService
  antiEntropy: AntiEntropy
  /** Starts the services, the acceptor and the revocation list first, so nothing is received before it can be judged. */
  start: () => Promise<void>
  /** Stops in reverse: no new rounds or pushes, push streams closed, commits under way drained. */
  stop: () => Promise<void>
}

export function createSync (components: SyncComponents, init: { policy: PolicyConfig, tuning: Tuning }): Sync {
  const { store, transport, peers, clock, random, log } = components
  const { tuning } = init
  const relays = createRelays()
  const acceptor = createAcceptor({ store, relays, clock, log }, init)
  const revocations = createRevocationService({ acceptor, store, log })
  const index = createIndexView({ store, acceptor })
  const fetch = createFetchService({ transport, acceptor, store, relays, clock, log }, tuning)
  const push = createPushService({ transport, acceptor, fetch, random, clock, log }, tuning)
  const antiEntropy = createAntiEntropy({ transport, acceptor, index, fetch, peers, clock, random, log }, tuning)
  return {
    acceptor,
    index,
    fetch,
    push,
    antiEntropy,
    async start () {
      acceptor.start()
      await revocations.start()
      await fetch.start()
      await push.start()
      await antiEntropy.start()
    },
    async stop () {
      antiEntropy.stop()
      await push.stop()
      fetch.stop()
      await acceptor.stop()
    }
  }
}
