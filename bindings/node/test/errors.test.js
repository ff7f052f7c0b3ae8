// Every error code the core can report, each provoked for real and checked for its `code`,
// its `image`/`layer` and a message that names them.
'use strict'

const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { after, before, test } = require('node:test')

const msbimage = require('..')
const { GlobalCache, Platform, Registry, parseReference } = msbimage
const h = require('./helpers.js')

let plain
let basic
let crafted
let slow
before(async () => {
  plain = await h.startTestkit()
  basic = await h.startTestkit('--basic', 'user:pass')
  const ok = h.tar([{ name: 'etc', type: '5' }, { name: 'etc/hello', data: 'hello\n' }])
  crafted = await h.craftedRegistry({
    'bad/digest': h.image([ok], { corrupt: true }),
    // A whiteout of the layer's parent directory: a merged view could apply it to the root.
    'bad/escape': h.image([h.tar([{ name: 'etc/.wh..', data: '' }])]),
    'bad/mediatype': h.image([ok], { mediaType: 'application/vnd.example.not-a-manifest+json' }),
  })
  // One layer of ~2 MiB sent in 32 KiB pieces every 20 ms: a pull that takes over a second.
  const big = h.image([h.tar([{ name: 'blob', data: h.noise(2 << 20, 7) }])])
  const bigBlobs = new Set([...big.blobs.keys()].filter((d) => big.blobs.get(d).length > 1 << 20))
  slow = await h.craftedRegistry({ 'slow/image': big }, { slow: bigBlobs, chunk: 32 * 1024, intervalMs: 20 })
})
after(async () => {
  await slow?.close()
  await crafted?.close()
  await basic?.stop()
  await plain?.stop()
})

function registry(t, options) {
  return new Registry(Platform.parse('linux/amd64'), new GlobalCache(h.tempCache(t)), options)
}

/** Asserts `promise` rejects with `code`; returns the error. */
async function rejectsWith(promise, code) {
  let error
  await assert.rejects(promise, (e) => {
    error = e
    return true
  })
  assert.ok(error instanceof Error, `${error} is an Error`)
  assert.equal(error.code, code, `${error.message}`)
  assert.ok(error.message.length > 0)
  return error
}

const seen = new Set()
function saw(e) {
  seen.add(e.code)
  return e
}

test('INVALID_REFERENCE: thrown by parseReference, rejected by pull', async (t) => {
  assert.throws(() => parseReference('Not A/Reference'), (e) => saw(e).code === 'INVALID_REFERENCE')
  await rejectsWith(registry(t).pull('Not A/Reference'), 'INVALID_REFERENCE')
})

test('INVALID_ARGUMENT: unknown settings and options are named, bad platforms refused', async (t) => {
  assert.throws(
    () => new Registry(Platform.hostLinux(), new GlobalCache(h.tempCache(t)), { concurency: 3 }),
    (e) => saw(e).code === 'INVALID_ARGUMENT' && e.message.includes('concurency'),
  )
  assert.throws(() => Platform.parse('linux'), { code: 'INVALID_ARGUMENT' })
  const r = registry(t)
  const ref = `${plain.host}/fixtures/standard:gzip`
  const e = await rejectsWith(r.pull(ref, { buildIndx: false }), 'INVALID_ARGUMENT')
  assert.match(e.message, /buildIndx/)
  await rejectsWith(r.pull(ref, { force: true, policy: 'never' }), 'INVALID_ARGUMENT')
  await rejectsWith(r.pull(ref, { platform: 'linux' }), 'INVALID_ARGUMENT')
  await rejectsWith(r.pull(ref, { onProgress: 'not a function' }), 'INVALID_ARGUMENT')
  assert.throws(
    () => new Registry(Platform.hostLinux(), new GlobalCache(h.tempCache(t)), { caFiles: ['/nonexistent/ca.pem'] }),
    { code: 'INVALID_ARGUMENT' },
  )
})

test('NOT_CACHED names the image', async (t) => {
  const ref = `${plain.host}/fixtures/standard:zstd`
  const e = saw(await rejectsWith(registry(t).pull(ref, { policy: 'never' }), 'NOT_CACHED'))
  assert.equal(e.image, ref)
  assert.ok(e.message.includes(ref))
})

test('PLATFORM_NOT_FOUND lists what there is', async (t) => {
  const e = saw(
    await rejectsWith(
      registry(t).pull(`${plain.host}/fixtures/multi:latest`, { platform: 'linux/s390x' }),
      'PLATFORM_NOT_FOUND',
    ),
  )
  assert.match(e.message, /s390x/)
  assert.match(e.image, /fixtures\/multi:latest$/)
})

test('AUTH: wrong or missing credentials; right ones pull', async (t) => {
  const ref = `${basic.host}/fixtures/standard:gzip`
  saw(await rejectsWith(registry(t).pull(ref), 'AUTH'))
  const wrong = { authFor: { [basic.host]: { type: 'basic', username: 'user', password: 'nope' } } }
  await rejectsWith(registry(t, wrong).pull(ref), 'AUTH')
  const right = { auth: { type: 'basic', username: 'user', password: 'pass' } }
  assert.equal((await registry(t, right).pull(ref)).layers.length, 3)
})

