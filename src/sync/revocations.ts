import { describeError } from '../errors.js'
import { VersionKind } from '../format/version.js'
import { signerRevoked } from '../policy/accept.js'
import { REVOCATIONS_NAME, parseRevocations, type RevocationList } from '../policy/revocation.js'
import type { Store } from '../store/store.js'
import type { Log } from '../util/log.js'
import type { Acceptor } from './acceptor-api.js'

/*
 * Revocations: keeps the acceptor's fleet-wide revocation list in step with
 * the held version of REVOCATIONS_NAME (docs/PROTOCOL.md section 13). When a
 * list comes into force, every held file its signers signed fails closed: it
 * is withdrawn at once, and any valid version may replace it.
 */

export interface RevocationService {
  /** Puts the list held from an earlier run in force, then follows new ones. */
  start: () => Promise<void>
}

export function createRevocationService (components: { acceptor: Acceptor, store: Store, log: Log }): RevocationService {
  const { acceptor, store, log } = components

  async function apply (content: Uint8Array): Promise<void> {
    let list: RevocationList
    try {
      list = parseRevocations(content)
    } catch (err) {
      log.error({ name: REVOCATIONS_NAME, err: describeError(err) }, 'revocation list cannot be read; the previous one stays in force')
      return
    }
    acceptor.setRevocations(list)
    for (const e of [...store.entries()]) {
      const why = signerRevoked({ revocations: list }, e.name, e.version.signer)
      if (why === undefined || !e.present) continue
      await store.withdraw(e.name)
      log.warn({ name: e.name, signer: Buffer.from(e.version.signer).toString('base64'), reason: why }, 'signer revoked; file withdrawn')
    }
    log.info({ signers: list.signers.length, nodes: list.nodes.length }, 'revocation list in force')
  }

  /** The held list's content; a tombstone of the list lifts every revocation. */
  async function held (): Promise<Uint8Array | undefined> {
    const entry = store.get(REVOCATIONS_NAME)
    if (entry === undefined) return undefined
    return entry.version.kind === VersionKind.Tombstone ? Buffer.from('{}') : await store.readContent(REVOCATIONS_NAME)
  }

  return {
    async start () {
      const content = await held()
      if (content !== undefined) await apply(content)
      acceptor.events.on('accepted', ({ entry }) => {
        if (entry.name !== REVOCATIONS_NAME) return
        void held().then(async c => { if (c !== undefined) await apply(c) })
          .catch(err => log.error({ err: describeError(err) }, 'cannot apply the revocation list'))
      })
    }
  }
}
