// Pulls against the loopback test registry: results, the cache, policies, progress, concurrency
// and the event loop, each checked against the registry's own digests and the Rust CLI.
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { after, before, test } = require('node:test')

const { GlobalCache, Platform, Registry, parseReference } = require('..')
const h = require('./helpers.js')

let reg
before(async () => {
  reg = await h.startTestkit()
})
after(() => reg?.stop())

function registry(cache, options) {
  return new Registry(Platform.parse('linux/amd64'), new GlobalCache(cache), options)
}

test('pull gives the layers, digests and config, and a second pull comes from the cache', async (t) => {
  const cache = h.tempCache(t)
  const r = registry(cache)
  const ref = `${reg.host}/fixtures/standard:gzip`
  const res = await r.pull(ref)
  assert.equal(res.cached, false)
  assert.equal(res.reference, ref)
  assert.equal(res.manifestDigest, reg.manifests['fixtures/standard:gzip'])
  assert.match(res.configDigest, /^sha256:[0-9a-f]{64}$/)
  assert.equal(res.indexDigest, null)
  assert.equal(res.platform.toString(), 'linux/amd64')
  assert.equal(res.layers.length, 3)
  assert.equal(res.layerDiffIds.length, 3)
  res.layers.forEach((layer, i) => {
    assert.equal(layer, path.join(cache, 'layers', 'sha256', res.layerDiffIds[i].slice(7), 'fs'))
    assert.ok(fs.statSync(layer).isDirectory())
    assert.ok(fs.statSync(res.layerIndexes[i]).isFile())
  })
  assert.equal(fs.readFileSync(path.join(res.layers[2], 'app', 'hello.txt'), 'utf8'), 'hello from layer 3\n')
  const c = res.config
  assert.equal(c.workingDir, '/app')
  assert.equal(c.user, '1000:1000')
  assert.deepEqual(c.entrypoint, ['/usr/bin/tool'])
  assert.deepEqual(c.cmd, ['--flag', 'value'])
  assert.equal(c.env[1], 'GREETING=hello world')
  assert.equal(c.os, 'linux')
  assert.equal(c.architecture, 'amd64')

  const again = await r.pull(ref, { policy: 'never' })
  assert.equal(again.cached, true)
  assert.equal(again.manifestDigest, res.manifestDigest)
  assert.deepEqual(again.layers, res.layers)
  assert.deepEqual(h.tmpEntries(cache), [])
})

test('EROFS layer images and the flat image are written when the outputs ask for them', async (t) => {
  const cache = h.tempCache(t)
  const r = registry(cache)
  const ref = `${reg.host}/fixtures/standard:gzip`
  assert.equal((await r.pull(ref)).flatImage, null)
  const res = await r.pull(ref, { outputs: ['directory', 'erofs-layers', 'erofs-flat'], erofsOpaqueXattr: 'user' })
  assert.equal(res.layerImages.length, 3)
  res.layerImages.forEach((image, i) => {
    assert.equal(image, path.join(path.dirname(res.layers[i]), 'layer.erofs'))
  })
  assert.equal(path.basename(res.flatImage), res.manifestDigest.replace('sha256:', '') + '.erofs')
  ;[...res.layerImages, res.flatImage].forEach((image) => {
    const head = Buffer.alloc(4)
    const fd = fs.openSync(image, 'r')
    fs.readSync(fd, head, 0, 4, 1024)
    fs.closeSync(fd)
    assert.equal(head.readUInt32LE(0), 0xe0f5e1e2, 'EROFS superblock magic')
  })
  await assert.rejects(r.pull(ref, { outputs: [] }), (e) => e.code === 'INVALID_ARGUMENT')
})

test('EROFS layer images alone: no tree is written', async (t) => {
  const r = registry(h.tempCache(t))
  const ref = `${reg.host}/fixtures/standard:gzip`
  const res = await r.pull(ref, { outputs: ['erofs-layers'] })
  res.layerImages.forEach((image, i) => {
    assert.ok(fs.statSync(image).isFile())
    assert.ok(!fs.existsSync(res.layers[i]), 'no tree')
  })
  const stack = res.layerStack()
  assert.throws(() => stack.hostPath('app/hello.txt'), (e) => e.code === 'INVALID_ARGUMENT')
  assert.ok((await r.pull(ref, { outputs: ['erofs-layers'] })).cached)
})

test('the result matches what the Rust CLI reports for the same cache', async (t) => {
  const cache = h.tempCache(t)
  const ref = `${reg.host}/fixtures/standard:zstd`
  const res = await registry(cache).pull(ref)
  const { status, json } = h.runCli(['inspect', ref, '--cache', cache])
  assert.equal(status, 0)
  assert.equal(json.reference, res.reference)
  assert.equal(json.manifest_digest, res.manifestDigest)
  assert.equal(json.config_digest, res.configDigest)
  assert.equal(json.index_digest, res.indexDigest)
  assert.equal(json.platform, res.platform.toString())
  assert.deepEqual(json.layers, res.layers)
  // Every field of the core's ImageConfig reaches Node (camelCase), with the same value.
  const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase())
  const config = Object.fromEntries(Object.entries(json.config).map(([k, v]) => [camel(k), v]))
  const declared = /export interface ImageConfig \{([\s\S]*?)\n\}/.exec(
    fs.readFileSync(path.join(h.pkg, 'index.d.ts'), 'utf8'),
  )[1]
  for (const [k, v] of Object.entries(config)) {
    assert.match(declared, new RegExp(`\\n  ${k}\\??: `), `ImageConfig.${k} is missing in Node`)
    assert.deepEqual(res.config[k] ?? null, v ?? null, `config.${k}`)
  }
})

