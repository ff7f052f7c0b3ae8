// Cancellation (AbortSignal), an exception thrown by onProgress, and a process that exits
// while a pull runs. The pulls here read a slow blob from a registry written in helpers.js.
'use strict'

const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { after, before, test } = require('node:test')

const { GlobalCache, Platform, Registry } = require('..')
const h = require('./helpers.js')

let slow
let ref
before(async () => {
  // Two layers, each ~2 MiB of noise sent in 32 KiB pieces every 20 ms (about 1.3 s each).
  const layers = [1, 2].map((seed) => h.tar([{ name: `blob${seed}`, data: h.noise(2 << 20, seed) }]))
  const img = h.image(layers)
  const big = new Set([...img.blobs.keys()].filter((d) => img.blobs.get(d).length > 1 << 20))
  slow = await h.craftedRegistry({ 'slow/image': img }, { slow: big, chunk: 32 * 1024, intervalMs: 20 })
  ref = `${slow.host}/slow/image:latest`
})
after(() => slow?.close())

function registry(cache) {
  return new Registry(Platform.parse('linux/amd64'), new GlobalCache(cache), { durable: false })
}

test('aborting the signal rejects with an AbortError once tmp/ is empty', async (t) => {
  const cache = h.tempCache(t)
  const controller = new AbortController()
  const events = []
  const pull = registry(cache).pull(ref, {
    signal: controller.signal,
    onProgress(e) {
      events.push(e.type)
      if (e.type === 'layerDownloadProgress' && !controller.signal.aborted) controller.abort()
    },
  })
  await assert.rejects(pull, (e) => {
    assert.equal(e.name, 'AbortError')
    assert.equal(e.code, 'CANCELLED')
    assert.equal(e.image, ref)
    return true
  })
  assert.deepEqual(h.tmpEntries(cache), [], 'staging directories are gone when the promise rejects')
  assert.ok(!events.includes('complete'))
  const layers = path.join(cache, 'layers', 'sha256')
  assert.deepEqual(fs.existsSync(layers) ? fs.readdirSync(layers) : [], [], 'no layer was published')
})

test('abort from a timer, and a signal reused after its pull settled', async (t) => {
  const cache = h.tempCache(t)
  const r = registry(cache)
  await assert.rejects(r.pull(ref, { signal: AbortSignal.timeout(300) }), { name: 'AbortError' })
  assert.deepEqual(h.tmpEntries(cache), [])
  // A long-lived signal: its listener is removed when each pull settles.
  const controller = new AbortController()
  let listeners = 0
  const add = controller.signal.addEventListener.bind(controller.signal)
  const remove = controller.signal.removeEventListener.bind(controller.signal)
  controller.signal.addEventListener = (...a) => (listeners++, add(...a))
  controller.signal.removeEventListener = (...a) => (listeners--, remove(...a))
  const res = await r.pull(ref, { signal: controller.signal })
  assert.equal(res.layers.length, 2)
  await r.pull(ref, { signal: controller.signal })
  assert.equal(listeners, 0)
  controller.abort() // after the pulls: nothing happens
})

test('an exception in onProgress cancels the pull and rejects with that exception', async (t) => {
  const cache = h.tempCache(t)
  const uncaught = []
  const onUncaught = (e) => uncaught.push(e)
  process.on('uncaughtException', onUncaught)
  t.after(() => process.off('uncaughtException', onUncaught))
  const thrown = new Error('callback failed')
  let threw = false
  let afterThrow = 0
  const pull = registry(cache).pull(ref, {
    onProgress(e) {
      if (threw) afterThrow++
      else if (e.type === 'layerDownloadProgress') {
        threw = true
        throw thrown
      }
    },
  })
  await assert.rejects(pull, (e) => e === thrown)
  assert.equal(afterThrow, 0, 'no event is delivered after the callback threw')
  assert.deepEqual(h.tmpEntries(cache), [])
  assert.deepEqual(uncaught, [])
  // The process and the registry still work.
  const ok = await registry(cache).pull(ref)
  assert.equal(ok.layers.length, 2)
})

test('a throw of a non-Error value rejects with that value', async (t) => {
  const pull = registry(h.tempCache(t)).pull(ref, {
    onProgress() {
      throw 'just a string' // eslint-disable-line no-throw-literal
    },
  })
  await assert.rejects(pull, (e) => e === 'just a string' || (e instanceof Error && /just a string/.test(e.message)))
})

test('process.exit() during a pull ends the process at once; the next pull cleans up', async (t) => {
  const cache = h.tempCache(t)
  const script = `
    const { GlobalCache, Platform, Registry } = require(${JSON.stringify(h.pkg)})
    const r = new Registry(Platform.parse('linux/amd64'), new GlobalCache(process.argv[1]))
    r.pull(process.argv[2], {
      onProgress(e) {
        if (e.type === 'layerDownloadProgress') { console.log('exiting'); process.exit(7) }
      },
    })
  `
  const started = Date.now()
  const child = spawn(process.execPath, ['-e', script, cache, ref], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const code = await new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 20000)
    child.on('exit', (c, signal) => {
      clearTimeout(timer)
      resolve(c ?? signal)
    })
  })
  assert.equal(code, 7, 'the process exited with its own code')
  assert.match(out, /exiting/)
  assert.ok(Date.now() - started < 15000, `exit took ${Date.now() - started} ms`)
  // The next pull of the same image into the same cache succeeds and sweeps the debris.
  const res = await registry(cache).pull(ref)
  assert.equal(res.layers.length, 2)
  assert.deepEqual(h.tmpEntries(cache), [])
})

test('a script whose pull is still running keeps node alive until the pull settles', async (t) => {
  const cache = h.tempCache(t)
  const script = `
    const { GlobalCache, Platform, Registry } = require(${JSON.stringify(h.pkg)})
    new Registry(Platform.parse('linux/amd64'), new GlobalCache(process.argv[1]))
      .pull(process.argv[2]).then((r) => console.log('pulled', r.layers.length))
  `
  const child = spawn(process.execPath, ['-e', script, cache, ref], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const code = await new Promise((resolve) => child.on('exit', resolve))
  assert.equal(code, 0)
  assert.match(out, /pulled 2/)
})
