import '../../src/polyfill.ts'
import { randomBytes } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import * as lp from 'it-length-prefixed'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { createMeshNode, type MeshNode } from '../../src/net/node.ts'
import { streamChannel } from '../../src/net/channel.ts'
import { createReconcileIndex, type ReconcileIndex } from '../../src/sync/fingerprint.ts'
import { createReconciler } from '../../src/sync/reconcile.ts'
import { sign } from '../../src/crypto/ed25519.ts'
import { Writer } from '../../src/format/binary.ts'
import {
  EMPTY_SHA256, VersionKind, networkIdFrom, sha256, signedBytes, type SignedVersion
} from '../../src/format/version.ts'
import {
  CHUNK_BYTES, MAX_FRAME_BYTES, MessageType, PROTOCOL_FETCH, PROTOCOL_PUSH, PROTOCOL_PUSH_PULL, decodeMessage, encodeMessage,
  type IndexEntry, type Message
} from '../../src/protocol/messages.ts'

/*
 * A peer that speaks the data-mesher protocols over a real libp2p node (same
 * TCP + Noise(prologue = network id) + yamux stack as the daemon), but lies.
 * It writes raw bytes or hand-made frames on streams it opens, and it can
 * serve fetch / push-pull with whatever answers a test scripts, so a daemon
 * fetching from it gets lies. Nothing here goes through the policy: every
 * envelope is built by hand, so it can carry names, sizes and signatures that
 * signVersion() would refuse to make.
 */

/** How a stream we opened ended, as seen from our side. */
export interface StreamOutcome {
  /** 'reset': the daemon aborted it; 'closed': the daemon closed its side gracefully; 'open': still open at the deadline. */
  how: 'reset' | 'closed' | 'open'
  /** Milliseconds from when watching started. */
  afterMs: number
  /** Bytes the daemon sent us before the end. */
  received: number
}

/** Resolves when the remote resets or closes its side of `stream`, or with 'open' after `timeoutMs`. */
export async function watchStream (stream: Stream, timeoutMs: number): Promise<StreamOutcome> {
  const started = Date.now()
  let received = 0
  return await new Promise(resolve => {
    let done = false
    const finish = (how: StreamOutcome['how']): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      stream.removeEventListener('close', onClose)
      stream.removeEventListener('remoteCloseWrite', onRemoteClose)
      stream.removeEventListener('message', onMessage)
      resolve({ how, afterMs: Date.now() - started, received })
    }
    const onClose = (evt: Event): void => {
      const err = (evt as Event & { error?: Error }).error
      finish(err !== undefined || stream.status === 'reset' || stream.status === 'aborted' ? 'reset' : 'closed')
    }
    const onRemoteClose = (): void => finish('closed')
    const onMessage = (evt: Event): void => { received += (evt as Event & { data: Uint8Array }).data.byteLength }
    const timer = setTimeout(() => finish('open'), timeoutMs)
    if (stream.status === 'reset' || stream.status === 'aborted') { finish('reset'); return }
    if (stream.status === 'closed' || stream.remoteWriteStatus === 'closed') { finish('closed'); return }
    stream.addEventListener('close', onClose)
    stream.addEventListener('remoteCloseWrite', onRemoteClose)
    stream.addEventListener('message', onMessage)
  })
}

/** One length-prefixed frame, as bytes. */
export function frame (body: Uint8Array): Uint8Array {
  return lp.encode.single(body).subarray()
}

/** An unsigned LEB128 varint, for hand-made length prefixes of any size (5e9 included). */
export function varint (n: number): Uint8Array {
  const out: number[] = []
  let v = BigInt(n)
  do {
    let b = Number(v & 0x7fn)
    v >>= 7n
    if (v > 0n) b |= 0x80
    out.push(b)
  } while (v > 0n)
  return Uint8Array.from(out)
}

export interface ForgeOptions {
  name: string
  /** The content the header describes (size and sha256 are derived unless overridden). */
  content?: Uint8Array
  kind?: VersionKind
  network?: string
  networkId?: Uint8Array
  timestampMs?: number
  expiresAtMs?: number
  size?: number
  sha256?: Uint8Array
  /** The key that signs; its public key is the signer unless `signer` says otherwise. */
  key: { privateKey: KeyObject, publicKey: Uint8Array }
  signer?: Uint8Array
  /** Flip one byte of the signature after signing. */
  corruptSignature?: boolean
}

/**
 * A version built by hand: any name (invalid ones included), any size and hash,
 * signed with any key. signedBytes() does not check the name, so the signature
 * is genuine over whatever bytes are described.
 */
