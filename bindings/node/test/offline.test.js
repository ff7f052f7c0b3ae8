// Offline images through Node: registry.pull() / pullEvents() of an OCI layout skopeo wrote
// and of a docker archive registry.save() wrote, against the loopback registry with a fresh
// cache per test.
'use strict'

const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
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
  return new Registry(Platform.parse('linux/amd64'), new GlobalCache(cache), {
    insecureRegistries: [reg.host],
  })
}

const image = () => `${reg.host}/fixtures/standard:gzip`
const multi = () => `${reg.host}/fixtures/multi:latest`

/** skopeo as the other side (the test registry is plain HTTP on loopback). */
function skopeoCopy(source, target) {
  execFileSync('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', source, target], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
}

function outDir(t) {
  return h.tempCache(t)
}

test('an OCI layout skopeo wrote pulls as the registry image, with events too', async (t) => {
  const layout = path.join(outDir(t), 'standard')
  skopeoCopy(`docker://${image()}`, `oci:${layout}:t`)
  const registry = client(h.tempCache(t))
  const local = await registry.pull(`oci-layout:${layout}:t`)
  assert.equal(local.reference, 'localhost/standard:t')
  assert.equal(local.cached, false)
  const remote = await registry.pull(image(), { policy: 'always' })
  assert.equal(local.manifestDigest, remote.manifestDigest)
  assert.equal(local.configDigest, remote.configDigest)
  assert.deepEqual(local.layerDiffIds, remote.layerDiffIds)
  // Recorded under its name: a pull that may not read anything answers from the cache.
  const warm = await registry.pull('localhost/standard:t', { policy: 'never' })
  assert.ok(warm.cached)

  const events = client(h.tempCache(t)).pullEvents(`oci:${layout}:t`)
  const types = []
  for await (const event of events) types.push(event.type)
  assert.equal(types.at(-1), 'complete')
  assert.equal(types.filter((x) => x === 'layerIndexComplete').length, local.layers.length)
  assert.equal((await events.result()).manifestDigest, local.manifestDigest)
})

test('save writes a docker archive that pulls back and skopeo reads', async (t) => {
  const dir = outDir(t)
  const registry = client(h.tempCache(t))
  const remote = await registry.pull(image())
  const archive = path.join(dir, 'standard.tar')
  const report = await registry.save(image(), `docker-archive:${archive}`)
  assert.equal(report.reference, image())
  assert.equal(report.target, `docker-archive:${archive}`)
  assert.equal(report.manifestDigest, remote.manifestDigest)
  assert.equal(report.configDigest, remote.configDigest)
  assert.equal(report.blobsWritten, remote.layers.length + 1)
  assert.equal(report.bytesWritten, fs.statSync(archive).size)

  // Into another cache, so that nothing is answered from the first one.
  const other = client(path.join(dir, 'other-cache'))
  const back = await other.pull(`docker-archive:${archive}`)
  assert.equal(back.cached, false)
  assert.equal(back.reference, image())
  assert.equal(back.configDigest, remote.configDigest)
  assert.deepEqual(back.layerDiffIds, remote.layerDiffIds)
  const layout = path.join(dir, 'copied')
  skopeoCopy(`docker-archive:${archive}`, `oci:${layout}:x`)
  assert.deepEqual((await other.pull(`oci-layout:${layout}:x`)).layerDiffIds, remote.layerDiffIds)
})

test('save to a layout for a platform', async (t) => {
  const dir = outDir(t)
  const registry = client(h.tempCache(t))
  const { platforms } = await registry.inspect(multi())
  const other = platforms.find((p) => p !== 'linux/amd64')
  assert.ok(other, `${platforms}`)
  const layout = path.join(dir, 'saved')
  const report = await registry.save(multi(), `oci-layout:${layout}:v1`, { platform: other })
  assert.equal(report.manifestDigest, (await registry.inspect(multi(), other)).manifestDigest)
  assert.ok(fs.statSync(path.join(layout, 'index.json')).isFile())
  const local = await registry.pull(`oci-layout:${layout}:v1`, { platform: other })
  assert.equal(local.manifestDigest, report.manifestDigest)
  assert.ok(!platforms.includes('linux/s390x'))
  await assert.rejects(
    registry.save(multi(), `oci-layout:${path.join(dir, 'none')}:v1`, {
      platform: Platform.parse('linux/s390x'),
    }),
    { code: 'PLATFORM_NOT_FOUND' },
  )
})

test('bad sources and targets fail as the core says', async (t) => {
  const dir = outDir(t)
  const registry = client(h.tempCache(t))
  await assert.rejects(registry.pull('Not A Reference!'), { code: 'INVALID_REFERENCE' })
  await assert.rejects(registry.pull('oci-layout:'), { code: 'INVALID_ARGUMENT' })
  await assert.rejects(registry.pull(`oci-archive:${dir}/x.tar`), {
    code: 'INVALID_ARGUMENT',
    message: /not supported/,
  })
  await assert.rejects(registry.pull(`docker-archive:${dir}/missing.tar`), {
    code: 'NOT_FOUND',
    message: /missing\.tar/,
  })
  assert.throws(() => registry.pullEvents('oci-layout:'), { code: 'INVALID_ARGUMENT' })
  await assert.rejects(registry.save(image(), 'Not A Target!'), { code: 'INVALID_REFERENCE' })
  await assert.rejects(registry.save(image(), `${reg.host}/saved/copy:v1`), {
    code: 'INVALID_ARGUMENT',
    message: /pushing to a registry/,
  })
  await assert.rejects(registry.save(image(), `oci:${dir}/o`, { platform: 'linux' }), {
    code: 'INVALID_ARGUMENT',
  })
})