test('REGISTRY: a missing tag', async (t) => {
  saw(await rejectsWith(registry(t).pull(`${plain.host}/fixtures/standard:no-such-tag`), 'REGISTRY'))
})

test('DIGEST_MISMATCH names the layer and leaves nothing behind', async (t) => {
  const cache = h.tempCache(t)
  const r = new Registry(Platform.parse('linux/amd64'), new GlobalCache(cache), { maxRetries: 0 })
  const e = saw(await rejectsWith(r.pull(`${crafted.host}/bad/digest:latest`), 'DIGEST_MISMATCH'))
  assert.match(e.layer, /^sha256:[0-9a-f]{64}$/)
  assert.ok(e.message.includes(e.layer.slice(7, 19)) || e.message.includes(e.blob ?? '#'), e.message)
  assert.deepEqual(h.tmpEntries(cache), [])
})

test('EXTRACTION: a layer deleting outside itself', async (t) => {
  const e = saw(await rejectsWith(registry(t).pull(`${crafted.host}/bad/escape:latest`), 'EXTRACTION'))
  assert.match(e.layer, /^sha256:/)
})

test('UNSUPPORTED: a manifest of an unknown media type', async (t) => {
  saw(await rejectsWith(registry(t).pull(`${crafted.host}/bad/mediatype:latest`), 'UNSUPPORTED'))
})

test('IO: a cache that cannot be created', () => {
  assert.throws(() => new GlobalCache('/dev/null/cache'), (e) => saw(e).code === 'IO')
})

test('NOT_FOUND and INVALID_ARGUMENT from the layer stack', async (t) => {
  const stack = (await registry(t).pull(`${plain.host}/fixtures/standard:gzip`)).layerStack()
  assert.throws(() => stack.stat('etc/to-delete'), (e) => saw(e).code === 'NOT_FOUND')
  assert.throws(() => stack.readlink('etc/overwritten'), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => stack.readDir('etc/overwritten'), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => stack.readDir('nowhere'), { code: 'NOT_FOUND' })
})

test('LOCK_TIMEOUT: a layer another process holds for longer than lockTimeout', async (t) => {
  const ref = `${plain.host}/fixtures/standard:gzip`
  const hex = path.basename(path.dirname((await registry(t).pull(ref)).layers[0]))
  const cache = h.tempCache(t)
  new GlobalCache(cache)
  const lock = path.join(cache, 'locks', `layer-${hex}.lock`)
  const holder = spawn('flock', [lock, 'sleep', '60'], { stdio: 'ignore' })
  t.after(() => holder.kill())
  while (spawnSync('flock', ['-n', lock, 'true']).status === 0) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const r = new Registry(Platform.parse('linux/amd64'), new GlobalCache(cache), { lockTimeout: 0.3 })
  const events = []
  const e = saw(await rejectsWith(r.pull(ref, { onProgress: (ev) => events.push(ev) }), 'LOCK_TIMEOUT'))
  assert.match(e.message, /lockTimeout/)
  assert.ok(events.some((ev) => ev.type === 'layerWaiting' && ev.diffId === `sha256:${hex}`))
})

test('REGISTRY_BLOCKED: a registries.conf blocks the registry, naming the file', async (t) => {
  const conf = path.join(h.tempCache(t), 'registries.conf')
  fs.writeFileSync(conf, `[[registry]]\nprefix = "${plain.host}/fixtures"\nblocked = true\n`)
  const r = registry(t, { registriesConf: [conf] })
  const e = saw(await rejectsWith(r.pull(`${plain.host}/fixtures/standard:gzip`), 'REGISTRY_BLOCKED'))
  assert.ok(e.message.includes(conf), e.message)
  assert.equal(e.image, `${plain.host}/fixtures/standard:gzip`)
})

test('DEADLINE_EXCEEDED: a pull slower than its deadline stops', async (t) => {
  const r = registry(t, { deadline: 0.3 })
  const e = saw(await rejectsWith(r.pull(`${slow.host}/slow/image:latest`), 'DEADLINE_EXCEEDED'))
  assert.match(e.message, /deadline/)
})

test('CANCELLED is an AbortError', async (t) => {
  const controller = new AbortController()
  controller.abort()
  const e = saw(
    await rejectsWith(registry(t).pull(`${plain.host}/fixtures/standard:gzip`, { signal: controller.signal }), 'CANCELLED'),
  )
  assert.equal(e.name, 'AbortError')
})

test('every code the core lists was provoked above, but INTERNAL (a bug in the library)', () => {
  const codes = msbimage.errorCodes()
  assert.ok(codes.includes('INTERNAL'))
  assert.deepEqual(codes.filter((c) => !seen.has(c)), ['INTERNAL'])
})