export function forge (o: ForgeOptions): SignedVersion {
  const content = o.content ?? new Uint8Array(0)
  const kind = o.kind ?? (o.content === undefined ? VersionKind.Tombstone : VersionKind.File)
  const header = {
    kind,
    networkId: o.networkId ?? networkIdFrom(o.network ?? 'test-net'),
    name: o.name,
    timestampMs: o.timestampMs ?? Date.now(),
    expiresAtMs: o.expiresAtMs ?? 0,
    size: o.size ?? content.length,
    sha256: o.sha256 ?? (o.content === undefined ? EMPTY_SHA256 : sha256(content))
  }
  const signature = sign(o.key.privateKey, signedBytes(header))
  if (o.corruptSignature === true) signature[17] ^= 0x01
  return { ...header, signer: o.signer ?? o.key.publicKey, signature, attachments: new Uint8Array(0) }
}

/** A Push message body; `content` may be anything (longer or shorter than signed). */
export function pushBody (v: SignedVersion, content: Uint8Array | undefined): Uint8Array {
  return encodeMessage({ type: MessageType.Push, version: v, content })
}

/** A Push body around raw envelope bytes (which may be corrupt), with or without content. */
export function rawPushBody (envelope: Uint8Array, content?: Uint8Array): Uint8Array {
  const w = new Writer().u8(MessageType.Push).bytes(envelope)
  if (content === undefined) w.u8(0)
  else w.u8(1).bytes32(content)
  return w.finish()
}

/** A scripted answer to one fetch stream. Without one, we serve `offers` honestly and NotFound for the rest. */
export type FetchScript = (ctx: FetchContext) => Promise<void>

export interface FetchContext {
  stream: Stream
  peer: string
  wants: Array<{ name: string, id: Uint8Array }>
  /** Sends one message as a frame, waiting for drain. */
  send: (m: Message | Uint8Array) => Promise<void>
  /** Sends the version then its content in chunks of `chunkBytes`, stopping after `chunks` chunks when given. */
  sendVersion: (v: SignedVersion, content: Uint8Array, opts?: { chunkBytes?: number, chunks?: number }) => Promise<void>
}

/** A scripted answer to a push-pull stream the daemon opens to us. */
export type PushPullScript = (stream: Stream, peer: string) => Promise<void>

export interface HostileOptions {
  /** `[network] id` for the Noise prologue; a node of another network cannot even connect. */
  network?: string
}

export class HostilePeer {
  /** Versions and content we offer when asked; the default fetch script serves these honestly. */
  readonly offers = new Map<string, { version: SignedVersion, content: Uint8Array }>()
  /** Number of fetch streams the daemon opened to us. */
  fetchesServed = 0
  /** Pushes the daemon sent us (we never answer them). */
  pushesReceived = 0
  private fetchScript: FetchScript | undefined
  private pushPullScript: PushPullScript | undefined
  private readonly open = new Set<Stream>()

  private constructor (readonly node: MeshNode) {}

  static async start (o: HostileOptions = {}): Promise<HostilePeer> {
    const privateKey = await generateKeyPair('Ed25519')
    const node = await createMeshNode({
      identity: { privateKey, peerId: peerIdFromPrivateKey(privateKey) },
      // Not listening: the daemon reaches us only over the connection we open.
      listen: [],
      networkId: networkIdFrom(o.network ?? 'test-net'),
      mdns: false,
      maxConnections: 64
    })
    await node.start()
    const peer = new HostilePeer(node)
    await node.handle(PROTOCOL_FETCH, (stream, connection) => { void peer.serveFetch(stream, connection.remotePeer.toString()) }, { maxInboundStreams: 1024 })
    await node.handle(PROTOCOL_PUSH_PULL, (stream, connection) => { void peer.servePushPull(stream, connection.remotePeer.toString()) }, { maxInboundStreams: 1024 })
    await node.handle(PROTOCOL_PUSH, stream => { peer.pushesReceived++; stream.abort(new Error('not listening')) }, { maxInboundStreams: 1024 })
    return peer
  }

  get peerId (): string { return this.node.peerId.toString() }

