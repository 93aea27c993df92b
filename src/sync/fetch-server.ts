import { VersionKind, type SignedVersion } from '../format/version.js'
import { CHUNK_BYTES, MAX_INLINE_BYTES, MessageType, VERSIONS_BATCH_BYTES, encodeMessage, expectType } from '../protocol/messages.js'
import type { Store } from '../store/store.js'
import type { Acceptor } from './acceptor-api.js'
import type { RelayedContent, Relays } from './relay.js'
import { readMessage } from './streams.js'
import type { Channel } from './transport.js'

/*
 * The server side of fetch: answers a peer's Want from the store or, for a
 * version still being received here, from its staged file as it lands
 * (relay.ts). Serving holds a chunk at a time, never a whole file.
 */

const EMPTY = new Uint8Array(0)

export interface FetchServerComponents {
  acceptor: Pick<Acceptor, 'held'>
  store: Pick<Store, 'readContent' | 'openContent'>
  /** Versions being received here, served onward before their commit. */
  relays: Pick<Relays, 'reader'>
}

/** The handler of one fetch stream. */
export function createFetchServer ({ acceptor, store, relays }: FetchServerComponents): (ch: Channel) => Promise<void> {
  async function * noContent (): AsyncIterable<Uint8Array> {}

  /**
   * Answers a Want in order: versions of at most MAX_INLINE_BYTES together
   * with their content, several to a Versions frame; larger ones as a Version
   * then Chunks, read a chunk at a time as they are sent (serving 10 MiB holds
   * one chunk, not the file).
   */
  async function serve (ch: Channel): Promise<void> {
    const want = expectType(await readMessage(ch), MessageType.Want)
    let answers: Array<{ version: SignedVersion, content: Uint8Array }> = []
    let bytes = 0
    const flush = async (): Promise<void> => {
      if (answers.length > 0) await ch.send(encodeMessage({ type: MessageType.Versions, answers }))
      answers = []
      bytes = 0
    }
    for (const w of want.entries) {
      const held = acceptor.held(w.name)
      const relayed = relays.reader(w.id, CHUNK_BYTES, held)
      if (relayed !== undefined) {
        await flush()
        await serveRelayed(ch, relayed)
        continue
      }
      if (held !== undefined && held.version.size <= MAX_INLINE_BYTES) {
        const content = held.version.kind === VersionKind.Tombstone ? EMPTY : await store.readContent(w.name)
        if (content !== undefined) {
          const size = held.envelope.length + 4 + content.length
          if (bytes + size > VERSIONS_BATCH_BYTES) await flush()
          answers.push({ version: held.version, content })
          bytes += size
          continue
        }
      }
      await flush()
      const chunks = held === undefined ? undefined : held.version.kind === VersionKind.Tombstone ? noContent() : await store.openContent(w.name, CHUNK_BYTES)
      if (held === undefined || chunks === undefined) {
        await ch.send(encodeMessage({ type: MessageType.NotFound, name: w.name }))
        continue
      }
      await ch.send(encodeMessage({ type: MessageType.Version, version: held.version }))
      for await (const data of chunks) await ch.send(encodeMessage({ type: MessageType.Chunk, data }))
    }
    await flush()
    await ch.close()
  }

  /**
   * A version asked for while it is being received here, not yet committed:
   * its header, then its content as it lands. The asker checks size and hash
   * as always; if our upstream fails, this stream fails with ERR_UPSTREAM_FAILED.
   */
  async function serveRelayed (ch: Channel, relayed: RelayedContent): Promise<void> {
    try {
      await ch.send(encodeMessage({ type: MessageType.Version, version: relayed.version }))
      for await (const data of relayed.chunks) await ch.send(encodeMessage({ type: MessageType.Chunk, data }))
    } finally {
      relayed.release()
    }
  }

  return serve
}