test('policies: if-missing answers from the cache, always refetches the manifest, never stays offline', async (t) => {
  const cache = h.tempCache(t)
  const r = registry(cache)
  const ref = `${reg.host}/fixtures/standard:none`
  await assert.rejects(r.pull(ref, { policy: 'never' }), { code: 'NOT_CACHED' })
  assert.equal((await r.pull(ref, { policy: 'if-missing' })).cached, false)
  assert.equal((await r.pull(ref)).cached, true)
  const events = []
  const always = await r.pull(ref, { pullPolicy: 'always', onProgress: (e) => events.push(e.type) })
  assert.equal(always.cached, false)
  assert.ok(events.includes('layerCached'), events.join())
  assert.ok(!events.includes('layerDownloadComplete'), 'always reuses cached layers')
  const forced = []
  await r.pull(ref, { force: true, onProgress: (e) => forced.push(e.type) })
  assert.equal(forced.filter((e) => e === 'layerExtractComplete').length, 3)
  assert.equal((await r.pull(ref, { policy: 'never' })).cached, true)
  await assert.rejects(r.pull(ref, { policy: 'sometimes' }), { code: 'INVALID_ARGUMENT' })
  await assert.rejects(r.pull(ref, { policy: 'never', pullPolicy: 'never' }), { code: 'INVALID_ARGUMENT' })
})

test('an index resolves to the requested platform (string or Platform)', async (t) => {
  const r = registry(h.tempCache(t))
  const ref = `${reg.host}/fixtures/multi:latest`
  const v6 = await r.pull(ref, { platform: 'linux/arm/v6', buildIndex: false })
  assert.equal(v6.platform.toString(), 'linux/arm/v6')
  assert.equal(v6.indexDigest, reg.manifests['fixtures/multi:latest'])
  const arm64 = await r.pull(ref, { platform: new Platform('linux', 'aarch64') })
  assert.equal(arm64.platform.toString(), 'linux/arm64/v8')
  assert.notEqual(arm64.manifestDigest, v6.manifestDigest)
})

test('progress: every milestone in order, on the JS thread, before the promise settles', async (t) => {
  const cache = h.tempCache(t)
  const events = []
  const late = []
  let settled = false
  const res = await registry(cache)
    .pull(`${reg.host}/fixtures/standard:gzip`, {
      onProgress(e) {
        ;(settled ? late : events).push(e)
      },
    })
    .finally(() => {
      settled = true
    })
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(late, [], 'no event arrives after the promise settled')
  const types = events.map((e) => e.type)
  assert.equal(types[0], 'resolving')
  assert.equal(types[1], 'resolved')
  assert.equal(types.at(-1), 'complete')
  const resolved = events[1]
  assert.equal(resolved.layerCount, 3)
  assert.equal(resolved.manifestDigest, res.manifestDigest)
  assert.ok(resolved.totalDownloadBytes > 0)
  for (let i = 0; i < 3; i++) {
    const mine = events.filter((e) => e.layerIndex === i).map((e) => e.type)
    const milestones = mine.filter((m) => !m.endsWith('Progress'))
    assert.deepEqual(milestones, [
      'layerExtractStarted',
      'layerDownloadComplete',
      'layerExtractComplete',
      'layerIndexStarted',
      'layerIndexComplete',
    ].filter((m) => milestones.includes(m)))
    for (const m of ['layerDownloadComplete', 'layerExtractComplete', 'layerIndexComplete']) {
      assert.ok(milestones.includes(m), `layer ${i} has no ${m}: ${mine}`)
    }
  }
  // Each event has exactly the fields the core's schema lists for its type.
  const surface = JSON.parse(fs.readFileSync(path.join(h.workspace, 'core', 'api-surface.json'), 'utf8'))
  const schema = new Map(surface.events.map((e) => [e.type, e.fields.map((f) => f.name).sort()]))
  for (const e of events) {
    const { type, ...fields } = e
    assert.deepEqual(Object.keys(fields).sort(), schema.get(type), `${type} fields`)
  }
  const done = events.filter((e) => e.type === 'layerExtractComplete')
  assert.deepEqual(done.map((e) => e.diffId).sort(), [...res.layerDiffIds].sort())
  const complete = events.at(-1)
  assert.deepEqual(complete, {
    type: 'complete',
    reference: res.reference,
    manifestDigest: res.manifestDigest,
    layerCount: 3,
    cached: false,
  })
  const cached = []
  await registry(cache).pull(`${reg.host}/fixtures/standard:gzip`, { onProgress: (e) => cached.push(e.type) })
  assert.deepEqual(cached, ['resolving', 'resolved', 'layerCached', 'layerCached', 'layerCached', 'complete'])
})