  async connect (addr: string): Promise<void> {
    await this.node.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) })
  }

  /** Replaces how we answer fetches (undefined restores the default). */
  onFetch (script: FetchScript | undefined): void { this.fetchScript = script }
  /** Replaces how we answer push-pull rounds the daemon starts (undefined: reset them). */
  onPushPull (script: PushPullScript | undefined): void { this.pushPullScript = script }

  /** Opens a stream to `peer` for `protocol`; our own outbound stream limits are lifted. */
  async openStream (peer: string, protocol: string): Promise<Stream> {
    const stream = await this.node.dialProtocol(peerIdFromString(peer), protocol, {
      signal: AbortSignal.timeout(10_000),
      maxOutboundStreams: 100_000
    })
    this.track(stream)
    return stream
  }

  /** Writes bytes, waiting for drain when the muxer asks. */
  async write (stream: Stream, bytes: Uint8Array): Promise<void> {
    stream.send(bytes)
    // send() queues locally; wait until our buffer is small again so the bytes really left (polling:
    // 'drain' is not dispatched when yamux's send window reopens).
    const deadline = Date.now() + 30_000
    while (stream.writeBufferLength > 256 * 1024 && stream.status === 'open') {
      if (Date.now() > deadline) throw new Error('the daemon stopped reading')
      await new Promise(resolve => setTimeout(resolve, 2))
    }
  }

  /**
   * Opens a stream, writes each piece of raw bytes in order, closes our side
   * (unless keepOpen), and reports how the daemon ended the stream.
   */
  async sendRaw (peer: string, protocol: string, pieces: Uint8Array[], o: { keepOpen?: boolean, timeoutMs?: number } = {}): Promise<StreamOutcome> {
    const stream = await this.openStream(peer, protocol)
    const outcome = watchStream(stream, o.timeoutMs ?? 10_000)
    try {
      for (const p of pieces) await this.write(stream, p)
      if (o.keepOpen !== true) await stream.close({ signal: AbortSignal.timeout(5000) })
    } catch {
      // The daemon may reset the stream while we are still writing: that is an outcome, not a test failure.
    }
    return await outcome
  }

  /** Opens a push stream and sends one Push frame. */
  async push (peer: string, body: Uint8Array, o: { timeoutMs?: number } = {}): Promise<StreamOutcome> {
    return await this.sendRaw(peer, PROTOCOL_PUSH, [frame(body)], o)
  }

  /**
   * Plays the initiator of a push-pull round with a chosen index (a join
   * round: a Summary each way first, carrying `peers`). Returns what the
   * daemon holds that this index lacks.
   */
  async pushPull (peer: string, index: IndexEntry[] | ReconcileIndex, o: { peers?: Array<{ id: string, addrs: string[] }> } = {}): Promise<IndexEntry[]> {
    const stream = await this.openStream(peer, PROTOCOL_PUSH_PULL)
    const ch = streamChannel(stream, peer, { maxFrameBytes: MAX_FRAME_BYTES, frameTimeoutMs: 15_000 })
    try {
      await ch.send(encodeMessage({ type: MessageType.Summary, count: 1, digest: randomBytes(32), peers: o.peers ?? [] }))
      const summary = decodeMessage(await mustRead(ch))
      if (summary.type !== MessageType.Summary) throw new Error(`expected a summary, got ${summary.type}`)
      const r = createReconciler({ index: Array.isArray(index) ? createReconcileIndex(index) : index, role: 'initiator' })
      await ch.send(r.initiate())
      for (;;) {
        const step = r.receive(await mustRead(ch))
        if (step.reply !== undefined) await ch.send(step.reply)
        if (step.done) break
      }
      await ch.close()
      return r.wants()
    } catch (err) {
      ch.abort(err as Error)
      throw err
    }
  }

  private track (stream: Stream): void {
    this.open.add(stream)
    stream.addEventListener('close', () => this.open.delete(stream))
  }

  private async serveFetch (stream: Stream, peer: string): Promise<void> {
    this.fetchesServed++
    this.track(stream)
    const ch = streamChannel(stream, peer, { maxFrameBytes: MAX_FRAME_BYTES, frameTimeoutMs: 15_000 })
    try {
      const m = decodeMessage(await mustRead(ch))
      if (m.type !== MessageType.Want) throw new Error('expected a want')
      const send = async (x: Message | Uint8Array): Promise<void> => { await this.write(stream, frame(x instanceof Uint8Array ? x : encodeMessage(x))) }
      const ctx: FetchContext = {
        stream,
        peer,
        wants: m.entries,
        send,
        sendVersion: async (v, content, o = {}) => {
          await send({ type: MessageType.Version, version: v })
          const step = o.chunkBytes ?? CHUNK_BYTES
          let sent = 0
          for (let off = 0; off < content.length; off += step) {
            if (o.chunks !== undefined && sent >= o.chunks) return
            await send({ type: MessageType.Chunk, data: content.subarray(off, off + step) })
            sent++
          }
        }
      }
      if (this.fetchScript !== undefined) {
        await this.fetchScript(ctx)
        return
      }
      for (const w of m.entries) {
        const offer = this.offers.get(w.name)
        if (offer === undefined) await send({ type: MessageType.NotFound, name: w.name })
        else await ctx.sendVersion(offer.version, offer.content)
      }
      await stream.close({ signal: AbortSignal.timeout(5000) })
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  private async servePushPull (stream: Stream, peer: string): Promise<void> {
    this.track(stream)
    if (this.pushPullScript === undefined) { stream.abort(new Error('no push-pull today')); return }
    try {
      await this.pushPullScript(stream, peer)
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  /** Resets every stream we still hold open. */
  resetAll (): void {
    for (const s of this.open) s.abort(new Error('hostile peer gives up'))
    this.open.clear()
  }

  async stop (): Promise<void> {
    this.resetAll()
    await this.node.stop()
  }
}

async function mustRead (ch: ReturnType<typeof streamChannel>): Promise<Uint8Array> {
  const f = await ch.read()
  if (f === undefined) throw new Error('stream ended early')
  return f
}
