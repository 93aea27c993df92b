import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { startApiServer, type ApiHandlers } from '../../src/api/server.js'
import { apiRequest } from '../../src/api/client.js'
import { decodePublishHead } from '../../src/api/wire.js'
import { DmError } from '../../src/errors.js'
import { assertValidName } from '../../src/format/names.js'
import { decodeEnvelope, encodeEnvelope, networkIdFrom, newVersion } from '../../src/format/version.js'
import { decodeMessage, encodeMessage, MessageType } from '../../src/protocol/messages.js'
import { fleetView } from '../../src/api/fleet-view.js'
import { dmError, tempDir, testKey } from './helpers.js'

/*
 * docs/PROTOCOL.md section 1.1: which code a bad name gets. Bytes that are
 * not a string at all (over the field's length, not UTF-8) are ERR_DECODE;
 * a string that breaks the name rules, the empty string included, is
 * ERR_NAME_INVALID, on the wire and in the API alike.
 */

const key = testKey(50)
const good = newVersion({ name: 'ab', networkId: networkIdFrom('names'), privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from('x'), timestampMs: 1 })
/** The name starts after tag (22) · kind (1) · network id (32) · u16 length. */
const NAME_AT = 22 + 1 + 32

/** The envelope of `good` with its name field replaced by raw bytes (the signature no longer matters: decoding comes first). */
function envelopeNamed (raw: Buffer): Buffer {
  const e = encodeEnvelope(good)
  const length = Buffer.alloc(2)
  length.writeUInt16BE(raw.length)
  return Buffer.concat([e.subarray(0, NAME_AT), length, raw, e.subarray(NAME_AT + 2 + 2)])
}

const BAD_BYTES: Array<[string, Buffer, string]> = [
  ['empty', Buffer.alloc(0), 'ERR_NAME_INVALID'],
  ['"a//b"', Buffer.from('a//b'), 'ERR_NAME_INVALID'],
  ['"../x"', Buffer.from('../x'), 'ERR_NAME_INVALID'],
  ['valid UTF-8 outside [A-Za-z0-9._-]', Buffer.from('héllo'), 'ERR_NAME_INVALID'],
  ['not UTF-8', Buffer.from([0x61, 0xff, 0x62]), 'ERR_DECODE'],
  ['an overlong UTF-8 "/"', Buffer.from([0xc0, 0xaf]), 'ERR_DECODE'],
  ['256 bytes', Buffer.alloc(256, 0x61), 'ERR_DECODE']
]

test('names: in an envelope (push, fetch answer, publish), not-a-string bytes are ERR_DECODE and a bad string ERR_NAME_INVALID', () => {
  assert.equal(decodeEnvelope(envelopeNamed(Buffer.from('ab'))).name, 'ab', 'the splice itself is sound')
  for (const [what, raw, code] of BAD_BYTES) {
    assert.throws(() => decodeEnvelope(envelopeNamed(raw)), dmError(code as 'ERR_DECODE'), what)
    const push = Buffer.concat([Buffer.of(MessageType.Push), envelopeNamed(raw), Buffer.of(0)])
    assert.throws(() => decodeMessage(push), dmError(code as 'ERR_DECODE'), `push with ${what}`)
  }
})

test('names: in Want and NotFound only the bytes are checked; any string decodes and is answered NotFound', () => {
  const want = (raw: Buffer): Buffer => {
    const length = Buffer.alloc(2)
    length.writeUInt16BE(raw.length)
    return Buffer.concat([Buffer.of(MessageType.Want, 0, 1), length, raw, Buffer.alloc(32)])
  }
  for (const [what, raw, code] of BAD_BYTES) {
    if (code === 'ERR_DECODE') assert.throws(() => decodeMessage(want(raw)), dmError('ERR_DECODE'), what)
    else assert.deepEqual(decodeMessage(want(raw)), { type: MessageType.Want, entries: [{ name: raw.toString(), id: new Uint8Array(32) }] }, what)
  }
  assert.deepEqual(decodeMessage(encodeMessage({ type: MessageType.NotFound, name: '' })), { type: MessageType.NotFound, name: '' })
})

test('names: given as a string (the CLI, the API\'s query parameters), every bad name is ERR_NAME_INVALID, the empty and the too long included', async () => {
  for (const name of ['', 'a//b', 'héllo', 'a'.repeat(256), '\uFFFD']) assert.throws(() => assertValidName(name), dmError('ERR_NAME_INVALID'), JSON.stringify(name))
  const { dir, cleanup } = tempDir('dm-names-')
  const socket = path.join(dir, 'api.sock')
  const handlers: ApiHandlers = {
    publish: async () => ({ ok: true }),
    list: () => [],
    peers: () => [],
    status: () => { throw new Error('unused') },
    content: async () => undefined,
    fleet: async q => fleetView([], 0, q)
  }
  const api = await startApiServer(socket, handlers)
  const codeOf = async (route: string): Promise<string> =>
    await apiRequest(socket, 'GET', route).then(() => 'ok', (err: unknown) => err instanceof DmError ? err.code : String(err))
  try {
    assert.equal(await codeOf('/v1/content?name=a%2F%2Fb'), 'ERR_NAME_INVALID')
    assert.equal(await codeOf('/v1/content?name='), 'ERR_NAME_INVALID')
    assert.equal(await codeOf('/v1/content?name=%FF'), 'ERR_NAME_INVALID', 'a query is decoded as UTF-8 with replacement: a string, never ERR_DECODE')
    assert.equal(await codeOf('/v1/content'), 'ERR_USAGE')
    assert.equal(await codeOf('/v1/content?name=ab'), 'ERR_NOT_FOUND')
    assert.equal(await codeOf('/v1/fleet?name=a%2F%2Fb'), 'ERR_NAME_INVALID')
    // A publish body's head is decoded as an envelope (POST /v1/versions answers with this code).
    assert.throws(() => decodePublishHead(publishHead(envelopeNamed(Buffer.alloc(0)))), dmError('ERR_NAME_INVALID'))
    assert.throws(() => decodePublishHead(publishHead(envelopeNamed(Buffer.from([0xff])))), dmError('ERR_DECODE'))
  } finally {
    await api.close()
    cleanup()
  }
})

test('API: the fleet view on an open mesh is refused with ERR_OPEN_MESH, never a partial view', async () => {
  const { dir, cleanup } = tempDir('dm-open-')
  const socket = path.join(dir, 'api.sock')
  const api = await startApiServer(socket, { publish: async () => ({ ok: true }), list: () => [], peers: () => [], status: () => { throw new Error('unused') }, content: async () => undefined })
  try {
    await assert.rejects(apiRequest(socket, 'GET', '/v1/fleet'), dmError('ERR_OPEN_MESH'))
  } finally {
    await api.close()
    cleanup()
  }
})

/** A publish body's head around raw envelope bytes: `u32 length · envelope`. */
function publishHead (envelope: Buffer): Buffer {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(envelope.length)
  return Buffer.concat([length, envelope])
}
