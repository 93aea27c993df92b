import { DmError } from '../errors.js'

/**
 * A bounds-checked cursor over untrusted bytes. Every read checks the remaining
 * length first, and every length-prefixed read checks a caller-given maximum
 * before it allocates, so a hostile length prefix costs nothing.
 */
export class Reader {
  private offset = 0
  constructor (private readonly buf: Uint8Array, private readonly what = 'message') {}

  get remaining (): number { return this.buf.length - this.offset }

  private take (n: number): Uint8Array {
    if (n > this.remaining) throw new DmError('ERR_DECODE', `${this.what} is truncated`)
    const out = this.buf.subarray(this.offset, this.offset + n)
    this.offset += n
    return out
  }

  u8 (): number { return this.take(1)[0] }
  u16 (): number { const b = this.take(2); return (b[0] << 8) | b[1] }
  u32 (): number { const b = this.take(4); return ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3] }

  /** A u64 that must fit in a JS number without loss. */
  u64 (): number {
    const hi = this.u32()
    const lo = this.u32()
    if (hi > 0x1fffff) throw new DmError('ERR_DECODE', `${this.what} has a 64-bit field beyond 2^53`)
    return hi * 0x100000000 + lo
  }

  /** An unsigned LEB128 varint up to 2^53 - 1, in its shortest encoding only (one value, one encoding). */
  uvarint (): number {
    let v = 0
    for (let i = 0, scale = 1; ; i++, scale *= 128) {
      const b = this.u8()
      v += (b & 0x7f) * scale
      // 2^53 - 1 takes 8 bytes; a longer run of continuation bytes is refused as soon as it goes past.
      if (v > Number.MAX_SAFE_INTEGER || i >= 8) throw new DmError('ERR_DECODE', `${this.what} has a varint beyond 2^53`)
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw new DmError('ERR_DECODE', `${this.what} has a varint that is not in its shortest form`)
        return v
      }
    }
  }

  bytes (n: number): Uint8Array { return this.take(n) }

  /** u16 length then that many bytes, at most `max`. */
  bytes16 (max: number): Uint8Array {
    const n = this.u16()
    if (n > max) throw new DmError('ERR_DECODE', `${this.what} has a field of ${n} bytes (at most ${max})`)
    return this.take(n)
  }

  /** u32 length then that many bytes, at most `max`. */
  bytes32 (max: number): Uint8Array {
    const n = this.u32()
    if (n > max) throw new DmError('ERR_DECODE', `${this.what} has a field of ${n} bytes (at most ${max})`)
    return this.take(n)
  }

  /** A u16-prefixed UTF-8 string that must decode exactly (no replacement characters). */
  string16 (max: number): string {
    const raw = this.bytes16(max)
    const s = Buffer.from(raw).toString('utf8')
    if (!Buffer.from(s, 'utf8').equals(raw)) throw new DmError('ERR_DECODE', `${this.what} has a string that is not UTF-8`)
    return s
  }

  /** A count that must not exceed `max`, for the length of a list. */
  count16 (max: number): number {
    const n = this.u16()
    if (n > max) throw new DmError('ERR_DECODE', `${this.what} lists ${n} items (at most ${max})`)
    return n
  }

  end (): void {
    if (this.remaining !== 0) throw new DmError('ERR_DECODE', `${this.what} has ${this.remaining} trailing bytes`)
  }
}

/** Builds a byte string from big-endian fields. */
export class Writer {
  private readonly parts: Uint8Array[] = []
  private length = 0

  private push (b: Uint8Array): this { this.parts.push(b); this.length += b.length; return this }

  u8 (v: number): this { checkUint(v, 0xff); return this.push(Uint8Array.of(v)) }
  u16 (v: number): this { checkUint(v, 0xffff); return this.push(Uint8Array.of(v >>> 8, v & 0xff)) }
  u32 (v: number): this { checkUint(v, 0xffffffff); const b = Buffer.alloc(4); b.writeUInt32BE(v); return this.push(b) }
  u64 (v: number): this {
    checkUint(v, Number.MAX_SAFE_INTEGER)
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(BigInt(v))
    return this.push(b)
  }

  uvarint (v: number): this {
    checkUint(v, Number.MAX_SAFE_INTEGER)
    const out: number[] = []
    for (; v >= 0x80; v = Math.floor(v / 128)) out.push((v % 128) | 0x80)
    out.push(v)
    return this.push(Uint8Array.from(out))
  }

  bytes (b: Uint8Array): this { return this.push(b) }
  bytes16 (b: Uint8Array): this { return this.u16(b.length).push(b) }
  bytes32 (b: Uint8Array): this { return this.u32(b.length).push(b) }
  string16 (s: string): this { return this.bytes16(Buffer.from(s, 'utf8')) }

  finish (): Buffer { return Buffer.concat(this.parts, this.length) }
}

function checkUint (v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`value ${v} out of range 0..${max}`)
}
