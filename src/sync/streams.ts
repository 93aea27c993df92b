import { DmError, describeError } from '../errors.js'
import { decodeMessage, type Message } from '../protocol/messages.js'
import type { Log } from '../util/log.js'
import type { Channel, ChannelHandler } from './transport.js'

/** Reads one frame and decodes it; end-of-stream is an error where a message is required. */
export async function readMessage (ch: Channel): Promise<Message> {
  const frame = await ch.read()
  if (frame === undefined) throw new DmError('ERR_DECODE', 'stream ended early')
  return decodeMessage(frame)
}

/**
 * A peer breaking the protocol is news (warn, with its code); a slow or busy
 * peer, or an upstream that failed while we relayed it, is worth a line, but not an accusation; a connection dropping
 * mid-stream (an error without a code) is not news; our own disk failing
 * while a transfer is written is an error.
 */
export function streamFailed (log: Log, peer: string, protocol: string, err: unknown): void {
  const code = err instanceof DmError ? err.code : undefined
  const fields = { peer, protocol, code, err: describeError(err) }
  if (code === 'ERR_STORE_IO') log.error(fields, 'cannot store version')
  else if (code === undefined) log.debug(fields, 'stream failed')
  else if (code === 'ERR_TIMEOUT' || code === 'ERR_BUSY' || code === 'ERR_UPSTREAM_FAILED') log.info(fields, 'stream failed')
  else log.warn(fields, 'stream failed')
}

/** Wraps a handler so a misbehaving peer costs it its stream, never the daemon. */
export function guarded (log: Log, protocol: string, handler: ChannelHandler): ChannelHandler {
  return async (ch: Channel): Promise<void> => {
    try {
      await handler(ch)
    } catch (err) {
      ch.abort(err as Error)
      streamFailed(log, ch.peer, protocol, err)
    }
  }
}