test('concurrent pulls run on the runtime, not on the libuv pool', async (t) => {
  // Four slow pulls (about 1 s each) with a one-thread libuv pool: if a pull held a pool
  // thread, as an AsyncTask would, the readFile below would wait for every pull to end.
  const img = h.image([h.tar([{ name: 'big', data: h.noise(1 << 20, 7) }])])
  const big = new Set([...img.blobs.keys()].filter((d) => img.blobs.get(d).length > 500000))
  const names = ['a', 'b', 'c', 'd'].map((n) => `slow/${n}`)
  const slow = await h.craftedRegistry(Object.fromEntries(names.map((n) => [n, img])), {
    slow: big,
    chunk: 64 * 1024,
    intervalMs: 60,
  })
  t.after(() => slow.close())
  const script = `
    const fs = require('node:fs')
    const { GlobalCache, Platform, Registry } = require(${JSON.stringify(h.pkg)})
    const refs = ${JSON.stringify(names.map((n) => `${slow.host}/${n}:latest`))}
    ;(async () => {
      const started = Date.now()
      const order = []
      let poolAt
      const pulls = refs.map((ref, i) =>
        new Registry(Platform.parse('linux/amd64'), new GlobalCache(process.argv[1] + '/' + i))
          .pull(ref, { onProgress: (e) => order.push(i + ':' + e.type) })
          .then(() => order.push(i + ':settled')))
      await new Promise((r) => setTimeout(r, 100))
      fs.readFile(process.execPath, () => { poolAt = Date.now() - started })
      await Promise.all(pulls)
      const total = Date.now() - started
      const firstDone = order.findIndex((x) => x.endsWith(':settled'))
      const running = new Set(order.slice(0, firstDone).filter((x) => x.endsWith(':resolving')).map((x) => x.split(':')[0]))
      console.log(JSON.stringify({ poolAt, total, overlapping: running.size }))
    })().catch((e) => { console.error(e); process.exit(1) })
  `
  const { spawn } = require('node:child_process')
  const child = spawn(process.execPath, ['-e', script, h.tempCache(t)], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let stdout = ''
  child.stdout.on('data', (d) => (stdout += d))
  assert.equal(await new Promise((resolve) => child.on('exit', resolve)), 0)
  const out = JSON.parse(stdout)
  assert.equal(out.overlapping, 4, 'all four pulls were running before the first settled')
  assert.ok(out.total > 800, `the pulls took ${out.total} ms, too short to tell`)
  assert.ok(out.poolAt < out.total / 2, `the pool answered at ${out.poolAt} ms, the pulls took ${out.total} ms`)
})

test('the event loop keeps running during a pull (a 5 ms timer keeps firing)', async (t) => {
  const layer = h.tar([{ name: 'big', data: h.noise(1 << 20) }])
  const img = h.image([layer])
  const blob = [...img.blobs.keys()].find((d) => img.blobs.get(d).length > 500000)
  const slow = await h.craftedRegistry({ 'slow/image': img }, { slow: new Set([blob]), chunk: 64 * 1024, intervalMs: 40 })
  t.after(() => slow.close())
  const r = registry(h.tempCache(t))
  let ticks = 0
  let last = performance.now()
  let worst = 0
  const timer = setInterval(() => {
    const now = performance.now()
    worst = Math.max(worst, now - last)
    last = now
    ticks++
  }, 5)
  const started = performance.now()
  try {
    await r.pull(`${slow.host}/slow/image:latest`)
  } finally {
    clearInterval(timer)
  }
  const elapsed = performance.now() - started
  assert.ok(elapsed > 500, `the pull took ${elapsed} ms, too short to measure`)
  assert.ok(ticks > elapsed / 5 / 4, `${ticks} ticks in ${elapsed.toFixed(0)} ms`)
  assert.ok(worst < 200, `the longest gap between ticks was ${worst.toFixed(0)} ms`)
})

test('parseReference normalises and splits a reference', () => {
  assert.deepEqual({ ...parseReference('alpine') }, {
    reference: 'docker.io/library/alpine:latest',
    registry: 'docker.io',
    repository: 'library/alpine',
    tag: 'latest',
  })
  const hex = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
  const pinned = parseReference(`localhost:5000/a/b@sha256:${hex}`)
  assert.equal(pinned.registry, 'localhost:5000')
  assert.equal(pinned.repository, 'a/b')
  assert.equal(pinned.digest, `sha256:${hex}`)
  assert.equal(pinned.tag, undefined)
})

test('Platform: constructor, hostLinux, parse', () => {
  assert.equal(new Platform('Linux', 'x86_64').toString(), 'linux/amd64')
  const v6 = new Platform('linux', 'arm', 'v6')
  assert.deepEqual([v6.os, v6.arch, v6.variant], ['linux', 'arm', 'v6'])
  assert.equal(Platform.parse('linux/arm64').variant, 'v8')
  assert.equal(Platform.hostLinux().os, 'linux')
  assert.equal(new Platform('linux', 'amd64').variant, null)
})
