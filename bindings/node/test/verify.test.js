// Checking and repairing the cache, looking before pulling and exporting a rootfs, through
// Node: cache.verify(), registry.repair(), registry.inspect(), result.unpack() and
// new GlobalCache(path, { readOnly }), against the loopback registry with a fresh cache per
// test.
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { after, before, test } = require('node:test')

const { GlobalCache, Platform, Registry } = require('..')
const h = require('./helpers.js')

let reg
before(async () => {
  reg = await h.startTestkit()
})
after(async () => {
  await reg?.stop()
})

function client(cache) {
  return new Registry(Platform.parse('linux/amd64'), cache, { insecureRegistries: [reg.host] })
}

const image = () => `${reg.host}/fixtures/standard:gzip`

test('a clean cache verifies clean; damage is reported at its path and repair rebuilds it', async (t) => {
  const cache = new GlobalCache(h.tempCache(t))
  const registry = client(cache)
  const result = await registry.pull(image())
  let report = await cache.verify()
  assert.deepEqual(report.layers.map((l) => l.diffId), [...result.layerDiffIds].sort())
  for (const l of report.layers) assert.ok(l.problems.length === 0 && l.recorded && l.entries > 0)
  assert.deepEqual(report.images.map((i) => i.damagedLayers), [[]])

  const target = path.join(result.layers[0], 'data', 'one-byte')
  const original = fs.readFileSync(target)
  const before = fs.statSync(target)
  // Other bytes of the same size, with the mode and times put back: only the content differs.
  fs.chmodSync(target, 0o600)
  fs.writeFileSync(target, Buffer.alloc(original.length, 'y'))
  fs.chmodSync(target, before.mode & 0o7777)
  fs.utimesSync(target, before.atime, before.mtime)
  report = await cache.verify([image()])
  const damaged = report.layers.filter((l) => l.problems.length > 0)
  assert.deepEqual(damaged.map((l) => l.diffId), [result.layerDiffIds[0]])
  assert.deepEqual(
    damaged[0].problems.map((p) => [p.kind, p.path]),
    [['contentChanged', 'data/one-byte']],
  )

  const repaired = await registry.repair(report)
  assert.deepEqual(repaired.rebuiltLayers, [result.layerDiffIds[0]])
  assert.deepEqual(repaired.failed, [])
  report = await cache.verify()
  assert.ok(report.layers.every((l) => l.problems.length === 0))
  assert.deepEqual(fs.readFileSync(target), original)

  await assert.rejects(cache.verify(['Not A Reference']), { code: 'INVALID_REFERENCE' })
  await assert.rejects(registry.repair({ images: 1 }), { code: 'INVALID_ARGUMENT' })
})

test('inspect describes what a pull gets without pulling', async (t) => {
  const cache = new GlobalCache(h.tempCache(t))
  const registry = client(cache)
  const remote = await registry.inspect(image())
  assert.deepEqual(await cache.images(), [], 'inspect wrote nothing')
  assert.equal(remote.downloadSize, remote.layers.reduce((n, l) => n + l.size, 0))
  assert.ok(remote.downloadSize > 0)

  const result = await registry.pull(image())
  assert.equal(remote.manifestDigest, result.manifestDigest)
  assert.equal(remote.configDigest, result.configDigest)
  assert.deepEqual(remote.layers.map((l) => l.diffId), result.layerDiffIds)
  // The config has the same shape as a pull result's (camelCase, optional fields absent).
  assert.deepEqual(remote.config, { ...result.config })

  await assert.rejects(registry.inspect(image(), 'linux/arm64'), { code: 'PLATFORM_NOT_FOUND' })
})

test('unpack writes the merged tree; a destination that is not empty is refused', async (t) => {
  const cache = new GlobalCache(h.tempCache(t))
  const result = await client(cache).pull(image())
  const dest = path.join(h.tempCache(t), 'rootfs')
  const report = await result.unpack(dest, { rootless: true })
  assert.equal(report.rootless, true)
  const visible = [...result.layerStack().walk()].map((e) => e.path).filter((p) => p !== '')
  assert.equal(report.entries, visible.length)
  assert.deepEqual(
    fs.readFileSync(path.join(dest, 'data', 'one-byte')),
    fs.readFileSync(path.join(result.layers[0], 'data', 'one-byte')),
  )
  await assert.rejects(result.unpack(dest), { code: 'INVALID_ARGUMENT', message: /empty/ })
})

test('a read-only cache answers warm pulls and refuses writes', async (t) => {
  const dir = h.tempCache(t)
  const writer = new GlobalCache(dir)
  await client(writer).pull(image())
  const reader = new GlobalCache(dir, { readOnly: true })
  assert.equal(reader.readOnly, true)
  assert.equal(writer.readOnly, false)
  assert.deepEqual((await reader.images()).map((i) => i.names), [[image()]])
  assert.equal((await client(reader).pull(image())).cached, true)
  await assert.rejects(reader.removeImage(image()), { code: 'IO', message: /read-only/ })
  assert.throws(() => new GlobalCache(dir, { readonly: true }), { code: 'INVALID_ARGUMENT' })
})
