// registry.pullEvents(ref): the async-iterator form of a pull.
'use strict'

const assert = require('node:assert/strict')
const { after, before, test } = require('node:test')

const { GlobalCache, Platform, Registry } = require('..')
const h = require('./helpers.js')

let reg
let slow
before(async () => {
  reg = await h.startTestkit()
  const img = h.image([h.tar([{ name: 'big', data: h.noise(2 << 20) }])])
  const big = new Set([...img.blobs.keys()].filter((d) => img.blobs.get(d).length > 1 << 20))
  slow = await h.craftedRegistry({ 'slow/image': img }, { slow: big, chunk: 32 * 1024, intervalMs: 20 })
})
after(async () => {
  await slow?.close()
  await reg?.stop()
})

function registry(cache) {
  return new Registry(Platform.parse('linux/amd64'), new GlobalCache(cache))
}

test('for await yields the events in order; result() gives the PullResult', async (t) => {
  const cache = h.tempCache(t)
  const events = registry(cache).pullEvents(`${reg.host}/fixtures/standard:gzip`)
  const types = []
  for await (const event of events) types.push(event.type)
  assert.equal(types[0], 'resolving')
  assert.equal(types.at(-1), 'complete')
  assert.equal(types.filter((x) => x === 'layerIndexComplete').length, 3)
  const result = await events.result()
  assert.equal(result.manifestDigest, reg.manifests['fixtures/standard:gzip'])
  assert.equal((await events.next()).done, true)
})

test('a failed pull rejects the iteration with its error', async (t) => {
  const events = registry(h.tempCache(t)).pullEvents(`${reg.host}/fixtures/standard:gzip`, { policy: 'never' })
  const seen = []
  await assert.rejects(
    (async () => {
      for await (const event of events) seen.push(event.type)
    })(),
    { code: 'NOT_CACHED' },
  )
  assert.deepEqual(seen, ['resolving'])
  await assert.rejects(events.result(), { code: 'NOT_CACHED' })
})

test('break cancels the pull and leaves tmp/ empty', async (t) => {
  const cache = h.tempCache(t)
  const events = registry(cache).pullEvents(`${slow.host}/slow/image:latest`)
  for await (const event of events) if (event.type === 'layerDownloadProgress') break
  assert.deepEqual(h.tmpEntries(cache), [])
  await assert.rejects(events.result(), { name: 'AbortError', code: 'CANCELLED' })
})

test('an AbortSignal ends the iteration with an AbortError', async (t) => {
  const cache = h.tempCache(t)
  const controller = new AbortController()
  const events = registry(cache).pullEvents(`${slow.host}/slow/image:latest`, { signal: controller.signal })
  await assert.rejects(
    (async () => {
      for await (const event of events) if (event.type === 'layerDownloadProgress') controller.abort()
    })(),
    { name: 'AbortError' },
  )
  assert.deepEqual(h.tmpEntries(cache), [])
  assert.throws(
    () => registry(cache).pullEvents(`${slow.host}/slow/image:latest`, { onProgress() {} }),
    { code: 'INVALID_ARGUMENT' },
  )
})
