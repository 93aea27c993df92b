import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'

/*
 * Yamux window updates at half a window, as go-yamux and rust-yamux send
 * them. @chainsafe/libp2p-yamux 8 answers every data frame with a window
 * update frame: each push a daemon receives cost a second Noise-encrypted
 * frame and socket write back to its sender, about a twelfth of a daemon's
 * CPU per publish in a profile of a 10-node mesh. Here an established stream
 * sends one only once less than half of its receive window is left. The
 * sender can never stall: it stops only at an empty window, and every data
 * frame that leaves less than half of it gets an update. Frames that carry a
 * flag (SYN, ACK) and the update on resuming a paused stream go out as
 * before, and the window still doubles when an update falls due within four
 * round trips of the last.
 */

interface WindowState {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

/** Patches YamuxStream (one class for the whole process); idempotent. */
export function sendWindowUpdatesAtHalf (): void {
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: (this: WindowState) => void, halfWindowUpdates?: true }
  if (proto.halfWindowUpdates === true) return
  const sendWindowUpdate = proto.sendWindowUpdate
  proto.sendWindowUpdate = function (this: WindowState): void {
    if (this.state === StreamState.Established && this.recvWindowCapacity * 2 >= this.recvWindow) return
    sendWindowUpdate.call(this)
  }
  proto.halfWindowUpdates = true
}
