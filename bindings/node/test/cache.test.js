// The cache's life cycle through Node: images, layers, diskUsage, removeImage, gc and
// holdLayer on images pulled from the loopback registry. Images are pulled by the Rust CLI
// (another process), so no PullResult of this process holds their layers; a Node pull's
// result holds them until it is garbage-collected.
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { after, before, test } = require('node:test')

const { GlobalCache, LayerLease, Platform, Registry } = require('..')
const h = require('./helpers.js')

let reg
before(async () => {
  reg = await h.startTestkit()
})
after(async () => {
  await reg?.stop()
})

/** A fresh cache with `tag` of fixtures/standard pulled into it by the CLI. */
function pulled(t, tag = 'gzip') {
  const dir = h.tempCache(t)
  const ref = `${reg.host}/fixtures/standard:${tag}`
  const r = h.runCli(['pull', ref, '--platform', 'linux/amd64', '--cache', dir, '--progress', 'none', '--json'])
  assert.equal(r.status, 0, r.stderr)
  return { dir, ref, cache: new GlobalCache(dir), result: r.json }
}

test('images and layers show the pulled image under its name; diskUsage adds up', async (t) => {
  const { dir, ref, cache } = pulled(t)
  const images = await cache.images()
  assert.equal(images.length, 1)
  const [image] = images
  assert.deepEqual(image.names, [ref])
  assert.equal(image.platform, 'linux/amd64')
  assert.equal(image.complete, true)
  assert.equal(image.layers.length, 3)
  assert.ok(image.lastUsed > 0 && image.pulledAt > 0)
  assert.match(image.manifestDigest, /^sha256:[0-9a-f]{64}$/)

  const layers = await cache.layers()
  assert.deepEqual(layers.map((l) => l.diffId).sort(), [...image.layers].sort())
  for (const l of layers) {
    assert.deepEqual(l.images, [ref])
    assert.ok(l.bytes > 0)
  }

  let usage = await cache.diskUsage()
  assert.equal(usage.images.length, 1)
  const [u] = usage.images
  assert.deepEqual(u.names, [ref]) // an ImageUsage is a CachedImage with byte counts
  assert.equal(u.sharedBytes, 0)
  assert.equal(u.exclusiveBytes + u.sharedBytes, usage.layerBytes)
  assert.equal(usage.layerBytes, layers.reduce((n, l) => n + l.bytes, 0))
  assert.equal(usage.unreferencedBytes, 0)

  // Another image with the same layers: its bytes become shared.
  const zstd = `${reg.host}/fixtures/standard:zstd`
  assert.equal(h.runCli(['pull', zstd, '--platform', 'linux/amd64', '--cache', dir, '--progress', 'none', '--json']).status, 0)
  usage = await cache.diskUsage()
  assert.equal(usage.images.length, 2)
  for (const each of usage.images) assert.ok(each.sharedBytes > 0, JSON.stringify(each))
})

test('removeImage removes it; a never-policy pull then fails NOT_CACHED', async (t) => {
  const { ref, cache } = pulled(t)
  const report = await cache.removeImage(ref, Platform.parse('linux/amd64'))
  assert.equal(report.dryRun, false)
  assert.equal(report.removedImages.length, 1)
  assert.deepEqual(report.removedImages[0].names, [ref])
  assert.equal(report.removedLayers.length, 3)
  assert.deepEqual(report.inUseLayers, [])
  assert.ok(report.freedBytes > 0)
  assert.deepEqual(await cache.images(), [])
  const registry = new Registry(Platform.parse('linux/amd64'), cache)
  await assert.rejects(registry.pull(ref, { policy: 'never' }), { code: 'NOT_CACHED' })
  await assert.rejects(cache.removeImage(ref), { code: 'NOT_FOUND' })
  await assert.rejects(cache.removeImage('Not A Reference'), { code: 'INVALID_REFERENCE' })
  await assert.rejects(cache.removeImage(ref, 'linux'), { code: 'INVALID_ARGUMENT' })
})

test('gc: a dry run reports and removes nothing; maxSize evicts; keepRecent protects', async (t) => {
  const { ref, cache } = pulled(t)
  const plain = await cache.gc()
  assert.deepEqual([plain.removedImages, plain.removedLayers], [[], []])
  const dry = await cache.gc({ dryRun: true, maxSize: 0 })
  assert.equal(dry.dryRun, true)
  assert.deepEqual(dry.removedImages.map((i) => i.names), [[ref]])
  assert.equal(dry.removedLayers.length, 3)
  assert.ok(dry.freedBytes > 0)
  assert.equal((await cache.images()).length, 1)
  assert.equal((await cache.layers()).length, 3)
  const kept = await cache.gc({ maxSize: 0, keepRecent: 3600 })
  assert.deepEqual(kept.removedImages, [])
  const done = await cache.gc({ maxSize: 0 })
  assert.deepEqual([...done.removedLayers].sort(), [...dry.removedLayers].sort())
  assert.deepEqual(await cache.layers(), [])
})

test('a bad gc policy rejects with INVALID_ARGUMENT', async (t) => {
  const cache = new GlobalCache(h.tempCache(t))
  await assert.rejects(cache.gc({ max_size: 1 }), (e) => e.code === 'INVALID_ARGUMENT' && /max_size/.test(e.message))
  await assert.rejects(cache.gc({ keepRecent: -1 }), { code: 'INVALID_ARGUMENT' })
  await assert.rejects(cache.gc({ maxSize: 'big' }), { code: 'INVALID_ARGUMENT' })
})

test('a held layer survives removeImage and gc, and is collected after release()', async (t) => {
  const { dir, ref, cache } = pulled(t)
  const [image] = await cache.images()
  const diffId = image.layers[2]
  const tree = path.join(dir, 'layers', 'sha256', diffId.slice('sha256:'.length))
  const lease = await cache.holdLayer(diffId)
  assert.ok(lease instanceof LayerLease)
  assert.equal(lease.diffId, diffId)
  assert.equal(lease.released, false)
  const rm = await cache.removeImage(ref)
  assert.deepEqual(rm.inUseLayers, [diffId])
  assert.equal(rm.removedLayers.length, 2)
  const held = await cache.gc()
  assert.deepEqual(held.inUseLayers, [diffId])
  assert.deepEqual(held.removedLayers, [])
  assert.ok(fs.statSync(tree).isDirectory())
  lease.release()
  lease.release() // idempotent
  assert.equal(lease.released, true)
  const freed = await cache.gc()
  assert.deepEqual(freed.removedLayers, [diffId])
  assert.deepEqual(freed.inUseLayers, [])
  assert.equal(fs.existsSync(tree), false)
  await assert.rejects(cache.holdLayer('sha256:nothex'), { code: 'INVALID_ARGUMENT' })
})

test("a Node pull's result holds its layers too", async (t) => {
  const dir = h.tempCache(t)
  const cache = new GlobalCache(dir)
  const registry = new Registry(Platform.parse('linux/amd64'), cache)
  const ref = `${reg.host}/fixtures/standard:gzip`
  const result = await registry.pull(ref)
  const rm = await cache.removeImage(ref)
  assert.equal(rm.inUseLayers.length, 3)
  assert.deepEqual(rm.removedLayers, [])
  assert.equal(result.layers.length, 3)
})
